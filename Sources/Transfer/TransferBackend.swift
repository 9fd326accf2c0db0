import Segmentation

/// A set of pseudo-labeled units: the label files a teacher wrote for `units` into `directory`
/// (``TransferBackend/generatePseudoLabels(_:)``), at `level`.
public struct PseudoLabelSet: Sendable, Equatable, Codable {
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

/// The ranks that train one job's model together (`transfer --ranks-per-job R`), as a
/// training request carries them: every replica receives the same request and trains its
/// share of each batch (``TrainingReplicas``); replica 0 alone writes the request's files (the
/// checkpoint, the loss log) and reports progress.
public struct DataParallel: Sendable, Equatable {
  public let replicas: any TrainingReplicas

  public init(_ replicas: any TrainingReplicas) { self.replicas = replicas }

  /// True on the replica that writes (replica 0).
  public var writes: Bool { replicas.index == 0 }

  /// Requests are equal whatever their replicas' transport: the same place in the same count.
  public static func == (a: DataParallel, b: DataParallel) -> Bool {
    a.replicas.index == b.replicas.index && a.replicas.count == b.replicas.count
  }
}

extension Optional where Wrapped == DataParallel {
  /// True without replicas or on the replica that writes.
  public var writes: Bool { self?.writes ?? true }
}

/// Trains the source model M0 of a network on the labeled set S.
public struct SourceTrainingRequest: Sendable, Equatable {
  /// The network to train (nil: the default network).
  public var network: String?
  /// Where to write the checkpoint (a file or a directory; a temporary path of the run).
  public var output: String
  public var seed: UInt64
  /// Where to write the loss of every training step (``LossLog``; nil: nowhere).
  public var lossLog: String?
  /// The replicas training this model together (nil: this process alone).
  public var dataParallel: DataParallel?

  public init(
    network: String?, output: String, seed: UInt64, lossLog: String? = nil,
    dataParallel: DataParallel? = nil
  ) {
    self.network = network
    self.output = output
    self.seed = seed
    self.lossLog = lossLog
    self.dataParallel = dataParallel
  }
}

/// Takes a checkpoint trained elsewhere as the source model M0 of the default network.
///
/// The backend checks that it fits the run (class set, working size, inputs) and writes it to
/// `output` in the run's own format.
public struct SourceImportRequest: Sendable, Equatable {
  /// The checkpoint to import (read only).
  public var checkpoint: String
  public var output: String

  public init(checkpoint: String, output: String) {
    self.checkpoint = checkpoint
    self.output = output
  }
}

/// Trains a student: starts from `initialCheckpoint` (M0 or its teacher) and trains on S plus
/// its teachers' pseudo labels.
public struct StudentTrainingRequest: Sendable, Equatable {
  public var network: String?
  /// The checkpoint the student starts from, read only.
  public var initialCheckpoint: String
  /// The pseudo-labeled units added to S (their union; disjoint unit sets).
  public var pseudoLabels: [PseudoLabelSet]
  /// The level of the pseudo labels; at a super-class level, train with the reduce loss.
  public var level: LabelLevel
  public var output: String
  public var seed: UInt64
  /// Where to write the loss of every training step (``LossLog``; nil: nowhere).
  public var lossLog: String?
  /// The replicas training this model together (nil: this process alone).
  public var dataParallel: DataParallel?

