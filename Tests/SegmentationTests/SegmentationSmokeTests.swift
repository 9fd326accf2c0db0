import Testing
@testable import Segmentation

@Test func segmentationModuleLinks() {
  #expect(Bool(true))
}
