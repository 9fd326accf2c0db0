/// Builds a message: fixed-width little-endian integers, length-prefixed strings and bytes.
///
/// Every rank runs the same build, so the layout needs no version; a reader that runs out of
/// bytes throws ``ClusterError/malformedMessage(rank:tag:reason:)``.
public struct ByteWriter: Sendable {
  public private(set) var bytes: [UInt8] = []

  public init() {}

  public mutating func append(_ value: UInt8) { bytes.append(value) }

  public mutating func append(_ value: Int64) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }

  public mutating func append(_ value: Int) { append(Int64(value)) }

  public mutating func append(_ value: Double) { append(Int64(bitPattern: value.bitPattern)) }

  public mutating func append(_ value: String) { append(bytes: Array(value.utf8)) }

  /// A length, then the bytes.
  public mutating func append(bytes value: [UInt8]) {
    append(value.count)
    bytes.append(contentsOf: value)
  }

  /// The bytes without a length: the rest of the message.
  public mutating func appendRemainder(_ value: [UInt8]) { bytes.append(contentsOf: value) }
}

/// Reads what ``ByteWriter`` wrote, in the same order.
public struct ByteReader: Sendable {
  private let bytes: [UInt8]
  private var offset = 0
  private let source: Int
  private let tag: Int

  public init(_ message: Message) {
    bytes = message.bytes
    source = message.source
    tag = message.tag
  }

  public init(bytes: [UInt8], source: Int, tag: Int) {
    self.bytes = bytes
    self.source = source
    self.tag = tag
  }

  private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
    guard count >= 0, offset + count <= bytes.count else {
      throw ClusterError.malformedMessage(
        rank: source, tag: tag,
        reason: "needs \(count) bytes at offset \(offset) of \(bytes.count)")
    }
    defer { offset += count }
    return bytes[offset..<offset + count]
  }

  public mutating func uint8() throws -> UInt8 { try take(1).first ?? 0 }

  public mutating func int64() throws -> Int64 {
    let slice = try take(8)
    var value: Int64 = 0
    withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: slice) }
    return Int64(littleEndian: value)
  }

  public mutating func int() throws -> Int { Int(try int64()) }

  public mutating func double() throws -> Double {
    Double(bitPattern: UInt64(bitPattern: try int64()))
  }

  public mutating func string() throws -> String {
    String(decoding: try bytesWithLength(), as: UTF8.self)
  }

  public mutating func bytesWithLength() throws -> [UInt8] {
    let count = try int()
    return Array(try take(count))
  }

  /// The rest of the message.
  public mutating func remainder() -> [UInt8] {
    defer { offset = bytes.count }
    return Array(bytes[offset...])
  }
}
