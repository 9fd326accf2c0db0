import CMPI
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A message as received: who sent it, its tag, and its bytes.
public struct Message: Sendable, Equatable {
  public var source: Int
  public var tag: Int
  public var bytes: [UInt8]
}

/// The process's ranks: MPI's world when started by `mpirun`, else a single process.
///
/// The single-process tool never touches MPI: ``world()`` initializes MPI only when a launcher
/// started the process (``isLaunchedByMPI``), so `atso-transfer` runs without `mpirun` although
/// it links Open MPI.
public enum Cluster {
  /// True when an MPI launcher started this process: Open MPI's `mpirun` sets
  /// `OMPI_COMM_WORLD_SIZE`, PMIx launchers (Slurm's `srun --mpi=pmix`) set `PMIX_RANK`.
  public static var isLaunchedByMPI: Bool {
    let environment = ProcessInfo.processInfo.environment
    return environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil
  }

  /// True when `mpirun --enable-recovery` keeps the other ranks alive when one dies (Open MPI
  /// passes it as `OMPI_MCA_orte_enable_recovery`). Without it, a dead rank ends the whole job.
  public static var isRecoveryEnabled: Bool {
    let value = ProcessInfo.processInfo.environment["OMPI_MCA_orte_enable_recovery"]
    return value == "1" || value == "true"
  }

  private static let state = Mutex<Communicator?>(nil)

  /// Every rank started together: MPI's `MPI_COMM_WORLD` when ``isLaunchedByMPI`` (MPI is
  /// initialized on the first call, with `MPI_THREAD_MULTIPLE` and errors returned, not
  /// fatal), else a communicator of one rank that never calls MPI.
  ///
  /// - Throws: ``ClusterError/mpi(call:code:message:)`` if MPI cannot be initialized.
  public static func world() throws -> Communicator {
    try state.withLock { world in
      if let world { return world }
      let created = isLaunchedByMPI ? try Communicator.initializeMPI() : Communicator.single
      world = created
      return created
    }
  }

  /// Finalizes MPI if ``world()`` initialized it. Every rank calls it once before exiting
  /// (Open MPI's `MPI_Finalize` waits for all ranks that are still alive).
  ///
  /// `MPI_Finalize` is a collective of the launcher (a PMIx fence over the job's processes):
  /// after a rank died under `mpirun --enable-recovery`, Open MPI 4.1 sometimes waits for that
  /// rank forever (4 runs of 18 of the test that kills a rank, on a crowded machine, with a
  /// "PMIX ERROR: BAD-PARAM" from the launcher). The work is done by then, so under
  /// ``isRecoveryEnabled``, if it has not returned within `timeout`, the process says so on
  /// standard error and ends with `exitCode` rather than staying alive (`mpirun` then ended
  /// with status 0). Without recovery a dead rank ends the whole job, and a rank that exits
  /// unfinalized would make `mpirun` kill the others (rank 0 may still be validating), so
  /// there is no deadline.
  public static func finalize(exitCode: Int32 = 0, timeout: Duration = .seconds(30)) {
    state.withLock { world in
      guard let world, world.handle != nil else { return }
      world.releaseSends()
      var finalized: Int32 = 0
      MPI_Finalized(&finalized)
      guard finalized == 0 else { return }
      guard isRecoveryEnabled else {
        MPI_Finalize()
        return
      }
      let label = "[rank \(world.rank)/\(world.size)] "
      let watchdog = Thread {
        Thread.sleep(forTimeInterval: timeout.seconds)
        let line = label + "MPI_Finalize did not return within \(Int(timeout.seconds)) s "
          + "(waiting for a rank that died?); exiting with status \(exitCode)\n"
        FileHandle.standardError.write(Data(line.utf8))
        _exit(exitCode)
      }
      watchdog.name = "atso.finalize-watchdog"
      watchdog.start()
      MPI_Finalize()
    }
  }

