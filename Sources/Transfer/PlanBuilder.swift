import Foundation

/// What a job computes, canonically encoded (sorted-keys JSON) into its identity and its seed.
///
/// Models and label sets appear by the identities of the jobs that made them, so an identity
/// covers everything a job depends on, recursively.
enum JobContent: Encodable {
  case trainSource(network: String?, model: String, training: String)
  case importSource(digest: String, path: String?, model: String)
  case adaptBatchNorm(model: String, units: [String])
  case label(teacher: String, level: LabelLevel, filters: PseudoLabelFilters, units: [String])
  case trainStudent(
    initial: String, labels: [String], level: LabelLevel, network: String?, training: String)
  case evaluate(model: String, level: LabelLevel, agreementLabels: [String])

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
  var jobs: [TransferJob] = []
  var entries: [ReportEntry] = []
  /// identity -> index in `jobs`.
  var planned: [String: Int] = [:]
  /// model or label set id -> the keys of the job that made it.
  var keys: [String: JobKey] = [:]

  init(configuration: TransferConfiguration, backend: BackendIdentity, sourceModelDigest: String?) {
    self.configuration = configuration
    self.backend = backend
    self.sourceModelDigest = sourceModelDigest
  }

  mutating func build(split: FoldSplit) throws {
    var branches: [ScheduleKind: BranchState] = [:]
    for (index, stage) in configuration.stages.enumerated() {
      for schedule in configuration.schedules {
        switch stage.method {
        case .schedules:
          branches[schedule] = try planSchedule(schedule, stage: stage, split: split)
        case .train:
          guard index > 0, let previous = branches[schedule] else {
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

  /// Plans the pseudo labels of `units` by `teacher` (with AdaBN first when configured).
  mutating func label(
    _ units: [String], by teacher: ModelProvenance, level: LabelLevel, id: String,
    isCrossFold: Bool = false
  ) -> LabelSetProvenance {
    var labeler = teacher
    if configuration.pseudoLabels.adaptBatchNorm {
      let adapted = ModelProvenance(
        id: "\(id)-adabn", checkpoint: "models/\(id)-adabn.ckpt", network: teacher.network,
        initializedFrom: teacher.id, trainedOn: teacher.trainedOn, batchNormAdaptedOn: units)
      let source = key(of: teacher.id)
      let index = add(
        id: "adabn-\(id)", content: { .adaptBatchNorm(model: source($0), units: units) },
        action: .adaptBatchNorm(model: teacher, units: units, output: adapted))
      labeler = model(index)
    }
    let filters = configuration.pseudoLabels.filters
    let output = LabelSetProvenance(
      id: id, directory: "labels/\(id)", teacher: labeler.id, teacherTrainedOn: labeler.trainedOn,
      units: units, level: level, isCrossFold: isCrossFold)
    let source = key(of: labeler.id)
    let index = add(
      id: "label-\(id)",
      content: { .label(teacher: source($0), level: level, filters: filters, units: units) },
      action: .label(teacher: labeler, filters: filters, output: output))
    guard case .label(_, _, let planned) = jobs[index].action else {
      preconditionFailure("identity collision at job \(jobs[index].id)")
    }
    return planned
  }

  mutating func trainStudent(
    _ initial: ModelProvenance, on labels: [LabelSetProvenance], level: LabelLevel,
    network: String?, id: String
  ) -> ModelProvenance {
    let trained = Set(initial.trainedOn).union(labels.flatMap(\.units)).sorted()
    let output = ModelProvenance(
      id: id, checkpoint: "models/\(id).ckpt", network: network, initializedFrom: initial.id,
      trainedOn: trained, batchNormAdaptedOn: nil)
    let start = key(of: initial.id)
    let sets = labels.map { key(of: $0.id) }
    let backend = self.backend
    let index = add(
      id: "finetune-\(id)",
      content: { variant in
        .trainStudent(
          initial: start(variant), labels: sets.map { $0(variant) }, level: level,
          network: network, training: backend.text(.studentTraining, variant))
      },
      action: .trainStudent(initial: initial, labels: labels, level: level, output: output))
    return model(index)
  }

  mutating func evaluate(
    _ model: ModelProvenance, stage: StageConfiguration, schedule: ScheduleKind,
    generation: Int?, fold: Int?, agreementLabels: [LabelSetProvenance]
  ) {
    let source = key(of: model.id)
    let sets = agreementLabels.map { key(of: $0.id) }
    let level = stage.level
    let index = add(
      id: "eval-\(stage.name)-\(model.id)",
      content: { variant in
        .evaluate(model: source(variant), level: level, agreementLabels: sets.map { $0(variant) })
      },
      action: .evaluate(model: model, level: level, agreementLabels: agreementLabels))
    entries.append(
      ReportEntry(
        stage: stage.name, level: level, method: stage.method, schedule: schedule,
        generation: generation, fold: fold, model: model.id, evaluationJob: jobs[index].id))
  }

  // MARK: Stages

  private mutating func planSchedule(
    _ schedule: ScheduleKind, stage: StageConfiguration, split: FoldSplit
  ) throws -> BranchState {
    let level = stage.level
    let name = "\(stage.name)-\(schedule.rawValue)"
    let m0 = sourceModel(network: stage.network)
    evaluate(m0, stage: stage, schedule: schedule, generation: 0, fold: nil, agreementLabels: [])
    switch schedule {
    case .selfLearning, .stso:
      var teacher = m0
      var labels: [LabelSetProvenance] = []
      for t in 1...configuration.generations {
        labels = [label(split.allUnits, by: teacher, level: level, id: "\(name)-g\(t)-labels")]
        let initial = schedule == .selfLearning ? teacher : m0
        let student = trainStudent(
          initial, on: labels, level: level, network: stage.network, id: "\(name)-g\(t)")
        evaluate(
          student, stage: stage, schedule: schedule, generation: t, fold: nil,
          agreementLabels: labels)
        teacher = student
      }
      return BranchState(finalModel: teacher, finalLabels: labels)
    case .atso:
      var teachers = Array(repeating: m0, count: split.folds.count)
      for t in 1...configuration.generations {
        let sets = try crossFoldLabels(split, teachers: teachers, level: level, prefix: "\(name)-g\(t)")
        var students: [ModelProvenance] = []
        for k in split.folds.indices {
          let training = sets.enumerated().filter { $0.offset != k }.map(\.element)
          let student = trainStudent(
            m0, on: training, level: level, network: stage.network, id: "\(name)-g\(t)-m\(k + 1)")
          evaluate(
            student, stage: stage, schedule: schedule, generation: t, fold: k + 1,
            agreementLabels: training)
          students.append(student)
        }
        teachers = students
      }
      let finalSets = try crossFoldLabels(
        split, teachers: teachers, level: level, prefix: "\(name)-final")
      let final = trainStudent(
        m0, on: finalSets, level: level, network: stage.network, id: "\(name)-final")
      evaluate(
        final, stage: stage, schedule: schedule, generation: nil, fold: nil,
        agreementLabels: finalSets)
      return BranchState(finalModel: final, finalLabels: finalSets)
    }
  }

  /// ATSO's labels: fold k by teacher k, which must never have been trained on it.
  private mutating func crossFoldLabels(
    _ split: FoldSplit, teachers: [ModelProvenance], level: LabelLevel, prefix: String
  ) throws -> [LabelSetProvenance] {
    var sets: [LabelSetProvenance] = []
    for (j, fold) in split.folds.enumerated() {
      let leaked = Set(teachers[j].trainedOn).intersection(fold).sorted()
      let id = "\(prefix)-fold\(j + 1)"
      if !leaked.isEmpty {
        throw TransferError.foldLeak(labelSet: id, model: teachers[j].id, units: leaked)
      }
      sets.append(label(fold, by: teachers[j], level: level, id: id, isCrossFold: true))
    }
    return sets
  }

  private mutating func planTrainStage(
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
    let model = trainStudent(
      initial, on: labels, level: stage.level, network: stage.network ?? initial.network,
      id: name)
    evaluate(
      model, stage: stage, schedule: schedule, generation: nil, fold: nil, agreementLabels: labels)
    return BranchState(finalModel: model, finalLabels: labels)
  }
}
