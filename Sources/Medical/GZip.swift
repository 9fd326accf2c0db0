import CZLib

/// gzip compression through zlib (the only file of the module that imports `CZLib`).
enum GZip {
  /// Whether `bytes` starts with the gzip magic number `1f 8b`.
  static func isCompressed(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
  }

  /// Inflates a gzip stream (several concatenated members are accepted), stopping after
  /// `limit` bytes: the output is the first `min(limit, inflated size)` bytes, and what follows
  /// is neither inflated nor checked.
  ///
  /// Uses `inflateInit2` with `windowBits = 15 + 32` (automatic gzip/zlib header detection).
  /// - Throws: ``MedicalError/compression(path:reason:)`` naming `path`.
  static func decompress(_ input: [UInt8], path: String, limit: Int = Int.max)
    throws(MedicalError) -> [UInt8]
  {
    var stream = z_stream()
    guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK
    else { throw .compression(path: path, reason: "inflateInit2 failed") }
    defer { inflateEnd(&stream) }
    // The gzip trailer stores the uncompressed size modulo 2^32: a good first capacity, trusted
    // only up to deflate's maximum ratio (about 1032:1) since a truncated file has no trailer.
    var capacity = max(input.count * 4, 1 << 16)
    if input.count >= 4 {
      let n = input.count
      let isize =
        Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16
        | Int(input[n - 1]) << 24
      if isize > 0 && isize <= input.count * 1032 { capacity = isize + 1 }
    }
    capacity = max(1, min(capacity, limit))
    var output = [UInt8](repeating: 0, count: capacity)
    var produced = 0
    var consumed = 0
    var status: Int32 = Z_OK
    while produced < limit {
      if produced == output.count {
        output.append(contentsOf: repeatElement(0, count: min(output.count, limit - output.count)))
      }
      let before = (consumed, produced)
      status = input.withUnsafeBufferPointer { src -> Int32 in
        output.withUnsafeMutableBufferPointer { dst -> Int32 in
          guard let inBase = src.baseAddress, let outBase = dst.baseAddress else {
            return Z_BUF_ERROR
          }
          stream.next_in = UnsafeMutablePointer(mutating: inBase + consumed)
          stream.avail_in = UInt32(min(src.count - consumed, Int(UInt32.max)))
          stream.next_out = outBase + produced
          stream.avail_out = UInt32(min(dst.count - produced, Int(UInt32.max)))
          let availIn = Int(stream.avail_in)
          let availOut = Int(stream.avail_out)
          let result = inflate(&stream, Z_NO_FLUSH)
          consumed += availIn - Int(stream.avail_in)
          produced += availOut - Int(stream.avail_out)
          return result
        }
      }
      if status == Z_STREAM_END {
        // Another gzip member may follow (as written by `cat a.gz b.gz`).
        if consumed + 2 <= input.count && input[consumed] == 0x1f && input[consumed + 1] == 0x8b {
          guard inflateReset(&stream) == Z_OK else {
            throw .compression(path: path, reason: "inflateReset failed")
          }
          continue
        }
        break
      }
      if status != Z_OK && status != Z_BUF_ERROR {
        let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
        throw .compression(path: path, reason: message)
      }
      if status == Z_BUF_ERROR && consumed == input.count {
        throw .compression(path: path, reason: "the gzip stream ends early: truncated file")
      }
      if before == (consumed, produced) && produced < output.count {
        throw .compression(path: path, reason: "no progress (corrupt stream)")
      }
    }
    output.removeSubrange(produced...)
    return output
  }

  /// Compresses `input` as one gzip member (`deflateInit2` with `windowBits = 15 + 16`).
  ///
  /// - Throws: ``MedicalError/compression(path:reason:)`` naming `path`.
  static func compress(_ input: [UInt8], level: Int32 = 6, path: String) throws(MedicalError)
    -> [UInt8]
  {
    var stream = z_stream()
    guard
      deflateInit2_(
        &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
        Int32(MemoryLayout<z_stream>.size)) == Z_OK
    else { throw .compression(path: path, reason: "deflateInit2 failed") }
    defer { deflateEnd(&stream) }
    let bound = Int(deflateBound(&stream, UInt(input.count))) + 64
    var output = [UInt8](repeating: 0, count: bound)
    let status = input.withUnsafeBufferPointer { src -> Int32 in
      output.withUnsafeMutableBufferPointer { dst -> Int32 in
        guard let outBase = dst.baseAddress else { return Z_BUF_ERROR }
        stream.next_in = src.baseAddress.map { UnsafeMutablePointer(mutating: $0) }
        stream.avail_in = UInt32(src.count)
        stream.next_out = outBase
        stream.avail_out = UInt32(dst.count)
        return deflate(&stream, Z_FINISH)
      }
    }
    guard status == Z_STREAM_END else {
      throw .compression(path: path, reason: "deflate returned \(status)")
    }
    output.removeSubrange(Int(stream.total_out)...)
    return output
  }
}