  /// This host's name (`gethostname`).
  public static var hostName: String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// A group of ranks that exchange byte messages: an MPI communicator, or a single process.
///
/// Thread rules: MPI is initialized with `MPI_THREAD_MULTIPLE`, so any thread may use a
/// communicator, but one communicator should be used by one thread at a time (the messages of
/// two threads on one communicator would be matched in any order). Use ``duplicate()`` for a
/// second stream of messages, e.g. data-parallel collectives beside job-farm control.
///
/// Messages are sent without blocking: ``post(_:to:tag:)`` copies the bytes and returns;
/// ``progressSends()`` releases the delivered ones. Waiting (``receive(from:tag:timeout:)``)
/// polls with growing sleeps instead of MPI's busy wait, so an idle rank leaves its core to the
/// computing threads.
public final class Communicator: @unchecked Sendable {
  /// This process's rank, `0..<size`.
  public let rank: Int
  /// The number of ranks.
  public let size: Int
  /// The MPI communicator; nil for a single process.
  let handle: MPI_Comm?
  private let pending = Mutex(PendingSends())

  private init(rank: Int, size: Int, handle: MPI_Comm?) {
    self.rank = rank
    self.size = size
    self.handle = handle
  }

  deinit {
    guard let handle, handle != cmpi_comm_world() else { return }
    var finalized: Int32 = 0
    MPI_Finalized(&finalized)
    var freed: MPI_Comm? = handle
    if finalized == 0 { MPI_Comm_free(&freed) }
  }

  /// One rank, no MPI.
  static let single = Communicator(rank: 0, size: 1, handle: nil)

  static func initializeMPI() throws -> Communicator {
    var provided: Int32 = 0
    try check(
      MPI_Init_thread(nil, nil, Int32(MPI_THREAD_MULTIPLE), &provided), "MPI_Init_thread")
    guard provided >= Int32(MPI_THREAD_MULTIPLE) else {
      throw ClusterError.mpi(
        call: "MPI_Init_thread", code: Int(provided),
        message: "this MPI library does not provide MPI_THREAD_MULTIPLE")
    }
    let world = cmpi_comm_world()
    try check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler")
    var rank: Int32 = 0
    var size: Int32 = 0
    try check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
    try check(MPI_Comm_size(world, &size), "MPI_Comm_size")
    return Communicator(rank: Int(rank), size: Int(size), handle: world)
  }

  /// True for a communicator of one process that never calls MPI.
  public var isSingleProcess: Bool { handle == nil }

  /// A communicator over the same ranks whose messages never match this one's. Collective:
  /// every rank calls it, in the same order.
  public func duplicate() throws -> Communicator {
    guard let handle else { return Communicator(rank: 0, size: 1, handle: nil) }
    var copy: MPI_Comm? = cmpi_comm_null()
    try Self.check(MPI_Comm_dup(handle, &copy), "MPI_Comm_dup")
    try Self.check(MPI_Comm_set_errhandler(copy, cmpi_errors_return()), "MPI_Comm_set_errhandler")
    return Communicator(rank: rank, size: size, handle: copy)
  }

  /// Splits the ranks into groups: ranks that pass the same `group` form one communicator, in
  /// which they are ordered by `key` (then by rank). Collective: every rank calls it.
  public func split(group: Int, key: Int) throws -> Communicator {
    guard let handle else { return Communicator(rank: 0, size: 1, handle: nil) }
    var part: MPI_Comm? = cmpi_comm_null()
    try Self.check(MPI_Comm_split(handle, Int32(group), Int32(key), &part), "MPI_Comm_split")
    try Self.check(MPI_Comm_set_errhandler(part, cmpi_errors_return()), "MPI_Comm_set_errhandler")
    var rank: Int32 = 0
    var size: Int32 = 0
    try Self.check(MPI_Comm_rank(part, &rank), "MPI_Comm_rank")
    try Self.check(MPI_Comm_size(part, &size), "MPI_Comm_size")
    return Communicator(rank: Int(rank), size: Int(size), handle: part)
  }

  // MARK: Sending

  /// Starts sending `bytes` to `destination` and returns at once; the bytes are copied and
  /// kept until MPI has delivered them (see ``progressSends()``). Returns the send's number.
  ///
  /// - Precondition: more than one rank; `destination` is another rank; fewer than 2 GiB.
  @discardableResult
  public func post(_ bytes: [UInt8], to destination: Int, tag: Int) throws -> Int {
    try post(count: bytes.count, to: destination, tag: tag) { buffer in
      bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }
  }

