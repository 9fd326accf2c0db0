import Testing
@testable import Medical

@Test func medicalModuleLinks() {
  #expect(Bool(true))
}
