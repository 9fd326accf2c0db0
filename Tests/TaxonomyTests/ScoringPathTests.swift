import Foundation
import Testing
@testable import Taxonomy

/// The issue-13 situation in memory: every Mapillary class (10 pixels each, void 65 included)
/// against predictions that are exactly their default 66 -> 19 mapping (ignored classes
/// predicted as 0, a prediction that counts nowhere).
func exactMapillaryPredictions(_ library: MappingLibrary) throws -> ConfusionMatrix {
  let mapillary = try library.classSet(named: "mapillary-vistas-v1.2")
  let table = try library.mapping(named: "mapillary-vistas-v1.2-to-cityscapes-19").lookupTable
  let truth = (0..<66).flatMap { [UInt8](repeating: UInt8($0), count: 10) }
  let prediction = truth.map { table[Int($0)] == 255 ? 0 : table[Int($0)] }
  var matrix = ConfusionMatrix(
    groundTruth: mapillary, prediction: try library.classSet(named: "cityscapes-19"))
  matrix.accumulate(groundTruth: truth, prediction: prediction)
  return matrix
}

@Suite struct ScoringPathTests {
  let library: MappingLibrary

  init() throws { library = try MappingLibrary(directory: mappingsDirectory) }

  @Test func exactPredictionsScoreFullMarksAtEveryLevel() throws {
    let matrix = try exactMapillaryPredictions(library)
    for level in ["cityscapes-19", "cityscapes-categories", "super-5"] {
      let path = try library.scoringPath(
        groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19", level: level)
      #expect(path.common.name == "cityscapes-19")
      let report = try path.report(matrix)
      #expect(report.meanIoU == 1, "\(level): \(report.meanIoU)")
      #expect(report.pixelAccuracy == 1, "\(level)")
      #expect(report.mappings.first == "mapillary-vistas-v1.2-to-cityscapes-19 (variant A)")
    }
    // The other semantics (each side by its own default mapping: the direct MTAF table for the
    // ground truth) is what gave the issue's 60 %: it must differ, or this test proves nothing.
    let direct = try matrix.reduced(
      groundTruth: library.mapping(named: "mapillary-vistas-v1.2-to-cityscapes-categories"),
      prediction: library.mapping(from: "cityscapes-19", to: "cityscapes-categories")
    ).report()
    #expect(direct.meanIoU < 0.95)
    // `reduced(to:using:)` follows the scoring path too.
    #expect(try matrix.reduced(to: "cityscapes-categories", using: library).report().meanIoU == 1)
  }

  @Test func thePathNamesItsMappingsAndTheBypassedTable() throws {
    let path = try library.scoringPath(
      groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19",
      level: "cityscapes-categories")
    #expect(path.groundTruthSteps.map(\.name) == ["mapillary-vistas-v1.2-to-cityscapes-19"])
    #expect(path.predictionSteps.isEmpty)
    #expect(path.levelSteps.map(\.name) == ["cityscapes-19-to-cityscapes-categories"])
    #expect(
      path.bypassed.map(\.mapping.name) == ["mapillary-vistas-v1.2-to-cityscapes-categories"])
    #expect(path.bypassed.first?.differingClasses == 24)
    let lines = path.descriptionLines
    #expect(lines[0] == "scored at cityscapes-categories; ground truth and predictions meet at cityscapes-19")
    #expect(
      lines[1] == "ground truth: mapillary-vistas-v1.2 -> cityscapes-19 "
        + "[mapillary-vistas-v1.2-to-cityscapes-19 (variant A)] -> cityscapes-categories "
        + "[cityscapes-19-to-cityscapes-categories]")
    #expect(lines[3].hasPrefix("not used: mapillary-vistas-v1.2-to-cityscapes-categories"))
    // Predictions in Mapillary's own classes use the direct table on both sides.
    let native = try library.scoringPath(
      groundTruth: "mapillary-vistas-v1.2", prediction: "mapillary-vistas-v1.2",
      level: "cityscapes-categories")
    #expect(native.levelSteps.map(\.name) == ["mapillary-vistas-v1.2-to-cityscapes-categories"])
    #expect(native.bypassed.isEmpty)
  }

  @Test func groundTruthAndPredictionsMeetAtTheFinestSharedClassSet() throws {
    // Labels in labelIds, predictions in CamVid: both map to cityscapes-19.
    let across = try library.scoringPath(groundTruth: "cityscapes-34", prediction: "camvid-11")
    #expect(across.common.name == "cityscapes-19" && across.level.name == "cityscapes-19")
    #expect(across.predictionSteps.map(\.name) == ["camvid-11-to-cityscapes-19"])
    // Predictions finer than the ground truth (labelIds against trainIds): meet at the truth's.
    let finer = try library.scoringPath(groundTruth: "cityscapes-19", prediction: "cityscapes-34")
    #expect(finer.common.name == "cityscapes-19" && finer.groundTruthSteps.isEmpty)
    // No common class set leads to the level.
    #expect(
      throws: TaxonomyError.noCommonLevel(
        groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19",
        level: "mapillary-vistas-v1.2")
    ) {
      try library.scoringPath(
        groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19",
        level: "mapillary-vistas-v1.2")
    }
    // The ground-truth step is the library's mapping between the two sets (what training and
    // the transfer backends map labels with).
    for (truth, prediction) in [
      ("mapillary-vistas-v1.2", "cityscapes-19"), ("cityscapes-34", "cityscapes-19"),
      ("camvid-32", "cityscapes-19"), ("mapillary-vistas-v1.2", "super-5"),
    ] {
      let path = try library.scoringPath(groundTruth: truth, prediction: prediction)
      #expect(
        path.groundTruthMapping.lookupTable
          == (try library.mapping(from: truth, to: prediction)).lookupTable)
    }
  }

  @Test func overridesReplaceTheirStepAndMustBeOnThePath() throws {
    let ladd = try library.mapping(named: "mapillary-vistas-v1.2--cityscapes-19.ladd")
    let path = try library.scoringPath(
      groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19", using: [ladd])
    #expect(path.mappingNames == ["mapillary-vistas-v1.2-to-cityscapes-19.ladd (variant B)"])
    let direct = try library.mapping(named: "mapillary-vistas-v1.2-to-cityscapes-categories")
    do {
      _ = try library.scoringPath(
        groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19",
        level: "cityscapes-categories", using: [direct])
      Issue.record("an override off the path was accepted")
    } catch {
      guard case .mappingNotOnPath(let name, _) = error else {
        Issue.record("unexpected error \(error)")
        return
      }
      #expect(name.hasPrefix("mapillary-vistas-v1.2-to-cityscapes-categories"))
    }
  }

  @Test func variantsCoverEveryCombinationDefaultsFirst() throws {
    let nineteen = try library.scoringPathVariants(
      groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19")
    #expect(nineteen.count == 5)
    #expect(nineteen[0].choices.map(\.variant) == ["A"])
    #expect(Set(nineteen.compactMap { $0.choices.first?.variant }) == ["A", "B", "C", "D", "E"])
    let superFive = try library.scoringPathVariants(
      groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19", level: "super-5")
    #expect(superFive.count == 10)
    #expect(superFive[0].label.contains("variant A") && superFive[0].label.contains("variant S2"))
    // A step fixed by --mapping is not varied.
    let narrow = try library.mapping(named: "cityscapes-19-to-super-5.narrow")
    let pinned = try library.scoringPathVariants(
      groundTruth: "mapillary-vistas-v1.2", prediction: "cityscapes-19", level: "super-5",
      using: [narrow])
    #expect(pinned.count == 5)
    #expect(pinned.allSatisfy { $0.path.levelSteps.map(\.name) == [narrow.name] })
    // Exact predictions under the default score 100 %; the others differ (their truth tables
    // differ from the one the predictions were made with).
    let matrix = try exactMapillaryPredictions(library)
    let scores = try nineteen.map { try $0.path.report(matrix).meanIoU }
    #expect(scores[0] == 1)
    #expect(scores.dropFirst().allSatisfy { $0 < 1 })
  }

  @Test func checkFindsTheClassesWhereADirectTableLeavesTheChain() throws {
    let comparisons = library.pathComparisons()
    let categories = try #require(
      comparisons.first { $0.direct.name == "mapillary-vistas-v1.2-to-cityscapes-categories" })
    #expect(categories.path.map(\.name) == [
      "mapillary-vistas-v1.2-to-cityscapes-19", "cityscapes-19-to-cityscapes-categories",
    ])
    #expect(categories.differences.count == 24)
    let terrain = try #require(categories.differences.first { $0.sourceID == 29 })
    #expect(terrain.direct == 0 && terrain.composed == 3)  // flat (MTAF) vs nature
    let curb = try #require(categories.differences.first { $0.sourceID == 2 })
    #expect(curb.direct == 1 && curb.composed == 0)  // construction vs flat (sidewalk)
    let camvid = try #require(comparisons.first { $0.direct.name == "camvid-11-to-super-5" })
    #expect(camvid.differences.isEmpty)
  }

  @Test func labelValuesOutsideTheClassSetAreCountedAndNamed() throws {
    let mapillary = try library.classSet(named: "mapillary-vistas-v1.2")
    // 19-class labels (trainIds with void 255) read as Mapillary labels.
    let trainIDs: [UInt8] = [0, 0, 13, 18, 255, 255, 255]
    let histogram = ClassSet.valueHistogram(trainIDs)
    #expect(mapillary.unknownLabelValues(in: histogram) == [LabelValueCount(value: 255, count: 3)])
    #expect(
      throws: TaxonomyError.labelValuesNotInClassSet(
        file: "x.png", classSet: "mapillary-vistas-v1.2",
        values: [LabelValueCount(value: 255, count: 3)])
    ) { try mapillary.checkLabelValues(histogram, file: "x.png") }
    try library.classSet(named: "cityscapes-19").checkLabelValues(histogram, file: "x.png")
    var pairs = RawPairHistogram()
    pairs.add(groundTruth: trainIDs, prediction: [1, 1, 1, 1, 1, 2, 70])
    #expect(pairs.valueCounts.groundTruth[255] == 3 && pairs.valueCounts.prediction[1] == 5)
  }
}
