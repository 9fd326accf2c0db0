import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One job of a farm: an id, the jobs it needs finished first, and what the executing rank
/// needs to know (opaque to the farm).
public struct FarmJob: Sendable, Equatable {
  public var id: String
  public var dependencies: [String]
  public var payload: [UInt8]

  public init(id: String, dependencies: [String] = [], payload: [UInt8] = []) {
    self.id = id
    self.dependencies = dependencies
    self.payload = payload
  }
}

/// How a farm watches its ranks.
public struct FarmOptions: Sendable, Equatable {
  /// How often every rank says it is alive (workers to rank 0, rank 0 to workers).
  public var heartbeat: Duration
  /// A rank that sends nothing for this long is lost: its job goes back to the queue and runs
  /// elsewhere. Workers give up when rank 0 is silent for as long.
  public var timeout: Duration
  /// A job that was running on this many lost ranks fails the run.
  public var attempts: Int
  /// Whether rank 0 runs jobs too (on a second thread) besides handing them out.
  public var leaderRunsJobs: Bool

  public init(
    heartbeat: Duration = .seconds(1), timeout: Duration = .seconds(60), attempts: Int = 3,
    leaderRunsJobs: Bool = true
  ) {
    self.heartbeat = heartbeat
    self.timeout = timeout
    self.attempts = attempts
    self.leaderRunsJobs = leaderRunsJobs
  }
}

/// What rank 0 reports while a farm runs (the caller prints it).
public enum FarmEvent: Sendable, Equatable {
  /// A worker opened the work and is ready.
  case joined(rank: Int, host: String, processID: Int)
  case started(job: String, rank: Int, attempt: Int)
  case finished(job: String, rank: Int, seconds: Double)
  /// A rank died or stopped answering; `job` (if any) will run again elsewhere.
  case lost(rank: Int, job: String?, silentSeconds: Double)
  /// A lost rank on rank 0's host that was still alive (stopped) was killed, so that `mpirun`
  /// can finish.
  case killedLost(rank: Int, processID: Int)
  /// Members of the group led by world rank `leader` died or stopped answering during `job`
  /// (`--ranks-per-job`): the leader trains it, and its group's later jobs, alone. World ranks.
  case groupMembersLost(leader: Int, members: [Int], job: String)
}

/// A job farm over the ranks of a communicator: rank 0 hands the jobs of a dependency graph
/// to free ranks, in the given order as soon as their dependencies are finished; workers run
/// one job at a time and report the result.
///
/// Faults:
/// - A job that throws stops the run: every rank ends cleanly, and rank 0 throws
///   ``ClusterError/rankFailed(rank:job:message:)`` with that rank's error.
/// - A rank that dies or stops answering (no heartbeat for ``FarmOptions/timeout``) loses only
///   its job, which runs again on another rank (Open MPI keeps the others alive only under
///   `mpirun --enable-recovery`; without it `mpirun` ends the whole job). A late answer from a
///   lost rank is ignored. Jobs must therefore be repeatable: the same inputs give the same
///   outputs, written so that a half-written output is never taken for a finished one.
/// - Heartbeats come from the rank's main thread while the job computes on another thread, so
///   a long job keeps its rank alive.
///
/// Every rank calls ``run(start:jobs:completed:execute:complete:event:)`` (rank 0) or
/// ``serve(open:)`` (the others) on its own duplicate of the communicator.
public struct JobFarm: Sendable {
  public let communicator: Communicator
  public let options: FarmOptions

  /// A farm on a private duplicate of `communicator` (collective: every rank calls it).
  public init(communicator: Communicator, options: FarmOptions = FarmOptions()) throws {
    self.communicator = try communicator.duplicate()
    self.options = options
  }

  /// Runs a job on this rank: its payload in, its result out.
  public typealias Executor = @Sendable (FarmJob) throws -> [UInt8]

  // MARK: Rank 0

