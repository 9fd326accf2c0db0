import Foundation
import Taxonomy
import Tensor

/// Everything that defines a supervised training run, saved as `training.json` in its folder.
///
/// A resumed run must have the same configuration: the checkpoint's step, optimizer velocities,
/// generator and loader position only reproduce the uninterrupted run for the same recipe.
public struct TrainingRunConfiguration: Sendable, Codable, Equatable {
  /// The network to train (its class count is the model's class set's ``ClassSet/outputCount``).
  public var architecture: ModelArchitecture
  /// The name of the class set the logits index, recorded in checkpoints.
  public var classSetName: String
  /// The label value that is void in the loss and the metrics.
  public var ignoreIndex: UInt8
  /// The training pre-processing (working size, scale, crop, flip, normalisation).
  public var augmentation: AugmentationConfig
  /// Samples per step.
  public var batchSize: Int
  /// The number of optimizer steps.
  public var totalSteps: Int
  /// The base learning rate of the poly schedule (power 0.9).
  public var baseLearningRate: Float
  /// SGD momentum.
  public var momentum: Float
  /// SGD L2 weight decay.
  public var weightDecay: Float
  /// The seed of the initialisation, the sample order and the augmentation.
  public var seed: UInt64
  /// Steps between checkpoints (a checkpoint is always written at the end).
  public var checkpointInterval: Int
  /// Steps between validations (0: only at the end, when a validation set is given).
  public var validationInterval: Int
  /// The data loader's background threads (results do not depend on it).
  public var loaderWorkers: Int
  /// How the convolutions are initialised (``WeightInitialization/he`` unless set).
  public var initialization: WeightInitialization

  /// Creates a configuration.
  public init(
    architecture: ModelArchitecture, classSetName: String, ignoreIndex: UInt8,
    augmentation: AugmentationConfig, batchSize: Int, totalSteps: Int,
    baseLearningRate: Float = 0.01, momentum: Float = 0.9, weightDecay: Float = 5e-4,
    seed: UInt64 = 0, checkpointInterval: Int = 100, validationInterval: Int = 0,
    loaderWorkers: Int = 1, initialization: WeightInitialization = .he
  ) {
    self.architecture = architecture
    self.classSetName = classSetName
    self.ignoreIndex = ignoreIndex
    self.augmentation = augmentation
    self.batchSize = batchSize
    self.totalSteps = totalSteps
    self.baseLearningRate = baseLearningRate
    self.momentum = momentum
    self.weightDecay = weightDecay
    self.seed = seed
    self.checkpointInterval = checkpointInterval
    self.validationInterval = validationInterval
    self.loaderWorkers = loaderWorkers
    self.initialization = initialization
  }

  enum CodingKeys: String, CodingKey {
    case architecture, classSetName, ignoreIndex, augmentation, batchSize, totalSteps
    case baseLearningRate, momentum, weightDecay, seed, checkpointInterval, validationInterval
    case loaderWorkers, initialization
  }

  /// Decodes a configuration; `initialization` may be absent (files written before it existed).
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    architecture = try c.decode(ModelArchitecture.self, forKey: .architecture)
    classSetName = try c.decode(String.self, forKey: .classSetName)
    ignoreIndex = try c.decode(UInt8.self, forKey: .ignoreIndex)
    augmentation = try c.decode(AugmentationConfig.self, forKey: .augmentation)
    batchSize = try c.decode(Int.self, forKey: .batchSize)
    totalSteps = try c.decode(Int.self, forKey: .totalSteps)
    baseLearningRate = try c.decode(Float.self, forKey: .baseLearningRate)
    momentum = try c.decode(Float.self, forKey: .momentum)
    weightDecay = try c.decode(Float.self, forKey: .weightDecay)
    seed = try c.decode(UInt64.self, forKey: .seed)
    checkpointInterval = try c.decode(Int.self, forKey: .checkpointInterval)
    validationInterval = try c.decode(Int.self, forKey: .validationInterval)
    loaderWorkers = try c.decode(Int.self, forKey: .loaderWorkers)
    initialization =
      try c.decodeIfPresent(WeightInitialization.self, forKey: .initialization) ?? .he
  }

  /// The number of steps of `epochs` passes over `sampleCount` samples (incomplete last batches
  /// dropped, as the data loader does).
  public static func steps(epochs: Int, sampleCount: Int, batchSize: Int) -> Int {
    epochs * (sampleCount / max(1, batchSize))
  }
}

