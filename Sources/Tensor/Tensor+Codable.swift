import Foundation

/// `Tensor` encodes as `{"shape": [...], "data": "<base64 of little-endian float32>"}`, which keeps
/// JSON documents that embed tensors (optimizer state) compact and bit-exact.
extension Tensor: Codable {
  private enum CodingKeys: String, CodingKey { case shape, data }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    let shape = try container.decode([Int].self, forKey: .shape)
    let encoded = try container.decode(String.self, forKey: .data)
    guard shape.allSatisfy({ $0 >= 0 }) else {
      throw DecodingError.dataCorruptedError(
        forKey: .shape, in: container, debugDescription: "negative dimension in \(shape)")
    }
    guard let bytes = Data(base64Encoded: encoded) else {
      throw DecodingError.dataCorruptedError(
        forKey: .data, in: container, debugDescription: "tensor data is not base64")
    }
    let count = shape.reduce(1, *)
    guard bytes.count == 4 * count else {
      throw DecodingError.dataCorruptedError(
        forKey: .data, in: container,
        debugDescription: "tensor of shape \(shape) needs \(4 * count) bytes, found \(bytes.count)")
    }
    var scalars = [Float](repeating: 0, count: count)
    bytes.withUnsafeBytes { raw in
      for i in 0..<count {
        scalars[i] = Float(
          bitPattern: UInt32(
            littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
      }
    }
    self.init(shape: shape, scalars: scalars)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(shape, forKey: .shape)
    try container.encode(littleEndianBytes().base64EncodedString(), forKey: .data)
  }

  /// The scalars as little-endian IEEE 754 float32 bytes (the safetensors `F32` layout).
  public func littleEndianBytes() -> Data {
    var data = Data(count: 4 * count)
    data.withUnsafeMutableBytes { raw in
      for i in 0..<count {
        raw.storeBytes(of: scalars[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
      }
    }
    return data
  }
}
