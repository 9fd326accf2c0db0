import Foundation
import Segmentation
import Taxonomy
import Tensor
import TestSupport
import Testing
@testable import ImageTransfer
@testable import Transfer

/// Tiny synthetic domains written once: 6 source scenes (Cityscapes layout), 4 target scenes in
/// R and 3 in E (Mapillary layout), 32x48 pixels.
let tinyStreets: String = {
  do {
    let root = try makeTemporaryDirectory("image-backend-data")
    try SyntheticStreets.writeDataset(
      domain: .source, root: root + "/source", split: "train", count: 6, seed: 3, width: 48,
      height: 32)
    try SyntheticStreets.writeDataset(
      domain: .target, root: root + "/target", split: "training", count: 4, seed: 3, width: 48,
      height: 32)
    try SyntheticStreets.writeDataset(
      domain: .target, root: root + "/target", split: "validation", count: 3, seed: 3,
      width: 48, height: 32, firstIndex: 500)
    return root
  } catch {
    Issue.record("cannot write the tiny scenes: \(error)")
    return "/nonexistent"
  }
}()

/// The options of the tiny runs (a backend object), with `extra` keys set or replaced.
func tinyObject(_ extra: [String: ConfigurationValue] = [:]) -> [String: ConfigurationValue] {
  var options: [String: ConfigurationValue] = [
    "source": .string("cityscapes:\(tinyStreets)/source:train"),
    "reference": .string("mapillary:\(tinyStreets)/target:training?unlabeled"),
    "test": .string("mapillary:\(tinyStreets)/target:validation"),
    "classes": "cityscapes-19", "widths": [4, 8], "size": "32x48", "batch": 2,
    "sourceIterations": 6, "finetuneIterations": 3, "learningRate": 0.05,
    "mappings": .string(packageMappings),
  ]
  for (key, value) in extra { options[key] = value }
  return options
}

func tinyOptions(_ extra: [String: ConfigurationValue] = [:]) throws -> ImageBackendOptions {
  try ImageBackendOptions.decoding(tinyObject(extra))
}

/// The levels every tiny backend resolves.
let tinyLevels: [LabelLevel] = [
  .fine, .superClass(mapping: "cityscapes-19--super-5"), .superClass(mapping: "super-5"),
]

func tinyBackend(
  _ extra: [String: ConfigurationValue] = [:], ignoreIndex: IgnoreIndex = .standard,
  sourceModel: String? = nil
) throws -> ImageBackend {
  try ImageBackend(
    options: try tinyOptions(extra),
    context: BackendContext(levels: tinyLevels, ignoreIndex: ignoreIndex, sourceModel: sourceModel))
}

/// A trained tiny source model at `directory/source.ckpt`.
func tinySourceModel(_ backend: ImageBackend, in directory: String) throws -> String {
  let path = directory + "/source.ckpt"
  try backend.trainSource(SourceTrainingRequest(network: nil, output: path, seed: 5))
  return path
}