/// Samples and the 256-entry table that maps their label pixels to model class ids.
///
/// Pixels that map to no class of the model must map to the run's ignore index
/// (see ``trainingLabelTable(_:modelClasses:)``).
public struct LabeledSource: Sendable {
  /// The samples.
  public var dataset: Dataset
  /// `labelTable[pixel]` is the model class id or the ignore index.
  public var labelTable: [UInt8]

  /// Creates a source.
  public init(dataset: Dataset, labelTable: [UInt8]) {
    self.dataset = dataset
    self.labelTable = labelTable
  }
}

/// The label table for training a model on `modelClasses` from labels in `mapping.source`.
///
/// The mapping's lookup table, with every target that the model does not predict (a class that
/// is not evaluated, such as CamVid's `Unlabelled`, or an id beyond
/// ``ClassSet/outputCount``) sent to `modelClasses.ignoreIndex`.
public func trainingLabelTable(_ mapping: LabelMapping, modelClasses: ClassSet) -> [UInt8] {
  let ignore = UInt8(modelClasses.ignoreIndex)
  return mapping.lookupTable.map { value in
    let id = Int(value)
    guard id < modelClasses.outputCount, modelClasses.semanticClass(id: id)?.isEvaluated == true
    else { return ignore }
    return value
  }
}

/// One report of a running training.
public struct TrainingProgress: Sendable, Equatable {
  /// Steps taken so far (1-based after the first step).
  public var step: Int
  /// The run's total steps.
  public var totalSteps: Int
  /// The loss of the last step.
  public var loss: Float
  /// The learning rate of the last step.
  public var learningRate: Float
  /// Images per second since this process started (or resumed) training.
  public var imagesPerSecond: Double
  /// Seconds per step since this process started (or resumed) training.
  public var secondsPerStep: Double
  /// The estimated seconds left.
  public var secondsRemaining: Double
}

/// What a running training reports through its callback.
public enum TrainingEvent: Sendable {
  /// The run continues from a checkpoint at this step.
  case resumed(step: Int, checkpoint: String)
  /// A step was taken.
  case step(TrainingProgress)
  /// A checkpoint was written after `step` steps.
  case checkpoint(step: Int, path: String)
  /// The validation set was scored after `step` steps.
  case validation(step: Int, report: EvaluationReport)
}

/// The outcome of ``runTraining(_:in:training:validation:modelClasses:resume:progress:)``.
public struct TrainingRunResult: Sendable {
  /// The steps taken (the configuration's total).
  public var steps: Int
  /// The final checkpoint.
  public var checkpointPath: String
  /// The loss of the last step taken by this process (`nil` when nothing was left to do).
  public var lastLoss: Float?
  /// The last validation, if a validation set was given.
  public var validation: EvaluationReport?
  /// Seconds spent training in this process.
  public var seconds: Double
}

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
  /// One JSON line per validation: `{"step": .., "meanIoU": .., "pixelAccuracy": ..}`.
  public static func validationLog(in directory: String) -> String {
    DatasetFiles.join(directory, "validation.jsonl")
  }
}

