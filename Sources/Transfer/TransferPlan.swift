/// Where a model comes from: the data of the fold bookkeeping.
public struct ModelProvenance: Codable, Sendable, Equatable {
  /// A readable, file-safe id, e.g. `fine-atso-g2-m1`.
  public var id: String
  /// The checkpoint path relative to the run directory.
  public var checkpoint: String
  public var network: String?
  /// The model this one was trained (or adapted) from; nil for a source model.
  public var initializedFrom: String?
  /// Every reference unit whose pseudo labels this model (or any model it descends from) was
  /// trained on, sorted.
  public var trainedOn: [String]
  /// For an AdaBN copy: the units whose images set its batch-norm statistics (no labels used).
  public var batchNormAdaptedOn: [String]?
  /// The units of `trainedOn` whose pseudo labels it was trained on since the initial model of
  /// its stage; nil when the stage started from a source model (then it is `trainedOn`). A
  /// `schedules` stage started from the previous stage's model counts that training as seen
  /// (in `trainedOn`) and keeps its own cross-fold bookkeeping here.
  public var stageTrainedOn: [String]?

  /// What the cross-fold check compares with a fold: the units trained on within the stage.
  public var trainedOnInStage: [String] { stageTrainedOn ?? trainedOn }
}

/// Where a pseudo label set comes from.
public struct LabelSetProvenance: Codable, Sendable, Equatable {
  public var id: String
  /// The label directory relative to the run directory.
  public var directory: String
  /// The teacher that labeled the units.
  public var teacher: String
  /// The teacher's `trainedOn` (copied, so a record is self-contained).
  public var teacherTrainedOn: [String]
  /// The teacher's ``ModelProvenance/stageTrainedOn`` (copied), when its stage started from a
  /// previous stage's model: the cross-fold check is on these units.
  public var teacherStageTrainedOn: [String]?
  public var units: [String]
  public var level: LabelLevel
  /// True for ATSO's fold labels: the teacher must never have been trained on `units`
  /// (checked when planning and again before running the job).
  public var isCrossFold: Bool
}

/// What a job does. Paths in provenance are relative to the run directory.
public enum JobAction: Sendable, Equatable {
  case trainSource(output: ModelProvenance)
  /// Takes ``TransferConfiguration/sourceModel`` (an absolute path) as M0.
  case importSource(checkpoint: String, output: ModelProvenance)
  case adaptBatchNorm(model: ModelProvenance, units: [String], output: ModelProvenance)
  case label(teacher: ModelProvenance, filters: PseudoLabelFilters, output: LabelSetProvenance)
  case trainStudent(
    initial: ModelProvenance, labels: [LabelSetProvenance], level: LabelLevel,
    output: ModelProvenance)
  /// Scores label sets as written (their union) against R's ground truth.
  case scoreLabels(labels: [LabelSetProvenance], level: LabelLevel)
  /// Scores a model on R and E, as trained and with batch-norm statistics of R, and its
  /// agreement with its teachers and with its stage's initial model.
  case evaluate(ModelEvaluation)

  /// The model the job writes, if any.
  public var outputModel: ModelProvenance? {
    switch self {
    case .trainSource(let output), .importSource(_, let output), .adaptBatchNorm(_, _, let output),
      .trainStudent(_, _, _, let output):
      output
    case .label, .scoreLabels, .evaluate: nil
    }
  }

  /// The ids of the models and label sets the job reads.
  public var inputs: [String] {
    switch self {
    case .trainSource, .importSource: []
    case .adaptBatchNorm(let model, _, _): [model.id]
    case .label(let teacher, _, _): [teacher.id]
    case .scoreLabels(let labels, _): labels.map(\.id)
    case .trainStudent(let initial, let labels, _, _): [initial.id] + labels.map(\.id)
    case .evaluate(let evaluation):
      [evaluation.model.id] + (evaluation.adapted.map { [$0.id] } ?? [])
        + (evaluation.teacherLabels + evaluation.sourceLabels).map(\.id)
    }
  }

  /// The outputs of the job, relative to the run directory.
  public var outputs: [String] {
    if let model = outputModel { return [model.checkpoint] }
    if case .label(_, _, let output) = self { return [output.directory] }
    return []
  }
}

/// What an evaluation job scores.
public struct ModelEvaluation: Sendable, Equatable {
  /// The model as trained.
  public var model: ModelProvenance
  /// The same model with batch-norm statistics re-estimated on R (AdaBN), scored beside it.
  public var adapted: ModelProvenance?
  public var level: LabelLevel
  /// Whether the agreements compare the predictions of `adapted` (the run labels with AdaBN
  /// teachers, so a student would label as its adapted copy) rather than of `model`.
  public var agreementOfAdapted: Bool
  /// The labels the model was trained on (its teachers'): agreement with the teacher.
  public var teacherLabels: [LabelSetProvenance]
  /// The stage's initial model's labels on R (M0's): agreement with M0, the lazy-mimicking
  /// measure beside the teacher's.
  public var sourceLabels: [LabelSetProvenance]

  /// The checkpoint whose predictions the agreements compare.
  public var agreementModel: ModelProvenance {
    agreementOfAdapted ? adapted ?? model : model
  }
}