  /// Rank 0: runs every job of `jobs` not in `completed` on the ranks (rank 0 included, unless
  /// ``FarmOptions/leaderRunsJobs`` is false) and returns when all are finished.
  ///
  /// - Parameters:
  ///   - start: sent to every worker, whose ``serve(open:)`` turns it into its executor (e.g. a
  ///     run folder to open).
  ///   - jobs: the graph, in the order jobs should start when several are ready.
  ///   - completed: jobs finished earlier (their dependants may start at once).
  ///   - execute: runs a job on rank 0 (on a second thread).
  ///   - complete: called on this thread for each finished job with its result, in the order
  ///     jobs finish; a throw stops the run.
  ///   - event: progress for the terminal.
  /// - Throws: ``ClusterError/rankFailed(rank:job:message:)`` for the first job that threw
  ///   (after stopping every rank), ``ClusterError/jobLostTooOften(job:attempts:)``,
  ///   ``ClusterError/noRanksLeft(pending:)``, ``ClusterError/unsatisfiableJobs(blocked:reason:)``.
  public func run(
    start: [UInt8], jobs: [FarmJob], completed: Set<String> = [], execute: @escaping Executor,
    complete: (FarmJob, [UInt8]) throws -> Void, event: @escaping (FarmEvent) -> Void
  ) throws {
    precondition(communicator.rank == 0, "JobFarm.run is for rank 0; the other ranks serve")
    var leader = Leader(
      farm: self, jobs: jobs, completed: completed, execute: execute, event: event)
    do {
      try leader.validate()
      try leader.open(start)
      try leader.loop(complete: complete)
    } catch {
      leader.stopAll(failure: error)
      throw error
    }
    leader.stopAll(failure: nil)
  }

  /// Rank 0, instead of ``run(start:jobs:completed:execute:complete:event:)`` when it cannot
  /// start the work: stops every worker with `failure`.
  public func stop(failure: any Error) {
    precondition(communicator.rank == 0, "rank 0 stops the farm")
    var leader = Leader(farm: self, jobs: [], completed: [], execute: { _ in [] }, event: { _ in })
    leader.stopAll(failure: failure)
  }

  // MARK: Workers

  /// Ranks other than 0: waits for rank 0's start message, turns it into an executor with
  /// `open`, then runs the jobs rank 0 sends, one at a time, until rank 0 says the work is
  /// done. Opening and jobs run on a second thread; this thread keeps the heartbeats going.
  ///
  /// - Throws: ``ClusterError/rankFailed(rank:job:message:)`` when a rank's failure stopped the
  ///   run (this rank's or another's), ``ClusterError/leaderLost(rank:seconds:)``.
  public func serve(open: @escaping @Sendable ([UInt8]) throws -> Executor) throws {
    precondition(communicator.rank != 0, "rank 0 runs the farm")
    var worker = FarmWorker(farm: self)
    var start: [UInt8]?
    while start == nil {
      switch try worker.next() {
      case .start(let bytes): start = bytes
      case .stop: return
      case .job: throw worker.unexpected("a job before the start")
      case nil: try worker.idle()
      }
    }
    let opening = Background { [start] in try open(start ?? []) }
    let execute: Executor
    switch try worker.wait(for: opening) {
    case nil: return
    case .success(let executor): execute = executor
    case .failure(let error):
      // Tell rank 0, which stops every rank with this error.
      var writer = ByteWriter()
      writer.append(0)
      writer.append(String(describing: error))
      try communicator.post(writer.bytes, to: 0, tag: Tag.failed.rawValue)
      while true {
        if case .stop = try worker.next() {
          throw ClusterError.rankFailed(
            rank: communicator.rank, job: nil, message: String(describing: error))
        }
        try worker.idle()
      }
    }
    var ready = ByteWriter()
    ready.append(Cluster.hostName)
    ready.append(Int(getpid()))
    try communicator.post(ready.bytes, to: 0, tag: Tag.ready.rawValue)

    while true {
      switch try worker.next() {
      case .stop: return
      case .start: throw worker.unexpected("a second start")
      case .job(let attempt, let job):
        let running = Background { try execute(job) }
        guard let result = try worker.wait(for: running) else { return }
        var writer = ByteWriter()
        writer.append(attempt)
        switch result {
        case .success(let bytes):
          writer.appendRemainder(bytes)
          try communicator.post(writer.bytes, to: 0, tag: Tag.done.rawValue)
        case .failure(let error):
          writer.append(String(describing: error))
          try communicator.post(writer.bytes, to: 0, tag: Tag.failed.rawValue)
        }
      case nil: try worker.idle()
      }
    }
  }

  /// Message tags of the farm's protocol.
  enum Tag: Int {
    /// 0 -> worker: the start payload.
    case start = 1
    /// worker -> 0: host and process id; the worker is ready for jobs.
    case ready
    /// 0 -> worker: attempt, job id, payload.
    case job
    /// worker -> 0: attempt, result.
    case done
    /// worker -> 0: attempt (0 while opening), error text.
    case failed
    /// worker -> 0: alive.
    case heartbeat
    /// 0 -> worker: alive.
    case ping
    /// 0 -> worker: 0 (the work is done) or 1, rank, job, error text (stopped by a failure).
    case stop
  }
}

