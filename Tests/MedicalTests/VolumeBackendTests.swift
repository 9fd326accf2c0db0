import Foundation
import Medical
import Segmentation
import Tensor
import TestSupport
import Testing
@testable import Transfer
@testable import VolumeTransfer

/// Volume options from a backend object.
func volumeOptions(_ object: [String: ConfigurationValue]) throws -> VolumeBackendOptions {
  try VolumeBackendOptions.decoding(object)
}

/// A volume backend for the levels of a run.
func volumeBackend(
  _ object: [String: ConfigurationValue], levels: [LabelLevel] = [.fine],
  ignoreIndex: IgnoreIndex = .standard, sourceModel: String? = nil,
  jobProgress: (@Sendable (JobProgress) -> Void)? = nil
) throws -> VolumeBackend {
  try VolumeBackend(
    options: volumeOptions(object),
    context: BackendContext(
      levels: levels, ignoreIndex: ignoreIndex, sourceModel: sourceModel,
      jobProgress: jobProgress))
}

/// The tasks of the progress reports a backend makes.
final class ProgressTasks: @unchecked Sendable {
  private let lock = NSLock()
  private var seen: [String] = []
  func add(_ progress: JobProgress) {
    lock.lock()
    seen.append(progress.task)
    lock.unlock()
  }
  /// The tasks reported since the last call.
  func take() -> [String] {
    lock.lock()
    defer { seen = []; lock.unlock() }
    return seen
  }
}

/// Writes a tiny Decathlon dataset: `count` cases of 16x16x12 with a bright ellipsoid blob whose
/// lower half is class 1 and upper half class 2, at a case-dependent position, plus noise.
/// `prefix` names the cases; `brightness` scales the blob intensities (another "scanner").
func makeBlobDataset(
  count: Int, seed: UInt64, prefix: String = "blob", brightness: Float = 1
) throws -> String {
  let root = try makeTemporaryDirectory("blobs")
  let manager = FileManager.default
  try manager.createDirectory(atPath: root + "/imagesTr", withIntermediateDirectories: true)
  try manager.createDirectory(atPath: root + "/labelsTr", withIntermediateDirectories: true)
  var generator = SeededGenerator(seed: seed)
  let shape = [16, 16, 12]
  let geometry = Geometry(shape: shape, affine: .identity)
  var entries: [String] = []
  for c in 0..<count {
    let center = [7.0 + Double(c % 3) - 1, 8.0 - Double(c % 2), 6.0]
    var image = [Float](repeating: 0, count: 16 * 16 * 12)
    var labels = [UInt8](repeating: 0, count: image.count)
    for z in 0..<12 {
      for y in 0..<16 {
        for x in 0..<16 {
          let i = x + 16 * (y + 16 * z)
          let d =
            pow((Double(x) - center[0]) / 4, 2) + pow((Double(y) - center[1]) / 3.5, 2)
            + pow((Double(z) - center[2]) / 3, 2)
          let noise = Float(generator.next() % 1000) / 1000 * 0.3
          if d <= 1 {
            labels[i] = Double(z) < center[2] ? 1 : 2
            image[i] = (labels[i] == 1 ? 0.7 : 1.0) * brightness + noise
          } else {
            image[i] = noise
          }
        }
      }
    }
    let name = prefix + String(format: "_%03d", c)
    try NIfTI.write(
      Volume(geometry: geometry, voxels: image), to: root + "/imagesTr/\(name).nii.gz")
    try NIfTI.write(
      Volume(geometry: geometry, voxels: labels), to: root + "/labelsTr/\(name).nii.gz")
    entries.append(
      "{\"image\": \"./imagesTr/\(name).nii.gz\", \"label\": \"./labelsTr/\(name).nii.gz\"}")
  }
  let json = """
    {"name": "blobs", "modality": {"0": "MRI"},
     "labels": {"0": "background", "1": "anterior", "2": "posterior"},
     "training": [\(entries.joined(separator: ", "))]}
    """
  try Data(json.utf8).write(to: URL(fileURLWithPath: root + "/dataset.json"))
  return root
}

