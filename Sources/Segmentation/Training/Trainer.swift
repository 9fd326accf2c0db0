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
}

/// The hyperparameters of a ``Trainer``.
public struct TrainerConfiguration: Sendable, Equatable {
  /// The loss.
  public var loss: TrainingLoss
  /// The void label of the batches.
  public var ignoreIndex: UInt8
  /// The learning-rate schedule (poly, power 0.9).
  public var schedule: PolySchedule
  /// SGD momentum.
  public var momentum: Float
  /// SGD L2 weight decay.
  public var weightDecay: Float
  /// If set, gradients whose global L2 norm exceeds it are scaled down to it.
  public var maxGradientNorm: Float?
  /// If set, the trainer writes a checkpoint here every ``checkpointInterval`` good steps.
  public var checkpointPath: String?
  /// Steps between automatic checkpoints.
  public var checkpointInterval: Int
  /// The class set name recorded in checkpoints.
  public var classSetName: String

  /// Creates a configuration.
  public init(
    loss: TrainingLoss = .crossEntropy(), ignoreIndex: UInt8 = 255,
    schedule: PolySchedule, momentum: Float = 0.9, weightDecay: Float = 0,
    maxGradientNorm: Float? = nil, checkpointPath: String? = nil, checkpointInterval: Int = 100,
    classSetName: String
  ) {
    self.loss = loss
    self.ignoreIndex = ignoreIndex
    self.schedule = schedule
    self.momentum = momentum
    self.weightDecay = weightDecay
    self.maxGradientNorm = maxGradientNorm
    self.checkpointPath = checkpointPath
    self.checkpointInterval = max(1, checkpointInterval)
    self.classSetName = classSetName
  }
}

/// What one training step measured.
public struct TrainingStepResult: Sendable, Equatable {
  /// The step index (0-based) that was taken.
  public var step: Int
  /// The mean loss over counted pixels.
  public var loss: Float
  /// The learning rate used.
  public var learningRate: Float
  /// The global L2 norm of the gradients before clipping.
  public var gradientNorm: Float
}

/// Trains a segmentation network with SGD and the poly schedule, one ``Batch`` at a time.
///
/// The trainer owns the model, the optimizer state, the step counter and a random generator (for
/// callers that augment or shuffle), and saves all of them in checkpoints. A step whose loss or
/// gradients are not finite is not applied: ``trainStep(_:)`` throws
/// ``ModelError/diverged(step:reason:lastGoodCheckpoint:)``, and the last checkpoint written
/// (always from a good step, written atomically) stays on disk.
public struct Trainer<Model: SegmentationModel>: Sendable {
  /// The network being trained.
  public var model: Model
  /// The optimizer state.
  public var optimizer: SGD
  /// The hyperparameters.
  public var configuration: TrainerConfiguration
  /// The number of steps taken.
  public private(set) var step: Int
  /// The trainer's random generator, saved in checkpoints.
  public var generator: SeededGenerator
  /// The last checkpoint this trainer wrote.
  public private(set) var lastCheckpointPath: String?

  /// Creates a trainer at step 0.
  public init(model: Model, configuration: TrainerConfiguration, generator: SeededGenerator) {
    self.model = model
    self.configuration = configuration
    self.optimizer = SGD(momentum: configuration.momentum, weightDecay: configuration.weightDecay)
    self.step = 0
    self.generator = generator
  }