  /// ``post(_:to:tag:)`` of a message of `count` bytes that `fill` writes, every one of them,
  /// into the send buffer (so that large payloads are copied once).
  @discardableResult
  func post(
    count: Int, to destination: Int, tag: Int, fill: (UnsafeMutableRawBufferPointer) -> Void
  ) throws -> Int {
    guard let handle else { preconditionFailure("no other rank to send to in a single process") }
    precondition(destination != rank && (0..<size).contains(destination), "bad rank \(destination)")
    precondition(count <= Int(Int32.max), "a message holds at most 2 GiB")
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
    fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
    var request: MPI_Request? = cmpi_request_null()
    let code = MPI_Isend(
      buffer.baseAddress, Int32(count), cmpi_byte(), Int32(destination), Int32(tag), handle,
      &request)
    guard code == MPI_SUCCESS else {
      buffer.deallocate()
      throw Self.error(code, "MPI_Isend to rank \(destination)")
    }
    return pending.withLock { $0.add(request: request, buffer: buffer, destination: destination) }
  }

  /// Tests the sends in flight and releases the delivered ones; returns how many remain.
  @discardableResult
  public func progressSends() throws -> Int {
    try pending.withLock { sends in
      var failure: (Int32, Int)?
      sends.items.removeAll { item in
        var request = item.request
        var flag: Int32 = 0
        let code = MPI_Test(&request, &flag, cmpi_status_ignore())
        if code != MPI_SUCCESS {
          failure = failure ?? (code, item.destination)
          return false
        }
        guard flag != 0 else { return false }
        item.buffer.deallocate()
        return true
      }
      if let (code, destination) = failure {
        throw Self.error(code, "MPI_Test of a send to rank \(destination)")
      }
      return sends.items.count
    }
  }

  /// Whether the send that ``post(_:to:tag:)`` numbered `id` is still in flight.
  func isPending(_ id: Int) -> Bool { pending.withLock { $0.items.contains { $0.id == id } } }

  /// Sends `bytes` and waits until MPI has delivered them (polling).
  ///
  /// - Throws: ``ClusterError/timedOut(rank:operation:seconds:)`` after `timeout`.
  public func send(
    _ bytes: [UInt8], to destination: Int, tag: Int, timeout: Duration? = nil
  ) throws {
    let id = try post(bytes, to: destination, tag: tag)
    var wait = Backoff(timeout: timeout)
    while true {
      try progressSends()
      guard isPending(id) else { return }
      guard wait.pause() else {
        throw ClusterError.timedOut(
          rank: destination, operation: "send", seconds: wait.elapsedSeconds)
      }
    }
  }

  /// Gives up on the sends in flight before MPI is finalized: their buffers stay allocated,
  /// since a dead rank never takes them and MPI may still read them.
  func releaseSends() {
    pending.withLock { sends in
      for item in sends.items {
        var request = item.request
        MPI_Request_free(&request)
      }
      sends.items.removeAll()
    }
  }

  // MARK: Receiving

  /// The next message from `source` (any rank if nil) with `tag` (any if nil) that has
  /// arrived, or nil.
  public func poll(from source: Int? = nil, tag: Int? = nil) throws -> Message? {
    guard let handle else { return nil }
    var flag: Int32 = 0
    var message: MPI_Message? = cmpi_message_null()
    var status = MPI_Status()
    try Self.check(
      MPI_Improbe(
        Int32(source ?? Int(MPI_ANY_SOURCE)), Int32(tag ?? Int(MPI_ANY_TAG)), handle, &flag,
        &message, &status),
      "MPI_Improbe")
    guard flag != 0 else { return nil }
    var count: Int32 = 0
    try Self.check(MPI_Get_count(&status, cmpi_byte(), &count), "MPI_Get_count")
    var code: Int32 = MPI_SUCCESS
    let bytes = [UInt8](unsafeUninitializedCapacity: Int(count)) { buffer, initialized in
      code = MPI_Mrecv(buffer.baseAddress, count, cmpi_byte(), &message, cmpi_status_ignore())
      initialized = Int(count)
    }
    try Self.check(code, "MPI_Mrecv from rank \(status.MPI_SOURCE)")
    return Message(source: Int(status.MPI_SOURCE), tag: Int(status.MPI_TAG), bytes: bytes)
  }

