/// A set of pseudo-labeled units that a backend reads: the label files of `units`, written by
/// ``TransferBackend/generatePseudoLabels(_:)`` into `directory`.
public struct PseudoLabelSource: Sendable, Equatable, Codable {
  /// Absolute path of the label set's directory (owned by the run directory).
  public var directory: String
  public var units: [String]
  public var level: LabelLevel

  public init(directory: String, units: [String], level: LabelLevel) {
    self.directory = directory
    self.units = units
    self.level = level
  }
}

/// Trains the source model M0 of a network on the labeled set S.
public struct SourceTrainingRequest: Sendable, Equatable {
  /// The network to train (nil: the default network).
  public var network: String?
  /// Where to write the checkpoint (a file or a directory; a temporary path of the run).
  public var output: String
  public var seed: UInt64

  public init(network: String?, output: String, seed: UInt64) {
    self.network = network
    self.output = output
    self.seed = seed
  }
}

/// Fine-tunes a checkpoint on S plus pseudo-labeled units.
public struct FineTuningRequest: Sendable, Equatable {
  public var network: String?
  /// The checkpoint to start from (M0 or a teacher), read only.
  public var initialCheckpoint: String
  /// The pseudo-labeled units added to S (their union; disjoint unit sets).
  public var pseudoLabels: [PseudoLabelSource]
  /// The level of the pseudo labels; at a super-class level, train with the reduce loss.
  public var level: LabelLevel
  public var output: String
  public var seed: UInt64

  public init(
    network: String?, initialCheckpoint: String, pseudoLabels: [PseudoLabelSource],
    level: LabelLevel, output: String, seed: UInt64
  ) {
    self.network = network
    self.initialCheckpoint = initialCheckpoint
    self.pseudoLabels = pseudoLabels
    self.level = level
    self.output = output
    self.seed = seed
  }
}

/// Re-estimates the batch-norm statistics of a checkpoint on the images of `units` (AdaBN).
public struct BatchNormAdaptationRequest: Sendable, Equatable {
  public var checkpoint: String
  public var units: [String]
  public var output: String
  public var seed: UInt64

  public init(checkpoint: String, units: [String], output: String, seed: UInt64) {
    self.checkpoint = checkpoint
    self.units = units
    self.output = output
    self.seed = seed
  }
}

/// Filters applied to the predictions before they become pseudo labels.
public struct PseudoLabelOptions: Sendable, Equatable, Codable {
  /// Keep a pixel only if its confidence is at least this value.
  public var confidenceThreshold: Double?
  /// Keep, per class, this portion of the most confident pixels over all `units`
  /// (see ``ClassBalancedThresholds``).
  public var classBalancedPortion: Double?
  /// The label written for filtered pixels.
  public var ignoreIndex: UInt8

  public init(
    confidenceThreshold: Double? = nil, classBalancedPortion: Double? = nil,
    ignoreIndex: UInt8 = 255
  ) {
    self.confidenceThreshold = confidenceThreshold
    self.classBalancedPortion = classBalancedPortion
    self.ignoreIndex = ignoreIndex
  }
}

/// Predicts pseudo labels for `units` and writes one label file per unit into `outputDirectory`.
public struct PseudoLabelRequest: Sendable, Equatable {
  public var checkpoint: String
  public var units: [String]
  public var level: LabelLevel
  public var options: PseudoLabelOptions
  /// An existing, empty directory (temporary path of the run) that receives the labels.
  public var outputDirectory: String
  public var seed: UInt64

  public init(
    checkpoint: String, units: [String], level: LabelLevel, options: PseudoLabelOptions,
    outputDirectory: String, seed: UInt64
  ) {
    self.checkpoint = checkpoint
    self.units = units
    self.level = level
    self.options = options
    self.outputDirectory = outputDirectory
    self.seed = seed
  }
}

/// The two evaluation sets. `reference` (R) is for diagnosis only: no result on R is ever used
/// for training or model selection.
public enum EvaluationSet: String, Sendable, Equatable, Codable {
  case reference
  case test
}

/// Evaluates a checkpoint on R or E at a level.
public struct EvaluationRequest: Sendable, Equatable {
  public var checkpoint: String
  public var set: EvaluationSet
  public var level: LabelLevel

  public init(checkpoint: String, set: EvaluationSet, level: LabelLevel) {
    self.checkpoint = checkpoint
    self.set = set
    self.level = level
  }
}

/// Measures how often a student agrees with its teacher: the fraction of the non-ignored
/// pseudo-labeled pixels (the teacher's decisions) where the student predicts the same class.
public struct AgreementRequest: Sendable, Equatable {
  public var checkpoint: String
  public var pseudoLabels: [PseudoLabelSource]
  public var level: LabelLevel

  public init(checkpoint: String, pseudoLabels: [PseudoLabelSource], level: LabelLevel) {
    self.checkpoint = checkpoint
    self.pseudoLabels = pseudoLabels
    self.level = level
  }
}

/// The score a backend reports: tables, plots and metrics name it.
public enum EvaluationMetric: String, Sendable, Equatable, Codable, CaseIterable {
  /// Mean intersection over union over the evaluated classes (images).
  case meanIoU = "mIoU"
  /// Mean Dice over the foreground classes (medical volumes).
  case meanDice = "Dice"

  /// The readable name, e.g. in a table title.
  public var title: String {
    switch self {
    case .meanIoU: "mean IoU"
    case .meanDice: "mean foreground Dice"
    }
  }
}

/// The result of an evaluation: a score in [0, 1] and its per-class values (nil for a class
/// absent from both prediction and ground truth).
public struct Evaluation: Sendable, Equatable, Codable {
  /// What ``score`` and ``perClass`` measure.
  public var metric: EvaluationMetric
  public var score: Double
  public var perClass: [Double?]

  public init(metric: EvaluationMetric = .meanIoU, score: Double, perClass: [Double?]) {
    self.metric = metric
    self.score = score
    self.perClass = perClass
  }
}

/// The neural-network side of a transfer run, implemented with the real networks elsewhere.
///
/// Models are checkpoints at paths that the orchestrator gives (inside the run directory); units
/// are string ids (an image, or a whole medical case). The orchestrator always passes a
/// temporary output path and renames it when the call returns, so a backend need not write
/// atomically. Every call must be deterministic given its request (its `seed` included).
public protocol TransferBackend {
  /// The unit ids of the unlabeled reference set R (any order; ids unique).
  func referenceUnits() throws -> [String]
  /// Trains M0 on S and writes it to `request.output`.
  func trainSource(_ request: SourceTrainingRequest) throws
  /// Fine-tunes `request.initialCheckpoint` on S plus the pseudo labels; writes `request.output`.
  func fineTune(_ request: FineTuningRequest) throws
  /// Writes a copy of `request.checkpoint` with batch-norm statistics of `request.units`.
  func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws
  /// Writes the pseudo labels of `request.units` into `request.outputDirectory`.
  func generatePseudoLabels(_ request: PseudoLabelRequest) throws
  /// Evaluates a checkpoint on R or E.
  func evaluate(_ request: EvaluationRequest) throws -> Evaluation
  /// The student-teacher agreement in [0, 1] (see ``AgreementRequest``).
  func agreement(_ request: AgreementRequest) throws -> Double
  /// Draws the predictions of a few models on a few units of E into `request.output` (see
  /// ``PreviewRequest``). Returns false, writing nothing, if the backend has nothing to draw.
  func writePreviews(_ request: PreviewRequest) throws -> Bool
}