/// Trains a network from scratch, or resumes an interrupted run, writing checkpoints to
/// `directory`.
///
/// The run is reproducible: the initial weights, sample order and augmentation derive from
/// `configuration.seed`. Checkpoints (``TrainingRunFiles/checkpoint(in:)``, written atomically
/// every `checkpointInterval` steps and at the end) hold the weights, running statistics, SGD
/// velocities, schedule, step, generator and the loader position, so a run killed at any moment
/// and resumed with `resume: true` ends with the same weights, bit for bit, as an uninterrupted
/// run (same thread count). A non-finite loss or gradient stops the run with
/// ``ModelError/diverged(step:reason:lastGoodCheckpoint:)``; the last checkpoint is kept.
///
/// ```swift
/// let result = try runTraining(configuration, in: "runs/camvid",
///                              training: LabeledSource(dataset: day, labelTable: table),
///                              validation: nil, modelClasses: camvid11) { event in ... }
/// ```
/// - Parameters:
///   - configuration: the recipe; saved as `training.json` and checked on resume.
///   - directory: the run folder (created if needed).
///   - training: the labelled training samples.
///   - validation: samples scored every `validationInterval` steps and at the end.
///   - modelClasses: the class set the logits index (for the validation scores).
///   - resume: continue from the folder's checkpoint instead of starting afresh.
///   - progress: called on the training thread after each step, checkpoint and validation;
///     an error it throws stops the run (after a checkpoint event, the checkpoint is on disk).
/// - Throws: `DatasetError` (unreadable data), `ModelError` (checkpoint, divergence, a
///   configuration that differs from the saved one on resume), `TaxonomyError`.
public func runTraining(
  _ configuration: TrainingRunConfiguration, in directory: String, training: LabeledSource,
  validation: LabeledSource? = nil, modelClasses: ClassSet, resume: Bool = false,
  progress: (TrainingEvent) throws -> Void = { _ in }
) throws -> TrainingRunResult {
  var generator = SeededGenerator(seed: configuration.seed)
  var model = configuration.architecture.makeModel(using: &generator)
  if configuration.initialization != .he {
    model.initialize(configuration.initialization, using: &generator)
  }
  return try runTraining(
    model, configuration, in: directory, training: training, validation: validation,
    modelClasses: modelClasses, resume: resume, generator: generator, progress: progress)
}

