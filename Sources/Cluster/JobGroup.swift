import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The ranks that run one job together (`transfer --ranks-per-job R`): the group's rank 0 is
/// its leader, which takes jobs from the farm (``JobFarm``) and orders the other ranks, its
/// members, to join a job's data-parallel training; the members never talk to the farm.
///
/// Two communicators over the group's ranks: `control` carries the leader's orders (start,
/// a job, stop) and its pings; `collectives` carries the sums of the jobs' training.
///
/// Faults: members take the leader for lost after ``FarmOptions/timeout`` without a ping
/// (the leader pings every ``FarmOptions/heartbeat`` from a thread of its own) and stop with
/// ``ClusterError/leaderLost(rank:seconds:)``. A member that dies makes the leader's next sum
/// time out after as long, which fails the job (and so the run; resume it).
public final class JobGroup: Sendable {
  /// Orders and pings, leader to members.
  public let control: Communicator
  /// The collectives of data-parallel training inside a job.
  public let collectives: Communicator
  /// The world rank of the group's rank 0 (the group's ranks are consecutive world ranks).
  public let firstWorldRank: Int
  public let options: FarmOptions
  private let pinging = Mutex(false)

  /// Splits `world` into groups of `size` consecutive ranks (collective: every rank calls it).
  ///
  /// - Precondition: `size` divides `world.size`.
  public init(world: Communicator, size: Int, options: FarmOptions) throws {
    precondition(size >= 1 && world.size % size == 0, "\(size) does not divide \(world.size)")
    let group = try world.split(group: world.rank / size, key: world.rank)
    control = try group.duplicate()
    collectives = try group.duplicate()
    firstWorldRank = world.rank - group.rank
    self.options = options
  }

  /// True on the group's leader (its rank 0).
  public var isLeader: Bool { control.rank == 0 }

  /// The world rank of the group's rank `rank`.
  public func worldRank(_ rank: Int) -> Int { firstWorldRank + rank }

  enum Tag: Int {
    /// leader -> members: the start payload (what to open).
    case start = 0x7e10
    /// leader -> members: a job's id; the members join its training.
    case job
    /// leader -> members: alive.
    case ping
    /// leader -> members: 0 (done) or 1, world rank, job, error text (stopped by a failure).
    case stop
    /// member -> leader: alive, still opening the work.
    case opening
    /// member -> leader: opened (or failed to; the failure comes with its first job).
    case ready
  }

  private let readiness = Mutex(false)

  // MARK: Leader

  /// Leader: sends `payload` to every member and starts pinging them.
  public func start(_ payload: [UInt8]) throws {
    precondition(isLeader, "the group's leader starts it")
    for member in 1..<control.size {
      try control.post(payload, to: member, tag: Tag.start.rawValue)
    }
    let begin = pinging.withLock { running in
      defer { running = true }
      return !running && control.size > 1
    }
    guard begin else { return }
    let thread = Thread { [self] in
      // Pings under the flag's lock: none leaves after ``stop(failure:)`` has returned.
      while pinging.withLock({ running in
        guard running else { return false }
        for member in 1..<control.size {
          _ = try? control.post([], to: member, tag: Tag.ping.rawValue)
        }
        _ = try? control.progressSends()
        return true
      }) {
        Thread.sleep(forTimeInterval: options.heartbeat.seconds)
      }
    }
    thread.name = "atso.group-ping"
    thread.start()
  }

  /// Leader: orders every member to join the training of `job`. The first order waits until
  /// every member has opened the work (members say they are alive meanwhile).
  ///
  /// - Throws: ``ClusterError/timedOut(rank:operation:seconds:)`` if a member was silent for
  ///   ``FarmOptions/timeout`` while opening.
  public func order(job: String) throws {
    precondition(isLeader, "the group's leader orders")
    try waitUntilReady()
    for member in 1..<control.size {
      try control.post(Array(job.utf8), to: member, tag: Tag.job.rawValue)
    }
  }

