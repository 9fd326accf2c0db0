import Foundation
import Segmentation

/// The results of one evaluation job, stored in its completion record.
public struct EvaluationResult: Codable, Sendable, Equatable {
  public var reference: Evaluation
  public var test: Evaluation
  public var agreement: Double?
}

/// The completion record of a job, `steps/<id>.json`, written after the job's outputs.
///
/// A job is complete if and only if its record decodes, names the same identity as the plan,
/// and its outputs exist.
public struct StepRecord: Codable, Sendable, Equatable {
  public var id: String
  public var identity: String
  public var seed: UInt64
  /// Output paths relative to the run directory.
  public var outputs: [String]
  public var model: ModelProvenance?
  public var labelSet: LabelSetProvenance?
  public var evaluation: EvaluationResult?
}

/// One line of `metrics.jsonl`: one (stage, schedule, generation, model) evaluation.
public struct MetricsRecord: Codable, Sendable, Equatable {
  public struct PerClass: Codable, Sendable, Equatable {
    public var reference: [Double?]
    public var test: [Double?]
  }
  public var stage: String
  public var level: LabelLevel
  public var schedule: ScheduleKind
  /// The generation; nil for a final model.
  public var generation: Int?
  public var fold: Int?
  public var model: String
  /// What `atR`, `atE` and `perClass` measure (mean IoU for images, Dice for volumes).
  public var metric: EvaluationMetric
  /// The score on the reference set R (diagnosis only).
  public var atR: Double
  /// The score on the test set E.
  public var atE: Double
  public var agreement: Double?
  public var perClass: PerClass
}

/// A transfer run bound to a run directory: plans, executes and resumes.
///
/// Layout of the run directory:
/// ```
/// configuration.json   the resolved configuration
/// folds.json           the seeded fold split (FoldSplit)
/// models/<id>.ckpt     checkpoints (written by the backend)
/// labels/<id>/         pseudo label sets (written by the backend)
/// steps/<job>.json     completion records (StepRecord)
/// metrics.jsonl        one MetricsRecord per line, regenerated from the records
/// table.md, table.json, curves-<stage>.png   the results, written at the end
/// predictions.png      a few test units: image, ground truth, predictions (see writePreviews)
/// ```
/// Every file is written under a `.partial` name and renamed; a job's record is written after
/// its outputs are in place. `resume` removes every `.partial`, trusts exactly the jobs whose
/// records are valid, and redoes the others after deleting their outputs, so a run killed at
/// any moment finishes with the same files as an uninterrupted one.
public final class TransferRun {
  public let directory: String
  public let configuration: TransferConfiguration
  public let split: FoldSplit
  public let plan: TransferPlan
  let backend: any TransferBackend
  /// Test hook: called with `"after-output:<job id>"` between a job's outputs and its record.
  package var faultInjection: ((String) throws -> Void)?
  /// The jobs executed (not skipped) by this object, in order.
  public internal(set) var executedJobs: [String] = []

  /// Creates a new run directory and saves the resolved configuration and the fold split.
  ///
  /// - Throws: `TransferError.runDirectory` if the directory already holds a run.
  public static func start(
    configuration: TransferConfiguration, directory: String, backend: any TransferBackend
  ) throws -> TransferRun {
    try configuration.validate()
    let configurationPath = directory + "/configuration.json"
    if FileManager.default.fileExists(atPath: configurationPath) {
      throw TransferError.runDirectory(
        path: directory, reason: "already holds a run (configuration.json); use resume")
    }
    try createDirectory(directory)
    var resolved = configuration
    resolved.runDirectory = directory
    let split = try FoldSplit(
      units: try backend.referenceUnits(), count: resolved.folds, runSeed: resolved.seed)
    try writeJSON(split, to: directory + "/folds.json")
    try resolved.save(to: configurationPath)
    return try TransferRun(directory: directory, backend: backend)
  }