/// Work on its own thread, so that the rank's main thread keeps talking to the other ranks.
final class Background<Value: Sendable>: Sendable {
  private let outcome = Mutex<Result<Value, any Error>?>(nil)

  init(_ body: @escaping @Sendable () throws -> Value) {
    let thread = Thread { [self] in
      let result = Result { try body() }
      outcome.withLock { $0 = result }
    }
    thread.stackSize = 16 << 20
    thread.start()
  }

  /// The outcome once the work has finished.
  var result: Result<Value, any Error>? { outcome.withLock { $0 } }
}

/// A worker's side of the protocol: messages from rank 0, heartbeats, and waiting.
private struct FarmWorker {
  enum Order {
    case start([UInt8])
    case job(attempt: Int, FarmJob)
    /// The work is done (a stop for a failure throws instead).
    case stop
  }

  let farm: JobFarm
  var lastFromLeader = ContinuousClock.now
  var lastBeat = ContinuousClock.now
  var backoff = Backoff(timeout: nil, cap: .milliseconds(5))

  init(farm: JobFarm) { self.farm = farm }

  var comm: Communicator { farm.communicator }

  func unexpected(_ what: String) -> ClusterError {
    .malformedMessage(rank: 0, tag: 0, reason: "rank 0 sent \(what)")
  }

  /// The next order from rank 0 (pings are taken here), or nil.
  ///
  /// - Throws: ``ClusterError/rankFailed(rank:job:message:)`` for a stop after a failure,
  ///   ``ClusterError/leaderLost(rank:seconds:)`` when rank 0 has been silent too long.
  mutating func next() throws -> Order? {
    while let message = try comm.poll(from: 0) {
      lastFromLeader = .now
      backoff.reset()
      var reader = ByteReader(message)
      switch JobFarm.Tag(rawValue: message.tag) {
      case .ping: continue
      case .start: return .start(reader.remainder())
      case .job:
        let attempt = try reader.int()
        return .job(attempt: attempt, FarmJob(id: try reader.string(), payload: reader.remainder()))
      case .stop:
        try StopMessage.decode(&reader)
        return .stop
      default:
        throw ClusterError.malformedMessage(
          rank: 0, tag: message.tag, reason: "not a message for a worker")
      }
    }
    let silent = ContinuousClock.now - lastFromLeader
    if silent > farm.options.timeout {
      throw ClusterError.leaderLost(rank: comm.rank, seconds: silent.seconds)
    }
    return nil
  }

  /// Sends a heartbeat when one is due, moves sends along, and sleeps a little.
  mutating func idle() throws {
    if ContinuousClock.now - lastBeat >= farm.options.heartbeat {
      lastBeat = .now
      try comm.post([], to: 0, tag: JobFarm.Tag.heartbeat.rawValue)
    }
    try comm.progressSends()
    _ = backoff.pause()
  }

  /// Waits for `work` while answering rank 0; nil if rank 0 said the work is done meanwhile.
  mutating func wait<Value>(for work: Background<Value>) throws -> Result<Value, any Error>? {
    while true {
      if let result = work.result { return result }
      switch try next() {
      case .stop: return nil
      case .start, .job: throw unexpected("an order to a busy rank")
      case nil: try idle()
      }
    }
  }
}

/// Rank 0's bookkeeping while a farm runs.
private struct Leader {
  enum WorkerState {
    case opening, idle
    case busy(job: Int, attempt: Int, since: ContinuousClock.Instant)
    case lost
  }
  struct Worker {
    var state: WorkerState = .opening
    var lastHeard = ContinuousClock.now
    var host = ""
    var processID = 0
  }

  let farm: JobFarm
  let jobs: [FarmJob]
  let execute: JobFarm.Executor
  let event: (FarmEvent) -> Void
  var done: Set<String>
  var running: [Int: Int] = [:]  // job index -> rank
  var lostAttempts: [Int: Int] = [:]
  var workers: [Int: Worker] = [:]
  var local: (job: Int, attempt: Int, since: ContinuousClock.Instant, thread: Background<[UInt8]>)?
  var nextAttempt = 1

  var comm: Communicator { farm.communicator }
  var options: FarmOptions { farm.options }

  init(
    farm: JobFarm, jobs: [FarmJob], completed: Set<String>, execute: @escaping JobFarm.Executor,
    event: @escaping (FarmEvent) -> Void
  ) {
    self.farm = farm
    self.jobs = jobs
    self.execute = execute
    self.event = event
    self.done = completed
    for rank in 1..<max(1, farm.communicator.size) { workers[rank] = Worker() }
  }