@Test("options: typed, every key documented with its real default, unknown and renamed keys named")
func imageOptions() throws {
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "configuration", key: "backend.source", reason: "missing")
  ) { try ImageBackendOptions.decoding([:]) }
  let minimal = try ImageBackendOptions.decoding(
    ["source": "camvid:/a/train.txt", "test": "camvid:/a/val.txt"])
  // Every documented default that is a value is the decoded default.
  let encoded = try minimal.jsonObject()
  for key in ImageBackendOptions.keys {
    guard let documented = key.kind.value(of: key.defaultText) else { continue }
    if key.kind == .string && documented != encoded[key.name] { continue }  // phrases
    #expect(encoded[key.name] == documented, "\(key.name): documented \(key.defaultText)")
  }
  #expect(minimal.training.finetuneLearningRate == minimal.training.learningRate)
  #expect(minimal.scale == [0.75, 1.25] && minimal.flip == 0.5 && minimal.blur == 0)
  // Every coded key is documented, and the help names each.
  #expect(Set(encoded.keys).subtracting(["kind"]).isSubset(of: Set(ImageBackendOptions.keys.map(\.name))))
  for key in ImageBackendOptions.keys {
    #expect(ImageBackendOptions.help.contains("\(key.name)="), "\(key.name) missing from the help")
  }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "configuration", key: "backend.batch", reason: "expected an integer (a JSON number)")
  ) { try tinyOptions(["batch": "4"]) }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "configuration", key: "backend.source-iterations",
      reason: "renamed to 'sourceIterations' (this configuration was written for an earlier "
        + "version; see `atso-transfer transfer --help`)")
  ) { try tinyOptions(["source-iterations": 3]) }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "configuration", key: "backend.size", reason: "'8x' is not HxW, e.g. 96x128")
  ) { try tinyOptions(["size": "8x"]) }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "configuration", key: "backend.model",
      reason: "Cannot initialize NetworkKind from invalid String value segnet")
  ) { try tinyOptions(["model": "segnet"]) }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "f", key: "backend.size", reason: "8x8: both sides must be at least 16")
  ) { try tinyOptions(["size": "8x8"]).validate(file: "f") }
  // The network's and the trainer's own bounds, as `train` has them (probe_inputs.sh findings).
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "f", key: "backend.widths",
      reason: "[4] is not accepted: expected 2 to 16 widths (the last is the bottleneck's), "
        + "each in 1...16384")
  ) { try tinyOptions(["widths": [4]]).validate(file: "f") }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "f", key: "backend.batch",
      reason: "100000000 is not accepted: expected an integer in 1...65536")
  ) { try tinyOptions(["batch": 100_000_000]).validate(file: "f") }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "f", key: "backend.reference",
      reason: "give either labeledFraction (one dataset) or reference")
  ) { try tinyOptions(["labeledFraction": 0.5]).validate(file: "f") }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "f", key: "backend.scale", reason: "[1.5, 1.0] is not [MIN, MAX] with 0 < MIN <= MAX")
  ) { try tinyOptions(["scale": [1.5, 1]]).validate(file: "f") }
  let parsed = try tinyOptions(["networks": ["target": ["widths": [2, 4]]], "initialization": "pytorch"])
  #expect(parsed.size == ImageSize(height: 32, width: 48))
  #expect(parsed.networks == ["target": NetworkOverride(widths: [2, 4])])
  #expect(parsed.initialization == .pytorch)
  #expect(try parsed.setting("widths", to: "8,16").widths == [8, 16])
}