  /// Waits for a message from `source` (any rank if nil) with `tag` (any if nil).
  ///
  /// - Throws: ``ClusterError/timedOut(rank:operation:seconds:)`` after `timeout`.
  /// - Precondition: more than one rank.
  public func receive(
    from source: Int? = nil, tag: Int? = nil, timeout: Duration? = nil
  ) throws -> Message {
    try receive(from: source, tag: tag, timeout: timeout, spin: .microseconds(200))
  }

  /// ``receive(from:tag:timeout:)`` that polls without sleeping for `spin` first: large
  /// messages move in fragments that need both sides to call MPI often.
  func receive(
    from source: Int?, tag: Int?, timeout: Duration?, spin: Duration
  ) throws -> Message {
    precondition(handle != nil, "no other rank to receive from in a single process")
    var wait = Backoff(timeout: timeout, spin: spin)
    while true {
      if let message = try poll(from: source, tag: tag) { return message }
      try progressSends()
      guard wait.pause() else {
        throw ClusterError.timedOut(
          rank: source ?? -1, operation: "receive", seconds: wait.elapsedSeconds)
      }
    }
  }

  // MARK: MPI errors

  static func check(_ code: Int32, _ call: String) throws {
    guard code != MPI_SUCCESS else { return }
    throw error(code, call)
  }

  static func error(_ code: Int32, _ call: String) -> ClusterError {
    var buffer = [CChar](repeating: 0, count: 1024)
    var length: Int32 = 0
    MPI_Error_string(code, &buffer, &length)
    let text = String(
      decoding: buffer.prefix(Int(max(0, length))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return .mpi(call: call, code: Int(code), message: text)
  }

  private func check(_ code: Int32, _ call: String) throws { try Self.check(code, call) }
}

/// Sends in flight: MPI reads each buffer until the request completes. Only touched under the
/// communicator's lock.
private struct PendingSends: @unchecked Sendable {
  struct Item {
    var id: Int
    var request: MPI_Request?
    var buffer: UnsafeMutableRawBufferPointer
    var destination: Int
  }
  var items: [Item] = []
  var nextID = 0

  mutating func add(
    request: MPI_Request?, buffer: UnsafeMutableRawBufferPointer, destination: Int
  ) -> Int {
    nextID += 1
    items.append(Item(id: nextID, request: request, buffer: buffer, destination: destination))
    return nextID
  }
}

/// Waits between polls: yields the processor for the first `spin` (a reply that comes quickly
/// is taken within microseconds), then sleeps 20 µs, doubling up to `cap`, so that a long wait
/// costs no CPU.
struct Backoff {
  private var start = ContinuousClock.now
  private var since = ContinuousClock.now
  private let timeout: Duration?
  private let cap: Duration
  private let spin: Duration
  private var step: Duration = .microseconds(20)

  init(
    timeout: Duration?, cap: Duration = .microseconds(500), spin: Duration = .microseconds(200)
  ) {
    self.timeout = timeout
    self.cap = cap
    self.spin = spin
  }

  var elapsed: Duration { ContinuousClock.now - start }
  var elapsedSeconds: Double { elapsed.seconds }

  /// Waits one step; false when the timeout has passed (then it does not wait).
  mutating func pause() -> Bool {
    let now = ContinuousClock.now
    if let timeout, now - start >= timeout { return false }
    if now - since < spin {
      sched_yield()
      return true
    }
    let components = step.components
    var request = timespec(
      tv_sec: Int(components.seconds), tv_nsec: Int(components.attoseconds / 1_000_000_000))
    nanosleep(&request, nil)
    step = min(step * 2, cap)
    return true
  }

  /// After activity: the next waits spin again.
  mutating func reset() {
    since = .now
    step = .microseconds(20)
  }
}

extension Duration {
  /// The duration in seconds.
  var seconds: Double {
    Double(components.seconds) + Double(components.attoseconds) / 1e18
  }
}
