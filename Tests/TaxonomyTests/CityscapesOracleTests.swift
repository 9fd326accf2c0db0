import Foundation
import Tensor
import TestSupport
import Testing
@testable import Taxonomy

/// A Python interpreter that can import PyPI's `cityscapesscripts` (``PeerPython``: ../venv-peers
/// from scripts/setup_peers.sh), or nil.
enum CityscapesOracle {
  static let python = PeerPython.find(
    importing: ["cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling", "numpy"])
}

@Suite struct CityscapesOracleTests {
  /// Random labelId images (noisy copies of a random ground truth) scored by cityscapesScripts'
  /// `evaluatePair`, `getIouScoreForLabel` and `getIouScoreForCategory`, and by our
  /// ConfusionMatrix: class IoU on the 34 labelIds and category IoU after reducing by the
  /// shipped cityscapes-34 -> 19 -> categories mappings agree to 1e-6.
  @Test(
    .enabled(if: PeerPython.enabled(CityscapesOracle.python), PeerPython.missing("cityscapesscripts")))
  func classAndCategoryIoUMatchCityscapesScripts() throws {
    let python = try #require(CityscapesOracle.python, PeerPython.missing("cityscapesscripts"))
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let library = try MappingLibrary(directory: mappingsDirectory)
    let labelIds = try library.classSet(named: "cityscapes-34")
    var matrix = ConfusionMatrix(classes: labelIds)
    var rng = SeededGenerator(seed: 2021)
    var manifest = ""
    let shapes = [(24, 32), (17, 41), (40, 30)]
    for (index, (height, width)) in shapes.enumerated() {
      let count = height * width
      // Ground truth: labelIds 0...33, a few labels over-represented, one label absent.
      let gt: [UInt8] = (0..<count).map { _ in
        let r = rng.next() % 100
        return r < 30 ? [7, 8, 26][Int(r % 3)] : UInt8(rng.next() % 33)  // 33 never in gt
      }
      let pred: [UInt8] = gt.map { value in
        rng.next() % 100 < 60 ? value : UInt8(rng.next() % 34)
      }
      matrix.accumulate(groundTruth: gt, prediction: pred)
      try Data(gt).write(to: URL(fileURLWithPath: "\(directory)/gt\(index).bin"))
      try Data(pred).write(to: URL(fileURLWithPath: "\(directory)/pred\(index).bin"))
      manifest += "gt\(index).bin pred\(index).bin \(height) \(width)\n"
    }
    try write(manifest, to: directory, named: "pairs.txt")
    let (status, output, _) = PeerPython.run(
      python, [packageRoot + "/scripts/cityscapes_oracle.py", directory])
    try #require(status == 0, "the Python oracle failed")
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
    let classIoU = try #require(json["classIoU"] as? [String: Any])
    let categoryIoU = try #require(json["categoryIoU"] as? [String: Any])

    // The raw matrices agree.
    let reference = try #require(json["matrix"] as? [[Int]])
    for g in 0..<34 {
      for p in 0..<34 {
        #expect(Int(matrix.count(groundTruthID: g, predictionID: p)) == reference[g][p])
      }
    }
    // Class IoU on labelIds (ignoreInEval labels are NaN / null on both sides).
    let report = try matrix.report()
    var compared = 0
    for score in report.perClass {
      let expected = classIoU[String(score.id)] as? Double
      if let expected {
        #expect(abs(score.iou - expected) <= 1e-6, "class \(score.name)")
        compared += 1
      } else {
        #expect(score.iou.isNaN, "class \(score.name) should be NaN")
      }
    }
    #expect(compared == 19)  // every evaluated label, bicycle (33) included: absent, predicted
    #expect(try #require(report.score(id: 33)).iou == 0)
    let meanClass = try #require(json["meanClassIoU"] as? Double)
    #expect(abs(report.meanIoU - meanClass) <= 1e-6)

    // Class IoU again after reducing to trainIds: the same numbers.
    let toTrainIds = try library.mapping(from: "cityscapes-34", to: "cityscapes-19")
    let trainReport = try matrix.reduced(by: toTrainIds).report()
    #expect(abs(trainReport.meanIoU - meanClass) <= 1e-6)

    // Category IoU: reduce by the composed labelIds -> categories mapping.
    let toCategories = try library.mapping(from: "cityscapes-34", to: "cityscapes-categories")
    let categoryReport = try matrix.reduced(by: toCategories).report()
    for score in categoryReport.perClass {
      let expected = try #require(categoryIoU[score.name] as? Double, "category \(score.name)")
      #expect(abs(score.iou - expected) <= 1e-6, "category \(score.name)")
    }
    let meanCategory = try #require(json["meanCategoryIoU"] as? Double)
    #expect(abs(categoryReport.meanIoU - meanCategory) <= 1e-6)
  }
}
