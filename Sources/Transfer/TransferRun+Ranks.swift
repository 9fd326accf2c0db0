import Cluster
import Foundation
import Segmentation

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
  public func execute(
    on farm: JobFarm, group: JobGroup? = nil, event: @escaping (FarmEvent) -> Void
  ) throws -> [MetricsRecord] {
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
    let start = Array(absolutePath(directory).utf8)
    try group?.start(start)
    try farm.run(
      start: start, jobs: farmJobs, completed: completed,
      execute: { job in try shared.run.produceEncoded(job.id, rank: 0, group: group) },
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
    farm: JobFarm, group: JobGroup? = nil,
    open: @escaping @Sendable (String) throws -> TransferRun
  ) throws {
    let rank = farm.communicator.rank
    try farm.serve { start in
      try group?.start(start)
      let shared = SharedRun(run: try open(String(decoding: start, as: UTF8.self)))
      return { job in try shared.run.produceEncoded(job.id, rank: rank, group: group) }
    }
  }

  /// A rank of a job group other than its leader (`--ranks-per-job`): opens the run that the
  /// leader names with `open`, then trains its share of every training job the leader runs,
  /// writing nothing, until the leader says the run is done.
  public static func serve(
    member group: JobGroup, open: @escaping @Sendable (String) throws -> TransferRun
  ) throws {
    try group.serve(
      open: { start in
        let shared = SharedRun(run: try open(String(decoding: start, as: UTF8.self)))
        return { id in
          let job = try shared.run.plannedJob(id)
          try shared.run.trainTogether(job, temporary: partialSuffix, group: group)
        }
      },
      failedOpening: { error, _ in
        // The leader waits in the job's first sum: it fails there with this rank's error.
        try? ClusterReplicas(group: group).fail(error)
      })
  }

  func plannedJob(_ id: String) throws -> TransferJob {
    guard let job = plan.jobs.first(where: { $0.id == id }) else {
      throw TransferError.runDirectory(
        path: directory, reason: "another rank sent job '\(id)', which this rank's plan lacks")
    }
    return job
  }

  /// Whether the backend trains a model on the ranks of a group together (`--ranks-per-job`);
  /// otherwise a group's leader trains alone and its other ranks wait.
  public var trainsDataParallel: Bool { backend.trainsDataParallel }

  /// Trains the model of a training job: with a group of several ranks and a backend that
  /// trains data-parallel, the leader orders its members to join and all train together
  /// (``trainTogether(_:temporary:group:)``); otherwise this rank alone.
  ///
  /// A member that died (silent for the farm's timeout, ``JobGroup/lostMembers``) loses only
  /// the group: the job trains again on the leader alone, as do the group's later jobs.
  func train(_ job: TransferJob, temporary: String, group: JobGroup?) throws {
    guard let group, group.control.size > 1, backend.trainsDataParallel, !group.isDegraded
    else {
      return try trainModel(job, temporary: temporary, dataParallel: nil)
    }
    do {
      try group.order(job: job.id)
      try trainTogether(job, temporary: temporary, group: group)
    } catch {
      var lost = group.lostMembers
      if lost.isEmpty {  // a member that died just now is silent for a heartbeat more
        let beat = group.options.heartbeat.components
        Thread.sleep(forTimeInterval: 2 * (Double(beat.seconds) + Double(beat.attoseconds) / 1e18))
        lost = group.lostMembers
      }
      guard !lost.isEmpty else { throw error }
      group.degrade(lost: lost, job: job.id)
      try trainModel(job, temporary: temporary, dataParallel: nil)
    }
  }

  /// Every rank of `group` (the leader and its members): trains its share of the job's model;
  /// the leader writes. Each rank ends the job with one more collective, so that a failure of
  /// one rank that happens outside the training's sums (reading its inputs, writing the
  /// checkpoint) reaches the others: a barrier after success, or this rank's failure.
  func trainTogether(_ job: TransferJob, temporary: String, group: JobGroup) throws {
    let replicas = ClusterReplicas(group: group)
    do {
      try trainModel(job, temporary: temporary, dataParallel: DataParallel(replicas))
      try replicas.barrier()
    } catch {
      guard !isSharedReplicaFailure(error) else { throw error }
      try replicas.fail(error)
    }
  }

  /// Runs a job of the plan up to its completion record, which it returns encoded.
  func produceEncoded(_ id: String, rank: Int, group: JobGroup? = nil) throws -> [UInt8] {
    let job = try plannedJob(id)
    let record = try produce(job, temporary: ".rank\(rank)" + partialSuffix, group: group)
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

/// The ranks of a communicator as the replicas of data-parallel training: every rank of
/// `mpirun -np N train`, or the ranks of one job's group (`transfer --ranks-per-job`).
public struct ClusterReplicas: TrainingReplicas {
  public let communicator: Communicator
  /// The world rank of the communicator's rank 0 (failures name world ranks).
  public let firstWorldRank: Int
  /// How long a sum waits for a rank (nil: as long as it takes).
  public let timeout: Duration?

  public init(communicator: Communicator, firstWorldRank: Int = 0, timeout: Duration? = nil) {
    self.communicator = communicator
    self.firstWorldRank = firstWorldRank
    self.timeout = timeout
  }

  /// The ranks of a job group, whose sums time out after the farm's timeout.
  public init(group: JobGroup) {
    self.init(
      communicator: group.collectives, firstWorldRank: group.firstWorldRank,
      timeout: group.options.timeout)
  }

  public var index: Int { communicator.rank }
  public var count: Int { communicator.size }

  public func sum(_ values: [Float]) throws(ReplicaFailure) -> [Float] {
    do { return try communicator.sum(values, timeout: timeout) } catch { throw failure(error) }
  }

  public func sum(_ values: [Double]) throws(ReplicaFailure) -> [Double] {
    do { return try communicator.sum(values, timeout: timeout) } catch { throw failure(error) }
  }

  /// Returns when every replica has called it (or throws a replica's failure).
  public func barrier() throws(ReplicaFailure) {
    do { try communicator.barrier(timeout: timeout) } catch { throw failure(error) }
  }

  public func fail(_ error: any Error) throws(ReplicaFailure) -> Never {
    do { try communicator.fail(error, timeout: timeout) } catch { throw failure(error) }
  }

  /// A communicator's error as the failure of the world rank it names (this rank's otherwise).
  func failure(_ error: any Error) -> ReplicaFailure {
    if case .rankFailed(let rank, _, let message) = error as? ClusterError {
      return ReplicaFailure(rank: firstWorldRank + rank, message: message)
    }
    return ReplicaFailure(
      rank: firstWorldRank + communicator.rank, message: String(describing: error))
  }
}
