import Foundation

/// The results of one evaluation job, stored in its completion record.
public struct EvaluationResult: Codable, Sendable, Equatable {
  /// Every score of the job: R and E, as trained and with batch-norm statistics of R, at each
  /// resolution of the backend (the first is the one tables show).
  public var scores: [ModelScore]
  /// The share of the teachers' labelled pixels of R where the model predicts their label.
  public var agreement: Double?
  /// The same with the labels of the stage's initial model M0.
  public var agreementWithSource: Double?

  public init(scores: [ModelScore], agreement: Double?, agreementWithSource: Double?) {
    self.scores = scores
    self.agreement = agreement
    self.agreementWithSource = agreementWithSource
  }

  /// The score on `set`, first of the resolutions unless one is given.
  public func score(
    _ set: EvaluationSet, _ statistics: BatchNormStatistics = .asTrained,
    resolution: ScoreResolution? = nil
  ) -> Evaluation? {
    scores.first {
      $0.set == set && $0.statistics == statistics
        && (resolution == nil || $0.resolution == resolution)
    }?.evaluation
  }
}

/// Which batch-norm statistics a score used.
public enum BatchNormStatistics: String, Codable, Sendable, Equatable, CaseIterable {
  /// The model as trained (its running statistics from training, on S and R mixed).
  case asTrained = "as-trained"
  /// Statistics re-estimated on the images of R (AdaBN), the reference's protocol.
  case adapted = "adabn"
}

/// One score of a model.
public struct ModelScore: Codable, Sendable, Equatable {
  public var set: EvaluationSet
  public var statistics: BatchNormStatistics
  public var resolution: ScoreResolution
  public var evaluation: Evaluation

  public init(
    set: EvaluationSet, statistics: BatchNormStatistics, resolution: ScoreResolution,
    evaluation: Evaluation
  ) {
    self.set = set
    self.statistics = statistics
    self.resolution = resolution
    self.evaluation = evaluation
  }
}

/// The completion record of a job, `steps/<id>.json`, written after the job's outputs.
///
/// A job is complete if and only if its record decodes, names the same identity and seed as the
/// plan, and its outputs exist with the recorded checksums (``StepRecords/completed(_:)``).
public struct StepRecord: Codable, Sendable, Equatable {
  public var id: String
  public var identity: String
  public var seed: UInt64
  /// Output paths relative to the run directory.
  public var outputs: [String]
  public var model: ModelProvenance?
  /// For a source model or a student: the labeled units of S it trained on (beside the
  /// pseudo-labeled units of R in `model.trainedOn`); the same list as `sets.json`'s `labeled`.
  public var labeled: [String]?
  public var labelSet: LabelSetProvenance?
  public var evaluation: EvaluationResult?
  /// A label score job's result (nil when R has no labels).
  public var labelScore: Evaluation?
  /// The content digest of each output (``contentDigest(of:)``), checked on resume: a damaged
  /// output makes its job run again. `nil` in records written before checksums existed.
  public var checksums: [String: String]?

  /// The record of `job` before any result is known.
  init(job: TransferJob) {
    id = job.id
    identity = job.identity
    seed = job.seed
    outputs = job.action.outputs
  }
}

/// The completion records of a run directory (`steps/`): the one place that writes and trusts
/// them, so that what makes a record valid is decided here only.
public struct StepRecords: Sendable {
  /// The run directory.
  public let directory: String

  public init(directory: String) { self.directory = directory }

  /// The record file of a job.
  public func path(of job: TransferJob) -> String { directory + "/steps/\(job.id).json" }

  /// The job's record if it is valid and its outputs exist with the recorded checksums (a
  /// truncated checkpoint, a label set with a missing or edited file: nil, and the job runs
  /// again); nil otherwise.
  public func completed(_ job: TransferJob) -> StepRecord? {
    guard let data = FileManager.default.contents(atPath: path(of: job)),
      let record = try? JSONDecoder().decode(StepRecord.self, from: data),
      record.id == job.id, record.identity == job.identity, record.seed == job.seed,
      record.outputs == job.action.outputs,
      record.outputs.allSatisfy({ FileManager.default.fileExists(atPath: directory + "/" + $0) }),
      RunFolder.outputsIntact(record.checksums, in: directory)
    else { return nil }
    return record
  }

  /// Removes the record of a job that is about to run again.
  func discard(_ job: TransferJob) throws { try removeIfPresent(path(of: job)) }

  /// Writes a job's record (atomically) with the checksums of its outputs, after they are in
  /// place.
  func write(_ record: StepRecord, for job: TransferJob) throws {
    var record = record
    record.checksums = try RunFolder.checksums(of: record.outputs, in: directory)
    try writeJSON(record, to: path(of: job))
  }
}

/// One line of `metrics.jsonl`: one (stage, schedule, generation, model) evaluation, or a
/// baseline (stage `baseline`, no schedule: M0 as trained is source only, with AdaBN it is
/// AdaBN alone).
///
/// Scores are fractions of 1 (`scale` says so); `table.md` and every printed line show percent.
public struct MetricsRecord: Codable, Sendable, Equatable {
  /// Per-class scores in class order; `classes` names them.
  public struct PerClass: Codable, Sendable, Equatable {
    /// The class of each entry of `test` (and of `reference`, unless R has no labels and it is
    /// empty); nil for records written before class names.
    public var classes: [String]?
    public var reference: [Double?]
    public var test: [Double?]

    public init(classes: [String]? = nil, reference: [Double?], test: [Double?]) {
      self.classes = classes
      self.reference = reference
      self.test = test
    }
  }
  /// `fraction`: scores in [0, 1], times 100 for the percent of the tables.
  public var scale = "fraction"
  public var stage: String
  public var level: LabelLevel
  /// Nil for a baseline.
  public var schedule: ScheduleKind?
  /// The generation; nil for a final model.
  public var generation: Int?
  public var fold: Int?
  public var model: String
  /// What the scores measure (mean IoU for images, Dice for volumes).
  public var metric: EvaluationMetric
  /// Where `atR`, `atE`, their AdaBN values and `perClass` were computed, in words.
  public var resolution: String?
  /// The score on the reference set R (diagnosis only), the model as trained.
  public var atR: Double
  /// The score on the test set E, the model as trained.
  public var atE: Double
  /// The same model with batch-norm statistics re-estimated on R (AdaBN): on R and on E.
  public var atRAdaBN: Double?
  public var atEAdaBN: Double?
  /// The @R of the paper's Table 1: the score against R of the row's pseudo labels as written
  /// (a generation: the labels it writes for the next one, ATSO's folds joined; a final model
  /// or a `train` stage: the labels it trained on), at the labels' own size.
  public var labelsAtR: Double?
  /// Agreement on R with the teacher's labels the model trained on.
  public var agreement: Double?
  /// Agreement on R with the labels of the stage's initial model M0.
  public var agreementWithM0: Double?
  /// Per class, the model as trained, at `resolution`.
  public var perClass: PerClass
  /// Every score of the model (each set, statistics and resolution), per class included.
  public var scores: [ModelScore]
}

/// Encodes a value as sorted-keys JSON and writes it atomically.
func writeJSON(_ value: some Encodable, to path: String) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
  let data: Data
  do {
    data = try encoder.encode(value)
  } catch {
    throw TransferError.fileOperation(path: path, reason: "cannot encode: \(error)")
  }
  try writeAtomically(data, to: path)
}
