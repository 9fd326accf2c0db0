import Foundation

/// What a job computes, canonically encoded (sorted-keys JSON) into its identity and its seed.
///
/// Models and label sets appear by the identities of the jobs that made them, so an identity
/// covers everything a job depends on, recursively. The options of R (`reference`) enter every
/// job that reads R, those of E (`evaluation`) the evaluations only: neither reaches a source
/// model.
enum JobContent: Encodable {
  case trainSource(network: String?, model: String, training: String)
  case importSource(digest: String, path: String?, model: String)
  case adaptBatchNorm(model: String, units: [String], reference: String)
  case label(
    teacher: String, level: LabelLevel, filters: PseudoLabelFilters, units: [String],
    reference: String)
  case scoreLabels(labels: [String], level: LabelLevel, reference: String)
  case trainStudent(
    initial: String, labels: [String], level: LabelLevel, network: String?, training: String,
    reference: String)
  case evaluate(
    model: String, adapted: String?, level: LabelLevel, teacherLabels: [String],
    sourceLabels: [String], agreementOfAdapted: Bool, reference: String, evaluation: String)

  /// The FNV-1a hash of the canonical encoding, in hexadecimal.
  var hash: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let text = (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    precondition(!text.isEmpty, "a job content that does not encode")
    return String(fnv1a64(text), radix: 16)
  }
}

/// The identity and the seed identity of a job's output.
struct JobKey: Equatable {
  var identity: String
  var seed: String

  func callAsFunction(_ variant: IdentityVariant) -> String {
    variant == .identity ? identity : seed
  }
}

/// The state of one branch (schedule) between stages.
private struct BranchState {
  var finalModel: ModelProvenance
  var finalLabels: [LabelSetProvenance]
}

/// Builds a ``TransferPlan`` in one pass: each job's identity and seed from its content.
struct PlanBuilder {
  let configuration: TransferConfiguration
  let backend: BackendIdentity
  let sourceModelDigest: String?
  /// R's folds.
  let split: FoldSplit
  var jobs: [TransferJob] = []
  var entries: [ReportEntry] = []
  var baselines: [BaselineEntry] = []
  /// identity -> index in `jobs`.
  var planned: [String: Int] = [:]
  /// model or label set id -> the keys of the job that made it.
  var keys: [String: JobKey] = [:]

  init(
    configuration: TransferConfiguration, backend: BackendIdentity, sourceModelDigest: String?,
    split: FoldSplit
  ) {
    self.configuration = configuration
    self.backend = backend
    self.sourceModelDigest = sourceModelDigest
    self.split = split
  }

  mutating func build() throws {
    let m0 = sourceModel(network: nil)
    for level in configuration.levels {
      let job = evaluate(m0, level: level, id: "eval-baseline-\(Self.fileSafe(level))")
      baselines.append(BaselineEntry(level: level, model: m0.id, evaluationJob: job))
    }
    var branches: [ScheduleKind: BranchState] = [:]
    for (index, stage) in configuration.stages.enumerated() {
      for schedule in configuration.schedules {
        let previous = branches[schedule]
        if index > 0 && previous == nil || stage.method == .train && index == 0 {
          throw TransferError.invalidConfiguration(
            file: "configuration", key: "stages[\(index)]", reason: "no previous stage")
        }
        switch stage.method {
        case .schedules:
          branches[schedule] = try planSchedule(
            schedule, stage: stage,
            from: stage.initialization == .previousStage ? previous?.finalModel : nil)
        case .train:
          guard let previous else { continue }
          branches[schedule] = planTrainStage(stage, schedule: schedule, previous: previous)
        }
      }
    }
  }

  /// A level as part of a file name (`super:a--b` is `super-a--b`).
  static func fileSafe(_ level: LabelLevel) -> String {
    level.description.replacingOccurrences(of: ":", with: "-")
  }

  // MARK: Jobs

