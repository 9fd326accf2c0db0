import Tensor

/// The loss a ``Trainer`` minimises.
public enum TrainingLoss: Sendable, Codable, Equatable {
  /// Pixel-wise softmax cross-entropy against labels of the model's classes, optionally weighted
  /// (``softmaxCrossEntropy(logits:labels:ignoreIndex:classWeights:)``).
  case crossEntropy(classWeights: [Float]? = nil)
  /// Reduce-then-compute against super-class labels: the model predicts fine classes and
  /// `superClassOfFine[f]` names the super-class of fine class `f`
  /// (``reduceThenComputeLoss(logits:superLabels:superClassOfFine:ignoreIndex:)``).
  case reduceThenCompute(superClassOfFine: [Int?])
  /// Soft Dice over the level's classes but the first (the background) plus cross-entropy, as
  /// nnU-Net trains (``diceCrossEntropyLoss(logits:labels:superClassOfFine:ignoreIndex:)``):
  /// labels are level classes, `superClassOfFine` the level of each fine class (the identity at
  /// the fine level).
  case diceCrossEntropy(superClassOfFine: [Int?])
}

/// A run of consecutive images of a batch that is trained with one loss.
///
/// A batch split into groups of consecutive images is trained on the mean over all its counted
/// (non-void) pixels, each pixel with its group's loss:
/// ```
/// loss = sum_g (p_g / p) * loss_g   (loss_g: the mean over the p_g counted pixels of group g;
///                                    p = sum_g p_g)
/// ```
/// e.g. labeled source images with cross-entropy beside super-class pseudo labels with the
/// reduce-then-compute loss (the set loss of `torch_atso_reference.py`, a mean over the
/// batch's counted pixels).
public struct LossGroup: Sendable, Equatable {
  /// The number of images, counted from the end of the previous group.
  public var count: Int
  public var loss: TrainingLoss

  public init(count: Int, loss: TrainingLoss) {
    self.count = count
    self.loss = loss
  }
}

/// The hyperparameters of a ``Trainer``.
public struct TrainerConfiguration: Sendable, Equatable {
  /// The loss of batches trained without groups.
  public var loss: TrainingLoss
  /// The void label of the batches.
  public var ignoreIndex: IgnoreIndex
  /// The learning-rate schedule (poly, power 0.9).
  public var schedule: PolySchedule
  /// The optimizer a new trainer starts with (its state empty).
  public var optimizer: TrainingOptimizer
  /// If set, gradients whose global L2 norm exceeds it are scaled down to it.
  public var maxGradientNorm: Float?
  /// If set, the trainer writes a checkpoint here every ``checkpointInterval`` good steps.
  public var checkpointPath: String?
  /// Steps between automatic checkpoints.
  public var checkpointInterval: Int
  /// The class set name recorded in checkpoints.
  public var classSetName: String
  /// The working size recorded in checkpoints (nil: none, e.g. slices of volumes).
  public var workingSize: ImageSize?

  /// Creates a configuration.
  public init(
    loss: TrainingLoss = .crossEntropy(), ignoreIndex: IgnoreIndex, schedule: PolySchedule,
    optimizer: TrainingOptimizer, maxGradientNorm: Float? = nil, checkpointPath: String? = nil,
    checkpointInterval: Int = 100, classSetName: String, workingSize: ImageSize? = nil
  ) {
    self.loss = loss
    self.ignoreIndex = ignoreIndex
    self.schedule = schedule
    self.optimizer = optimizer
    self.maxGradientNorm = maxGradientNorm
    self.checkpointPath = checkpointPath
    self.checkpointInterval = max(1, checkpointInterval)
    self.classSetName = classSetName
    self.workingSize = workingSize
  }
}

/// What one training step measured.
public struct TrainingStepResult: Sendable, Equatable {
  /// The step index (0-based) that was taken.
  public var step: Int
  /// The loss: the mean over counted pixels, or the image-weighted mean of the groups' losses.
  public var loss: Float
  /// The learning rate used.
  public var learningRate: Float
  /// The global L2 norm of the gradients before clipping.
  public var gradientNorm: Float
  /// The labeled (not void) pixels of each loss group (one entry without groups).
  public var countedPixels: [Int]
}