@Test("today's backend objects (dashed names, numbers as strings) are refused with their replacement")
func legacyImageOptions() throws {
  let legacy = #"""
    {"backend": {"kind": "segmentation", "source": "camvid:/a/train.txt", "test": "camvid:/a/val.txt",
     "reference": "camvid:/a/r.txt", "batch": "4", "source-iterations": "400",
     "finetune-iterations": "150", "learning-rate": "0.02", "widths": "8,16,32",
     "widths.target": "4,8", "size": "96x128", "threads": "1"}}
    """#
  do {
    _ = try TransferConfiguration.decode(
      Data(legacy.utf8), file: "old.json", kinds: [ImageBackendOptions.self])
    Issue.record("an outdated configuration was accepted")
  } catch let error as TransferError {
    guard case .outdatedConfiguration(_, _, let changes, let replacement) = error else {
      Issue.record("unexpected \(error)")
      return
    }
    #expect(changes.contains(#""kind": "segmentation" -> "image""#))
    #expect(changes.contains(#""batch": "4" -> 4"#))
    #expect(changes.contains(#""widths.target" -> "networks": {"target": {"widths": [4,8]}}"#))
    let fixed = try TransferConfiguration.decode(
      Data(#"{"backend": \#(replacement)}"#.utf8), file: "new.json",
      kinds: [ImageBackendOptions.self])
    let options = try #require(fixed.backend as? ImageBackendOptions)
    #expect(options.training.batch == 4 && options.training.sourceIterations == 400)
    #expect(options.training.finetuneIterations == 150 && options.training.learningRate == 0.02)
    #expect(options.widths == [8, 16, 32] && options.training.threads == 1)
    #expect(options.networks["target"]?.widths == [4, 8])
  }
}

@Test("semi-supervised: a seeded labeled fraction of one dataset is S, the rest is R")
func semiSupervisedSplit() throws {
  var object = tinyObject(["labeledFraction": 0.34])
  object["reference"] = nil
  object["test"] = .string("cityscapes:\(tinyStreets)/source:train")
  let options = try ImageBackendOptions.decoding(object)
  let context = BackendContext(levels: [.fine], ignoreIndex: .standard)
  let a = try ImageBackend(options: options, context: context)
  let b = try ImageBackend(options: options, context: context)
  #expect(a.labeled.count == 2)
  #expect(a.reference.count == 4)
  #expect(Set(a.labeled.ids).isDisjoint(with: a.reference.ids))
  #expect(try a.referenceUnits() == b.referenceUnits())
  #expect(a.reference.labels != nil)  // diagnosis only: @R
}

@Test("super-level pseudo labels are the arg-max of fine probabilities summed per super class")
func superPseudoLabels() throws {
  let backend = try tinyBackend()
  let directory = try makeTemporaryDirectory("super")
  let checkpoint = try tinySourceModel(backend, in: directory)
  let units = try backend.referenceUnits()
  let output = directory + "/labels"
  try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
  let level = LabelLevel.superClass(mapping: "cityscapes-19--super-5")
  try backend.generatePseudoLabels(
    PseudoLabelRequest(
      teacherCheckpoint: checkpoint, units: units, level: level,
      filters: PseudoLabelFilters(ignoreIndex: .standard),
      outputDirectory: output, seed: 1))
  let library = try MappingLibrary(directory: packageMappings)
  let table = try library.mapping(named: "cityscapes-19-to-super-5").superClassTable
  let model = try Checkpoint.read(from: checkpoint).makeModel()
  var differsFromFineArgmax = 0
  for (i, unit) in units.enumerated() {
    let written = try ImageFile.readLabel(at: "\(output)/\(unit).png").values
    let image = backend.reference.images[i]
    let probabilities = softmaxChannels(model(image.reshaped(to: [1] + image.shape)))
    for p in 0..<written.count {
      var sums = [Float](repeating: 0, count: 5)
      var bestFine = 0
      for c in 0..<19 {
        let value = probabilities.scalars[p * 19 + c]
        if let s = table[c] { sums[s] += value }
        if value > probabilities.scalars[p * 19 + bestFine] { bestFine = c }
      }
      let best = sums.indices.max { sums[$0] < sums[$1] } ?? 0
      #expect(Int(written[p]) == best, "unit \(unit) pixel \(p)")
      if table[bestFine] != best { differsFromFineArgmax += 1 }
    }
  }
  // Summing is not the same as mapping the fine arg-max (an untrained net is spread out).
  #expect(differsFromFineArgmax > 0)
}

@Test("fine-tuning at a super level trains the pseudo labels through the reduce loss")
func superLevelUsesReduceLoss() throws {
  let backend = try tinyBackend()
  let directory = try makeTemporaryDirectory("reduce")
  let checkpoint = try tinySourceModel(backend, in: directory)
  let units = try backend.referenceUnits()
  for (name, level) in [
    ("fine", LabelLevel.fine), ("super", .superClass(mapping: "super-5")),
  ] {
    let labels = directory + "/labels-\(name)"
    try FileManager.default.createDirectory(atPath: labels, withIntermediateDirectories: true)
    try backend.generatePseudoLabels(
      PseudoLabelRequest(
        teacherCheckpoint: checkpoint, units: units, level: level,
      filters: PseudoLabelFilters(ignoreIndex: .standard),
        outputDirectory: labels, seed: 2))
    try backend.trainStudent(
      StudentTrainingRequest(
        network: nil, initialCheckpoint: checkpoint,
        pseudoLabels: [PseudoLabelSet(directory: labels, units: units, level: level)],
        level: level, output: directory + "/\(name).ckpt", seed: 3))
    let summary = try #require(backend.trainingLog.last)
    #expect(summary.kind == "student" && summary.steps == 3)
    #expect(summary.crossEntropyPixels > 0)
    if name == "fine" {
      #expect(summary.reducePixels == 0)
    } else {
      #expect(summary.reducePixels > 0)
      let model = try Checkpoint.read(from: directory + "/super.ckpt").makeModel()
      #expect(model.classCount == 19)  // still predicts fine classes
      let e = try backend.evaluate(
        EvaluationRequest(checkpoint: directory + "/super.ckpt", set: .test, level: level))
      #expect(e.perClass.count == 5)
    }
  }
}

@Test("confidence and class-balanced thresholds leave ignore pixels")
func thresholdOptions() throws {
  let backend = try tinyBackend(ignoreIndex: 250)
  let directory = try makeTemporaryDirectory("cbst")
  let checkpoint = try tinySourceModel(backend, in: directory)
  let units = try backend.referenceUnits()
  // A threshold at the median confidence of the model on R.
  let confidences = try backend.decisions(
    checkpoint, images: backend.reference.images, level: .fine(backend.classSet)
  ).flatMap(\.confidences).sorted()
  let median = Double(confidences[confidences.count / 2])
  for (name, filters) in [
    ("plain", PseudoLabelFilters(ignoreIndex: 250)),
    ("threshold", PseudoLabelFilters(confidenceThreshold: median, ignoreIndex: 250)),
    ("cbst", PseudoLabelFilters(classBalancedPortion: 0.5, ignoreIndex: 250)),
  ] {
    let output = directory + "/" + name
    try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
    try backend.generatePseudoLabels(
      PseudoLabelRequest(
        teacherCheckpoint: checkpoint, units: units, level: .fine, filters: filters,
        outputDirectory: output, seed: 1))
    let values = try units.flatMap { try ImageFile.readLabel(at: "\(output)/\($0).png").values }
    let ignored = values.filter { $0 == 250 }.count
    if name == "plain" {
      #expect(ignored == 0)
    } else {
      #expect(ignored > 0, "\(name): no ignore pixel")
      #expect(ignored < values.count, "\(name): everything ignored")
    }
    if name == "cbst" {
      // Per class, the most confident half over all units (ties at the threshold kept).
      let decided = try backend.decisions(
        checkpoint, images: backend.reference.images, level: .fine(backend.classSet))
      let thresholds = try ClassBalancedThresholds(
        classes: decided.flatMap(\.labels), confidences: decided.flatMap(\.confidences),
        classCount: 19, portion: 0.5, ignoreIndex: 250)
      for c in 0..<19 {
        let predicted = decided.flatMap(\.labels).filter { $0 == c }.count
        let kept = values.filter { $0 == c }.count
        #expect(kept >= classBalancedKeepCount(portion: 0.5, count: predicted), "class \(c)")
        #expect(kept == 0 || thresholds.thresholds[c] != nil)
      }
      #expect(
        values
          == thresholds.apply(
            classes: decided.flatMap(\.labels), confidences: decided.flatMap(\.confidences),
            ignoreIndex: 250))
    }
    // The void value 250 is the run's: a student trains on these labels, and the teacher
    // agrees with its own labels on every pixel it kept.
    let set = PseudoLabelSet(directory: output, units: units, level: .fine)
    try backend.trainStudent(
      StudentTrainingRequest(
        network: nil, initialCheckpoint: checkpoint, pseudoLabels: [set], level: .fine,
        output: directory + "/\(name).ckpt", seed: 2))
    let agreement = try backend.agreement(
      AgreementRequest(studentCheckpoint: checkpoint, teacherLabels: [set], level: .fine))
    #expect(agreement == 1, "\(name): a teacher disagrees with its own labels (\(agreement))")
  }
}

@Test("AdaBN changes batch-norm statistics and nothing else")
func adaBNChangesOnlyStatistics() throws {
  let backend = try tinyBackend()
  let directory = try makeTemporaryDirectory("adabn")
  let checkpoint = try tinySourceModel(backend, in: directory)
  let output = directory + "/adapted.ckpt"
  try backend.adaptBatchNorm(
    BatchNormAdaptationRequest(
      checkpoint: checkpoint, units: try backend.referenceUnits(), output: output, seed: 1))
  let before = try Checkpoint.read(from: checkpoint)
  let after = try Checkpoint.read(from: output)
  #expect(before.names == after.names)
  var statistics = 0
  for name in before.names {
    let a = try #require(before.tensors[name])
    let b = try #require(after.tensors[name])
    if name.hasSuffix("running_mean") || name.hasSuffix("running_variance") {
      statistics += 1
      #expect(a != b, "\(name) unchanged")
    } else {
      #expect(a == b, "\(name) changed")
    }
  }
  #expect(statistics > 0)
  // The adapted means are the batch means of the first layer's convolution outputs: check
  // the first running mean against a direct computation on the R images.
  let name = try #require(before.names.first { $0.hasSuffix("running_mean") })
  var model = try Checkpoint.read(from: checkpoint).makeModel()
  var parameters = model.parameters
  for n in before.names where n.hasSuffix("running_mean") || n.hasSuffix("running_variance") {
    parameters[n] = Tensor(repeating: 0, shape: parameters[n]?.shape ?? [])
  }
  model.parameters = parameters
  let images = backend.reference.images
  var all: [Float] = []
  for image in images { all += image.scalars }
  _ = model.trainingForward(Tensor(shape: [images.count] + images[0].shape, scalars: all))
  // batch = 2, 4 images: the average of two half-batch means equals the full-batch mean.
  let expected = try #require(model.parameters[name]).scalars.map { $0 / 0.1 }
  let adapted = try #require(after.tensors[name]).scalars
  for (x, y) in zip(expected, adapted) { #expect(abs(x - y) <= 1e-3 * max(1, abs(x))) }
}