  /// Adds a job unless one with the same identity exists; returns the index of the job.
  mutating func add(id: String, content: (IdentityVariant) -> JobContent, action: JobAction)
    -> Int
  {
    let key = JobKey(identity: content(.identity).hash, seed: content(.seed).hash)
    if let index = planned[key.identity] { return index }
    let seed = derivedSeed(runSeed: configuration.seed, identity: key.seed)
    jobs.append(TransferJob(id: id, identity: key.identity, seed: seed, action: action))
    planned[key.identity] = jobs.count - 1
    if let model = action.outputModel { keys[model.id] = key }
    if case .label(_, _, let output) = action { keys[output.id] = key }
    return jobs.count - 1
  }

  /// The key of a model or label set planned before.
  func key(of id: String) -> JobKey {
    guard let key = keys[id] else { preconditionFailure("'\(id)' used before it was planned") }
    return key
  }

  /// The model written by job `index`.
  func model(_ index: Int) -> ModelProvenance {
    guard let model = jobs[index].action.outputModel else {
      preconditionFailure("job \(jobs[index].id) has no model output")
    }
    return model
  }

  /// The source model M0 of a network: imported (the default network, when the configuration
  /// names a source model) or trained on S.
  mutating func sourceModel(network: String?) -> ModelProvenance {
    let id = network.map { "source-\($0)" } ?? "source"
    let output = ModelProvenance(
      id: id, checkpoint: "models/\(id).ckpt", network: network, initializedFrom: nil,
      trainedOn: [], batchNormAdaptedOn: nil)
    let backend = self.backend
    if network == nil, let path = configuration.sourceModel {
      let digest = sourceModelDigest ?? ""
      let index = add(
        id: "import-\(id)",
        content: {
          .importSource(
            digest: digest, path: $0 == .identity ? path : nil, model: backend.text(.model, $0))
        },
        action: .importSource(checkpoint: path, output: output))
      return model(index)
    }
    let index = add(
      id: "train-\(id)",
      content: {
        .trainSource(
          network: network, model: backend.text(.model, $0),
          training: backend.text(.sourceTraining, $0))
      },
      action: .trainSource(output: output))
    return model(index)
  }

  /// The AdaBN copy of a model: its batch-norm statistics re-estimated on the images of all of
  /// R (one copy per model, shared by its labels and its scores).
  mutating func adapted(_ model: ModelProvenance) -> ModelProvenance {
    let units = split.allUnits
    var output = model
    output.id = "\(model.id)-adabn"
    output.checkpoint = "models/\(model.id)-adabn.ckpt"
    output.initializedFrom = model.id
    output.batchNormAdaptedOn = units
    let source = key(of: model.id)
    let backend = self.backend
    let index = add(
      id: "adabn-\(model.id)",
      content: {
        .adaptBatchNorm(model: source($0), units: units, reference: backend.text(.reference, $0))
      },
      action: .adaptBatchNorm(model: model, units: units, output: output))
    var result = self.model(index)
    result.stageTrainedOn = model.stageTrainedOn  // the stage's view of a shared copy
    return result
  }

  /// Plans the pseudo labels of `units` by `teacher` (its AdaBN copy when configured).
  mutating func label(
    _ units: [String], by teacher: ModelProvenance, level: LabelLevel, id: String,
    isCrossFold: Bool = false
  ) -> LabelSetProvenance {
    let labeler = configuration.pseudoLabels.adaptBatchNorm ? adapted(teacher) : teacher
    let filters = configuration.pseudoLabels.filters
    let output = LabelSetProvenance(
      id: id, directory: "labels/\(id)", teacher: labeler.id, teacherTrainedOn: labeler.trainedOn,
      teacherStageTrainedOn: labeler.stageTrainedOn, units: units, level: level,
      isCrossFold: isCrossFold)
    let source = key(of: labeler.id)
    let backend = self.backend
    let index = add(
      id: "label-\(id)",
      content: {
        .label(
          teacher: source($0), level: level, filters: filters, units: units,
          reference: backend.text(.reference, $0))
      },
      action: .label(teacher: labeler, filters: filters, output: output))
    guard case .label(_, _, let planned) = jobs[index].action else {
      preconditionFailure("identity collision at job \(jobs[index].id)")
    }
    return planned
  }