  /// Opens an existing run directory (to resume it).
  ///
  /// - Throws: `TransferError` if the configuration is missing or invalid, or if the fold split
  ///   on disk differs from the one the seed and the backend's units give.
  public convenience init(resuming directory: String, backend: any TransferBackend) throws {
    try self.init(directory: directory, backend: backend)
  }

  init(directory: String, backend: any TransferBackend) throws {
    let configurationPath = directory + "/configuration.json"
    guard FileManager.default.fileExists(atPath: configurationPath) else {
      throw TransferError.runDirectory(
        path: directory, reason: "no configuration.json: not a run directory")
    }
    let configuration = try TransferConfiguration.load(from: configurationPath)
    let split = try FoldSplit(
      units: try backend.referenceUnits(), count: configuration.folds,
      runSeed: configuration.seed)
    let foldsPath = directory + "/folds.json"
    if let data = FileManager.default.contents(atPath: foldsPath) {
      let saved = try? JSONDecoder().decode(FoldSplit.self, from: data)
      if saved != split {
        throw TransferError.runDirectory(
          path: foldsPath,
          reason: "the saved fold split differs from the one of the seed and the reference set")
      }
    } else {
      try writeJSON(split, to: foldsPath)
    }
    self.directory = directory
    self.configuration = configuration
    self.split = split
    self.plan = try TransferPlan(configuration: configuration, split: split)
    self.backend = backend
  }

  /// Runs every job that has no valid completion record, then writes the metrics, the tables
  /// and the plots.
  ///
  /// - Returns: the metrics records, in plan order.
  @discardableResult
  public func execute() throws -> [MetricsRecord] {
    var evaluations = try prepareDirectory()
    for job in plan.jobs where completedRecord(of: job) == nil {
      let record = try run(job)
      executedJobs.append(job.id)
      if let evaluation = record.evaluation {
        evaluations[job.id] = evaluation
        try writeMetrics(metricsRecords(evaluations))
      }
    }
    return try writeResults(evaluations)
  }

  /// Removes half-written files and returns the evaluations of the completed jobs.
  func prepareDirectory() throws -> [String: EvaluationResult] {
    try removePartials(in: directory)
    for sub in ["models", "labels", "steps"] {
      try createDirectory(directory + "/" + sub)
      try removePartials(in: directory + "/" + sub)
    }
    var evaluations: [String: EvaluationResult] = [:]
    for job in plan.jobs {
      if let evaluation = completedRecord(of: job)?.evaluation { evaluations[job.id] = evaluation }
    }
    return evaluations
  }

  /// Writes the metrics, the tables, the plots and the previews of a finished run.
  func writeResults(_ evaluations: [String: EvaluationResult]) throws -> [MetricsRecord] {
    let records = metricsRecords(evaluations)
    try writeMetrics(records)
    let table = ResultsTable(records: records, configuration: configuration)
    try writeAtomically(Data(table.markdown().utf8), to: directory + "/table.md")
    try writeAtomically(try table.json(), to: directory + "/table.json")
    for stage in configuration.stages where stage.method == .schedules {
      let plot = table.curves(
        stage: stage.name, dataset: LinePlot.datasetLine(configuration.backend))
      try writePNG(plot, to: directory + "/curves-\(stage.name).png")
    }
    try writePreviews()
    return records
  }

  // MARK: Previews

