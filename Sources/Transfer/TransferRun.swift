import Cluster
import Foundation
import Segmentation

/// A transfer run bound to a run directory: plans once, executes and resumes.
///
/// Layout of the run directory:
/// ```
/// configuration.json   the resolved configuration
/// folds.json           the seeded fold split (FoldSplit)
/// sets.json            the unit ids of S, R and E (DataSummary)
/// models/<id>.ckpt     checkpoints (written by the backend)
/// labels/<id>/         pseudo label sets (written by the backend)
/// losses/<job>.csv     the loss of every training step of a training job (LossLog)
/// steps/<job>.json     completion records (StepRecord)
/// metrics.jsonl        one MetricsRecord per line, regenerated from the records
/// table.md, table.json, curves-<stage>.png   the results, written at the end (table.md with
///                      a legend: what @R and @E are, the data, levels, seeds, warnings)
/// predictions.png      a few test units: image, ground truth, predictions (see writePreviews)
/// ```
/// Every file is written under a `.partial` name and renamed; a job's record is written after
/// its outputs are in place, with their checksums. `resume` removes every temporary file
/// (`.partial`, `.tmp-<pid>`), trusts exactly the jobs whose records are valid and whose
/// outputs still have the recorded checksums, and redoes the others after deleting their
/// outputs, so a run killed at any moment finishes with the same files as an uninterrupted one.
/// One process writes a run at a time (``RunLock``, `run.lock`); `configuration.started.json`
/// keeps the configuration the run started with, and `resume` refuses an edited
/// `configuration.json` unless asked to accept the changes.
public final class TransferRun {
  public let directory: String
  public let configuration: TransferConfiguration
  public let split: FoldSplit
  public let plan: TransferPlan
  public let records: StepRecords
  let backend: any TransferBackend
  /// Test hook: called with `"after-output:<job id>"` between a job's outputs and its record.
  package var faultInjection: ((String) throws -> Void)?
  /// The jobs executed (not skipped) by this object, in order.
  public internal(set) var executedJobs: [String] = []
  /// The job being run, if ``execute()`` stopped in one (an error of its backend call).
  public private(set) var currentJob: String?
  /// Receives the start and end of every job and the warnings (the CLI draws them).
  public var events: ((RunEvent) -> Void)?

  /// Creates a new run directory, saves the resolved configuration and the fold split, and
  /// plans the run.
  ///
  /// - Throws: `TransferError.runDirectory` if the directory already holds a run.
  public static func start(
    configuration: ValidatedConfiguration, directory: String, backend: any TransferBackend
  ) throws -> TransferRun {
    let configurationPath = directory + "/configuration.json"
    if FileManager.default.fileExists(atPath: configurationPath) {
      throw TransferError.runDirectory(
        path: directory, reason: "already holds a run (configuration.json); use resume")
    }
    try createDirectory(directory)
    let resolved = configuration.withRunDirectory(directory)
    let run = try TransferRun(directory: directory, configuration: resolved, backend: backend)
    try RunLock.holding(directory) {
      // Checked again under the lock: two `transfer` into one directory, one of them wins.
      if FileManager.default.fileExists(atPath: configurationPath) {
        throw TransferError.runDirectory(
          path: directory, reason: "already holds a run (configuration.json); use resume")
      }
      try writeJSON(run.split, to: directory + "/folds.json")
      try resolved.configuration.save(to: configurationPath)
      try RunFolder.recordStartedConfiguration(in: directory)
    }
    return run
  }

  /// ``start(configuration:directory:backend:)`` for a configuration not validated yet.
  public static func start(
    configuration: TransferConfiguration, directory: String, backend: any TransferBackend
  ) throws -> TransferRun {
    try start(configuration: configuration.validated(), directory: directory, backend: backend)
  }