  func validate() throws {
    let ids = Set(jobs.map(\.id))
    precondition(ids.count == jobs.count, "job ids must be unique")
    let missing = jobs.filter { job in
      job.dependencies.contains { !ids.contains($0) && !done.contains($0) }
    }
    if !missing.isEmpty {
      throw ClusterError.unsatisfiableJobs(
        blocked: missing.map(\.id), reason: "a dependency is not a job of the graph")
    }
  }

  mutating func open(_ start: [UInt8]) throws {
    for rank in workers.keys.sorted() {
      try comm.post(start, to: rank, tag: JobFarm.Tag.start.rawValue)
    }
  }

  func isReady(_ index: Int) -> Bool {
    let job = jobs[index]
    return !done.contains(job.id) && running[index] == nil
      && job.dependencies.allSatisfy { done.contains($0) }
  }

  mutating func loop(complete: (FarmJob, [UInt8]) throws -> Void) throws {
    var wait = Backoff(timeout: nil, cap: .milliseconds(5))
    var lastPing = ContinuousClock.now
    while jobs.contains(where: { !done.contains($0.id) }) {
      var active = false
      // Messages from the workers.
      while let message = try comm.poll() {
        active = true
        try handle(message, complete: complete)
      }
      // Rank 0's own job.
      if let running = local, let result = running.thread.result {
        active = true
        local = nil
        self.running[running.job] = nil
        switch result {
        case .success(let bytes):
          try finish(running.job, rank: 0, since: running.since, result: bytes, complete: complete)
        case .failure(let error):
          throw ClusterError.rankFailed(
            rank: 0, job: jobs[running.job].id, message: String(describing: error))
        }
      }
      try checkTimeouts()
      active = try assign() || active
      if ContinuousClock.now - lastPing >= options.heartbeat {
        lastPing = .now
        for (rank, worker) in workers where !worker.isLost {
          try comm.post([], to: rank, tag: JobFarm.Tag.ping.rawValue)
        }
      }
      try comm.progressSends()
      let blocked = jobs.filter { !done.contains($0.id) }
      if !options.leaderRunsJobs, !blocked.isEmpty, workers.values.allSatisfy(\.isLost) {
        throw ClusterError.noRanksLeft(pending: blocked.count)
      }
      if !blocked.isEmpty, running.isEmpty, local == nil,
        !jobs.indices.contains(where: isReady)
      {
        throw ClusterError.unsatisfiableJobs(
          blocked: blocked.map(\.id), reason: "the dependencies form a cycle")
      }
      if active { wait.reset() } else { _ = wait.pause() }
    }
  }

  mutating func handle(_ message: Message, complete: (FarmJob, [UInt8]) throws -> Void) throws {
    let rank = message.source
    guard var worker = workers[rank] else { return }
    guard !worker.isLost else { return }  // a lost rank stays lost; its answers are ignored
    worker.lastHeard = .now
    defer { workers[rank] = worker }
    guard let tag = JobFarm.Tag(rawValue: message.tag) else {
      throw ClusterError.malformedMessage(rank: rank, tag: message.tag, reason: "unknown tag")
    }
    var reader = ByteReader(message)
    switch tag {
    case .heartbeat: break
    case .ready:
      worker.host = try reader.string()
      worker.processID = try reader.int()
      worker.state = .idle
      event(.joined(rank: rank, host: worker.host, processID: worker.processID))
    case .done:
      let attempt = try reader.int()
      guard case .busy(let index, attempt, let since) = worker.state else { return }
      worker.state = .idle
      running[index] = nil
      workers[rank] = worker
      try finish(index, rank: rank, since: since, result: reader.remainder(), complete: complete)
    case .failed:
      let attempt = try reader.int()
      let text = try reader.string()
      if attempt == 0 { throw ClusterError.rankFailed(rank: rank, job: nil, message: text) }
      guard case .busy(let index, attempt, _) = worker.state else { return }
      throw ClusterError.rankFailed(rank: rank, job: jobs[index].id, message: text)
    default:
      throw ClusterError.malformedMessage(rank: rank, tag: tag.rawValue, reason: "not for rank 0")
    }
  }

  mutating func finish(
    _ index: Int, rank: Int, since: ContinuousClock.Instant, result: [UInt8],
    complete: (FarmJob, [UInt8]) throws -> Void
  ) throws {
    let job = jobs[index]
    guard !done.contains(job.id) else { return }
    try complete(job, result)
    done.insert(job.id)
    event(.finished(job: job.id, rank: rank, seconds: (ContinuousClock.now - since).seconds))
  }

