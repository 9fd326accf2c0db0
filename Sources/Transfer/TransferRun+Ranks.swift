import Cluster
import Foundation

extension JobAction {
  /// The id of the model or label set the job writes, if any.
  var outputID: String? {
    if let model = outputModel { return model.id }
    if case .label(_, _, let output) = self { return output.id }
    return nil
  }
}

extension TransferPlan {
  /// For every job, the jobs whose outputs it reads (the models it starts from, labels with or
  /// is evaluated as, and the label sets it trains on or compares with), in plan order.
  public var dependencies: [String: [String]] {
    var producer: [String: String] = [:]  // model or label set id -> job id
    var result: [String: [String]] = [:]
    for job in jobs {
      var needed: [String] = []
      for input in job.action.inputs {
        if let source = producer[input], !needed.contains(source) { needed.append(source) }
      }
      result[job.id] = needed
      if let output = job.action.outputID { producer[output] = job.id }
    }
    return result
  }
}

/// A run shared by rank 0's scheduling thread and its job thread: the job thread only reads
/// the plan and the directory and calls the backend (one job at a time); the scheduling
/// thread only writes completion records and metrics.
private struct SharedRun: @unchecked Sendable {
  let run: TransferRun
}

extension TransferRun {
  /// Runs the jobs without a completion record on the ranks of `farm` (this is rank 0), then
  /// writes the metrics, tables, plots and previews, as ``execute()`` does in one process.
  ///
  /// Rank 0 owns the run directory: it writes every completion record, in the order the jobs
  /// finish, after the executing rank has put the job's outputs in place; the other ranks
  /// write only outputs (under temporaries of their own, `.rank<r>.partial`). Jobs compute the
  /// same bytes on any rank, so the results equal those of one process, and a run started
  /// here resumes in one process and the other way round.
  ///
  /// - Throws: the failure of a job (``ClusterError/rankFailed(rank:job:message:)``, after all
  ///   ranks stopped), or what ``JobFarm/run(start:jobs:completed:execute:complete:event:)``
  ///   throws.
  @discardableResult
  public func execute(on farm: JobFarm, event: @escaping (FarmEvent) -> Void) throws
    -> [MetricsRecord]
  {
    // Rank 0 is the one writer of the run folder (the other ranks write only temporaries).
    let lock = try RunLock(directory: directory)
    defer { lock.release() }
    var results = try prepareDirectory()
    var completed: Set<String> = []
    for job in plan.jobs {
      if records.completed(job) != nil {
        completed.insert(job.id)
      } else {
        try records.discard(job)
      }
    }
    let dependencies = plan.dependencies
    let farmJobs = plan.jobs.map { job in
      FarmJob(id: job.id, dependencies: dependencies[job.id] ?? [], payload: [])
    }
    let shared = SharedRun(run: self)
    try farm.run(
      start: Array(absolutePath(directory).utf8), jobs: farmJobs, completed: completed,
      execute: { job in try shared.run.produceEncoded(job.id, rank: 0) },
      complete: { job, bytes in
        guard let planned = self.plan.jobs.first(where: { $0.id == job.id }) else { return }
        let record = self.recorded(try self.decodeRecord(bytes, job: job.id), job: planned)
        try self.records.write(record, for: planned)
        self.executedJobs.append(job.id)
        if results.add(record, job: job.id) { try self.writeMetrics(self.metricsRecords(results)) }
      },
      event: event)
    // What lost ranks left half-written.
    for folder in [directory] + ["models", "labels", "steps", "losses"].map(path) {
      try removePartials(in: folder)
    }
    return try writeResults(results)
  }

  /// `path` from the root: the ranks on other hosts may start in other folders.
  func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
  }

  /// A rank other than 0: opens the run directory that rank 0 names with `open`, then runs
  /// the jobs rank 0 hands out until the run is done.
  public static func serve(
    farm: JobFarm, open: @escaping @Sendable (String) throws -> TransferRun
  ) throws {
    let rank = farm.communicator.rank
    try farm.serve { start in
      let shared = SharedRun(run: try open(String(decoding: start, as: UTF8.self)))
      return { job in try shared.run.produceEncoded(job.id, rank: rank) }
    }
  }

  /// Runs a job of the plan up to its completion record, which it returns encoded.
  func produceEncoded(_ id: String, rank: Int) throws -> [UInt8] {
    guard let job = plan.jobs.first(where: { $0.id == id }) else {
      throw TransferError.runDirectory(
        path: directory, reason: "rank 0 sent job '\(id)', which this rank's plan lacks")
    }
    let record = try produce(job, temporary: ".rank\(rank)" + partialSuffix)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array(try encoder.encode(record))
  }

  func decodeRecord(_ bytes: [UInt8], job: String) throws -> StepRecord {
    do {
      return try JSONDecoder().decode(StepRecord.self, from: Data(bytes))
    } catch {
      throw TransferError.fileOperation(
        path: path("steps/\(job).json"), reason: "the record a rank sent is not valid: \(error)")
    }
  }
}
