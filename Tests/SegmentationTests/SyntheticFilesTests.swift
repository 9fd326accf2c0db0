import Foundation
import Testing

@testable import Segmentation

@Suite("synthetic scenes on disk")
struct SyntheticFilesTests {
  @Test(
    "source (Cityscapes layout) and target (Mapillary layout) read back exactly",
    arguments: SyntheticStreets.Domain.allCases)
  func roundTrip(domain: SyntheticStreets.Domain) throws {
    let root = try TestPaths.temporaryDirectory("synth-\(domain.rawValue)")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let dataset = try SyntheticStreets.writeDataset(
      domain: domain, root: root, split: "train", count: 3, seed: 42)
    #expect(dataset.count == 3)
    #expect(dataset.classSetName == (domain == .source ? "cityscapes-34" : "mapillary-vistas-v1.2"))
    for i in 0..<3 {
      let scene = SyntheticStreets.scene(domain: domain, index: i, seed: 42, width: 128, height: 64)
      let sample = try dataset.load(i)
      #expect(sample.image.pixels == scene.rgb)
      #expect(sample.label?.values == scene.labels)
    }
    if domain == .target {
      let palette = try ImageFile.readPalette(at: try #require(dataset.samples[0].labelPath))
        .palette
      #expect(palette == SyntheticStreets.mapillaryPalette)
    }
  }

  @Test(
    "the embedded Mapillary palette matches the real v1.2 label file",
    .enabled(if: TestPaths.hasSharedData("mapillary-mini")))
  func paletteMatchesReal() throws {
    let real = try ImageFile.readPalette(
      at: TestPaths.sharedData + "/mapillary-mini/v1.2/__CRyFzoDOXn6unQ6a3DnQ.png"
    ).palette
    #expect(real.count >= 66)
    #expect(Array(real.prefix(66)) == SyntheticStreets.mapillaryPalette)
  }
}