  mutating func checkTimeouts() throws {
    let now = ContinuousClock.now
    for rank in workers.keys.sorted() {
      guard var worker = workers[rank], !worker.isLost,
        now - worker.lastHeard > options.timeout
      else { continue }
      var lostJob: String?
      if case .busy(let index, _, _) = worker.state {
        running[index] = nil
        lostJob = jobs[index].id
        lostAttempts[index, default: 0] += 1
        if lostAttempts[index, default: 0] >= options.attempts {
          throw ClusterError.jobLostTooOften(job: jobs[index].id, attempts: options.attempts)
        }
      }
      worker.state = .lost
      workers[rank] = worker
      event(.lost(rank: rank, job: lostJob, silentSeconds: (now - worker.lastHeard).seconds))
    }
  }

  /// Hands ready jobs to idle ranks (workers by rank, then rank 0); true if any started.
  mutating func assign() throws -> Bool {
    var started = false
    var candidates = jobs.indices.filter(isReady).makeIterator()
    for rank in workers.keys.sorted() {
      guard case .idle = workers[rank]?.state else { continue }
      guard let index = candidates.next() else { return started }
      let attempt = nextAttempt
      nextAttempt += 1
      var writer = ByteWriter()
      writer.append(attempt)
      writer.append(jobs[index].id)
      writer.appendRemainder(jobs[index].payload)
      try comm.post(writer.bytes, to: rank, tag: JobFarm.Tag.job.rawValue)
      workers[rank]?.state = .busy(job: index, attempt: attempt, since: .now)
      running[index] = rank
      event(.started(job: jobs[index].id, rank: rank, attempt: attempt))
      started = true
    }
    if options.leaderRunsJobs, local == nil, let index = candidates.next() {
      let attempt = nextAttempt
      nextAttempt += 1
      let job = jobs[index]
      local = (index, attempt, .now, Background { [execute] in try execute(job) })
      running[index] = 0
      event(.started(job: jobs[index].id, rank: 0, attempt: attempt))
      started = true
    }
    return started
  }

  /// Tells every worker to stop (the work is done, or `failure` stopped it), waits briefly
  /// for the messages to leave, and kills lost ranks of this host that are still alive (a
  /// stopped process would keep `mpirun` from finishing).
  mutating func stopAll(failure: (any Error)?) {
    let stop = StopMessage.encode(failure, rank: 0)
    for rank in workers.keys.sorted() {
      _ = try? comm.post(stop, to: rank, tag: JobFarm.Tag.stop.rawValue)
    }
    // Messages to live ranks leave at once; give them up to 2 s (a dead rank takes nothing).
    var wait = Backoff(timeout: .seconds(2))
    while (try? comm.progressSends()) ?? 0 > 0, wait.pause() {}
    let host = Cluster.hostName
    for rank in workers.keys.sorted() {
      guard let worker = workers[rank], worker.isLost, worker.host == host,
        worker.processID > 0, isSibling(worker.processID)
      else { continue }
      kill(pid_t(worker.processID), SIGKILL)
      event(.killedLost(rank: rank, processID: worker.processID))
    }
  }

  /// Whether `processID` is a rank started by the same launcher as this process (the same
  /// parent), so that a recycled process id is never killed.
  func isSibling(_ processID: Int) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(processID)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return false }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 2, let parent = Int(fields[1]) else { return false }
    return parent == Int(getppid())
  }
}

extension Leader.Worker {
  var isLost: Bool { if case .lost = state { true } else { false } }
}

/// The message that ends a farm's or a group's work: 0 (the work is done), or 1, the rank
/// that failed, its job ("" for none) and its error text.
enum StopMessage {
  /// `failure` nil: done; else the failure, naming its rank (`rank` if it names none).
  static func encode(_ failure: (any Error)?, rank: Int) -> [UInt8] {
    var writer = ByteWriter()
    guard let failure else {
      writer.append(UInt8(0))
      return writer.bytes
    }
    writer.append(UInt8(1))
    if case .rankFailed(let failed, let job, let message) = failure as? ClusterError {
      writer.append(failed)
      writer.append(job ?? "")
      writer.append(message)
    } else {
      writer.append(rank)
      writer.append("")
      writer.append(String(describing: failure))
    }
    return writer.bytes
  }

  /// Returns for a stop after the work is done; throws the failure of a stop after one
  /// (``ClusterError/rankFailed(rank:job:message:)``).
  static func decode(_ reader: inout ByteReader) throws {
    guard try reader.uint8() != 0 else { return }
    let rank = try reader.int()
    let job = try reader.string()
    throw ClusterError.rankFailed(
      rank: rank, job: job.isEmpty ? nil : job, message: try reader.string())
  }
}