/// Trains a segmentation network with the poly schedule, one ``Batch`` at a time: the one
/// training path of the package (`train`, transfer source models and students, view networks).
///
/// The trainer owns the model, the optimizer state, the step counter and a random generator (for
/// callers that augment or shuffle), and saves all of them in checkpoints. Every batch is
/// validated against the model and the losses (``validate(_:groups:)``). A step whose loss or
/// gradients are not finite is not applied: ``trainStep(_:groups:)`` throws
/// ``ModelError/diverged(step:reason:lastGoodCheckpoint:)``, and the last checkpoint written
/// (always from a good step, written atomically) stays on disk.
public struct Trainer<Model: SegmentationModel>: Sendable {
  /// The network being trained.
  public var model: Model
  /// The optimizer and its state.
  public var optimizer: TrainingOptimizer
  /// The hyperparameters.
  public var configuration: TrainerConfiguration
  /// The number of steps taken.
  public private(set) var step: Int
  /// The trainer's random generator, saved in checkpoints.
  public var generator: SeededGenerator
  /// The last checkpoint this trainer wrote.
  public private(set) var lastCheckpointPath: String?
  /// The processes training this model data-parallel (nil: this process alone). Each step's
  /// batch is the whole batch; each replica computes its share and the replicas sum batch-norm
  /// statistics, losses and gradients (``TrainingReplicas``); only replica 0 writes the
  /// automatic checkpoints.
  public var replicas: (any TrainingReplicas)?

  /// Creates a trainer at step 0.
  public init(model: Model, configuration: TrainerConfiguration, generator: SeededGenerator) {
    self.model = model
    self.configuration = configuration
    self.optimizer = configuration.optimizer
    self.step = 0
    self.generator = generator
  }

  /// Resumes from a checkpoint written by ``saveCheckpoint(to:loader:)``: weights, buffers,
  /// optimizer state, step and generator.
  ///
  /// - Throws: ``ModelError/checkpointMismatch(path:reason:)`` if the checkpoint has another
  ///   architecture, no training state, or another optimizer.
  public init(
    model: Model, configuration: TrainerConfiguration, resumingFrom checkpoint: Checkpoint,
    path: String = "checkpoint"
  ) throws(ModelError) {
    var model = model
    try checkpoint.restore(into: &model, path: path)
    guard let state = checkpoint.trainingState else {
      throw .checkpointMismatch(path: path, reason: "no training state to resume from")
    }
    guard state.optimizer.kind == configuration.optimizer.kind else {
      throw .checkpointMismatch(
        path: path,
        reason: "trained with \(state.optimizer.kind.rawValue), not \(configuration.optimizer.kind.rawValue)")
    }
    self.model = model
    self.configuration = configuration
    self.configuration.schedule = state.schedule
    self.optimizer = state.optimizer
    self.step = state.step
    self.generator = state.generator
  }

  /// The training state as saved in checkpoints.
  public var trainingState: TrainingState {
    TrainingState(
      step: step, optimizer: optimizer, schedule: configuration.schedule, generator: generator)
  }

  /// Writes a checkpoint of the model and the training state (atomically).
  ///
  /// - Parameter loader: the data loader's state before the next batch, saved so that a resumed
  ///   run sees the same batches (``DataLoader/state``).
  public mutating func saveCheckpoint(to path: String, loader: LoaderState? = nil)
    throws(ModelError)
  {
    var state = trainingState
    state.loader = loader
    try Checkpoint(
      model: model, classSetName: configuration.classSetName, training: state,
      workingSize: configuration.workingSize
    ).write(to: path)
    lastCheckpointPath = path
  }

  /// The groups of a batch: `groups`, or the configuration's loss over all images.
  func lossGroups(_ batch: Batch, _ groups: [LossGroup]?) -> [LossGroup] {
    groups ?? [LossGroup(count: batch.count, loss: configuration.loss)]
  }

  /// Checks a batch against the model and its losses: shapes, group sizes, and every label a
  /// class of its group's loss (fine classes, or super classes) or the ignore index.
  public func validate(_ batch: Batch, groups: [LossGroup]? = nil) throws(ModelError) {
    let shape = batch.images.shape
    guard shape.count == 4, shape[0] > 0, shape[1] > 0, shape[2] > 0 else {
      throw .invalidBatch(reason: "images must be [n, h, w, c] with n, h, w > 0, got \(shape)")
    }
    let pixels = shape[1] * shape[2]
    guard batch.labels.count == shape[0] * pixels else {
      throw .invalidBatch(reason: "\(batch.labels.count) labels for \(shape[0] * pixels) pixels of \(shape)")
    }
    let groups = lossGroups(batch, groups)
    guard groups.allSatisfy({ $0.count > 0 }), groups.reduce(0, { $0 + $1.count }) == shape[0]
    else {
      throw .invalidBatch(reason: "loss groups of \(groups.map(\.count)) images for \(shape[0])")
    }
    var first = 0
    for group in groups {
      var valid = [Bool](repeating: false, count: 256)
      switch group.loss {
      case .crossEntropy(let weights):
        if let weights, weights.count != model.classCount {
          throw .invalidBatch(
            reason: "\(weights.count) class weights for \(model.classCount) classes")
        }
        for c in 0..<min(256, model.classCount) { valid[c] = true }
      case .reduceThenCompute(let superClassOfFine), .diceCrossEntropy(let superClassOfFine):
        guard superClassOfFine.count == model.classCount else {
          throw .invalidBatch(
            reason:
              "the fine-to-super table has \(superClassOfFine.count) entries for \(model.classCount) classes"
          )
        }
        for s in superClassOfFine { if let s, (0..<256).contains(s) { valid[s] = true } }
      }
      valid[Int(configuration.ignoreIndex.value)] = true
      let range = (first * pixels)..<((first + group.count) * pixels)
      for i in range where !valid[Int(batch.labels[i])] {
        throw .invalidLabel(value: batch.labels[i], pixel: i, classCount: model.classCount)
      }
      first += group.count
    }
  }

