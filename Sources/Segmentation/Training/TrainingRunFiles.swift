import Foundation
import Taxonomy
import Tensor

/// The files of a training run folder.
public enum TrainingRunFiles {
  /// The configuration, `training.json`.
  public static func configuration(in directory: String) -> String {
    DatasetFiles.join(directory, "training.json")
  }
  /// The (latest) checkpoint, `checkpoint.safetensors` (and `checkpoint.safetensors.json`).
  public static func checkpoint(in directory: String) -> String {
    DatasetFiles.join(directory, "checkpoint.safetensors")
  }
  /// One JSON line per validation: `{"step": .., "meanIoU": .., "pixelAccuracy": ..,
  /// "scale": "fraction"}` (scores as fractions of 1).
  public static func validationLog(in directory: String) -> String {
    DatasetFiles.join(directory, "validation.jsonl")
  }
  /// The loss of every step, `losses.csv` (``LossLog``).
  public static func lossLog(in directory: String) -> String {
    DatasetFiles.join(directory, "losses.csv")
  }
}

/// Reads `training.json`.
public func readRunConfiguration(_ path: String) throws -> TrainingRunConfiguration {
  let data: Data
  do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
    throw ModelError.fileAccess(
      path: path, reason: "cannot read the run configuration (is this a training folder?)")
  }
  do {
    return try JSONDecoder().decode(TrainingRunConfiguration.self, from: data)
  } catch {
    throw ModelError.malformedCheckpoint(path: path, reason: "bad run configuration: \(error)")
  }
}

func writeRunConfiguration(_ configuration: TrainingRunConfiguration, to path: String) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
  let data: Data
  do { data = try encoder.encode(configuration) } catch {
    throw ModelError.fileAccess(path: path, reason: "cannot encode the configuration: \(error)")
  }
  try writeAtomically(data, to: path)
}

/// The first field that differs between a saved and a requested configuration, or `nil`.
func describeDifference(_ saved: TrainingRunConfiguration, _ requested: TrainingRunConfiguration)
  -> String?
{
  var requested = requested
  requested.loaderWorkers = saved.loaderWorkers  // does not change the results
  requested.checkpointInterval = saved.checkpointInterval
  requested.validationInterval = saved.validationInterval
  guard saved != requested else { return nil }
  let fields: [(String, Bool)] = [
    ("architecture \(saved.architecture)", saved.architecture == requested.architecture),
    ("class set \(saved.classSetName)", saved.classSetName == requested.classSetName),
    ("ignore index \(saved.ignoreIndex)", saved.ignoreIndex == requested.ignoreIndex),
    ("augmentation \(saved.augmentation)", saved.augmentation == requested.augmentation),
    ("batch size \(saved.batchSize)", saved.batchSize == requested.batchSize),
    ("\(saved.totalSteps) steps", saved.totalSteps == requested.totalSteps),
    ("learning rate \(saved.baseLearningRate)",
     saved.baseLearningRate == requested.baseLearningRate),
    ("optimizer \(saved.optimizer.rawValue)", saved.optimizer == requested.optimizer),
    ("momentum \(saved.momentum)", saved.momentum == requested.momentum),
    ("weight decay \(saved.weightDecay)", saved.weightDecay == requested.weightDecay),
    ("seed \(saved.seed)", saved.seed == requested.seed),
  ]
  return fields.first { !$0.1 }.map { "\($0.0); give the same options to resume" }
    ?? "another configuration"
}

func appendValidationLine(step: Int, report: EvaluationReport, to path: String) {
  func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
  let line =
    "{\"step\": \(step), \"meanIoU\": \(number(report.meanIoU)), "
    + "\"pixelAccuracy\": \(number(report.pixelAccuracy)), \"scale\": \"fraction\"}\n"
  if let handle = FileHandle(forWritingAtPath: path) {
    handle.seekToEndOfFile()
    handle.write(Data(line.utf8))
    handle.closeFile()
  } else {
    _ = FileManager.default.createFile(atPath: path, contents: Data(line.utf8))
  }
}

/// Scores a model on labelled samples at a working size: the arg-max of the logits against the
/// labels resized (nearest) to the working size, accumulated in one confusion matrix.
///
/// Samples are decoded in order without augmentation; with no working size every image is run
/// at its own size, one at a time.
/// - Parameters:
///   - classes: the class set of both the labels (after `source.labelTable`) and the logits.
/// - Throws: `DatasetError` for unreadable samples.
public func evaluateSegmentation<Model: SegmentationModel>(
  _ model: Model, on source: LabeledSource, classes: ClassSet, workingSize: ImageSize?,
  normalization: Normalization = .imageNet, batchSize: Int = 8
) throws -> ConfusionMatrix {
  var matrix = ConfusionMatrix(classes: classes)
  let loader = try DataLoader(
    dataset: source.dataset, labelTable: source.labelTable,
    augmentation: AugmentationConfig(
      workingSize: workingSize, normalization: normalization,
      ignoreIndex: IgnoreIndex(classes)),
    batchSize: workingSize == nil ? 1 : max(1, batchSize), seed: 0, shuffle: false,
    dropLast: false, prefetch: 2, workers: 1)
  for _ in 0..<loader.batchesPerEpoch {
    let batch = try loader.next()
    if workingSize == nil {  // each image at its own size, which must fit the network
      try model.architecture.check(
        workingSize: ImageSize(height: batch.images.shape[1], width: batch.images.shape[2]),
        field: "sample '\(batch.ids.first ?? "?")': the image size")
    }
    let (labels, _) = predictSegmentation(model, images: batch.images)
    matrix.accumulate(groundTruth: batch.labels, prediction: labels)
  }
  return matrix
}

/// ``evaluateSegmentation(_:on:classes:workingSize:normalization:batchSize:)`` for a model of
/// any architecture (as built by ``Checkpoint/makeModel(path:)``).
public func evaluateSegmentation(
  anyModel model: any SegmentationModel, on source: LabeledSource, classes: ClassSet,
  workingSize: ImageSize?, normalization: Normalization = .imageNet, batchSize: Int = 8
) throws -> ConfusionMatrix {
  try evaluateSegmentation(
    model, on: source, classes: classes, workingSize: workingSize,
    normalization: normalization, batchSize: batchSize)
}