  /// Resumes from a checkpoint written by ``saveCheckpoint(to:)``: weights, buffers, optimizer
  /// state, step and generator.
  ///
  /// - Throws: ``ModelError/checkpointMismatch(path:reason:)`` if the checkpoint has another
  ///   architecture or no training state.
  public init(
    model: Model, configuration: TrainerConfiguration, resumingFrom checkpoint: Checkpoint,
    path: String = "checkpoint"
  ) throws(ModelError) {
    var model = model
    try checkpoint.restore(into: &model, path: path)
    guard let state = checkpoint.trainingState else {
      throw .checkpointMismatch(path: path, reason: "no training state to resume from")
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
    try Checkpoint(model: model, classSetName: configuration.classSetName, training: state)
      .write(to: path)
    lastCheckpointPath = path
  }

  /// Checks a batch against the model and the loss.
  public func validate(_ batch: Batch) throws(ModelError) {
    let shape = batch.images.shape
    guard shape.count == 4, shape[0] > 0, shape[1] > 0, shape[2] > 0 else {
      throw .invalidBatch(reason: "images must be [n, h, w, c] with n, h, w > 0, got \(shape)")
    }
    let pixels = shape[0] * shape[1] * shape[2]
    guard batch.labels.count == pixels else {
      throw .invalidBatch(reason: "\(batch.labels.count) labels for \(pixels) pixels of \(shape)")
    }
    let ignore = configuration.ignoreIndex
    var valid = [Bool](repeating: false, count: 256)
    switch configuration.loss {
    case .crossEntropy(let weights):
      if let weights, weights.count != model.classCount {
        throw .invalidBatch(
          reason: "\(weights.count) class weights for \(model.classCount) classes")
      }
      for c in 0..<min(256, model.classCount) { valid[c] = true }
    case .reduceThenCompute(let superClassOfFine):
      guard superClassOfFine.count == model.classCount else {
        throw .invalidBatch(
          reason:
            "the fine-to-super table has \(superClassOfFine.count) entries for \(model.classCount) classes"
        )
      }
      for s in superClassOfFine { if let s, (0..<256).contains(s) { valid[s] = true } }
    }
    valid[Int(ignore)] = true
    for (i, label) in batch.labels.enumerated() where !valid[Int(label)] {
      throw .invalidLabel(value: label, pixel: i, classCount: model.classCount)
    }
  }

  /// The loss and its logits gradient for `logits` against `labels`.
  func lossAndGradient(_ logits: Tensor, labels: [UInt8]) -> (loss: Float, logitsGradient: Tensor) {
    switch configuration.loss {
    case .crossEntropy(let weights):
      softmaxCrossEntropy(
        logits: logits, labels: labels, ignoreIndex: configuration.ignoreIndex,
        classWeights: weights)
    case .reduceThenCompute(let table):
      reduceThenComputeLoss(
        logits: logits, superLabels: labels, superClassOfFine: table,
        ignoreIndex: configuration.ignoreIndex)
    }
  }

  /// Runs one training step: forward (batch statistics), loss, backward, gradient checks, SGD
  /// update with the scheduled learning rate, and an automatic checkpoint when due.
  ///
  /// - Throws: ``ModelError/invalidBatch(reason:)`` / ``ModelError/invalidLabel(value:pixel:classCount:)``
  ///   for a bad batch (nothing changes), ``ModelError/diverged(step:reason:lastGoodCheckpoint:)``
  ///   for a non-finite loss or gradient (the parameters are not updated; the running statistics
  ///   of the failed forward pass are rolled back too), or a checkpoint write error.
  @discardableResult
  public mutating func trainStep(_ batch: Batch) throws(ModelError) -> TrainingStepResult {
    try validate(batch)
    let before = model
    let (logits, cache) = model.trainingForward(batch.images)
    let (loss, logitsGradient) = lossAndGradient(logits, labels: batch.labels)
    guard loss.isFinite else {
      model = before
      throw .diverged(step: step, reason: "loss is \(loss)", lastGoodCheckpoint: lastCheckpointPath)
    }
    var gradients = model.backward(cache, logitsGradient: logitsGradient)
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
    let result = TrainingStepResult(
      step: step, loss: loss, learningRate: learningRate, gradientNorm: norm)
    step += 1
    if let path = configuration.checkpointPath, step % configuration.checkpointInterval == 0 {
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

/// Predicts labels and probabilities with any model; see ``Trainer/predict(_:horizontalFlip:)``.
public func predictSegmentation<M: SegmentationModel>(
  _ model: M, images: Tensor, horizontalFlip: Bool = false
) -> (labels: [UInt8], probabilities: Tensor) {
  var probabilities = softmaxChannels(model(images))
  if horizontalFlip {
    let mirrored = flippedHorizontally(softmaxChannels(model(flippedHorizontally(images))))
    for i in probabilities.scalars.indices {
      probabilities.scalars[i] = 0.5 * (probabilities.scalars[i] + mirrored.scalars[i])
    }
  }
  let classes = probabilities.shape.last ?? 1
  let pixels = probabilities.count / max(1, classes)
  var labels = [UInt8](repeating: 0, count: pixels)
  probabilities.scalars.withUnsafeBufferPointer { p in
    for i in 0..<pixels {
      var best = 0
      for c in 1..<classes where p[i * classes + c] > p[i * classes + best] { best = c }
      labels[i] = UInt8(min(best, 255))
    }
  }
  return (labels, probabilities)
}

/// Mirrors NHWC images left to right.
public func flippedHorizontally(_ x: Tensor) -> Tensor {
  precondition(x.rank == 4, "flippedHorizontally expects [n, h, w, c], got \(x.shape)")
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  var out = Tensor(repeating: 0, shape: x.shape)
  x.scalars.withUnsafeBufferPointer { src in
    out.scalars.withUnsafeMutableBufferPointer { dst in
      for row in 0..<(n * h) {
        let base = row * w * c  // row `row` of image row / h
        for col in 0..<w {
          let from = base + col * c
          let to = base + (w - 1 - col) * c
          for k in 0..<c { dst[to + k] = src[from + k] }
        }
      }
    }
  }
  return out
}