  public init(
    network: String?, initialCheckpoint: String, pseudoLabels: [PseudoLabelSet],
    level: LabelLevel, output: String, seed: UInt64, lossLog: String? = nil,
    dataParallel: DataParallel? = nil
  ) {
    self.dataParallel = dataParallel
    self.network = network
    self.initialCheckpoint = initialCheckpoint
    self.pseudoLabels = pseudoLabels
    self.level = level
    self.output = output
    self.seed = seed
    self.lossLog = lossLog
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

/// Has a teacher predict pseudo labels for `units` and write one label file per unit into
/// `outputDirectory`, filtered by `filters`.
public struct PseudoLabelRequest: Sendable, Equatable {
  public var teacherCheckpoint: String
  public var units: [String]
  public var level: LabelLevel
  public var filters: PseudoLabelFilters
  /// An existing, empty directory (temporary path of the run) that receives the labels.
  public var outputDirectory: String
  public var seed: UInt64

  public init(
    teacherCheckpoint: String, units: [String], level: LabelLevel, filters: PseudoLabelFilters,
    outputDirectory: String, seed: UInt64
  ) {
    self.teacherCheckpoint = teacherCheckpoint
    self.units = units
    self.level = level
    self.filters = filters
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

/// Where a score is computed.
public enum ScoreResolution: String, Sendable, Equatable, Codable, CaseIterable {
  /// At each unit's own size: an image's file resolution (class probabilities upsampled
  /// bilinearly, as `predict` writes them, against the full-resolution labels), a case's voxel
  /// grid.
  case native
  /// At the working size the network runs at, against labels resized (nearest) to it.
  case working
}

/// Evaluates a checkpoint on R or E at a level.
public struct EvaluationRequest: Sendable, Equatable {
  public var checkpoint: String
  public var set: EvaluationSet
  public var level: LabelLevel
  /// One of the backend's ``TransferBackend/scoreResolutions``.
  public var resolution: ScoreResolution

  public init(
    checkpoint: String, set: EvaluationSet, level: LabelLevel,
    resolution: ScoreResolution = .native
  ) {
    self.checkpoint = checkpoint
    self.set = set
    self.level = level
    self.resolution = resolution
  }
}

/// Scores pseudo label files as written (their union: ATSO's folds joined) against R's ground
/// truth at their level: the @R of Table 1 of Huo et al., the accuracy of the labels a student
/// trains on. R's labels are read for this diagnosis only.
public struct PseudoLabelScoreRequest: Sendable, Equatable {
  public var labels: [PseudoLabelSet]
  public var level: LabelLevel

  public init(labels: [PseudoLabelSet], level: LabelLevel) {
    self.labels = labels
    self.level = level
  }
}

/// How often a student agrees with its teachers: the fraction of the non-void pixels of the
/// teachers' pseudo labels where the student predicts the same class.
public struct AgreementRequest: Sendable, Equatable {
  public var studentCheckpoint: String
  public var teacherLabels: [PseudoLabelSet]
  public var level: LabelLevel

  public init(studentCheckpoint: String, teacherLabels: [PseudoLabelSet], level: LabelLevel) {
    self.studentCheckpoint = studentCheckpoint
    self.teacherLabels = teacherLabels
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
  /// The name of the class of each ``perClass`` entry (nil in records written before names).
  public var classNames: [String]?
  /// The classes the model predicted at least once on the set, in class order (nil: not
  /// counted). A single one (e.g. only the background) is reported as a warning.
  public var predictedClasses: [String]?
  /// Where the score was computed, in words (`360x480, each image's own size`); nil when the
  /// backend does not say.
  public var resolution: String?

  public init(
    metric: EvaluationMetric = .meanIoU, score: Double, perClass: [Double?],
    classNames: [String]? = nil, predictedClasses: [String]? = nil, resolution: String? = nil
  ) {
    self.metric = metric
    self.score = score
    self.perClass = perClass
    self.classNames = classNames
    self.predictedClasses = predictedClasses
    self.resolution = resolution
  }
}

/// The neural-network side of a transfer run: a backend (the image backend, the volume backend,
/// the simulation) behind the core's plan and run directory.
///
/// Models are checkpoints at paths that the orchestrator gives (inside the run directory); units
/// are string ids (an image, or a whole medical case). The orchestrator always passes a
/// temporary output path and renames it when the call returns, so a backend need not write
/// atomically. Every call must be deterministic given its request (its `seed` included).
public protocol TransferBackend: AnyObject {
  /// The unit ids of the unlabeled reference set R (any order; ids unique).
  func referenceUnits() throws -> [String]
  /// The unit ids of S, R and E and how their labels were read (`sets.json`, the legend).
  func dataSummary() throws -> DataSummary
  /// Whether ``trainSource(_:)`` and ``trainStudent(_:)`` train data-parallel when a request
  /// carries ``DataParallel`` replicas (default false: the leader of a job's ranks trains alone).
  var trainsDataParallel: Bool { get }
  /// Trains M0 on S and writes it to `request.output`.
  func trainSource(_ request: SourceTrainingRequest) throws
  /// Checks a checkpoint trained elsewhere against the run and writes it as M0.
  func importSource(_ request: SourceImportRequest) throws
  /// Trains a student from `request.initialCheckpoint` on S plus the pseudo labels.
  func trainStudent(_ request: StudentTrainingRequest) throws
  /// Writes a copy of `request.checkpoint` with batch-norm statistics of `request.units`.
  func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws
  /// Writes the teacher's pseudo labels of `request.units` into `request.outputDirectory`.
  func generatePseudoLabels(_ request: PseudoLabelRequest) throws
  /// The resolutions ``evaluate(_:)`` scores at, the one tables show first (default:
  /// ``ScoreResolution/native`` only).
  var scoreResolutions: [ScoreResolution] { get }
  /// Evaluates a checkpoint on R or E.
  func evaluate(_ request: EvaluationRequest) throws -> Evaluation
  /// Scores pseudo label files against R's ground truth (nil when R has no labels).
  func scorePseudoLabels(_ request: PseudoLabelScoreRequest) throws -> Evaluation?
  /// The student-teacher agreement in [0, 1] (see ``AgreementRequest``).
  func agreement(_ request: AgreementRequest) throws -> Double
  /// Draws the predictions of a few models on a few units of E into `request.output` (see
  /// ``PreviewRequest``). Returns false, writing nothing, if the backend has nothing to draw.
  func writePreviews(_ request: PreviewRequest) throws -> Bool
}

extension TransferBackend {
  public var scoreResolutions: [ScoreResolution] { [.native] }
  public var trainsDataParallel: Bool { false }
}