  /// Plans the score of label sets (joined) against R; returns the job's id.
  mutating func score(_ labels: [LabelSetProvenance], level: LabelLevel, id: String) -> String {
    let sets = labels.map { key(of: $0.id) }
    let backend = self.backend
    let index = add(
      id: "score-\(id)",
      content: { variant in
        .scoreLabels(
          labels: sets.map { $0(variant) }, level: level,
          reference: backend.text(.reference, variant))
      },
      action: .scoreLabels(labels: labels, level: level))
    return jobs[index].id
  }

  mutating func trainStudent(
    _ initial: ModelProvenance, on labels: [LabelSetProvenance], level: LabelLevel,
    network: String?, id: String
  ) -> ModelProvenance {
    let units = labels.flatMap(\.units)
    let output = ModelProvenance(
      id: id, checkpoint: "models/\(id).ckpt", network: network, initializedFrom: initial.id,
      trainedOn: Set(initial.trainedOn).union(units).sorted(), batchNormAdaptedOn: nil,
      stageTrainedOn: initial.stageTrainedOn.map { Set($0).union(units).sorted() })
    let start = key(of: initial.id)
    let sets = labels.map { key(of: $0.id) }
    let backend = self.backend
    let index = add(
      id: "finetune-\(id)",
      content: { variant in
        .trainStudent(
          initial: start(variant), labels: sets.map { $0(variant) }, level: level,
          network: network, training: backend.text(.studentTraining, variant),
          reference: backend.text(.reference, variant))
      },
      action: .trainStudent(initial: initial, labels: labels, level: level, output: output))
    return model(index)
  }

  /// Plans the evaluation of a model (as trained and with its AdaBN copy); returns the job's id.
  mutating func evaluate(
    _ model: ModelProvenance, level: LabelLevel, id: String,
    teacherLabels: [LabelSetProvenance] = [], sourceLabels: [LabelSetProvenance] = []
  ) -> String {
    let adapted = adapted(model)
    let ofAdapted = configuration.pseudoLabels.adaptBatchNorm
    let source = key(of: model.id)
    let adaptedKey = key(of: adapted.id)
    let teachers = teacherLabels.map { key(of: $0.id) }
    let sources = sourceLabels.map { key(of: $0.id) }
    let backend = self.backend
    let index = add(
      id: id,
      content: { variant in
        .evaluate(
          model: source(variant), adapted: adaptedKey(variant), level: level,
          teacherLabels: teachers.map { $0(variant) }, sourceLabels: sources.map { $0(variant) },
          agreementOfAdapted: ofAdapted, reference: backend.text(.reference, variant),
          evaluation: backend.text(.evaluation, variant))
      },
      action: .evaluate(
        ModelEvaluation(
          model: model, adapted: adapted, level: level, agreementOfAdapted: ofAdapted,
          teacherLabels: teacherLabels, sourceLabels: sourceLabels)))
    return jobs[index].id
  }

  /// Plans a model's evaluation as a line of the results.
  mutating func report(
    _ model: ModelProvenance, stage: StageConfiguration, schedule: ScheduleKind,
    generation: Int?, fold: Int?, teacherLabels: [LabelSetProvenance] = [],
    sourceLabels: [LabelSetProvenance] = [], labelScoreJob: String?
  ) {
    let job = evaluate(
      model, level: stage.level, id: "eval-\(stage.name)-\(model.id)",
      teacherLabels: teacherLabels, sourceLabels: sourceLabels)
    entries.append(
      ReportEntry(
        stage: stage.name, level: stage.level, method: stage.method, schedule: schedule,
        generation: generation, fold: fold, model: model.id, evaluationJob: job,
        labelScoreJob: labelScoreJob))
  }

  // MARK: Stages

