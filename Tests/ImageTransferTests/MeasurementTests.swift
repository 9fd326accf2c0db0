import Foundation
import Segmentation
import Taxonomy
import Tensor
import TestSupport
import Testing
@testable import ImageTransfer
@testable import Transfer

/// Mean IoU of predicted label maps against ground truth, counted pixel by pixel: classes below
/// `classCount`; a void ground-truth pixel is skipped, a void prediction is a miss; classes
/// absent from both sides are left out of the mean.
func countedMeanIoU(
  _ predictions: [[UInt8]], _ truths: [[UInt8]], classCount: Int, void: UInt8
) -> Double {
  var tp = [Int](repeating: 0, count: classCount)
  var fp = tp
  var fn = tp
  for (prediction, truth) in zip(predictions, truths) {
    for (p, t) in zip(prediction, truth) where t != void {
      if p == t {
        tp[Int(t)] += 1
      } else {
        fn[Int(t)] += 1
        if p != void && Int(p) < classCount { fp[Int(p)] += 1 }
      }
    }
  }
  let ious = (0..<classCount).compactMap { c -> Double? in
    let union = tp[c] + fp[c] + fn[c]
    return union == 0 ? nil : Double(tp[c]) / Double(union)
  }
  return ious.reduce(0, +) / Double(ious.count)
}

@Test("labels @R of the table recounted from the PNGs under labels/; scores at each image's own size and at the working size")
func labelScoresRecountedFromFiles() throws {
  // The scenes are 32x48; the network works at 16x24, so the two resolutions differ.
  var configuration = TransferConfiguration(
    seed: 4, schedules: [.selfLearning, .atso], folds: 2, generations: 1,
    backend: try tinyOptions(["size": "16x24"]))
  configuration.pseudoLabels.adaptBatchNorm = true
  let validated = try configuration.validated()
  let backend = try #require(try validated.makeBackend() as? ImageBackend)
  let directory = try makeTemporaryDirectory("label-scores")
  let run = try TransferRun.start(configuration: validated, directory: directory, backend: backend)
  let records = try run.execute()
  let truths = try #require(backend.reference.labels)
  let index = Dictionary(uniqueKeysWithValues: backend.reference.ids.enumerated().map { ($1, $0) })
  let data = try #require(FileManager.default.contents(atPath: directory + "/table.json"))
  let table = try JSONDecoder().decode(ResultsTable.JSONForm.self, from: data)
  let rows = try #require(table.stages.first?.rows)
  /// The independent count over label folders of the run.
  func recount(_ folders: [String]) throws -> Double {
    var predictions: [[UInt8]] = []
    var truth: [[UInt8]] = []
    for folder in folders {
      let path = directory + "/labels/" + folder
      for file in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
        let label = try ImageFile.readLabel(at: path + "/" + file)
        #expect(label.width == 24 && label.height == 16)
        predictions.append(label.values)
        truth.append(truths[try #require(index[String(file.dropLast(4))])])
      }
    }
    #expect(predictions.count == 4)
    return countedMeanIoU(predictions, truth, classCount: 19, void: 255)
  }
  let cases: [(row: Int, schedule: String, folders: [String])] = [
    (0, "atso", ["fine-atso-g1-fold1", "fine-atso-g1-fold2"]),
    (1, "atso", ["fine-atso-final-fold1", "fine-atso-final-fold2"]),
    (2, "atso", ["fine-atso-final-fold1", "fine-atso-final-fold2"]),
    (0, "self-learning", ["fine-self-learning-g1-labels"]),
    (1, "self-learning", ["fine-self-learning-g2-labels"]),
  ]
  for (row, schedule, folders) in cases {
    let cell = try #require(rows[row].cells[schedule])
    let expected = try recount(folders)
    #expect(abs((cell.labelsAtR ?? -1) - expected) < 1e-9, "\(schedule) row \(row): \(folders)")
  }
  // Every model: R and E, as trained and with AdaBN, at both resolutions, named.
  #expect(table.resolution == "32x48, each image's own size")
  #expect(table.workingResolution == "16x24, the working size")
  for record in records {
    #expect(record.scores.count == 8, "\(record.model)")
    #expect(record.atEAdaBN != nil && record.atRAdaBN != nil)
  }
  // The native score recounted: M0's probabilities upsampled to 32x48 (the shared
  // function of `predict`), against the full-resolution labels of E.
  let m0 = try #require(records.first { $0.stage == ResultsTable.baselineStage })
  let model = try backend.loadModel(directory + "/models/source.ckpt")
  let native = try #require(backend.test.nativeLabels)
  let predicted = predictProbabilities(model, images: backend.test.images, batch: 2).map {
    ClassDecisions(
      probabilities: probabilitiesAtImageSize($0, size: ImageSize(height: 32, width: 48)).scalars,
      classCount: 19
    ).labels
  }
  let expected = countedMeanIoU(predicted, native.map(\.values), classCount: 19, void: 255)
  #expect(abs(m0.atE - expected) < 1e-9)
  let working = try #require(
    m0.scores.first { $0.set == .test && $0.statistics == .asTrained && $0.resolution == .working })
  #expect(working.evaluation.score != m0.atE)
}

@Test("the same data and seed: M0 of two runs that differ only in student settings, R and E is one model")
func sourceModelSharedAcrossStudentSettings() throws {
  func sourcePlan(_ extra: [String: ConfigurationValue]) throws -> (TransferJob, ImageBackend) {
    let options = try tinyOptions(extra)
    let configuration = try TransferConfiguration(seed: 3, generations: 2, backend: options)
      .validated()
    let backend = try #require(try configuration.makeBackend() as? ImageBackend)
    let plan = try TransferPlan(
      configuration: configuration,
      split: try FoldSplit(units: backend.referenceUnits(), count: 2, runSeed: 3))
    return (try #require(plan.jobs.first { $0.id == "train-source" }), backend)
  }
  let (a, backendA) = try sourcePlan([:])
  let (b, backendB) = try sourcePlan([
    "finetuneIterations": 5, "finetuneLearningRate": 0.2, "pseudoShare": 0.25,
    "test": .string("mapillary:\(tinyStreets)/target:training"),
    "reference": .string("mapillary:\(tinyStreets)/target:validation?unlabeled"),
  ])
  #expect(a.identity == b.identity && a.seed == b.seed)
  let directory = try makeTemporaryDirectory("shared-m0")
  try backendA.trainSource(
    SourceTrainingRequest(network: nil, output: directory + "/a.ckpt", seed: a.seed))
  try backendB.trainSource(
    SourceTrainingRequest(network: nil, output: directory + "/b.ckpt", seed: b.seed))
  let bytesA = FileManager.default.contents(atPath: directory + "/a.ckpt")
  #expect(bytesA != nil && bytesA == FileManager.default.contents(atPath: directory + "/b.ckpt"))
  let (c, _) = try sourcePlan(["sourceIterations": 7])
  #expect(c.identity != a.identity && c.seed != a.seed)
}