  /// The models of `predictions.png` and their level: the first stage's source model (source
  /// only), then for each schedule the last model of the last stage.
  func previewModels() -> (models: [PreviewModel], level: LabelLevel) {
    let last = configuration.stages[configuration.stages.count - 1]
    var models: [PreviewModel] = []
    var seen: Set<String> = []
    func add(_ entry: ReportEntry?, title: String) {
      guard let entry, seen.insert(entry.model).inserted,
        let job = plan.jobs.first(where: { $0.id == entry.evaluationJob }),
        case .evaluate(let model, _, _) = job.action
      else { return }
      models.append(PreviewModel(title: title, checkpoint: path(model.checkpoint)))
    }
    add(
      plan.entries.first { $0.stage == configuration.stages[0].name && $0.generation == 0 },
      title: "SOURCE ONLY")
    for schedule in configuration.schedules {
      let entry = plan.entries.last { $0.stage == last.name && $0.schedule == schedule }
      let generation = entry?.generation.map { "G\($0)" } ?? "FINAL"
      let stage = configuration.stages.count > 1 ? " \(last.name)" : ""
      add(entry, title: "\(ResultsTable.title(schedule))\(stage) \(generation)".uppercased())
    }
    return (models, last.level)
  }

  /// Writes `predictions.png` (``TransferConfiguration/previews`` units of E: image, ground
  /// truth and the ``previewModels()``' predictions), unless the count is 0 or the backend has
  /// nothing to draw. A complete file (written atomically) is kept when this `execute` ran no
  /// job: it was drawn from the same checkpoints.
  func writePreviews() throws {
    let target = path("predictions.png")
    try removeIfPresent(target + partialSuffix)
    guard configuration.previews > 0 else { return }
    if executedJobs.isEmpty && FileManager.default.fileExists(atPath: target) { return }
    let (models, level) = previewModels()
    let written = try backend.writePreviews(
      PreviewRequest(
        models: models, level: level, count: configuration.previews,
        output: target + partialSuffix))
    if written { try renameReplacing(target + partialSuffix, to: target) }
  }

  // MARK: Jobs

  func path(_ relative: String) -> String { directory + "/" + relative }

  func recordPath(_ job: TransferJob) -> String { path("steps/\(job.id).json") }

  /// The outputs of a job, relative to the run directory.
  static func outputs(of job: TransferJob) -> [String] {
    switch job.action {
    case .trainSource(let output): [output.checkpoint]
    case .adaptBatchNorm(_, _, let output): [output.checkpoint]
    case .label(_, _, let output): [output.directory]
    case .fineTune(_, _, _, let output): [output.checkpoint]
    case .evaluate: []
    }
  }

  /// The job's completion record if it is valid and its outputs exist; nil otherwise.
  func completedRecord(of job: TransferJob) -> StepRecord? {
    guard let data = FileManager.default.contents(atPath: recordPath(job)),
      let record = try? JSONDecoder().decode(StepRecord.self, from: data),
      record.id == job.id, record.identity == job.identity, record.seed == job.seed,
      record.outputs == Self.outputs(of: job),
      record.outputs.allSatisfy({ FileManager.default.fileExists(atPath: path($0)) })
    else { return nil }
    return record
  }

  /// Runs a job from scratch: discards leftovers, calls the backend on temporary paths, renames
  /// the outputs into place, then writes the completion record.
  func run(_ job: TransferJob) throws -> StepRecord {
    try removeIfPresent(recordPath(job))
    let record = try produce(job)
    try writeJSON(record, to: recordPath(job))
    return record
  }