  private func waitUntilReady() throws {
    guard !readiness.withLock({ $0 }) else { return }
    var heard = [ContinuousClock.Instant](repeating: .now, count: control.size)
    var ready = Set([0])
    var wait = Backoff(timeout: nil, cap: .milliseconds(5))
    while ready.count < control.size {
      if let message = try control.poll(tag: nil) {
        heard[message.source] = .now
        if message.tag == Tag.ready.rawValue { ready.insert(message.source) }
        wait.reset()
        continue
      }
      for member in 1..<control.size where !ready.contains(member) {
        let silent = ContinuousClock.now - heard[member]
        if silent > options.timeout {
          throw ClusterError.timedOut(
            rank: worldRank(member), operation: "opening the run", seconds: silent.seconds)
        }
      }
      _ = wait.pause()
    }
    readiness.withLock { $0 = true }
  }

  /// Leader: tells every member that the work is done (`failure` nil) or was stopped by a
  /// failure, stops pinging and waits up to 2 s for the messages to leave.
  public func stop(failure: (any Error)?) {
    pinging.withLock { $0 = false }
    let stop = StopMessage.encode(failure, rank: firstWorldRank)
    for member in 1..<max(1, control.size) {
      _ = try? control.post(stop, to: member, tag: Tag.stop.rawValue)
    }
    var wait = Backoff(timeout: .seconds(2))
    while (try? control.progressSends()) ?? 0 > 0, wait.pause() {}
  }

  // MARK: Members

  /// A member: opens the work with the leader's start payload (`open`), then runs each job
  /// the leader orders with the executor `open` returned, on this thread, until the leader
  /// says stop. An error of `open` is kept and given to every job's executor instead of an
  /// executor (`failedOpening`), so that the leader learns it in the job's first collective.
  ///
  /// - Throws: ``ClusterError/rankFailed(rank:job:message:)`` when a failure stopped the run,
  ///   ``ClusterError/leaderLost(rank:seconds:)``.
  public func serve(
    open: @escaping @Sendable ([UInt8]) throws -> @Sendable (String) throws -> Void,
    failedOpening: (any Error, String) throws -> Void
  ) throws {
    precondition(!isLeader, "the leader takes jobs from the farm")
    var execute: (@Sendable (String) throws -> Void)?
    var openError: (any Error)?
    var lastFromLeader = ContinuousClock.now
    var wait = Backoff(timeout: nil, cap: .milliseconds(5))
    while true {
      guard let message = try control.poll(from: 0) else {
        let silent = ContinuousClock.now - lastFromLeader
        if silent > options.timeout {
          throw ClusterError.leaderLost(rank: worldRank(control.rank), seconds: silent.seconds)
        }
        try control.progressSends()
        _ = wait.pause()
        continue
      }
      lastFromLeader = .now
      wait.reset()
      var reader = ByteReader(message)
      switch Tag(rawValue: message.tag) {
      case .ping: continue
      case .start:
        // Opening runs on a second thread; this one tells the leader it is alive meanwhile.
        let payload = reader.remainder()
        let opening = Background { try open(payload) }
        var lastBeat = ContinuousClock.now
        var pause = Backoff(timeout: nil, cap: .milliseconds(5))
        while opening.result == nil {
          while let other = try control.poll(from: 0) {
            lastFromLeader = .now
            guard other.tag == Tag.ping.rawValue else {
              throw ClusterError.malformedMessage(
                rank: worldRank(0), tag: other.tag, reason: "an order while opening")
            }
          }
          if ContinuousClock.now - lastBeat >= options.heartbeat {
            lastBeat = .now
            try control.post([], to: 0, tag: Tag.opening.rawValue)
          }
          try control.progressSends()
          _ = pause.pause()
        }
        switch opening.result {
        case .success(let executor)?: execute = executor
        case .failure(let error)?: openError = error
        case nil: break
        }
        try control.post([], to: 0, tag: Tag.ready.rawValue)
      case .job:
        let job = String(decoding: reader.remainder(), as: UTF8.self)
        if let execute {
          try execute(job)
        } else {
          try failedOpening(
            openError ?? ClusterError.malformedMessage(
              rank: worldRank(0), tag: message.tag, reason: "a job before the start"), job)
        }
        lastFromLeader = .now
      case .stop:
        try StopMessage.decode(&reader)
        return
      case .opening, .ready, nil:
        throw ClusterError.malformedMessage(
          rank: worldRank(0), tag: message.tag, reason: "not a message for a group member")
      }
    }
  }
}