  /// The loss and its logits gradient for `logits` against `labels` under one loss.
  func lossAndGradient(_ logits: Tensor, labels: [UInt8], loss: TrainingLoss)
    -> (loss: Float, logitsGradient: Tensor)
  {
    let ignore = configuration.ignoreIndex.value
    switch loss {
    case .crossEntropy(let weights):
      return softmaxCrossEntropy(
        logits: logits, labels: labels, ignoreIndex: ignore, classWeights: weights)
    case .reduceThenCompute(let table):
      return reduceThenComputeLoss(
        logits: logits, superLabels: labels, superClassOfFine: table, ignoreIndex: ignore)
    case .diceCrossEntropy(let table):
      return diceCrossEntropyLoss(
        logits: logits, labels: labels, superClassOfFine: table, ignoreIndex: ignore)
    }
  }

  /// The pixel-weighted loss of the groups and its logits gradient (see ``LossGroup``): each
  /// group's loss reads its rows of `logits` in place and writes its rows of the one gradient,
  /// scaled by the group's weight.
  func lossAndGradient(_ logits: Tensor, labels: [UInt8], groups: [LossGroup])
    -> (loss: Float, logitsGradient: Tensor)
  {
    if groups.count == 1 { return lossAndGradient(logits, labels: labels, loss: groups[0].loss) }
    let (n, h, w, c) = (logits.shape[0], logits.shape[1], logits.shape[2], logits.shape[3])
    let ignore = configuration.ignoreIndex
    let counted = ignore.countLabeled(labels)
    var total: Float = 0
    let gradient = Tensor.filled(shape: logits.shape) { g in
      logits.scalars.withUnsafeBufferPointer { z in
        labels.withUnsafeBufferPointer { y in
          var first = 0
          for group in groups {
            let pixels = (first * h * w)..<((first + group.count) * h * w)
            let scalars = (pixels.lowerBound * c)..<(pixels.upperBound * c)
            let groupLabels = UnsafeBufferPointer(rebasing: y[pixels])
            let weight =
              counted == 0
              ? Float(group.count) / Float(n)
              : Float(ignore.countLabeled(groupLabels)) / Float(counted)
            let loss = groupLoss(
              group.loss, logits: UnsafeBufferPointer(rebasing: z[scalars]), classes: c,
              labels: groupLabels, weight: weight,
              into: UnsafeMutableBufferPointer(rebasing: g[scalars]))
            total += weight * Float(loss)
            first += group.count
          }
        }
      }
    }
    return (total, gradient)
  }

  /// One group's mean loss; writes `weight` times its logits gradient into `gradient`.
  private func groupLoss(
    _ loss: TrainingLoss, logits: UnsafeBufferPointer<Float>, classes: Int,
    labels: UnsafeBufferPointer<UInt8>, weight: Float, into gradient: UnsafeMutableBufferPointer<Float>
  ) -> Double {
    let ignore = configuration.ignoreIndex.value
    switch loss {
    case .crossEntropy(let weights):
      return softmaxCrossEntropyCore(
        logits: logits, classes: classes, labels: labels, ignoreIndex: ignore,
        classWeights: weights, gradientFactor: weight, into: gradient)
    case .reduceThenCompute(let table):
      return reduceThenComputeCore(
        logits: logits, classes: classes, superLabels: labels, superClassOfFine: table,
        ignoreIndex: ignore, gradientFactor: weight, into: gradient)
    case .diceCrossEntropy(let table):
      return diceCrossEntropyCore(
        logits: logits, classes: classes, labels: labels, superClassOfFine: table,
        ignoreIndex: ignore, gradientFactor: weight, into: gradient)
    }
  }

