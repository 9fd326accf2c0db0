/// Collectives (sum, broadcast, barrier) over a binomial tree of ranks in a fixed order.
///
/// Every collective is one reduction up the tree followed by a broadcast of the result down it.
/// Rank `r` first combines, in increasing order, the contributions of its children `r + 1`,
/// `r + 2`, `r + 4`, ... (every `r + m` with `m` a power of two below the lowest set bit of `r`,
/// any power of two for rank 0), always as `own + child`, then sends the result to its parent
/// `r - lowestBit(r)`. For four ranks the sum is `(g0 + g1) + (g2 + g3)`. The order is fixed by
/// the ranks alone, so a sum is the same, bit for bit, on every rank and in every run with the
/// same number of ranks, however the messages are timed. (A single process that adds up the
/// same numbers in another order can differ by rounding; the tree costs `log2(size)` message
/// steps, against `size` for summing at rank 0 in rank order.)
///
/// Each contribution carries a status: a rank that fails joins the collective the others are
/// in with its error instead of its numbers (``fail(_:)``); the failure travels up and down the
/// tree like a result, and every rank throws ``ClusterError/rankFailed(rank:job:message:)`` with
/// the failing rank's error (the lowest failing rank, if several). So one rank's failure stops
/// all ranks cleanly, each at its next collective.
extension Communicator {
  static let reduceTag = 0x7e01
  static let broadcastTag = 0x7e02
  /// How long a collective polls without sleeping (yielding the processor between polls),
  /// before it sleeps 20 µs, doubling up to 0.5 ms: long enough for the fragments of a large
  /// message, which need both sides polling, short enough not to take the processor from the
  /// other ranks' computing threads when they share it (20 ms of spinning made 2 ranks on a
  /// busy 2-core machine 10% slower than 1 ms; no spinning was about level with 1 ms).
  static let spin = Duration.milliseconds(1)

  /// The element-wise sum of `values` over all ranks, on every rank (see the ordering above).
  ///
  /// - Throws: ``ClusterError/rankFailed(rank:job:message:)`` if a rank failed (or
  ///   contributed a different number of values),
  ///   ``ClusterError/timedOut(rank:operation:seconds:)`` if a rank sent nothing for `timeout`.
  public func sum(_ values: [Float], timeout: Duration? = nil) throws -> [Float] {
    try sum(values, timeout: timeout) { total, other in
      total.withUnsafeMutableBufferPointer { t in
        other.withUnsafeBufferPointer { o in for i in t.indices { t[i] += o[i] } }
      }
    }
  }

  /// ``sum(_:timeout:)`` of `Double`s.
  public func sum(_ values: [Double], timeout: Duration? = nil) throws -> [Double] {
    try sum(values, timeout: timeout) { total, other in
      total.withUnsafeMutableBufferPointer { t in
        other.withUnsafeBufferPointer { o in for i in t.indices { t[i] += o[i] } }
      }
    }
  }

  private func sum<Scalar: BitwiseCopyable>(
    _ values: [Scalar], timeout: Duration?, add: (inout [Scalar], [Scalar]) -> Void
  ) throws -> [Scalar] {
    guard !isSingleProcess, size > 1 else { return values }
    return try collective(.values(values), operation: "sum", timeout: timeout) {
      total, other, rank in
      guard other.count == total.count else {
        return ClusterError.mismatchedReduction(
          rank: rank, expected: total.count, received: other.count
        ).description
      }
      add(&total, other)
      return nil
    }
  }

  /// Rank 0's `bytes` on every rank (the other ranks' `bytes` are ignored).
  public func broadcast(_ bytes: [UInt8], timeout: Duration? = nil) throws -> [UInt8] {
    guard !isSingleProcess, size > 1 else { return bytes }
    return try collective(
      .values(rank == 0 ? bytes : []), operation: "broadcast", timeout: timeout
    ) { _, _, _ in nil }
  }

  /// Returns when every rank has called it (or throws the failure of a rank that called
  /// ``fail(_:timeout:)``).
  public func barrier(timeout: Duration? = nil) throws {
    _ = try broadcast([], timeout: timeout)
  }

  /// Joins the collective that the other ranks are in (or will enter next) with `error`, so
  /// that each of them throws ``ClusterError/rankFailed(rank:job:message:)`` naming this rank;
  /// then throws the same here.
  public func fail(_ error: any Error, timeout: Duration? = nil) throws -> Never {
    guard !isSingleProcess, size > 1 else { throw error }
    let message = String(describing: error)
    _ = try collective(
      Partial<UInt8>.failure(rank: rank, message: message), operation: "fail", timeout: timeout
    ) { _, _, _ in nil }
    throw ClusterError.rankFailed(rank: rank, job: nil, message: message)  // not reached
  }