  /// Opens an existing run directory whose configuration the caller has loaded (to resume it).
  ///
  /// - Parameter acceptingChanges: continue with a `configuration.json` edited since the run
  ///   started (refused otherwise, see ``RunFolder/startedConfiguration``).
  /// - Throws: `TransferError` if the directory holds no run, if its configuration changed, or
  ///   if the fold split on disk differs from the one the seed and the backend's units give.
  public convenience init(
    resuming directory: String, configuration: ValidatedConfiguration,
    backend: any TransferBackend, acceptingChanges: Bool = false
  ) throws {
    guard FileManager.default.fileExists(atPath: directory + "/configuration.json") else {
      throw TransferError.runDirectory(
        path: directory, reason: "no configuration.json: not a run directory")
    }
    try RunFolder.checkConfiguration(in: directory, acceptingChanges: acceptingChanges)
    try self.init(directory: directory, configuration: configuration, backend: backend)
    let foldsPath = directory + "/folds.json"
    if let data = FileManager.default.contents(atPath: foldsPath) {
      let saved = try? JSONDecoder().decode(FoldSplit.self, from: data)
      if saved != split {
        throw TransferError.runDirectory(
          path: foldsPath,
          reason: "the saved fold split differs from the one of the seed and the reference set")
      }
    } else {
      try RunLock.holding(directory) { try writeJSON(split, to: foldsPath) }
    }
  }

  /// Opens an existing run directory, reading its `configuration.json` with the backend
  /// option types `kinds`.
  public convenience init(
    resuming directory: String, backend: any TransferBackend, kinds: [any BackendOptions.Type] = [],
    acceptingChanges: Bool = false
  ) throws {
    let path = directory + "/configuration.json"
    guard FileManager.default.fileExists(atPath: path) else {
      throw TransferError.runDirectory(
        path: directory, reason: "no configuration.json: not a run directory")
    }
    try self.init(
      resuming: directory, configuration: try TransferConfiguration.load(from: path, kinds: kinds),
      backend: backend, acceptingChanges: acceptingChanges)
  }

  private init(
    directory: String, configuration: ValidatedConfiguration, backend: any TransferBackend
  ) throws {
    let split = try FoldSplit(
      units: try backend.referenceUnits(), count: configuration.configuration.folds,
      runSeed: configuration.configuration.seed)
    let digest = try configuration.configuration.sourceModel.map(contentDigest(of:))
    self.directory = directory
    self.configuration = configuration.configuration
    self.split = split
    self.plan = try TransferPlan(
      configuration: configuration, split: split, sourceModelDigest: digest)
    self.records = StepRecords(directory: directory)
    self.backend = backend
  }

  /// Runs every job that has no valid completion record, then writes the metrics, the tables
  /// and the plots.
  ///
  /// - Returns: the metrics records, in plan order.
  /// - Throws: the error of the first job that fails (``currentJob`` names it).
  @discardableResult
  public func execute() throws -> [MetricsRecord] {
    let lock = try RunLock(directory: directory)  // one writer; released on return or throw
    defer { lock.release() }
    var results = try prepareDirectory()
    let pending = plan.jobs.filter { records.completed($0) == nil }
    var clock = RunClock()
    for (index, job) in pending.enumerated() {
      func position() -> RunPosition {
        RunPosition(
          job: job.id, index: index + 1, count: pending.count,
          elapsed: -clock.start.timeIntervalSinceNow,
          remainingAfter: clock.estimate(pending[(index + 1)...]),
          untimedTrainingAfter: clock.untimedTraining(pending[(index + 1)...]),
          trains: RunClock.trains(RunClock.kind(job.action)), estimate: clock.estimate(of: job))
      }
      events?(.started(position()))
      let jobStart = Date()
      currentJob = job.id
      let record = try run(job)
      currentJob = nil
      executedJobs.append(job.id)
      let seconds = -jobStart.timeIntervalSinceNow
      clock.seconds[RunClock.kind(job.action), default: []].append(seconds)
      events?(.finished(position(), seconds: seconds))
      if results.add(record, job: job.id) {
        if let evaluation = record.evaluation {
          for warning in Self.warnings(job: job, evaluation) { events?(.warning(warning)) }
        }
        try writeMetrics(metricsRecords(results))
      }
    }
    return try writeResults(results)
  }