  /// Runs one training step: validation, forward (batch statistics), loss, backward, gradient
  /// checks, optimizer update with the scheduled learning rate, and an automatic checkpoint when
  /// due.
  ///
  /// - Parameter groups: the loss of each run of images (nil: the configuration's loss).
  /// - Throws: ``ModelError/invalidBatch(reason:)`` / ``ModelError/invalidLabel(value:pixel:classCount:)``
  ///   for a bad batch (nothing changes), ``ModelError/diverged(step:reason:lastGoodCheckpoint:)``
  ///   for a non-finite loss or gradient (the parameters are not updated; the running statistics
  ///   of the failed forward pass are rolled back too), or a checkpoint write error.
  @discardableResult
  public mutating func trainStep(_ batch: Batch, groups: [LossGroup]? = nil) throws(ModelError)
    -> TrainingStepResult
  {
    try validate(batch, groups: groups)
    let groups = lossGroups(batch, groups)
    let before = model
    let loss: Float
    var gradients: [String: Tensor]
    var counted: [Int]?
    if let replicas, replicas.count > 1 {
      guard batch.count >= replicas.count else {
        throw .invalidBatch(
          reason: "a batch of \(batch.count) images cannot be split over \(replicas.count) ranks")
      }
      do throws(ModelError) {
        (loss, gradients, counted) = try replicatedGradients(
          batch, groups: groups, replicas: replicas)
      } catch {
        model = before
        throw error
      }
    } else {
      let (logits, cache) = model.trainingForward(batch.images)
      let logitsGradient: Tensor
      (loss, logitsGradient) = lossAndGradient(logits, labels: batch.labels, groups: groups)
      guard loss.isFinite else {
        model = before
        throw .diverged(
          step: step, reason: "loss is \(loss)", lastGoodCheckpoint: lastCheckpointPath)
      }
      gradients = model.backward(cache, logitsGradient: logitsGradient)
    }
    var squares = 0.0
    // Sum in name order: a Dictionary's iteration order changes from process to process, and the
    // norm decides the clipping scale, so an unordered sum made runs differ across processes.
    for name in gradients.keys.sorted() {
      for v in gradients[name]?.scalars ?? [] { squares += Double(v) * Double(v) }
    }
    let norm = Float(squares.squareRoot())
    guard norm.isFinite else {
      let culprit = gradients.keys.sorted().first { name in
        gradients[name]?.scalars.contains { !$0.isFinite } ?? false
      }
      model = before
      throw .diverged(
        step: step, reason: "gradient norm is \(norm) (first non-finite: \(culprit ?? "overflow"))",
        lastGoodCheckpoint: lastCheckpointPath)
    }
    if let limit = configuration.maxGradientNorm, norm > limit {
      let factor = limit / norm
      for name in gradients.keys {
        gradients[name]?.scalars.withUnsafeMutableBufferPointer { b in
          for i in b.indices { b[i] *= factor }
        }
      }
    }
    let learningRate = configuration.schedule.learningRate(atStep: step)
    var parameters = model.parameters
    optimizer.update(&parameters, gradients: gradients, learningRate: learningRate)
    model.parameters = parameters
    if counted == nil {
      let pixels = batch.images.shape[1] * batch.images.shape[2]
      var first = 0
      counted = groups.map { group in
        defer { first += group.count }
        let labels = batch.labels[(first * pixels)..<((first + group.count) * pixels)]
        return configuration.ignoreIndex.countLabeled(labels)
      }
    }
    let result = TrainingStepResult(
      step: step, loss: loss, learningRate: learningRate, gradientNorm: norm,
      countedPixels: counted ?? [])
    step += 1
    if let path = configuration.checkpointPath, step % configuration.checkpointInterval == 0,
      (replicas?.index ?? 0) == 0
    {
      try saveCheckpoint(to: path)
    }
    return result
  }

  /// Predicts labels and class probabilities for `images` with the running statistics.
  ///
  /// With `horizontalFlip`, the probabilities are the mean of those of the images and of their
  /// mirror images (mirrored back), a common test-time augmentation.
  /// - Returns: the arg-max class per pixel (`n * h * w`, row-major) and the probabilities
  ///   `[n, h, w, classCount]`.
  public func predict(_ images: Tensor, horizontalFlip: Bool = false)
    -> (labels: [UInt8], probabilities: Tensor)
  {
    predictSegmentation(model, images: images, horizontalFlip: horizontalFlip)
  }
}
