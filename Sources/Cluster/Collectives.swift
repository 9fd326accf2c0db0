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

  /// The element-wise sum of `values` over all ranks, on every rank (see the ordering above).
  ///
  /// - Throws: ``ClusterError/rankFailed(rank:job:message:)`` if a rank failed (or
  ///   contributed a different number of values),
  ///   ``ClusterError/timedOut(rank:operation:seconds:)`` if a rank sent nothing for `timeout`.
  public func sum<Scalar: BinaryFloatingPoint & BitwiseCopyable>(
    _ values: [Scalar], timeout: Duration? = nil
  ) throws -> [Scalar] {
    guard !isSingleProcess, size > 1 else { return values }
    let result = try collective(
      .bytes(Self.rawBytes(values)), operation: "sum", timeout: timeout
    ) { left, right, rightRank in
      var total: [Scalar] = Self.scalars(left)
      let other: [Scalar] = Self.scalars(right)
      guard other.count == total.count else {
        return .failure(
          rank: rightRank,
          message: ClusterError.mismatchedReduction(
            rank: rightRank, expected: total.count, received: other.count
          ).description)
      }
      for i in total.indices { total[i] += other[i] }
      return .bytes(Self.rawBytes(total))
    }
    return Self.scalars(result)
  }

  /// Rank 0's `bytes` on every rank (the other ranks' `bytes` are ignored).
  public func broadcast(_ bytes: [UInt8], timeout: Duration? = nil) throws -> [UInt8] {
    guard !isSingleProcess, size > 1 else { return bytes }
    return try collective(
      .bytes(rank == 0 ? bytes : []), operation: "broadcast", timeout: timeout
    ) { left, _, _ in .bytes(left) }
  }

  /// Returns when every rank has called it (or throws the failure of a rank that called
  /// ``fail(_:)``).
  public func barrier(timeout: Duration? = nil) throws {
    _ = try broadcast([], timeout: timeout)
  }

  /// Joins the collective that the other ranks are in (or will enter next) with `error`, so
  /// that each of them throws ``ClusterError/rankFailed(rank:job:message:)`` naming this rank;
  /// then throws the same here.
  public func fail(_ error: any Error, timeout: Duration? = nil) throws -> Never {
    let failure = ClusterError.rankFailed(rank: rank, job: nil, message: String(describing: error))
    guard !isSingleProcess, size > 1 else { throw error }
    _ = try collective(
      .failure(rank: rank, message: String(describing: error)), operation: "fail",
      timeout: timeout
    ) { left, _, _ in .bytes(left) }
    throw failure  // not reached: the collective throws the failure
  }

  /// One reduction up the tree and a broadcast of its result down; see the type's notes.
  func collective(
    _ own: Contribution, operation: String, timeout: Duration?,
    merge: ([UInt8], [UInt8], Int) -> Contribution
  ) throws -> [UInt8] {
    var accumulated = own
    var mask = 1
    while mask < size {
      if rank & mask != 0 {
        try post(accumulated.encoded(), to: rank - mask, tag: Self.reduceTag)
        break
      }
      let child = rank + mask
      if child < size {
        let message = try receive(from: child, tag: Self.reduceTag, timeout: timeout)
        let theirs = try Contribution(message)
        switch (accumulated, theirs) {
        case (.failure, _): break
        case (.bytes, .failure): accumulated = theirs
        case (.bytes(let left), .bytes(let right)): accumulated = merge(left, right, child)
        }
      }
      mask <<= 1
    }
    // Down: rank 0 holds the result; every other rank receives it from its parent.
    let lowest = rank == 0 ? Int.max : rank & -rank
    let result: Contribution
    if rank == 0 {
      result = accumulated
    } else {
      result = try Contribution(
        receive(from: rank - lowest, tag: Self.broadcastTag, timeout: timeout))
    }
    let encoded = result.encoded()
    var step = 1
    while step < size { step <<= 1 }
    while step >= 1 {
      if step < lowest, rank + step < size {
        try post(encoded, to: rank + step, tag: Self.broadcastTag)
      }
      step >>= 1
    }
    try progressSends()
    switch result {
    case .bytes(let bytes): return bytes
    case .failure(let rank, let message):
      throw ClusterError.rankFailed(rank: rank, job: nil, message: message)
    }
  }

  static func rawBytes<Scalar: BitwiseCopyable>(_ values: [Scalar]) -> [UInt8] {
    values.withUnsafeBytes { Array($0) }
  }

  static func scalars<Scalar: BitwiseCopyable>(_ bytes: [UInt8]) -> [Scalar] {
    let count = bytes.count / MemoryLayout<Scalar>.stride
    return [Scalar](unsafeUninitializedCapacity: count) { buffer, initialized in
      bytes.withUnsafeBytes { source in
        UnsafeMutableRawBufferPointer(buffer).copyMemory(
          from: UnsafeRawBufferPointer(rebasing: source[0..<count * MemoryLayout<Scalar>.stride]))
      }
      initialized = count
    }
  }
}

/// What one rank brings to a collective: its bytes, or the failure that stops every rank.
enum Contribution {
  case bytes([UInt8])
  case failure(rank: Int, message: String)

  init(_ message: Message) throws {
    var reader = ByteReader(message)
    switch try reader.uint8() {
    case 0: self = .bytes(reader.remainder())
    case 1: self = .failure(rank: try reader.int(), message: try reader.string())
    case let other:
      throw ClusterError.malformedMessage(
        rank: message.source, tag: message.tag, reason: "unknown collective status \(other)")
    }
  }

  func encoded() -> [UInt8] {
    var writer = ByteWriter()
    switch self {
    case .bytes(let bytes):
      writer.append(UInt8(0))
      writer.appendRemainder(bytes)
    case .failure(let rank, let message):
      writer.append(UInt8(1))
      writer.append(rank)
      writer.append(message)
    }
    return writer.bytes
  }
}