  /// Removes half-written files and returns the results of the completed jobs.
  func prepareDirectory() throws -> RunResults {
    try removePartials(in: directory)
    for sub in ["models", "labels", "steps", "losses"] {
      try createDirectory(directory + "/" + sub)
      try removePartials(in: directory + "/" + sub)
    }
    data = try backend.dataSummary()
    try writeJSON(data, to: path("sets.json"))
    var results = RunResults()
    for job in plan.jobs {
      if let record = records.completed(job) { results.add(record, job: job.id) }
    }
    return results
  }

  /// Writes the metrics, the tables, the plots and the previews of a finished run.
  func writeResults(_ results: RunResults) throws -> [MetricsRecord] {
    let metrics = metricsRecords(results)
    try writeMetrics(metrics)
    let table = ResultsTable(records: metrics, configuration: configuration)
    let legend = TableLegend(
      configuration: configuration, metric: table.metric, data: data,
      warnings: plan.jobs.flatMap { job in
        results.evaluations[job.id].map { Self.warnings(job: job, $0) } ?? []
      })
    try writeAtomically(
      Data((table.markdown() + legend.markdown()).utf8), to: directory + "/table.md")
    try writeAtomically(try table.json(), to: directory + "/table.json")
    let dataset = LinePlot.datasetLine(configuration.backend)
    for stage in configuration.stages where stage.method == .schedules {
      try writePNG(
        table.curves(stage: stage.name, dataset: dataset),
        to: directory + "/curves-\(stage.name).png")
      try writePNG(
        table.agreementCurves(stage: stage.name, dataset: dataset),
        to: directory + "/agreement-\(stage.name).png")
    }
    try writePreviews()
    return metrics
  }

  // MARK: Jobs

  func path(_ relative: String) -> String { directory + "/" + relative }

  /// The data the backend read (set by ``execute()``).
  public private(set) var data: DataSummary?

  /// The loss log of a training job, relative to the run directory.
  static func lossLog(_ job: TransferJob) -> String { "losses/\(job.id).csv" }

  /// The warnings of an evaluation job: a model that predicts a single class on R or E.
  static func warnings(job: TransferJob, _ result: EvaluationResult) -> [String] {
    guard case .evaluate(let evaluation) = job.action else { return [] }
    let sets = [("E", result.score(.test)), ("R", result.score(.reference))]
    return sets.compactMap { name, score in
      guard let classes = score?.predictedClasses, classes.count == 1 else { return nil }
      return "model \(evaluation.model.id) predicts a single class on \(name) at level "
        + "\(evaluation.level): "
        + "'\(classes[0])' everywhere (its scores say little; check the training and the labels)"
    }
  }

  /// Runs a job from scratch: discards leftovers, calls the backend on temporary paths, renames
  /// the outputs into place, then writes the completion record.
  func run(_ job: TransferJob) throws -> StepRecord {
    try records.discard(job)
    let record = recorded(try produce(job), job: job)
    try records.write(record, for: job)
    return record
  }

  /// What the writer of the run folder (the one process, or rank 0) adds to a job's record
  /// before writing it: the labeled units of a training (``data``, which only the writer reads).
  func recorded(_ produced: StepRecord, job: TransferJob) -> StepRecord {
    var record = produced
    switch job.action {
    case .trainSource, .trainStudent: record.labeled = data?.labeled
    default: break
    }
    return record
  }

