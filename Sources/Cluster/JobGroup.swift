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
/// a job, stop) and its pings, and the members' heartbeats; `collectives` carries the sums of
/// the jobs' training.
///
/// Faults: members take the leader for lost after ``FarmOptions/timeout`` without a ping
/// and stop with ``ClusterError/leaderLost(rank:seconds:)``. Members send a heartbeat every
/// ``FarmOptions/heartbeat`` while they open the work or train (on a second thread); the
/// leader's thread of the group records them, so that after a failed training the leader can
/// tell a member that died (``lostMembers``) from an error.
public final class JobGroup: Sendable {
  /// Orders and pings, leader to members; heartbeats, members to leader.
  public let control: Communicator
  /// The collectives of data-parallel training inside a job.
  public let collectives: Communicator
  /// The world rank of the group's rank 0 (the group's ranks are consecutive world ranks).
  public let firstWorldRank: Int
  public let options: FarmOptions

  /// The leader's view of its members (touched by its group thread and the job thread).
  private struct Members {
    var running = false
    var heard: [ContinuousClock.Instant] = []
    var ready: Set<Int> = [0]
    var degraded = false
  }
  private let members = Mutex(Members())
  /// Reports lost members (``FarmEvent/groupMembersLost(leader:members:job:)``).
  private let event: @Sendable (FarmEvent) -> Void

  /// Splits `world` into groups of `size` consecutive ranks (collective: every rank calls it).
  ///
  /// - Precondition: `size` divides `world.size`.
  public init(
    world: Communicator, size: Int, options: FarmOptions,
    event: @escaping @Sendable (FarmEvent) -> Void = { _ in }
  ) throws {
    self.event = event
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
    /// leader -> members: ``StopMessage``.
    case stop
    /// member -> leader: alive (opening the work, training, or idle).
    case alive
    /// member -> leader: opened (or failed to; the failure comes with its first job).
    case ready
  }

  // MARK: Leader

  /// Leader: sends `payload` to every member and starts the group's thread, which pings the
  /// members every heartbeat and records their heartbeats.
  public func start(_ payload: [UInt8]) throws {
    precondition(isLeader, "the group's leader starts it")
    for member in 1..<control.size {
      try control.post(payload, to: member, tag: Tag.start.rawValue)
    }
    let begin = members.withLock { state in
      defer { state.running = true }
      state.heard = Array(repeating: .now, count: control.size)
      return !state.running && control.size > 1
    }
    guard begin else { return }
    let thread = Thread { [self] in
      var lastPing = ContinuousClock.now - options.heartbeat
      // Under the state's lock: nothing leaves after ``stop(failure:)`` has returned.
      while members.withLock({ state in
        guard state.running else { return false }
        while let message = try? control.poll() {
          state.heard[message.source] = .now
          if message.tag == Tag.ready.rawValue { state.ready.insert(message.source) }
        }
        if ContinuousClock.now - lastPing >= options.heartbeat {
          lastPing = .now
          for member in 1..<control.size {
            _ = try? control.post([], to: member, tag: Tag.ping.rawValue)
          }
        }
        _ = try? control.progressSends()
        return true
      }) {
        Thread.sleep(forTimeInterval: 0.005)
      }
    }
    thread.name = "atso.group"
    thread.start()
  }

  /// Leader: orders every member to join the training of `job`. The first order waits until
  /// every member has opened the work.
  ///
  /// - Throws: ``ClusterError/timedOut(rank:operation:seconds:)`` if a member was silent for
  ///   ``FarmOptions/timeout`` while opening.
  public func order(job: String) throws {
    precondition(isLeader, "the group's leader orders")
    while true {
      let (ready, lost) = members.withLock { state in
        (state.ready.count == control.size, lostMembers(state))
      }
      if ready { break }
      if let member = lost.first {
        throw ClusterError.timedOut(
          rank: member, operation: "opening the run", seconds: options.timeout.seconds)
      }
      Thread.sleep(forTimeInterval: 0.005)
    }
    for member in 1..<control.size {
      try control.post(Array(job.utf8), to: member, tag: Tag.job.rawValue)
    }
  }

