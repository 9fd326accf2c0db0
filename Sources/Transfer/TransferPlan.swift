/// Where a model comes from: the data of the fold bookkeeping.
public struct ModelProvenance: Codable, Sendable, Equatable {
  /// A readable, file-safe id, e.g. `fine-atso-g2-m1`.
  public var id: String
  /// The checkpoint path relative to the run directory.
  public var checkpoint: String
  public var network: String?
  /// The model this one was fine-tuned (or adapted) from; nil for a source model.
  public var initializedFrom: String?
  /// Every reference unit whose pseudo labels this model (or any model it descends from) was
  /// fine-tuned on, sorted.
  public var trainedOn: [String]
  /// For an AdaBN copy: the units whose images set its batch-norm statistics (no labels used).
  public var batchNormAdaptedOn: [String]?
}

/// Where a pseudo label set comes from.
public struct LabelSetProvenance: Codable, Sendable, Equatable {
  public var id: String
  /// The label directory relative to the run directory.
  public var directory: String
  /// The model that labeled the units.
  public var labeler: String
  /// The labeler's `trainedOn` (copied, so a record is self-contained).
  public var labelerTrainedOn: [String]
  public var units: [String]
  public var level: LabelLevel
  /// True for ATSO's fold labels: the labeler must never have been fine-tuned on `units`
  /// (checked when planning and again before running the job).
  public var isCrossFold: Bool
}

/// What a job does. Paths in provenance are relative to the run directory.
public enum JobAction: Sendable, Equatable {
  case trainSource(output: ModelProvenance)
  case adaptBatchNorm(model: ModelProvenance, units: [String], output: ModelProvenance)
  case label(labeler: ModelProvenance, options: PseudoLabelOptions, output: LabelSetProvenance)
  case fineTune(
    initial: ModelProvenance, labels: [LabelSetProvenance], level: LabelLevel,
    output: ModelProvenance)
  /// Evaluates on R and E; agreement with `agreementLabels` when not empty.
  case evaluate(model: ModelProvenance, level: LabelLevel, agreementLabels: [LabelSetProvenance])
}

/// One step of a run: a unit of work with a completion record.
public struct TransferJob: Sendable, Equatable {
  /// A readable, file-safe id; the completion record is `steps/<id>.json`.
  public var id: String
  /// A hash of the job's content (inputs, recursively); identical computations share it.
  public var identity: String
  /// `derivedSeed(runSeed:identity:)` of the identity without data locations: independent of
  /// execution order and of where the data lies.
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
}

/// The whole run as data: every job in execution order and the report entries.
///
/// Schedules of a `schedules` stage with initial model M0 and reference set R:
/// - self-learning, generation t: the teacher (M0 for t = 1, else the student of t - 1) labels
///   R; the student is fine-tuned from the teacher.
/// - STSO, generation t: same labels; the student is fine-tuned from M0.
/// - ATSO(K), generation t: R is split into folds R1...RK. Model k of generation t - 1 (M0 for
///   t = 1) labels fold k; model k of generation t is fine-tuned from M0 on S plus every fold
///   except k. So the labeler of fold k was never fine-tuned on fold k (for K = 2 this is
///   Algorithm 1 with the models renamed: our model k is the paper's M(3-k)). Final: model k of
///   generation T labels fold k, and M0 is fine-tuned on S plus all folds.
/// Jobs with the same identity are planned once (e.g. self-learning and STSO share
/// generation 1).
public struct TransferPlan: Sendable {
  public var jobs: [TransferJob]
  public var entries: [ReportEntry]