  /// Runs a job from scratch up to its completion record (not written): discards leftover
  /// outputs, calls the backend on temporary paths (`temporary` appended), renames the outputs
  /// into place.
  func produce(
    _ job: TransferJob, temporary: String = partialSuffix, group: JobGroup? = nil
  ) throws -> StepRecord {
    for output in job.action.outputs {
      try removeIfPresent(path(output))
      try removeIfPresent(path(output) + temporary)
    }
    var record = StepRecord(job: job)
    record.model = job.action.outputModel
    let lossLog = path(Self.lossLog(job))
    try removeIfPresent(lossLog)
    switch job.action {
    case .trainSource, .trainStudent:
      try train(job, temporary: temporary, group: group)
    case .importSource(let checkpoint, let output):
      try backend.importSource(
        SourceImportRequest(
          checkpoint: checkpoint, output: path(output.checkpoint) + temporary))
    case .adaptBatchNorm(let model, let units, let output):
      try backend.adaptBatchNorm(
        BatchNormAdaptationRequest(
          checkpoint: path(model.checkpoint), units: units,
          output: path(output.checkpoint) + temporary, seed: job.seed))
    case .label(let teacher, let filters, let output):
      let leaked = Set(teacher.trainedOnInStage).intersection(output.units)
      if output.isCrossFold && !leaked.isEmpty {
        throw TransferError.foldLeak(
          labelSet: output.id, model: teacher.id, units: leaked.sorted())
      }
      try createDirectory(path(output.directory) + temporary)
      try backend.generatePseudoLabels(
        PseudoLabelRequest(
          teacherCheckpoint: path(teacher.checkpoint), units: output.units, level: output.level,
          filters: filters, outputDirectory: path(output.directory) + temporary,
          seed: job.seed))
      record.labelSet = output
    case .scoreLabels(let labels, let level):
      record.labelScore = try backend.scorePseudoLabels(
        PseudoLabelScoreRequest(labels: labels.map(labelSet), level: level))
    case .evaluate(let evaluation):
      record.evaluation = try evaluate(evaluation)
    }
    for output in job.action.outputs {
      let written = path(output) + temporary
      guard FileManager.default.fileExists(atPath: written) else {
        throw TransferError.fileOperation(
          path: written, reason: "job \(job.id): the backend did not write its output")
      }
      try renameReplacing(written, to: path(output))
    }
    if FileManager.default.fileExists(atPath: lossLog + temporary) {
      try renameReplacing(lossLog + temporary, to: lossLog)
    }
    try faultInjection?("after-output:\(job.id)")
    return record
  }

  /// Trains the model of a `train-source` or `train-student` job into its temporary outputs
  /// (with `dataParallel`: this replica's part; replica 0 writes).
  func trainModel(
    _ job: TransferJob, temporary: String, dataParallel: DataParallel?
  ) throws {
    let lossLog = path(Self.lossLog(job)) + temporary
    switch job.action {
    case .trainSource(let output):
      try backend.trainSource(
        SourceTrainingRequest(
          network: output.network, output: path(output.checkpoint) + temporary,
          seed: job.seed, lossLog: lossLog, dataParallel: dataParallel))
    case .trainStudent(let initial, let labels, let level, let output):
      try backend.trainStudent(
        StudentTrainingRequest(
          network: output.network, initialCheckpoint: path(initial.checkpoint),
          pseudoLabels: labels.map(labelSet), level: level,
          output: path(output.checkpoint) + temporary, seed: job.seed,
          lossLog: lossLog, dataParallel: dataParallel))
    default:
      preconditionFailure("job \(job.id) trains no model")
    }
  }

  func labelSet(_ labels: LabelSetProvenance) -> PseudoLabelSet {
    PseudoLabelSet(directory: path(labels.directory), units: labels.units, level: labels.level)
  }

  /// Removes every temporary entry (``RunFolder/isTemporary(_:)``) directly in `folder`.
  func removePartials(in folder: String) throws {
    try RunFolder.removeTemporaries(in: folder)
  }

  // MARK: Metrics

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

extension LinePlot {
  /// The data line of a run's plots from its backend options: their text values (dataset
  /// specifications, folders) by key, see ``datasetLine(_:)-(String:String)``.
  public static func datasetLine(_ options: (any BackendOptions)?) -> String {
    let object = (try? options?.jsonObject()) ?? [:]
    return datasetLine(
      object.compactMapValues { value -> String? in
        if case .string(let text) = value { return text }
        return nil
      })
  }
}