  /// One reduction up the tree and a broadcast of its result down (see the type's notes).
  /// `combine(&own, child, childRank)` adds a child's values to this rank's, or returns why
  /// it cannot (that becomes the child's failure).
  func collective<Scalar: BitwiseCopyable>(
    _ own: Partial<Scalar>, operation: String, timeout: Duration?,
    combine: (inout [Scalar], [Scalar], Int) -> String?
  ) throws -> [Scalar] {
    var accumulated = own
    var mask = 1
    while mask < size {
      if rank & mask != 0 {
        try accumulated.post(on: self, to: rank - mask, tag: Self.reduceTag)
        break
      }
      let child = rank + mask
      if child < size {
        let theirs = try Partial<Scalar>(
          receive(from: child, tag: Self.reduceTag, timeout: timeout, spin: Self.spin))
        switch (accumulated, theirs) {
        case (.failure, _): break
        case (.values, .failure): accumulated = theirs
        case (.values(var total), .values(let other)):
          accumulated = .values([])  // keeps `total` uniquely referenced while it is added to
          if let reason = combine(&total, other, child) {
            accumulated = .failure(rank: child, message: reason)
          } else {
            accumulated = .values(total)
          }
        }
      }
      mask <<= 1
    }
    // Down: rank 0 holds the result; every other rank receives it from its parent.
    let lowest = rank == 0 ? Int.max : rank & -rank
    let result =
      rank == 0
      ? accumulated
      : try Partial<Scalar>(
        receive(from: rank - lowest, tag: Self.broadcastTag, timeout: timeout, spin: Self.spin))
    var step = 1
    while step < size { step <<= 1 }
    while step >= 1 {
      if step < lowest, rank + step < size {
        try result.post(on: self, to: rank + step, tag: Self.broadcastTag)
      }
      step >>= 1
    }
    try progressSends()
    switch result {
    case .values(let values): return values
    case .failure(let rank, let message):
      throw ClusterError.rankFailed(rank: rank, job: nil, message: message)
    }
  }
}

/// What a rank holds during a collective: its values (or the sum of its subtree's), or the
/// failure that stops every rank.
///
/// On the wire: 8 header bytes (status 0 for values, 1 for a failure), then the raw values, or
/// the failing rank and its message.
enum Partial<Scalar: BitwiseCopyable> {
  case values([Scalar])
  case failure(rank: Int, message: String)

  static var headerBytes: Int { 8 }

  init(_ message: Message) throws {
    let bytes = message.bytes
    guard bytes.count >= Self.headerBytes else {
      throw ClusterError.malformedMessage(
        rank: message.source, tag: message.tag, reason: "\(bytes.count) bytes, no header")
    }
    switch bytes[0] {
    case 0:
      let stride = MemoryLayout<Scalar>.stride
      let count = (bytes.count - Self.headerBytes) / stride
      let values = [Scalar](unsafeUninitializedCapacity: count) { buffer, initialized in
        bytes.withUnsafeBytes { source in
          UnsafeMutableRawBufferPointer(buffer).copyMemory(
            from: UnsafeRawBufferPointer(
              rebasing: source[Self.headerBytes..<(Self.headerBytes + count * stride)]))
        }
        initialized = count
      }
      self = .values(values)
    case 1:
      var reader = ByteReader(
        bytes: Array(bytes[Self.headerBytes...]), source: message.source, tag: message.tag)
      self = .failure(rank: try reader.int(), message: try reader.string())
    case let other:
      throw ClusterError.malformedMessage(
        rank: message.source, tag: message.tag, reason: "unknown collective status \(other)")
    }
  }

  /// Sends this partial to `destination` (one copy of the values into the send buffer).
  func post(on communicator: Communicator, to destination: Int, tag: Int) throws {
    switch self {
    case .values(let values):
      try values.withUnsafeBytes { payload in
        _ = try communicator.post(
          count: Self.headerBytes + payload.count, to: destination, tag: tag
        ) { buffer in
          for i in 0..<Self.headerBytes { buffer[i] = 0 }
          UnsafeMutableRawBufferPointer(rebasing: buffer[Self.headerBytes...])
            .copyMemory(from: payload)
        }
      }
    case .failure(let rank, let message):
      var writer = ByteWriter()
      for _ in 0..<Self.headerBytes { writer.append(UInt8(0)) }
      writer.append(rank)
      writer.append(message)
      var bytes = writer.bytes
      bytes[0] = 1
      try communicator.post(bytes, to: destination, tag: tag)
    }
  }
}
