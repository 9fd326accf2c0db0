import Testing
@testable import Transfer

@Test func transferModuleLinks() {
  #expect(Bool(true))
}