  /// Plans a run.
  ///
  /// - Throws: `TransferError.foldLeak` if an ATSO label set would come from a model trained on
  ///   its units (cannot happen with a validated configuration; checked anyway).
  ///
  /// Job identities hash every backend option except ``TransferConfiguration/speedKeys``, so a
  /// resumed run whose options were edited recomputes what they affect. Job seeds hash the same
  /// texts without ``TransferConfiguration/locationKeys`` either: the same configuration on data
  /// in another folder draws the same random numbers (and gives the same results).
  public init(configuration: TransferConfiguration, split: FoldSplit) throws {
    let options = configuration.backend.filter {
      !TransferConfiguration.speedKeys.contains($0.key)
    }
    var builder = PlanBuilder(configuration: configuration, backend: options)
    try builder.build(split: split)
    var seeding = PlanBuilder(
      configuration: configuration,
      backend: options.filter { !TransferConfiguration.locationKeys.contains($0.key) })
    try seeding.build(split: split)
    precondition(
      seeding.jobs.map(\.id) == builder.jobs.map(\.id), "the seed plan differs from the plan")
    jobs = zip(builder.jobs, seeding.jobs).map { job, seeded in
      var job = job
      job.seed = derivedSeed(runSeed: configuration.seed, identity: seeded.identity)
      return job
    }
    entries = builder.entries
  }
}

/// The state of one branch (schedule) between stages.
private struct BranchState {
  var finalModel: ModelProvenance
  var finalLabels: [LabelSetProvenance]
}

private struct PlanBuilder {
  let configuration: TransferConfiguration
  /// The backend options that enter identities.
  let backend: [String: String]
  var jobs: [TransferJob] = []
  var entries: [ReportEntry] = []
  /// identity -> index in `jobs`.
  var planned: [String: Int] = [:]
  /// model or label set id -> identity.
  var identities: [String: String] = [:]

  init(configuration: TransferConfiguration, backend: [String: String]) {
    self.configuration = configuration
    self.backend = backend
  }

  mutating func build(split: FoldSplit) throws {
    var branches: [ScheduleKind: BranchState] = [:]
    for (index, stage) in configuration.stages.enumerated() {
      for schedule in configuration.schedules {
        let previous = index > 0 ? branches[schedule] : nil
        switch stage.method {
        case .schedules:
          branches[schedule] = try planSchedule(schedule, stage: stage, split: split)
        case .train:
          guard let previous else {
            throw TransferError.invalidConfiguration(
              file: "configuration", key: "stages[\(index)]", reason: "no previous stage")
          }
          branches[schedule] = planTrainStage(
            stage, schedule: schedule, previous: previous, units: split.allUnits)
        }
      }
    }
  }

  // MARK: Jobs

  /// Adds a job unless one with the same identity exists; returns the index of the job.
  mutating func add(id: String, identityText: String, action: JobAction) -> Int {
    let identity = String(fnv1a64(identityText), radix: 16)
    if let index = planned[identity] { return index }
    let seed = derivedSeed(runSeed: configuration.seed, identity: identity)
    jobs.append(TransferJob(id: id, identity: identity, seed: seed, action: action))
    planned[identity] = jobs.count - 1
    return jobs.count - 1
  }

  func identity(of id: String) -> String { identities[id] ?? id }

  /// The backend options, part of the identity of every source model (and so of every job):
  /// a resumed run whose options were edited recomputes everything.
  var backendIdentity: String {
    backend.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
      .joined(separator: ",")
  }

  mutating func sourceModel(network: String?) -> ModelProvenance {
    let id = network.map { "source-\($0)" } ?? "source"
    let model = ModelProvenance(
      id: id, checkpoint: "models/\(id).ckpt", network: network, initializedFrom: nil,
      trainedOn: [], batchNormAdaptedOn: nil)
    let index = add(
      id: "train-\(id)", identityText: "source(\(network ?? "");\(backendIdentity))",
      action: .trainSource(output: model))
    return register(index)
  }