  /// Leader: the world ranks of the members silent for longer than ``FarmOptions/timeout``
  /// (dead, or stopped).
  public var lostMembers: [Int] { members.withLock { lostMembers($0) } }

  private func lostMembers(_ state: Members) -> [Int] {
    let now = ContinuousClock.now
    return state.heard.indices.dropFirst().filter { now - state.heard[$0] > options.timeout }
      .map(worldRank)
  }

  /// Leader: whether a member was lost, so that the group's leader trains alone from now on.
  public var isDegraded: Bool { members.withLock { $0.degraded } }

  /// Leader: from now on the leader trains alone, since `lost` members were lost in `job`.
  public func degrade(lost: [Int], job: String) {
    members.withLock { $0.degraded = true }
    event(.groupMembersLost(leader: firstWorldRank, members: lost, job: job))
  }

  /// Leader: tells every member that the work is done (`failure` nil) or was stopped by a
  /// failure, stops the group's thread and waits up to 2 s for the messages to leave.
  public func stop(failure: (any Error)?) {
    members.withLock { $0.running = false }
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
    var lastBeat = ContinuousClock.now
    var wait = Backoff(timeout: nil, cap: .milliseconds(5))
    while true {
      guard let message = try control.poll(from: 0) else {
        let silent = ContinuousClock.now - lastFromLeader
        if silent > options.timeout {
          throw ClusterError.leaderLost(rank: worldRank(control.rank), seconds: silent.seconds)
        }
        if ContinuousClock.now - lastBeat >= options.heartbeat {
          lastBeat = .now
          try control.post([], to: 0, tag: Tag.alive.rawValue)
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
        let payload = reader.remainder()
        switch try whileAlive({ try open(payload) }, lastFromLeader: &lastFromLeader) {
        case .success(let executor): execute = executor
        case .failure(let error): openError = error
        }
        try control.post([], to: 0, tag: Tag.ready.rawValue)
      case .job:
        let job = String(decoding: reader.remainder(), as: UTF8.self)
        if let execute {
          try whileAlive({ try execute(job) }, lastFromLeader: &lastFromLeader).get()
        } else {
          try failedOpening(
            openError ?? ClusterError.malformedMessage(
              rank: worldRank(0), tag: message.tag, reason: "a job before the start"), job)
        }
        lastFromLeader = .now
      case .stop:
        try StopMessage.decode(&reader)
        return
      case .alive, .ready, nil:
        throw ClusterError.malformedMessage(
          rank: worldRank(0), tag: message.tag, reason: "not a message for a group member")
      }
    }
  }

  /// A member: runs `work` on a second thread while this one takes the leader's pings and
  /// sends heartbeats; an order meanwhile is a protocol error.
  private func whileAlive<Value: Sendable>(
    _ work: @escaping @Sendable () throws -> Value,
    lastFromLeader: inout ContinuousClock.Instant
  ) throws -> Result<Value, any Error> {
    let running = Background(work)
    var lastBeat = ContinuousClock.now - options.heartbeat
    var pause = Backoff(timeout: nil, cap: .milliseconds(5))
    while true {
      if let result = running.result { return result }
      while let other = try control.poll(from: 0) {
        lastFromLeader = .now
        guard other.tag == Tag.ping.rawValue else {
          throw ClusterError.malformedMessage(
            rank: worldRank(0), tag: other.tag, reason: "an order to a busy rank")
        }
      }
      if ContinuousClock.now - lastBeat >= options.heartbeat {
        lastBeat = .now
        try control.post([], to: 0, tag: Tag.alive.rawValue)
      }
      try control.progressSends()
      _ = pause.pause()
    }
  }
}
