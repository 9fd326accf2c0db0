import Testing
@testable import Taxonomy

@Test func taxonomyModuleLinks() {
  #expect(Bool(true))
}