  /// Records the identity of the output of job `index` and returns that output.
  mutating func register(_ index: Int) -> ModelProvenance {
    let job = jobs[index]
    let model: ModelProvenance
    switch job.action {
    case .trainSource(let output): model = output
    case .adaptBatchNorm(_, _, let output): model = output
    case .fineTune(_, _, _, let output): model = output
    case .label, .evaluate: preconditionFailure("job \(job.id) has no model output")
    }
    identities[model.id] = job.identity
    return model
  }

  /// Plans the pseudo labels of `units` by `labeler` (with AdaBN first when configured).
  mutating func label(
    _ units: [String], by labeler: ModelProvenance, level: LabelLevel, id: String,
    isCrossFold: Bool = false
  ) -> LabelSetProvenance {
    var model = labeler
    let options = configuration.pseudoLabels
    if options.adaptBatchNorm {
      let adapted = ModelProvenance(
        id: "\(id)-adabn", checkpoint: "models/\(id)-adabn.ckpt", network: labeler.network,
        initializedFrom: labeler.id, trainedOn: labeler.trainedOn, batchNormAdaptedOn: units)
      let index = add(
        id: "adabn-\(id)",
        identityText: "adabn(\(identity(of: labeler.id));\(units.joined(separator: ",")))",
        action: .adaptBatchNorm(model: labeler, units: units, output: adapted))
      model = register(index)
    }
    let labelOptions = PseudoLabelOptions(
      confidenceThreshold: options.confidenceThreshold,
      classBalancedPortion: options.classBalancedPortion,
      ignoreIndex: UInt8(clamping: options.ignoreIndex))
    let output = LabelSetProvenance(
      id: id, directory: "labels/\(id)", labeler: model.id, labelerTrainedOn: model.trainedOn,
      units: units, level: level, isCrossFold: isCrossFold)
    let index = add(
      id: "label-\(id)",
      identityText: "label(\(identity(of: model.id));\(level);\(Self.text(labelOptions));"
        + "\(units.joined(separator: ",")))",
      action: .label(labeler: model, options: labelOptions, output: output))
    guard case .label(_, _, let planned) = jobs[index].action else {
      preconditionFailure("identity collision at job \(jobs[index].id)")
    }
    identities[planned.id] = jobs[index].identity
    return planned
  }

  static func text(_ options: PseudoLabelOptions) -> String {
    let threshold = options.confidenceThreshold.map { "\($0)" } ?? "-"
    let portion = options.classBalancedPortion.map { "\($0)" } ?? "-"
    return "threshold=\(threshold),portion=\(portion),ignore=\(options.ignoreIndex)"
  }

  mutating func fineTune(
    _ initial: ModelProvenance, on labels: [LabelSetProvenance], level: LabelLevel,
    network: String?, id: String
  ) -> ModelProvenance {
    let trained = Set(initial.trainedOn).union(labels.flatMap(\.units)).sorted()
    let model = ModelProvenance(
      id: id, checkpoint: "models/\(id).ckpt", network: network, initializedFrom: initial.id,
      trainedOn: trained, batchNormAdaptedOn: nil)
    let labelIdentities = labels.map { identity(of: $0.id) }.joined(separator: ",")
    let index = add(
      id: "finetune-\(id)",
      identityText:
        "finetune(\(identity(of: initial.id));\(labelIdentities);\(level);\(network ?? ""))",
      action: .fineTune(initial: initial, labels: labels, level: level, output: model))
    return register(index)
  }

  mutating func evaluate(
    _ model: ModelProvenance, stage: StageConfiguration, schedule: ScheduleKind,
    generation: Int?, fold: Int?, agreementLabels: [LabelSetProvenance]
  ) {
    let labelIdentities = agreementLabels.map { identity(of: $0.id) }.joined(separator: ",")
    let index = add(
      id: "eval-\(stage.name)-\(model.id)",
      identityText: "evaluate(\(identity(of: model.id));\(stage.level);\(labelIdentities))",
      action: .evaluate(model: model, level: stage.level, agreementLabels: agreementLabels))
    entries.append(
      ReportEntry(
        stage: stage.name, level: stage.level, method: stage.method, schedule: schedule,
        generation: generation, fold: fold, model: model.id, evaluationJob: jobs[index].id))
  }

