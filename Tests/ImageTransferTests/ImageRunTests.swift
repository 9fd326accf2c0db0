import Foundation
import Segmentation
import Taxonomy
import Tensor
import TestSupport
import Testing
@testable import ImageTransfer
@testable import Transfer

@Test("1-generation ATSO with the real networks: provenance, files and metrics")
func segmentationEndToEnd() throws {
  let directory = try makeTemporaryDirectory("e2e")
  let configuration = try TransferConfiguration(
    seed: 4, schedules: [.atso], folds: 2, generations: 1, backend: tinyOptions()
  ).validated()
  let backend = try #require(try configuration.makeBackend() as? ImageBackend)
  #expect(try backend.referenceUnits().count == 4)
  let run = try TransferRun.start(
    configuration: configuration, directory: directory, backend: backend)
  let records = try run.execute()
  #expect(records.count == 1 + 1 + 2 + 1)  // the baseline, M0, two fold models, final
  for record in records {
    #expect(record.atE >= 0 && record.atE <= 1)
    #expect(record.atR >= 0 && record.atR <= 1)
    #expect(record.perClass.test.count == 19)
  }
  #expect(records[0].atE > 0)
  for job in run.plan.jobs {
    let data = try #require(FileManager.default.contents(atPath: "\(directory)/steps/\(job.id).json"))
    let step = try JSONDecoder().decode(StepRecord.self, from: data)
    if let labels = step.labelSet {
      if labels.isCrossFold {
        #expect(Set(labels.teacherTrainedOn).isDisjoint(with: labels.units))
      }
      for unit in labels.units {
        let label = try ImageFile.readLabel(at: "\(directory)/\(labels.directory)/\(unit).png")
        #expect(label.width == 48 && label.height == 32)
        #expect(label.values.allSatisfy { $0 < 19 })
      }
    }
  }
  for name in ["table.md", "metrics.jsonl", "models/source.ckpt", "models/fine-atso-final.ckpt"] {
    #expect(FileManager.default.fileExists(atPath: directory + "/" + name), "\(name) missing")
  }
  // The records a paper needs: the units of S, every step's loss, class names, a legend.
  let sets = try JSONDecoder().decode(
    DataSummary.self, from: try #require(FileManager.default.contents(atPath: directory + "/sets.json")))
  #expect(sets.unit == "image" && sets.labeled.count == 6 && sets.reference.count == 4)
  #expect(sets.test == backend.test.ids)
  let sourceLog = try String(contentsOfFile: directory + "/losses/train-source.csv", encoding: .utf8)
  let rows = sourceLog.split(separator: "\n")
  #expect(rows.first == "step,loss,learningRate,gradientNorm,labeledPixels")
  #expect(rows.dropFirst().map { $0.split(separator: ",")[0] } == (1...6).map { "\($0)"[...] })
  #expect(rows.dropFirst().allSatisfy { Float($0.split(separator: ",")[1]).map { $0 > 0 } == true })
  let students = try FileManager.default.contentsOfDirectory(atPath: directory + "/losses")
    .filter { $0.hasPrefix("finetune-") }
  #expect(students.count == 3)  // two fold models and the final one
  #expect(records[0].perClass.classes?.first == "road" && records[0].perClass.classes?.count == 19)
  let table = try String(contentsOfFile: directory + "/table.md", encoding: .utf8)
  #expect(table.contains("## Legend") && table.contains("S (labeled) 6 images"))
  #expect(table.contains("S cityscapes-34 -> cityscapes-19 by mapping"))
  // predictions.png: the 3 test images (fewer than the default 4), each with its picture,
  // ground truth and the predictions of M0 and of ATSO's final model, in the class colours.
  let (models, level) = run.previewModels()
  #expect(models.map(\.title) == ["source only", "ATSO final"])
  #expect(models.map(\.checkpoint) == ["source", "fine-atso-final"].map { "\(directory)/models/\($0).ckpt" })
  #expect(level == .fine)
  let sheet = try PNGCodec.decodeRGB(
    Array(try #require(FileManager.default.contents(atPath: directory + "/predictions.png"))),
    path: "predictions.png")
  var expected = ContactSheet(predictionsOf: models)
  let palette = backend.classSet.displayColors
  let colors = palette
  let truths = try #require(backend.test.labels)
  let blank = RGBImage(width: 48, height: 32, pixels: [UInt8](repeating: 0, count: 48 * 32 * 3))
  for truth in truths {
    expected.addRow(
      caption: "",
      panels: [blank, LabelImage(width: 48, height: 32, values: truth).colorized(palette), blank,
        blank])
  }
  let layout = expected.layout
  #expect(sheet.height > layout.height)  // plus the legend lines
  for (row, truth) in truths.enumerated() {
    let origin = layout.panelOrigin(row: row, column: 1)
    for (i, value) in truth.enumerated() where i % 7 == 0 {
      let (y, x) = (i / 48, i % 48)
      let p = 3 * ((origin.y + layout.up * y) * sheet.width + origin.x + layout.up * x)
      #expect(
        LabelColor(sheet.pixels[p], sheet.pixels[p + 1], sheet.pixels[p + 2]) == colors[Int(value)],
        "row \(row) pixel \(i)")
    }
  }
  // Resuming the finished run runs no job and keeps the previews (same checkpoints).
  let counting = InterruptingBackend(backend, limit: .max)
  let resumed = try TransferRun(
    resuming: directory, backend: counting, kinds: [ImageBackendOptions.self])
  try resumed.execute()
  #expect(counting.calls == 0 && counting.previewCalls == 0)
  #expect(FileManager.default.fileExists(atPath: directory + "/predictions.png"))
}

/// A backend that throws after `limit` calls, to interrupt a run with the real networks.
final class InterruptingBackend: TransferBackend {
  struct Interrupted: Error, Equatable {}
  let inner: any TransferBackend
  let limit: Int
  var calls = 0

  init(_ inner: any TransferBackend, limit: Int) {
    self.inner = inner
    self.limit = limit
  }

  func tick() throws {
    calls += 1
    if calls > limit { throw Interrupted() }
  }

  func referenceUnits() throws -> [String] { try inner.referenceUnits() }
  func dataSummary() throws -> DataSummary { try inner.dataSummary() }
  func trainSource(_ r: SourceTrainingRequest) throws {
    try tick()
    try inner.trainSource(r)
  }
  func importSource(_ r: SourceImportRequest) throws {
    try tick()
    try inner.importSource(r)
  }
  func trainStudent(_ r: StudentTrainingRequest) throws {
    try tick()
    try inner.trainStudent(r)
  }
  func adaptBatchNorm(_ r: BatchNormAdaptationRequest) throws {
    try tick()
    try inner.adaptBatchNorm(r)
  }
  func generatePseudoLabels(_ r: PseudoLabelRequest) throws {
    try tick()
    try inner.generatePseudoLabels(r)
  }
  var scoreResolutions: [ScoreResolution] { inner.scoreResolutions }
  func evaluate(_ r: EvaluationRequest) throws -> Evaluation {
    try tick()
    return try inner.evaluate(r)
  }
  func scorePseudoLabels(_ r: PseudoLabelScoreRequest) throws -> Evaluation? {
    try tick()
    return try inner.scorePseudoLabels(r)
  }
  func agreement(_ r: AgreementRequest) throws -> Double {
    try tick()
    return try inner.agreement(r)
  }
  var previewCalls = 0
  func writePreviews(_ r: PreviewRequest) throws -> Bool {
    previewCalls += 1
    return try inner.writePreviews(r)
  }
}

@Test("resume after an interruption gives the same final metrics with the real networks")
func segmentationResume() throws {
  var configuration = TransferConfiguration(
    seed: 8, schedules: [.atso], folds: 2, generations: 1, backend: try tinyOptions())
  configuration.pseudoLabels.adaptBatchNorm = true
  configuration.stages = [
    StageConfiguration(name: "coarse", method: .schedules, level: .superClass(mapping: "super-5")),
    StageConfiguration(
      name: "fine", method: .train, level: .fine, initialization: .previousStage,
      labels: .relabel),
  ]
  let validated = try configuration.validated()
  let straight = try makeTemporaryDirectory("straight")
  try TransferRun.start(
    configuration: validated, directory: straight, backend: validated.makeBackend()
  ).execute()
  let interrupted = try makeTemporaryDirectory("interrupted")
  let failing = InterruptingBackend(try validated.makeBackend(), limit: 9)
  let first = try TransferRun.start(
    configuration: validated, directory: interrupted, backend: failing)
  #expect(throws: InterruptingBackend.Interrupted()) { try first.execute() }
  let resumed = try TransferRun(
    resuming: interrupted, backend: validated.makeBackend(), kinds: [ImageBackendOptions.self])
  try resumed.execute()
  #expect(!resumed.executedJobs.isEmpty)
  #expect(resumed.executedJobs.count < resumed.plan.jobs.count)
  for name in ["metrics.jsonl", "table.md"] {
    let a = FileManager.default.contents(atPath: straight + "/" + name)
    let b = FileManager.default.contents(atPath: interrupted + "/" + name)
    #expect(a != nil && a == b, "\(name) differs after resume")
  }
}

@Test("training batches: pseudo labels follow their images through flip, scale, crop and pad")
func trainingBatchesTransformLabels() throws {
  let size = ImageSize(height: 8, width: 12)
  // The red channel encodes the label (10 per class), constant over 2x2 blocks.
  func item(_ seed: Int) -> TrainingItem {
    var labels = [UInt8](repeating: 0, count: 96)
    var raw = [Float](repeating: 0, count: 96 * 3)
    for y in 0..<8 {
      for x in 0..<12 {
        let label = UInt8((x / 2 + 3 * (y / 2) + seed) % 5)
        labels[y * 12 + x] = label
        raw[3 * (y * 12 + x)] = Float(label) * 10
        raw[3 * (y * 12 + x) + 1] = 100  // green: image content (padding is 0)
      }
    }
    return TrainingItem(image: Tensor(shape: [8, 12, 3], scalars: raw), labels: labels)
  }
  var recipe = ImageTrainingRecipe(
    steps: 1, batch: 4, learningRate: 0.1, optimizer: .sgd(SGD()), maxGradientNorm: nil,
    augmentation: AugmentationConfig(
      cropSize: size, flipProbability: 1, normalization: .unit, ignoreIndex: 250),
    pseudoShare: 0.5, ignore: 250, classSetName: "toy")
  let fine = ClassLevel.fine(try ClassSet(name: "toy", classes: (0..<5).map {
    SemanticClass(id: $0, name: "c\($0)")
  }))
  var batches = TrainingBatches(
    labeled: [item(0)], pseudo: [item(1), item(2)], pseudoLevel: fine, recipe: recipe, seed: 3)
  let flipped = batches.next()
  #expect(flipped.groups == nil && flipped.batch.count == 4)
  for n in 0..<4 {
    for p in 0..<96 {
      let label = flipped.batch.labels[n * 96 + p]
      let red = flipped.batch.images.scalars[3 * (n * 96 + p)] * 255
      #expect(abs(red - Float(label) * 10) < 1e-3, "image \(n) pixel \(p)")
    }
  }
  // Half size, then padded back: void labels exactly where the image is padding (the mean
  // pixel, 0 after the unit normalisation; the content's green channel is 100).
  recipe.augmentation.scaleRange = 0.5...0.5
  recipe.augmentation.flipProbability = 0
  batches = TrainingBatches(
    labeled: [item(0)], pseudo: [item(1)], pseudoLevel: fine, recipe: recipe, seed: 4)
  let padded = batches.next()
  let void = padded.batch.labels.filter { $0 == 250 }.count
  #expect(void == 4 * (96 - 24))
  for i in padded.batch.labels.indices {
    let green = padded.batch.images.scalars[3 * i + 1] * 255
    #expect((padded.batch.labels[i] == 250) == (green < 1), "pixel \(i): green \(green)")
  }
}