/// One step of a run: a unit of work with a completion record.
public struct TransferJob: Sendable, Equatable {
  /// A readable, file-safe id; the completion record is `steps/<id>.json`.
  public var id: String
  /// The hash of the canonical encoding of the job's content (its inputs, recursively through
  /// the identities of the models and label sets it reads); identical computations share it.
  public var identity: String
  /// `derivedSeed(runSeed:identity:)` of the same content without data locations: independent
  /// of execution order and of where the data lies.
  public var seed: UInt64
  public var action: JobAction
}

/// A line of the results: which evaluation job reports a (stage, schedule, generation) cell.
public struct ReportEntry: Sendable, Equatable {
  public var stage: String
  public var level: LabelLevel
  public var method: StageConfiguration.Method
  public var schedule: ScheduleKind
  /// The generation (0 is the stage's initial model); nil for a final model.
  public var generation: Int?
  /// For ATSO generation models: the fold k (1-based) the model labels, i.e. the fold it was
  /// not trained on.
  public var fold: Int?
  public var model: String
  public var evaluationJob: String
  /// The job that scores the row's pseudo labels against R: for a generation, the labels its
  /// models write for the next generation (what the next generation trains on, with ATSO's
  /// folds joined); for a final model or a `train` stage, the labels it was trained on.
  public var labelScoreJob: String?
}

/// A baseline of the run at a level: the default network's source model M0 scored as trained
/// (source only) and with batch-norm statistics of R (AdaBN alone).
public struct BaselineEntry: Sendable, Equatable {
  public var level: LabelLevel
  public var model: String
  public var evaluationJob: String
}

/// The backend options as they enter job identities: one canonical text (sorted-keys JSON) per
/// ``OptionScope``, with data locations (identities) and without (seeds).
public struct BackendIdentity: Sendable, Equatable {
  /// `texts[withLocations][scope]`.
  var texts: [Bool: [OptionScope: String]]

  /// The identity texts of `options` (empty texts for none).
  public init(_ options: (any BackendOptions)?) throws {
    texts = [true: [:], false: [:]]
    guard let options else { return }
    let object = try options.jsonObject()
    let keys = type(of: options).keys
    for withLocations in [true, false] {
      for scope in [OptionScope.model, .sourceTraining, .studentTraining, .reference, .evaluation] {
        let selected = object.filter { name, _ in
          guard let key = keys.first(where: { $0.name == name }) else {
            return name == "kind" && scope == .model
          }
          return key.scope == scope && (withLocations || !key.isLocation)
        }
        texts[withLocations, default: [:]][scope] = ConfigurationValue.object(selected).canonicalText
      }
    }
  }

  /// The canonical text of the options of `scope`, for identities or for seeds.
  func text(_ scope: OptionScope, _ variant: IdentityVariant) -> String {
    texts[variant == .identity]?[scope] ?? "{}"
  }
}

/// Which of a job's two encodings is built: with data locations (its identity) or without
/// (its seed).
enum IdentityVariant: Sendable { case identity, seed }

/// The whole run as data: every job in execution order and the report entries.
///
/// Schedules of a `schedules` stage with initial model M0 and reference set R:
/// - self-learning, generation t: the teacher (M0 for t = 1, else the student of t - 1) labels
///   R; the student starts from the teacher.
/// - STSO, generation t: same labels; the student starts from M0.
/// - ATSO(K), generation t: R is split into folds R1...RK. Model k of generation t - 1 (M0 for
///   t = 1) labels fold k; student k of generation t starts from M0 and trains on S plus every
///   fold except k. So the teacher of fold k was never trained on fold k (for K = 2 this is
///   Algorithm 1 with the models renamed: our model k is the paper's M(3-k)). Final: model k of
///   generation T labels fold k, and M0 is trained on S plus all folds (Algorithm 1, line 12;
///   `torch_atso_reference.py` does the same).
/// With AdaBN, every teacher labels through its copy with batch-norm statistics of all of R.
/// Every model is evaluated as trained and through that copy; every label set a generation
/// trains on (and the labels its last generation writes) is scored against R as written.
/// Jobs with the same identity are planned once (e.g. self-learning and STSO share
/// generation 1).
public struct TransferPlan: Sendable {
  public var jobs: [TransferJob]
  public var entries: [ReportEntry]
  /// Source only and AdaBN alone at every level of the run.
  public var baselines: [BaselineEntry]

  /// Plans a run, once.
  ///
  /// Job identities hash the canonical encoding of what each job computes: the identities of
  /// the models and labels it reads, and the backend options of its scope (``OptionScope``;
  /// speed options in none). Seeds hash the same encoding without data locations, so the same
  /// configuration on data in another folder draws the same random numbers.
  /// - Parameters:
  ///   - sourceModelDigest: the content digest of ``TransferConfiguration/sourceModel``, when
  ///     the run imports its source model (``contentDigest(of:)``).
  /// - Throws: `TransferError.foldLeak` if an ATSO label set would come from a model trained on
  ///   its units (cannot happen with a validated configuration; checked anyway).
  public init(
    configuration: ValidatedConfiguration, split: FoldSplit, sourceModelDigest: String? = nil
  ) throws {
    var builder = PlanBuilder(
      configuration: configuration.configuration,
      backend: try BackendIdentity(configuration.configuration.backend),
      sourceModelDigest: sourceModelDigest, split: split)
    try builder.build()
    jobs = builder.jobs
    entries = builder.entries
    baselines = builder.baselines
  }
}
