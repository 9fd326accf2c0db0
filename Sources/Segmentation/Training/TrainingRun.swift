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
  public var ignoreIndex: IgnoreIndex
  /// The training pre-processing (working size, scale, crop, flip, normalisation).
  public var augmentation: AugmentationConfig
  /// Samples per step.
  public var batchSize: Int
  /// The number of optimizer steps.
  public var totalSteps: Int
  /// The base learning rate of the poly schedule (power 0.9).
  public var baseLearningRate: Float
  /// The optimizer (``OptimizerKind/sgd`` unless set).
  public var optimizer: OptimizerKind
  /// SGD momentum (not used by Adam, whose betas are 0.9 and 0.999).
  public var momentum: Float
  /// L2 weight decay.
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
    architecture: ModelArchitecture, classSetName: String, ignoreIndex: IgnoreIndex,
    augmentation: AugmentationConfig, batchSize: Int, totalSteps: Int,
    baseLearningRate: Float = 0.01, optimizer: OptimizerKind = .sgd, momentum: Float = 0.9,
    weightDecay: Float = 5e-4,
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
    self.optimizer = optimizer
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
    case baseLearningRate, optimizer, momentum, weightDecay, seed, checkpointInterval
    case validationInterval, loaderWorkers, initialization
  }

  /// Decodes a configuration; `initialization` and `optimizer` may be absent (files written
  /// before they existed: He initialisation, SGD).
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    architecture = try c.decode(ModelArchitecture.self, forKey: .architecture)
    classSetName = try c.decode(String.self, forKey: .classSetName)
    ignoreIndex = try c.decode(IgnoreIndex.self, forKey: .ignoreIndex)
    augmentation = try c.decode(AugmentationConfig.self, forKey: .augmentation)
    batchSize = try c.decode(Int.self, forKey: .batchSize)
    totalSteps = try c.decode(Int.self, forKey: .totalSteps)
    baseLearningRate = try c.decode(Float.self, forKey: .baseLearningRate)
    optimizer = try c.decodeIfPresent(OptimizerKind.self, forKey: .optimizer) ?? .sgd
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
  let ignore = IgnoreIndex(modelClasses).value
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
  /// The global L2 norm of the last step's gradients before clipping.
  public var gradientNorm: Float = 0
  /// The labeled (not void) pixels of the last step.
  public var labeledPixels: Int = 0
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

/// Trains a network from scratch, or resumes an interrupted run, writing checkpoints to
/// `directory`, with the loss of every step in ``TrainingRunFiles/lossLog(in:)`` (``LossLog``).
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
  replicas: (any TrainingReplicas)? = nil, progress: (TrainingEvent) throws -> Void = { _ in }
) throws -> TrainingRunResult {
  var generator = SeededGenerator(seed: configuration.seed)
  var model = configuration.architecture.makeModel(using: &generator)
  if configuration.initialization != .he {
    model.initialize(configuration.initialization, using: &generator)
  }
  return try runTraining(
    model, configuration, in: directory, training: training, validation: validation,
    modelClasses: modelClasses, resume: resume, generator: generator, replicas: replicas,
    progress: progress)
}

/// The generic body of ``runTraining(_:in:training:validation:modelClasses:resume:progress:)``.
func runTraining<Model: SegmentationModel>(
  _ model: Model, _ configuration: TrainingRunConfiguration, in directory: String,
  training: LabeledSource, validation: LabeledSource?, modelClasses: ClassSet, resume: Bool,
  generator: SeededGenerator, replicas: (any TrainingReplicas)?,
  progress: (TrainingEvent) throws -> Void
) throws -> TrainingRunResult {
  // Data-parallel: every replica trains; replica 0 alone writes the folder and validates.
  let writes = (replicas?.index ?? 0) == 0
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
    optimizer: TrainingOptimizer(
      configuration.optimizer, momentum: configuration.momentum,
      weightDecay: configuration.weightDecay),
    classSetName: configuration.classSetName,
    workingSize: configuration.augmentation.workingSize)

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
    if writes { try writeRunConfiguration(configuration, to: configurationPath) }
  }
  trainer.replicas = replicas

  let loader = try DataLoader(
    dataset: training.dataset, labelTable: training.labelTable,
    augmentation: configuration.augmentation, batchSize: configuration.batchSize,
    seed: configuration.seed, shuffle: true, dropLast: true, prefetch: 2,
    workers: max(1, configuration.loaderWorkers),
    resumingFrom: loaderState ?? derivedLoaderState(
      step: trainer.step, configuration: configuration, sampleCount: training.dataset.count),
    share: replicas.map { $0.share(of: configuration.batchSize) })

  var lastValidation: EvaluationReport?
  func validate(_ model: Model, step: Int) throws {
    guard let validation, writes else { return }
    let matrix = try evaluateSegmentation(
      model, on: validation, classes: modelClasses,
      workingSize: configuration.augmentation.workingSize,
      normalization: configuration.augmentation.normalization,
      batchSize: configuration.batchSize)
    let report = try matrix.report()
    lastValidation = report
    appendValidationLine(
      step: step, report: report, to: TrainingRunFiles.validationLog(in: directory))
    try progress(.validation(step: step, report: report))
  }

  let firstStep = trainer.step
  // Rank 0 (or the one process) writes the loss log, as it writes the checkpoints.
  let losses =
    try writes
    ? LossLog(path: TrainingRunFiles.lossLog(in: directory), resumingAfter: resume ? firstStep : nil)
    : nil
  let loop: TrainingLoopResult
  do {
    loop = try trainer.train(
      until: configuration.totalSteps, imagesPerStep: configuration.batchSize,
      next: { _ in TrainingBatch(try loader.next()) },
      progress: { event in
        if case .step(let step) = event { try losses?.append(step) }
        try progress(event)
      }
    ) { trainer, _ in
      guard writes else { return }
      let isLast = trainer.step == configuration.totalSteps
      if isLast || trainer.step % max(1, configuration.checkpointInterval) == 0 {
        try trainer.saveCheckpoint(to: checkpointPath, loader: loader.state)
        try progress(.checkpoint(step: trainer.step, path: checkpointPath))
      }
      if !isLast, configuration.validationInterval > 0,
        trainer.step % configuration.validationInterval == 0
      {
        try validate(trainer.model, step: trainer.step)
      }
    }
  } catch {
    // A failure of this replica alone (not one the replicas share): the others are waiting
    // in their next sum, which now throws it.
    if let replicas, replicas.count > 1, !isSharedReplicaFailure(error) {
      try? replicas.fail(error)
    }
    throw error
  }
  guard writes else {
    return TrainingRunResult(
      steps: trainer.step, checkpointPath: checkpointPath, lastLoss: loop.last?.loss,
      validation: nil, seconds: loop.seconds)
  }
  if trainer.step == firstStep, !FileManager.default.fileExists(atPath: checkpointPath) {
    try trainer.saveCheckpoint(to: checkpointPath, loader: loader.state)
  }
  try validate(trainer.model, step: trainer.step)
  return TrainingRunResult(
    steps: trainer.step, checkpointPath: checkpointPath, lastLoss: loop.last?.loss,
    validation: lastValidation, seconds: loop.seconds)
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