@Suite("Volume backend")
struct VolumeBackendTests {
  @Test("the semi-supervised split is disjoint, seeded and case-level")
  func split() {
    let cases = (0..<200).map { String(format: "case_%03d", $0) }
    let a = VolumeSplit.semiSupervised(cases: cases, labeledFraction: 0.1, testCount: 40, seed: 3)
    let b = VolumeSplit.semiSupervised(cases: cases, labeledFraction: 0.1, testCount: 40, seed: 3)
    let c = VolumeSplit.semiSupervised(cases: cases, labeledFraction: 0.1, testCount: 40, seed: 4)
    #expect(a == b)
    #expect(a != c)
    #expect(a.test.count == 40 && a.labeled.count == 16 && a.reference.count == 144)
    #expect(Set(a.test + a.labeled + a.reference) == Set(cases))
    #expect(Set(a.test).isDisjoint(with: a.labeled) && Set(a.test).isDisjoint(with: a.reference))
  }

  @Test("options: typed and documented; the earlier names are refused with their replacement")
  func options() throws {
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "backend.dataset", reason: "missing")
    ) { try volumeOptions([:]) }
    let minimal = try volumeOptions(["dataset": "x"])
    #expect(minimal.labeledFraction == 0.1 && minimal.training.batch == 8 && minimal.training.maxGradientNorm == 10)
    #expect(minimal.training.finetuneIterations == minimal.training.sourceIterations)
    #expect(try volumeOptions(["dataset": "x", "target": "y"]).labeledFraction == 1)
    let encoded = try minimal.jsonObject()
    for key in VolumeBackendOptions.keys {
      guard let documented = key.kind.value(of: key.defaultText), key.kind != .string else {
        continue
      }
      #expect(encoded[key.name] == documented, "\(key.name): documented \(key.defaultText)")
      #expect(VolumeBackendOptions.help.contains("\(key.name)="))
    }
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "f", key: "backend.labeledFraction", reason: "must be in (0, 1], got 1.5")
    ) { try volumeOptions(["dataset": "x", "labeledFraction": 1.5]).validate(file: "f") }
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "f", key: "backend.widths",
        reason: "[8] is not accepted: expected 2 to 16 widths (the last is the bottleneck's), each in 1...16384")
    ) { try volumeOptions(["dataset": "x", "widths": [8]]).validate(file: "f") }
    // A configuration of the earlier shape: dashed names, iterations, batch-size, strings.
    let legacy = #"""
      {"backend": {"kind": "volume", "dataset": "/d", "labeled-fraction": "0.1",
       "iterations": "1000", "fine-tune-iterations": "300", "batch-size": "8",
       "learning-rate": "0.05", "widths": "8,16"}}
      """#
    do {
      _ = try TransferConfiguration.decode(
        Data(legacy.utf8), file: "old.json", kinds: [VolumeBackendOptions.self])
      Issue.record("the earlier shape was accepted")
    } catch let error as TransferError {
      guard case .outdatedConfiguration(_, _, let changes, let replacement) = error else {
        Issue.record("unexpected \(error)")
        return
      }
      #expect(changes.contains(#""batch-size" -> "batch""#))
      #expect(changes.contains(#""iterations" -> "sourceIterations""#))
      let fixed = try TransferConfiguration.decode(
        Data(#"{"backend": \#(replacement)}"#.utf8), file: "new.json",
        kinds: [VolumeBackendOptions.self])
      let options = try #require(fixed.backend as? VolumeBackendOptions)
      #expect(options.training.sourceIterations == 1000 && options.training.finetuneIterations == 300)
      #expect(options.training.batch == 8 && options.training.learningRate == 0.05 && options.widths == [8, 16])
    }
  }

  @Test("ATSO on synthetic volumes: case-level folds, fused views, Dice, NIfTI labels, resume")
  func endToEnd() throws {
    let root = try makeBlobDataset(count: 8, seed: 1)
    let options: [String: ConfigurationValue] = [
      "dataset": .string(root), "labeledFraction": 0.34, "testCases": 2, "widths": [4, 8],
      "sourceIterations": 80, "finetuneIterations": 20, "batch": 4, "learningRate": 0.05,
    ]
    let configuration = TransferConfiguration(
      seed: 5, schedules: [.atso], folds: 2, generations: 1, backend: try volumeOptions(options))
    let backend = try volumeBackend(options)
    #expect(backend.split.labeled.count == 2)
    #expect(backend.split.reference.count == 4)
    #expect(backend.split.test.count == 2)
    let directory = try makeTemporaryDirectory("run")
    let run = try TransferRun.start(
      configuration: configuration, directory: directory, backend: backend)
    let records = try run.execute()
    #expect(!records.isEmpty)
    for record in records {
      #expect((0...1).contains(record.atR) && (0...1).contains(record.atE))
    }
    // Scores are Dice per fine class (background first) on whole cases of R and E.
    let m0 = try #require(records.first { $0.generation == 0 })
    #expect(m0.perClass.test.count == 3 && m0.perClass.reference.count == 3)
    #expect(m0.perClass.test[0].map { $0 > 0.5 } == true, "background Dice \(m0)")
    #expect(records.allSatisfy { $0.metric == .meanDice })
    let table = try String(contentsOfFile: directory + "/table.md", encoding: .utf8)
    #expect(table.hasPrefix("# Results (mean foreground Dice, %)"), "\(table.prefix(60))")
    // predictions.png: the test cases' axial slices with the most foreground.
    let sheet = try PNGCodec.decodeRGB(
      Array(try #require(FileManager.default.contents(atPath: directory + "/predictions.png"))),
      path: "predictions.png")
    #expect(sheet.width > 100 && sheet.height > 100)
    // Case-level folds: every fold unit is a whole case of R, each labeled by the model of the
    // other fold, and its pseudo label is a volume on the case's grid.
    let folds = run.split.folds
    #expect(Set(folds.flatMap { $0 }) == Set(backend.split.reference))
    let labelDirectories = try FileManager.default.contentsOfDirectory(
      atPath: directory + "/labels")
    #expect(!labelDirectories.isEmpty)
    for name in labelDirectories {
      let files = try FileManager.default.contentsOfDirectory(atPath: directory + "/labels/" + name)
      #expect(files.allSatisfy { $0.hasSuffix(".nii.gz") })
      for file in files {
        let labels = try NIfTI.readLabels(directory + "/labels/\(name)/\(file)")
        #expect(labels.shape == [16, 16, 12])
        #expect(labels.voxels.allSatisfy { $0 <= 2 })
      }
    }
    for step in try FileManager.default.contentsOfDirectory(atPath: directory + "/steps") {
      let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/steps/" + step))
      let record = try JSONDecoder().decode(StepRecord.self, from: data)
      if let labelSet = record.labelSet, labelSet.isCrossFold {
        #expect(Set(labelSet.teacherTrainedOn).isDisjoint(with: labelSet.units))
      }
    }
    // Resume: drop the last completion records and outputs, the rerun gives the same metrics.
    let metrics = try String(contentsOfFile: directory + "/metrics.jsonl", encoding: .utf8)
    let steps = try FileManager.default.contentsOfDirectory(atPath: directory + "/steps").sorted()
    for step in steps where step.contains("final") {
      try FileManager.default.removeItem(atPath: directory + "/steps/" + step)
    }
    try FileManager.default.removeItem(atPath: directory + "/metrics.jsonl")
    let resumed = try TransferRun(
      resuming: directory, backend: try volumeBackend(options), kinds: [VolumeBackendOptions.self])
    try resumed.execute()
    #expect(!resumed.executedJobs.isEmpty)
    #expect(resumed.executedJobs.allSatisfy { $0.contains("final") })
    let again = try String(contentsOfFile: directory + "/metrics.jsonl", encoding: .utf8)
    #expect(again == metrics)
  }

  @Test("transfer setting: S from one dataset, R and E from another; AdaBN and CBST labels")
  func transferSetting() throws {
    let source = try makeBlobDataset(count: 3, seed: 3)
    let target = try makeBlobDataset(count: 5, seed: 4, prefix: "dim", brightness: 0.6)
    let options: [String: ConfigurationValue] = [
      "dataset": .string(source), "target": .string(target), "labeledFraction": 1,
      "testCases": 2, "widths": [4, 8], "sourceIterations": 40, "finetuneIterations": 10,
      "batch": 4, "learningRate": 0.05,
    ]
    var configuration = TransferConfiguration(
      seed: 6, schedules: [.atso], folds: 2, generations: 1, backend: try volumeOptions(options),
      previews: 1)
    configuration.pseudoLabels.adaptBatchNorm = true
    configuration.pseudoLabels.classBalancedPortion = 0.5
    configuration.pseudoLabels.ignoreIndex = 250
    let backend = try #require(try configuration.validated().makeBackend() as? VolumeBackend)
    #expect(backend.split.labeled == ["blob_000", "blob_001", "blob_002"])
    #expect(backend.split.reference.count == 3 && backend.split.test.count == 2)
    #expect((backend.split.reference + backend.split.test).allSatisfy { $0.hasPrefix("dim_") })
    let directory = try makeTemporaryDirectory("transfer")
    let run = try TransferRun.start(
      configuration: configuration, directory: directory, backend: backend)
    let records = try run.execute()
    #expect(records.count == 1 + 1 + 2 + 1)  // the baseline, M0, two fold models, final
    // Every label set came from an AdaBN copy whose statistics are exactly its units' images.
    var adapted = 0
    for step in try FileManager.default.contentsOfDirectory(atPath: directory + "/steps") {
      let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/steps/" + step))
      let record = try JSONDecoder().decode(StepRecord.self, from: data)
      if let model = record.model, let units = model.batchNormAdaptedOn {
        adapted += 1
        #expect(Set(units).isSubset(of: Set(backend.split.reference)))
      }
      if let labels = record.labelSet {
        #expect(labels.teacher.hasSuffix("-adabn"), "\(labels.id) labeled by \(labels.teacher)")
        // Class-balanced thresholds leave low-confidence voxels as the run's void (250).
        var ignored = 0
        var total = 0
        for unit in labels.units {
          let volume = try NIfTI.readLabels(directory + "/\(labels.directory)/\(unit).nii.gz")
          ignored += volume.voxels.filter { $0 == 250 }.count
          total += volume.voxels.count
          #expect(volume.voxels.allSatisfy { $0 <= 2 || $0 == 250 })
        }
        #expect(ignored > 0 && ignored < total, "\(labels.id): \(ignored) of \(total) ignored")
      }
    }
    #expect(adapted == 4)  // two folds of generation 1, two for the final labels
    #expect(FileManager.default.fileExists(atPath: directory + "/predictions.png"))
  }

  @Test("super-class level: reduce loss fine-tuning and Dice of the merged structure")
  func superClass() throws {
    let tasks = ProgressTasks()
    let root = try makeBlobDataset(count: 5, seed: 2)
    let level = LabelLevel.superClass(mapping: "msd-hippocampus-to-hippocampus")
    let backend = try volumeBackend(
      [
        "dataset": .string(root), "labeledFraction": 0.5, "testCases": 1, "widths": [4, 8],
        "sourceIterations": 30, "batch": 4, "learningRate": 0.05,
        "mappings": .string(packageRoot + "/mappings"),
      ], levels: [.fine, level], jobProgress: tasks.add)
    let directory = try makeTemporaryDirectory("super")
    try backend.trainSource(
      SourceTrainingRequest(network: nil, output: directory + "/m0", seed: 1))
    try FileManager.default.createDirectory(
      atPath: directory + "/labels", withIntermediateDirectories: true)
    let labeling = PseudoLabelRequest(
      teacherCheckpoint: directory + "/m0", units: backend.split.reference, level: level,
      filters: PseudoLabelFilters(confidenceThreshold: 0.5, ignoreIndex: .standard),
      outputDirectory: directory + "/labels",
      seed: 2)
    try backend.generatePseudoLabels(labeling)
    for unit in backend.split.reference {
      let labels = try NIfTI.readLabels(directory + "/labels/\(unit).nii.gz").voxels
      #expect(labels.allSatisfy { $0 <= 1 || $0 == 255 })
    }
    // Labeling again with the same teacher reads its predictions from memory, and the progress
    // says so (its speed is not the network's).
    let first = tasks.take().filter { $0.hasPrefix("pseudo labels") }
    #expect(!first.isEmpty && first.allSatisfy { $0 == "pseudo labels" })
    try backend.generatePseudoLabels(labeling)
    let again = tasks.take()
    #expect(!again.isEmpty && again.allSatisfy { $0 == "pseudo labels (predicted before, from memory)" })
    try backend.trainStudent(
      StudentTrainingRequest(
        network: nil, initialCheckpoint: directory + "/m0",
        pseudoLabels: [
          PseudoLabelSet(
            directory: directory + "/labels", units: backend.split.reference, level: level)
        ], level: level, output: directory + "/m1", seed: 3))
    let evaluation = try backend.evaluate(
      EvaluationRequest(checkpoint: directory + "/m1", set: .test, level: level))
    #expect(evaluation.perClass.count == 2)
    #expect(evaluation.score > 0.3, "super-class Dice \(evaluation.score)")
    let fine = try backend.evaluate(
      EvaluationRequest(checkpoint: directory + "/m1", set: .test, level: .fine))
    #expect(fine.perClass.count == 3)
  }

  @Test("an ignore index other than 255 is the void label everywhere: labels, training, agreement")
  func ignoreIndex() throws {
    let root = try makeBlobDataset(count: 5, seed: 7)
    let backend = try volumeBackend(
      [
        "dataset": .string(root), "labeledFraction": 0.5, "testCases": 1, "widths": [4, 8],
        "sourceIterations": 20, "batch": 4, "learningRate": 0.05,
      ], ignoreIndex: 250)
    let directory = try makeTemporaryDirectory("volume-ignore")
    try backend.trainSource(SourceTrainingRequest(network: nil, output: directory + "/m0", seed: 1))
    try FileManager.default.createDirectory(
      atPath: directory + "/labels", withIntermediateDirectories: true)
    let units = backend.split.reference
    try backend.generatePseudoLabels(
      PseudoLabelRequest(
        teacherCheckpoint: directory + "/m0", units: units, level: .fine,
        filters: PseudoLabelFilters(confidenceThreshold: 0.9, ignoreIndex: 250),
        outputDirectory: directory + "/labels", seed: 2))
    let voxels = try units.flatMap {
      try NIfTI.readLabels(directory + "/labels/\($0).nii.gz").voxels
    }
    #expect(voxels.contains(250) && !voxels.contains(255))
    let set = PseudoLabelSet(directory: directory + "/labels", units: units, level: .fine)
    // The teacher agrees with every voxel it kept: the 250s are void, not disagreements.
    let agreement = try backend.agreement(
      AgreementRequest(studentCheckpoint: directory + "/m0", teacherLabels: [set], level: .fine))
    #expect(agreement == 1)
    // A student trains on them (250 is not refused as a class label).
    try backend.trainStudent(
      StudentTrainingRequest(
        network: nil, initialCheckpoint: directory + "/m0", pseudoLabels: [set], level: .fine,
        output: directory + "/m1", seed: 3))
    #expect(FileManager.default.fileExists(atPath: directory + "/m1/axial.safetensors"))
    // A void value that is a class id is refused when the backend is made.
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "pseudoLabels.ignoreIndex",
        reason: "2 is a class of blobs (level fine); choose a value of at least 3 that is no class id")
    ) {
      try volumeBackend(["dataset": .string(root), "testCases": 1], ignoreIndex: 2)
    }
  }

  @Test("a source model of three view checkpoints is imported; its widths and inputs are checked")
  func sourceModel() throws {
    let root = try makeBlobDataset(count: 5, seed: 8)
    let object: [String: ConfigurationValue] = [
      "dataset": .string(root), "labeledFraction": 0.5, "testCases": 1, "widths": [4, 8],
      "sourceIterations": 10, "finetuneIterations": 5, "batch": 4, "learningRate": 0.05,
    ]
    let directory = try makeTemporaryDirectory("volume-source")
    try volumeBackend(object).trainSource(
      SourceTrainingRequest(network: nil, output: directory + "/m0", seed: 1))
    var adopted = object
    adopted["widths"] = nil
    let configuration = try TransferConfiguration(
      seed: 3, schedules: [.stso], generations: 1, backend: volumeOptions(adopted),
      sourceModel: directory + "/m0", previews: 0
    ).validated()
    let backend = try #require(try configuration.makeBackend() as? VolumeBackend)
    let run = try TransferRun.start(
      configuration: configuration, directory: directory + "/run", backend: backend)
    let records = try run.execute()
    #expect(run.executedJobs.first == "import-source")
    let direct = try backend.evaluate(
      EvaluationRequest(checkpoint: directory + "/m0", set: .test, level: .fine))
    #expect(records.first { $0.generation == 0 }?.atE == direct.score)
    var other = object
    other["widths"] = [8, 16]
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "backend.widths",
        reason: "[8, 16], but the source model has [4, 8]")
    ) { try volumeBackend(other, sourceModel: directory + "/m0") }
  }
}

/// Two replicas that are never asked to sum (the volume backend refuses them first).
private struct UnusedReplicas: TrainingReplicas {
  var index = 0
  var count = 2
  func sum(_ values: [Float]) throws(ReplicaFailure) -> [Float] { values }
  func sum(_ values: [Double]) throws(ReplicaFailure) -> [Double] { values }
  func fail(_ error: any Error) throws(ReplicaFailure) -> Never { fatalError("\(error)") }
}

@Test("the volume backend refuses training replicas instead of training the whole model on each; a transfer run trains on a group's leader")
func volumeBackendRefusesReplicas() throws {
  let root = try makeBlobDataset(count: 3, seed: 4)
  let backend = try volumeBackend([
    "dataset": .string(root), "labeledFraction": 0.5, "testCases": 1, "widths": [4, 8],
    "sourceIterations": 2, "batch": 2,
  ])
  let directory = try makeTemporaryDirectory("volume-replicas")
  let replicas = DataParallel(UnusedReplicas())
  #expect {
    try backend.trainSource(
      SourceTrainingRequest(
        network: nil, output: directory + "/m0", seed: 1, dataParallel: replicas))
  } throws: { error in
    "\(error)".contains("dataParallel") && "\(error)".contains("one rank, not on 2")
  }
  #expect(!FileManager.default.fileExists(atPath: directory + "/m0"))
  #expect(!backend.trainsDataParallel)
  // One replica is no replica: it trains.
  try backend.trainSource(
    SourceTrainingRequest(
      network: nil, output: directory + "/m0", seed: 1,
      dataParallel: DataParallel(UnusedReplicas(index: 0, count: 1))))
  #expect(FileManager.default.fileExists(atPath: directory + "/m0"))
}