/// The generic body of ``runTraining(_:in:training:validation:modelClasses:resume:progress:)``.
func runTraining<Model: SegmentationModel>(
  _ model: Model, _ configuration: TrainingRunConfiguration, in directory: String,
  training: LabeledSource, validation: LabeledSource?, modelClasses: ClassSet, resume: Bool,
  generator: SeededGenerator, progress: (TrainingEvent) throws -> Void
) throws -> TrainingRunResult {
  let configurationPath = TrainingRunFiles.configuration(in: directory)
  let checkpointPath = TrainingRunFiles.checkpoint(in: directory)
  do {
    try FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true)
  } catch {
    throw ModelError.fileAccess(path: directory, reason: "cannot create the run folder: \(error)")
  }
  let trainerConfiguration = TrainerConfiguration(
    ignoreIndex: configuration.ignoreIndex,
    schedule: PolySchedule(
      baseLearningRate: configuration.baseLearningRate, totalSteps: configuration.totalSteps),
    momentum: configuration.momentum, weightDecay: configuration.weightDecay,
    classSetName: configuration.classSetName)

  var trainer: Trainer<Model>
  var loaderState: LoaderState?
  if resume {
    let saved = try readRunConfiguration(configurationPath)
    if let difference = describeDifference(saved, configuration) {
      throw ModelError.checkpointMismatch(
        path: configurationPath, reason: "the run was started with \(difference)")
    }
    let checkpoint = try Checkpoint.read(from: checkpointPath)
    trainer = try Trainer(
      model: model, configuration: trainerConfiguration, resumingFrom: checkpoint,
      path: checkpointPath)
    loaderState = checkpoint.trainingState?.loader
    try progress(.resumed(step: trainer.step, checkpoint: checkpointPath))
  } else {
    trainer = Trainer(model: model, configuration: trainerConfiguration, generator: generator)
    try writeRunConfiguration(configuration, to: configurationPath)
  }

  let loader = try DataLoader(
    dataset: training.dataset, labelTable: training.labelTable,
    augmentation: configuration.augmentation, batchSize: configuration.batchSize,
    seed: configuration.seed, shuffle: true, dropLast: true, prefetch: 2,
    workers: max(1, configuration.loaderWorkers),
    resumingFrom: loaderState ?? derivedLoaderState(
      step: trainer.step, configuration: configuration, sampleCount: training.dataset.count))

  var lastValidation: EvaluationReport?
  func validate() throws {
    guard let validation else { return }
    let matrix = try evaluateSegmentation(
      trainer.model, on: validation, classes: modelClasses,
      workingSize: configuration.augmentation.workingSize,
      normalization: configuration.augmentation.normalization,
      batchSize: configuration.batchSize)
    let report = try matrix.report()
    lastValidation = report
    appendValidationLine(
      step: trainer.step, report: report, to: TrainingRunFiles.validationLog(in: directory))
    try progress(.validation(step: trainer.step, report: report))
  }

  let start = Date()
  let firstStep = trainer.step
  var lastLoss: Float?
  while trainer.step < configuration.totalSteps {
    let batch = try loader.next()
    let result = try trainer.trainStep(batch)
    lastLoss = result.loss
    let elapsed = Date().timeIntervalSince(start)
    let done = trainer.step - firstStep
    let perStep = elapsed / Double(max(1, done))
    try progress(
      .step(
        TrainingProgress(
          step: trainer.step, totalSteps: configuration.totalSteps, loss: result.loss,
          learningRate: result.learningRate,
          imagesPerSecond: elapsed > 0
            ? Double(done * configuration.batchSize) / elapsed : 0,
          secondsPerStep: perStep,
          secondsRemaining: perStep * Double(configuration.totalSteps - trainer.step))))
    let isLast = trainer.step == configuration.totalSteps
    if isLast || trainer.step % max(1, configuration.checkpointInterval) == 0 {
      try trainer.saveCheckpoint(to: checkpointPath, loader: loader.state)
      try progress(.checkpoint(step: trainer.step, path: checkpointPath))
    }
    if !isLast, configuration.validationInterval > 0,
      trainer.step % configuration.validationInterval == 0
    {
      try validate()
    }
  }
  if trainer.step == firstStep, !FileManager.default.fileExists(atPath: checkpointPath) {
    try trainer.saveCheckpoint(to: checkpointPath, loader: loader.state)
  }
  try validate()
  return TrainingRunResult(
    steps: trainer.step, checkpointPath: checkpointPath, lastLoss: lastLoss,
    validation: lastValidation, seconds: Date().timeIntervalSince(start))
}

/// The loader state of an uninterrupted run after `step` steps (one batch per step).
func derivedLoaderState(step: Int, configuration: TrainingRunConfiguration, sampleCount: Int)
  -> LoaderState?
{
  guard step > 0 else { return nil }
  let perEpoch = sampleCount / max(1, configuration.batchSize)
  guard perEpoch > 0 else { return nil }
  var state = LoaderState(
    seed: configuration.seed, sampleCount: sampleCount, batchSize: configuration.batchSize)
  state.epoch = step / perEpoch
  state.position = step % perEpoch
  state.generator = LoaderState.epochGenerator(seed: configuration.seed, epoch: state.epoch)
  return state
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
      ignoreIndex: UInt8(classes.ignoreIndex)),
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
    + "\"pixelAccuracy\": \(number(report.pixelAccuracy))}\n"
  if let handle = FileHandle(forWritingAtPath: path) {
    handle.seekToEndOfFile()
    handle.write(Data(line.utf8))
    handle.closeFile()
  } else {
    _ = FileManager.default.createFile(atPath: path, contents: Data(line.utf8))
  }
}
