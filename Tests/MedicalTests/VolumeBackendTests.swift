import Foundation
import Medical
import Segmentation
import Tensor
import Transfer
import Testing
@testable import Transfer

/// Writes a tiny Decathlon dataset: `count` cases of 16x16x12 with a bright ellipsoid blob whose
/// lower half is class 1 and upper half class 2, at a case-dependent position, plus noise.
/// `prefix` names the cases; `brightness` scales the blob intensities (another "scanner").
func makeBlobDataset(
  count: Int, seed: UInt64, prefix: String = "blob", brightness: Float = 1
) throws -> String {
  let root = temporaryDirectory("blobs")
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

  @Test("options are checked with the offending key")
  func options() {
    #expect(throws: TransferError.self) { try VolumeBackendOptions(["kind": "volume"]) }
    #expect(throws: TransferError.self) {
      try VolumeBackendOptions(["dataset": "x", "labeled-fraction": "1.5"])
    }
    for bad in [["dataset": "x", "widths": "8"], ["dataset": "x", "epochz": "1"]] {
      #expect(throws: TransferError.self) { try VolumeBackendOptions(bad) }
    }
  }

  @Test("ATSO on synthetic volumes: case-level folds, fused views, Dice, NIfTI labels, resume")
  func endToEnd() throws {
    let root = try makeBlobDataset(count: 8, seed: 1)
    let options = [
      "kind": "volume", "dataset": root, "labeled-fraction": "0.34", "test-cases": "2",
      "widths": "4,8", "iterations": "80", "fine-tune-iterations": "20", "batch-size": "4",
      "learning-rate": "0.05",
    ]
    let configuration = TransferConfiguration(
      seed: 5, schedules: [.atso], folds: 2, generations: 1, backend: options)
    let backend = try VolumeBackend(options: options)
    #expect(backend.split.labeled.count == 2)
    #expect(backend.split.reference.count == 4)
    #expect(backend.split.test.count == 2)
    let directory = temporaryDirectory("run")
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
        #expect(Set(labelSet.labelerTrainedOn).isDisjoint(with: labelSet.units))
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
      resuming: directory, backend: try VolumeBackend(options: options))
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
    let options = [
      "kind": "volume", "dataset": source, "target": target, "labeled-fraction": "1",
      "test-cases": "2", "widths": "4,8", "iterations": "40", "fine-tune-iterations": "10",
      "batch-size": "4", "learning-rate": "0.05",
    ]
    var configuration = TransferConfiguration(
      seed: 6, schedules: [.atso], folds: 2, generations: 1, backend: options, previews: 1)
    configuration.pseudoLabels.adaptBatchNorm = true
    configuration.pseudoLabels.classBalancedPortion = 0.5
    let backend = try VolumeBackend(options: options)
    #expect(backend.split.labeled == ["blob_000", "blob_001", "blob_002"])
    #expect(backend.split.reference.count == 3 && backend.split.test.count == 2)
    #expect((backend.split.reference + backend.split.test).allSatisfy { $0.hasPrefix("dim_") })
    let directory = temporaryDirectory("transfer")
    let run = try TransferRun.start(
      configuration: configuration, directory: directory, backend: backend)
    let records = try run.execute()
    #expect(records.count == 1 + 2 + 1)
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
        #expect(labels.labeler.hasSuffix("-adabn"), "\(labels.id) labeled by \(labels.labeler)")
        // Class-balanced thresholds leave low-confidence voxels as ignore (255).
        var ignored = 0
        var total = 0
        for unit in labels.units {
          let volume = try NIfTI.readLabels(directory + "/\(labels.directory)/\(unit).nii.gz")
          ignored += volume.voxels.filter { $0 == 255 }.count
          total += volume.voxels.count
          #expect(volume.voxels.allSatisfy { $0 <= 2 || $0 == 255 })
        }
        #expect(ignored > 0 && ignored < total, "\(labels.id): \(ignored) of \(total) ignored")
      }
    }
    #expect(adapted == 4)  // two folds of generation 1, two for the final labels
    #expect(FileManager.default.fileExists(atPath: directory + "/predictions.png"))
  }

  @Test("super-class level: reduce loss fine-tuning and Dice of the merged structure")
  func superClass() throws {
    let root = try makeBlobDataset(count: 5, seed: 2)
    let options = [
      "kind": "volume", "dataset": root, "labeled-fraction": "0.5", "test-cases": "1",
      "widths": "4,8", "iterations": "30", "batch-size": "4", "learning-rate": "0.05",
      "mappings": packageRoot + "/mappings",
    ]
    let backend = try VolumeBackend(options: options)
    let directory = temporaryDirectory("super")
    try backend.trainSource(
      SourceTrainingRequest(network: nil, output: directory + "/m0", seed: 1))
    let level = LabelLevel.superClass(mapping: "msd-hippocampus-to-hippocampus")
    try FileManager.default.createDirectory(
      atPath: directory + "/labels", withIntermediateDirectories: true)
    try backend.generatePseudoLabels(
      PseudoLabelRequest(
        checkpoint: directory + "/m0", units: backend.split.reference, level: level,
        options: PseudoLabelOptions(confidenceThreshold: 0.5),
        outputDirectory: directory + "/labels",
        seed: 2))
    for unit in backend.split.reference {
      let labels = try NIfTI.readLabels(directory + "/labels/\(unit).nii.gz").voxels
      #expect(labels.allSatisfy { $0 <= 1 || $0 == 255 })
    }
    try backend.fineTune(
      FineTuningRequest(
        network: nil, initialCheckpoint: directory + "/m0",
        pseudoLabels: [
          PseudoLabelSource(
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
}