  /// Runs a job from scratch up to its completion record (not written): discards leftover
  /// outputs, calls the backend on temporary paths (`temporary` appended), renames the outputs
  /// into place.
  func produce(_ job: TransferJob, temporary: String = partialSuffix) throws -> StepRecord {
    for output in Self.outputs(of: job) {
      try removeIfPresent(path(output))
      try removeIfPresent(path(output) + temporary)
    }
    var record = StepRecord(
      id: job.id, identity: job.identity, seed: job.seed, outputs: Self.outputs(of: job),
      model: nil, labelSet: nil, evaluation: nil)
    switch job.action {
    case .trainSource(let output):
      try backend.trainSource(
        SourceTrainingRequest(
          network: output.network, output: path(output.checkpoint) + temporary,
          seed: job.seed))
      record.model = output
    case .adaptBatchNorm(let model, let units, let output):
      try backend.adaptBatchNorm(
        BatchNormAdaptationRequest(
          checkpoint: path(model.checkpoint), units: units,
          output: path(output.checkpoint) + temporary, seed: job.seed))
      record.model = output
    case .label(let labeler, let options, let output):
      let leaked = Set(labeler.trainedOn).intersection(output.units)
      if output.isCrossFold && !leaked.isEmpty {
        throw TransferError.foldLeak(
          labelSet: output.id, model: labeler.id, units: leaked.sorted())
      }
      try createDirectory(path(output.directory) + temporary)
      try backend.generatePseudoLabels(
        PseudoLabelRequest(
          checkpoint: path(labeler.checkpoint), units: output.units, level: output.level,
          options: options, outputDirectory: path(output.directory) + temporary,
          seed: job.seed))
      record.labelSet = output
    case .fineTune(let initial, let labels, let level, let output):
      try backend.fineTune(
        FineTuningRequest(
          network: output.network, initialCheckpoint: path(initial.checkpoint),
          pseudoLabels: labels.map(source), level: level,
          output: path(output.checkpoint) + temporary, seed: job.seed))
      record.model = output
    case .evaluate(let model, let level, let agreementLabels):
      let checkpoint = path(model.checkpoint)
      let reference = try backend.evaluate(
        EvaluationRequest(checkpoint: checkpoint, set: .reference, level: level))
      let test = try backend.evaluate(
        EvaluationRequest(checkpoint: checkpoint, set: .test, level: level))
      let agreement =
        agreementLabels.isEmpty
        ? nil
        : try backend.agreement(
          AgreementRequest(
            checkpoint: checkpoint, pseudoLabels: agreementLabels.map(source), level: level))
      record.evaluation = EvaluationResult(reference: reference, test: test, agreement: agreement)
    }
    for output in Self.outputs(of: job) {
      let written = path(output) + temporary
      guard FileManager.default.fileExists(atPath: written) else {
        throw TransferError.fileOperation(
          path: written, reason: "job \(job.id): the backend did not write its output")
      }
      try renameReplacing(written, to: path(output))
    }
    try faultInjection?("after-output:\(job.id)")
    return record
  }

  func source(_ labels: LabelSetProvenance) -> PseudoLabelSource {
    PseudoLabelSource(directory: path(labels.directory), units: labels.units, level: labels.level)
  }

  /// Removes every `*.partial` entry directly in `folder`.
  func removePartials(in folder: String) throws {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    for name in names.sorted() where name.hasSuffix(partialSuffix) {
      try removeIfPresent(folder + "/" + name)
    }
  }

  // MARK: Metrics

  func metricsRecords(_ evaluations: [String: EvaluationResult]) -> [MetricsRecord] {
    plan.entries.compactMap { entry in
      guard let result = evaluations[entry.evaluationJob] else { return nil }
      return MetricsRecord(
        stage: entry.stage, level: entry.level, schedule: entry.schedule,
        generation: entry.generation, fold: entry.fold, model: entry.model,
        metric: result.test.metric, atR: result.reference.score, atE: result.test.score,
        agreement: result.agreement,
        perClass: .init(reference: result.reference.perClass, test: result.test.perClass))
    }
  }

  func writeMetrics(_ records: [MetricsRecord]) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var data = Data()
    for record in records {
      data.append(try encoder.encode(record))
      data.append(0x0A)
    }
    try writeAtomically(data, to: path("metrics.jsonl"))
  }
}

/// Encodes a canvas as an RGB PNG (libpng, through Segmentation's codec) and writes it atomically.
package func writePNG(_ canvas: PlotCanvas, to path: String) throws {
  let bytes: [UInt8]
  do {
    bytes = try PNGCodec.encodeRGB(canvas.image, path: path)
  } catch {
    throw TransferError.fileOperation(path: path, reason: "cannot encode the PNG: \(error)")
  }
  try writeAtomically(Data(bytes), to: path)
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