  /// Plans the generations of a schedule from M0 of the stage's network, or from `initial` (the
  /// previous stage's final model, whose training then counts as seen).
  private mutating func planSchedule(
    _ schedule: ScheduleKind, stage: StageConfiguration, from initial: ModelProvenance?
  ) throws -> BranchState {
    let level = stage.level
    let name = "\(stage.name)-\(schedule.rawValue)"
    var m0 = initial ?? sourceModel(network: stage.network)
    if initial != nil { m0.stageTrainedOn = [] }
    let generations = stage.generations ?? configuration.generations
    let network = stage.network ?? m0.network
    switch schedule {
    case .selfLearning, .stso:
      let first = label(split.allUnits, by: m0, level: level, id: "\(name)-g1-labels")
      report(
        m0, stage: stage, schedule: schedule, generation: 0, fold: nil,
        labelScoreJob: score([first], level: level, id: first.id))
      var teacher = m0
      var labels = [first]
      var trainedOn = labels
      for t in 1...generations {
        let initial = schedule == .selfLearning ? teacher : m0
        let student = trainStudent(
          initial, on: labels, level: level, network: network, id: "\(name)-g\(t)")
        // What generation t + 1 would train on (for the last generation: scored only).
        let next = label(split.allUnits, by: student, level: level, id: "\(name)-g\(t + 1)-labels")
        report(
          student, stage: stage, schedule: schedule, generation: t, fold: nil,
          teacherLabels: labels, sourceLabels: [first],
          labelScoreJob: score([next], level: level, id: next.id))
        teacher = student
        trainedOn = labels
        labels = [next]
      }
      return BranchState(finalModel: teacher, finalLabels: trainedOn)
    case .atso:
      let first = try crossFoldLabels(
        teachers: Array(repeating: m0, count: split.folds.count), level: level, prefix: "\(name)-g1")
      report(
        m0, stage: stage, schedule: schedule, generation: 0, fold: nil,
        labelScoreJob: score(first, level: level, id: "\(name)-g1"))
      var sets = first
      for t in 1...generations {
        var students: [ModelProvenance] = []
        for k in split.folds.indices {
          let training = sets.enumerated().filter { $0.offset != k }.map(\.element)
          students.append(
            trainStudent(
              m0, on: training, level: level, network: network, id: "\(name)-g\(t)-m\(k + 1)"))
        }
        let prefix = t == generations ? "\(name)-final" : "\(name)-g\(t + 1)"
        let next = try crossFoldLabels(teachers: students, level: level, prefix: prefix)
        let scored = score(next, level: level, id: prefix)
        for (k, student) in students.enumerated() {
          report(
            student, stage: stage, schedule: schedule, generation: t, fold: k + 1,
            teacherLabels: sets.enumerated().filter { $0.offset != k }.map(\.element),
            sourceLabels: first, labelScoreJob: scored)
        }
        sets = next
      }
      // Algorithm 1, line 12: M0 fine-tuned on S and all of R, with the labels the last
      // generation's fold models wrote (each fold by the model that did not train on it).
      let final = trainStudent(m0, on: sets, level: level, network: network, id: "\(name)-final")
      report(
        final, stage: stage, schedule: schedule, generation: nil, fold: nil,
        teacherLabels: sets, sourceLabels: first,
        labelScoreJob: score(sets, level: level, id: "\(name)-final"))
      return BranchState(finalModel: final, finalLabels: sets)
    }
  }

  /// ATSO's labels: fold k by teacher k, which must never have been trained on it (within the
  /// stage: ``ModelProvenance/trainedOnInStage``).
  private mutating func crossFoldLabels(
    teachers: [ModelProvenance], level: LabelLevel, prefix: String
  ) throws -> [LabelSetProvenance] {
    var sets: [LabelSetProvenance] = []
    for (j, fold) in split.folds.enumerated() {
      let leaked = Set(teachers[j].trainedOnInStage).intersection(fold).sorted()
      let id = "\(prefix)-fold\(j + 1)"
      if !leaked.isEmpty {
        throw TransferError.foldLeak(labelSet: id, model: teachers[j].id, units: leaked)
      }
      sets.append(label(fold, by: teachers[j], level: level, id: id, isCrossFold: true))
    }
    return sets
  }

  private mutating func planTrainStage(
    _ stage: StageConfiguration, schedule: ScheduleKind, previous: BranchState
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
      labels = [
        label(split.allUnits, by: previous.finalModel, level: stage.level, id: "\(name)-labels")
      ]
    }
    let model = trainStudent(
      initial, on: labels, level: stage.level, network: stage.network ?? initial.network,
      id: name)
    report(
      model, stage: stage, schedule: schedule, generation: nil, fold: nil, teacherLabels: labels,
      labelScoreJob: score(labels, level: stage.level, id: name))
    return BranchState(finalModel: model, finalLabels: labels)
  }
}