  // MARK: Stages

  mutating func planSchedule(
    _ schedule: ScheduleKind, stage: StageConfiguration, split: FoldSplit
  ) throws -> BranchState {
    let level = stage.level
    let name = "\(stage.name)-\(schedule.rawValue)"
    let m0 = sourceModel(network: stage.network)
    evaluate(m0, stage: stage, schedule: schedule, generation: 0, fold: nil, agreementLabels: [])
    let all = split.allUnits
    switch schedule {
    case .selfLearning, .stso:
      var teacher = m0
      var labels: [LabelSetProvenance] = []
      for t in 1...configuration.generations {
        labels = [label(all, by: teacher, level: level, id: "\(name)-g\(t)-labels")]
        let initial = schedule == .selfLearning ? teacher : m0
        let student = fineTune(
          initial, on: labels, level: level, network: stage.network, id: "\(name)-g\(t)")
        evaluate(
          student, stage: stage, schedule: schedule, generation: t, fold: nil,
          agreementLabels: labels)
        teacher = student
      }
      return BranchState(finalModel: teacher, finalLabels: labels)
    case .atso:
      let folds = split.folds
      var models = Array(repeating: m0, count: folds.count)
      func crossLabels(
        _ builder: inout PlanBuilder, prefix: String
      ) throws -> [LabelSetProvenance] {
        var sets: [LabelSetProvenance] = []
        for (j, fold) in folds.enumerated() {
          let leaked = Set(models[j].trainedOn).intersection(fold).sorted()
          let id = "\(prefix)-fold\(j + 1)"
          if !leaked.isEmpty {
            throw TransferError.foldLeak(labelSet: id, model: models[j].id, units: leaked)
          }
          sets.append(builder.label(fold, by: models[j], level: level, id: id, isCrossFold: true))
        }
        return sets
      }
      for t in 1...configuration.generations {
        let sets = try crossLabels(&self, prefix: "\(name)-g\(t)")
        var next: [ModelProvenance] = []
        for k in folds.indices {
          let training = sets.enumerated().filter { $0.offset != k }.map(\.element)
          let student = fineTune(
            m0, on: training, level: level, network: stage.network, id: "\(name)-g\(t)-m\(k + 1)")
          evaluate(
            student, stage: stage, schedule: schedule, generation: t, fold: k + 1,
            agreementLabels: training)
          next.append(student)
        }
        models = next
      }
      let finalSets = try crossLabels(&self, prefix: "\(name)-final")
      let final = fineTune(
        m0, on: finalSets, level: level, network: stage.network, id: "\(name)-final")
      evaluate(
        final, stage: stage, schedule: schedule, generation: nil, fold: nil,
        agreementLabels: finalSets)
      return BranchState(finalModel: final, finalLabels: finalSets)
    }
  }

  mutating func planTrainStage(
    _ stage: StageConfiguration, schedule: ScheduleKind, previous: BranchState, units: [String]
  ) -> BranchState {
    let name = "\(stage.name)-\(schedule.rawValue)"
    let initial =
      stage.initialization == .source
      ? sourceModel(network: stage.network) : previous.finalModel
    let labels: [LabelSetProvenance]
    switch stage.labels ?? .relabel {
    case .previousStageFinal:
      labels = previous.finalLabels
    case .relabel:
      labels = [label(units, by: previous.finalModel, level: stage.level, id: "\(name)-labels")]
    }
    let model = fineTune(
      initial, on: labels, level: stage.level, network: stage.network ?? initial.network,
      id: name)
    evaluate(
      model, stage: stage, schedule: schedule, generation: nil, fold: nil, agreementLabels: labels)
    return BranchState(finalModel: model, finalLabels: labels)
  }
}
