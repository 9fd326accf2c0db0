import CDeflate

/// The fast path of label-map reading: 8-bit grayscale, non-interlaced PNG files (Cityscapes'
/// labelIds, most label maps) decoded with libdeflate and an unfilter loop, into reused buffers.
///
/// Evaluation spends almost all its time decoding (zlib's inflate and Adler-32 were 77 % of a
/// decode through libpng); libdeflate inflates a whole buffer about twice as fast. Every other
/// file, and every file this path finds irregular in any way (a CRC or Adler-32 mismatch, a
/// chunk out of order or with a name that is not four letters, a `tRNS` chunk, an unknown critical
/// chunk, a bad filter byte, too much or too little image data, a zlib window smaller than the
/// image data, more than 1,000,000 columns or rows (libpng's limits), more pixels than allowed),
/// gives nil, and the caller decodes it through libpng (``PNGCodec``), which accepts or names the
/// error as it always has. For the files it accepts the result is the file's raw samples, as
/// libpng gives them.
///
/// Not thread safe: one decoder per thread (``LabelFileReader`` owns one).
final class GrayPNGDecoder {
  private var decompressor: OpaquePointer?
  /// The concatenated `IDAT` data of a file with several `IDAT` chunks.
  private var compressed: [UInt8] = []
  /// The filtered rows of the last file inflated: `height * (1 + width)` bytes, a filter-type
  /// byte before each row.
  private var filtered: [UInt8] = []
  /// The size of the last file inflated by ``rows(of:maxPixels:)`` (zero after a decode).
  private var size = (width: 0, height: 0)
  /// Two rows for ``RowCursor`` (`2 * width` bytes): the rows stay in the L1 cache and no
  /// image is written.
  private var rowPair: [UInt8] = []

  init() {}

  deinit { if let decompressor { libdeflate_free_decompressor(decompressor) } }

  /// Decodes `data` into `values` (reused when it has the image's size) and returns the size, or
  /// nil when the file is not a regular 8-bit gray non-interlaced PNG of at most `maxPixels`.
  func decode(_ data: [UInt8], maxPixels: Int, into values: inout [UInt8]) -> (
    width: Int, height: Int
  )? {
    size = (0, 0)
    let inflated = data.withUnsafeBufferPointer { file in inflate(file, maxPixels: maxPixels) }
    guard let (width, height) = inflated else { return nil }
    let pixelCount = width * height
    if values.count != pixelCount {
      values = [UInt8](unsafeUninitializedCapacity: pixelCount) { _, n in n = pixelCount }
    }
    filtered.withUnsafeBufferPointer { rows in
      values.withUnsafeMutableBufferPointer { out in
        let (rows, out) = (rows.baseAddress!, out.baseAddress!)
        for y in 0..<height {
          Self.unfilter(
            filter: rows[y * (width + 1)], rows + y * (width + 1) + 1,
            above: y > 0 ? UnsafePointer(out + (y - 1) * width) : nil, into: out + y * width,
            width: width)
        }
      }
    }
    return (width, height)
  }

  /// Inflates `data` for reading row by row with ``withRowCursor(_:)`` and returns its size,
  /// or nil as ``decode(_:maxPixels:into:)``.
  func rows(of data: [UInt8], maxPixels: Int) -> (width: Int, height: Int)? {
    size = (0, 0)
    let inflated = data.withUnsafeBufferPointer { file in inflate(file, maxPixels: maxPixels) }
    guard let inflated else { return nil }
    if rowPair.count != 2 * inflated.width {
      rowPair = [UInt8](repeating: 0, count: 2 * inflated.width)
    }
    size = inflated
    return inflated
  }

  /// Calls `body` with a cursor over the rows of the file last given to
  /// ``rows(of:maxPixels:)`` (none after a decode).
  func withRowCursor<R>(_ body: (inout RowCursor) -> R) -> R {
    let (width, height) = size
    return filtered.withUnsafeBufferPointer { rows in
      rowPair.withUnsafeMutableBufferPointer { pair in
        var cursor = RowCursor(
          filtered: rows.baseAddress, rowPair: pair.baseAddress, width: width, height: height)
        return body(&cursor)
      }
    }
  }

  /// The rows of one label image, top to bottom: unfiltered one by one into a pair of row
  /// buffers (an inflated PNG) or read from a decoded image.
  struct RowCursor {
    private let filtered: UnsafePointer<UInt8>?
    private let rowPair: UnsafeMutablePointer<UInt8>?
    private let width: Int
    let height: Int
    private var y = 0

    fileprivate init(
      filtered: UnsafePointer<UInt8>?, rowPair: UnsafeMutablePointer<UInt8>?, width: Int,
      height: Int
    ) {
      (self.filtered, self.rowPair, self.width, self.height) = (filtered, rowPair, width, height)
    }

    /// The rows of a decoded image (`width * height` values at `values`).
    init(values: UnsafePointer<UInt8>?, width: Int, height: Int) {
      (filtered, rowPair, self.width, self.height) = (values, nil, width, height)
    }

    /// The next row; an unfiltered one is valid until the call after next.
    /// - Precondition: fewer calls than the image has rows.
    mutating func next() -> UnsafeBufferPointer<UInt8> {
      precondition(y < height, "no row \(y) in an image of \(height) rows")
      defer { y += 1 }
      guard let rowPair else {
        return UnsafeBufferPointer(start: filtered! + y * width, count: width)
      }
      let row = rowPair + (y & 1) * width
      let start = filtered! + y * (width + 1)
      let above = y > 0 ? UnsafePointer(rowPair + ((y + 1) & 1) * width) : nil
      GrayPNGDecoder.unfilter(filter: start[0], start + 1, above: above, into: row, width: width)
      return UnsafeBufferPointer(start: row, count: width)
    }
  }

  /// Checks the file and inflates its image data into `filtered`; the size, or nil for a file
  /// that goes to libpng (every row's filter type is checked here, so unfiltering cannot fail).
  private func inflate(_ file: UnsafeBufferPointer<UInt8>, maxPixels: Int) -> (
    width: Int, height: Int
  )? {
    guard let base = file.baseAddress, file.count >= 8 + 25 + 12,
      PNGCodec.signature.indices.allSatisfy({ file[$0] == PNGCodec.signature[$0] })
    else { return nil }
    func be32(_ i: Int) -> Int {
      Int(file[i]) << 24 | Int(file[i + 1]) << 16 | Int(file[i + 2]) << 8 | Int(file[i + 3])
    }
    func type(_ i: Int) -> UInt32 { UInt32(truncatingIfNeeded: be32(i + 4)) }
    // IHDR: width, height, bit depth 8, colour type 0 (gray), deflate, adaptive filters, no
    // interlacing.
    let ihdr: UInt32 = 0x4948_4452, idat: UInt32 = 0x4944_4154, iend: UInt32 = 0x4945_4E44
    let trns: UInt32 = 0x7452_4E53
    guard be32(8) == 13, type(8) == ihdr, crcMatches(file, chunk: 8, length: 13) else { return nil }
    let width = be32(16), height = be32(20)
    // libpng's default user limits: 1,000,000 columns and rows.
    guard width > 0, height > 0, width <= 1_000_000, height <= 1_000_000,
      width.multipliedReportingOverflow(by: height).partialValue <= maxPixels,
      file[24] == 8, file[25] == 0, file[26] == 0, file[27] == 0, file[28] == 0
    else { return nil }
    // The chunks: one run of IDAT chunks, ancillary chunks anywhere, then IEND.
    var offset = 33
    var idatRanges: [Range<Int>] = []
    var idatDone = false
    var sawEnd = false
    while offset + 12 <= file.count {
      let length = be32(offset)
      let chunkType = type(offset)
      guard length <= file.count - offset - 12, isChunkName(file, at: offset + 4),
        crcMatches(file, chunk: offset, length: length)
      else { return nil }
      let body = (offset + 8)..<(offset + 8 + length)
      if chunkType == idat {
        if idatDone { return nil }
        idatRanges.append(body)
      } else {
        if !idatRanges.isEmpty { idatDone = true }
        if chunkType == iend { sawEnd = true; break }
        // Critical chunks other than IDAT/IEND (a PLTE, a second IHDR) and tRNS (libpng would
        // composite on a background) go to libpng.
        if file[offset + 4] & 0x20 == 0 || chunkType == trns { return nil }
      }
      offset += 12 + length
    }
    guard sawEnd, let first = idatRanges.first(where: { !$0.isEmpty }) else { return nil }
    let rowBytes = width + 1
    let (filteredCount, overflow) = rowBytes.multipliedReportingOverflow(by: height)
    guard !overflow else { return nil }
    // The zlib header's window (CINFO: 2^(8 + CINFO) bytes, 32 KiB at 7) bounds the distances
    // back; zlib, inflating row by row under libpng, refuses one beyond it ("invalid distance
    // too far back"), libdeflate inflating the whole buffer at once would not. A window smaller
    // than the image data (encoders shrink it only for data that fits) goes to libpng.
    let windowLog = Int(file[first.lowerBound] >> 4) + 8
    guard windowLog == 15 || (windowLog < 15 && 1 << windowLog >= filteredCount) else {
      return nil
    }
    if filtered.count != filteredCount {
      filtered = [UInt8](unsafeUninitializedCapacity: filteredCount) { _, n in n = filteredCount }
    }
    if decompressor == nil { decompressor = libdeflate_alloc_decompressor() }
    guard let decompressor else { return nil }
    var produced = 0
    let result: libdeflate_result
    if idatRanges.count == 1 {
      let range = idatRanges[0]
      result = filtered.withUnsafeMutableBytes { out in
        libdeflate_zlib_decompress(
          decompressor, base + range.lowerBound, range.count, out.baseAddress, filteredCount,
          &produced)
      }
    } else {
      compressed.removeAll(keepingCapacity: true)
      for range in idatRanges { compressed.append(contentsOf: file[range]) }
      result = compressed.withUnsafeBytes { input in
        filtered.withUnsafeMutableBytes { out in
          libdeflate_zlib_decompress(
            decompressor, input.baseAddress, input.count, out.baseAddress, filteredCount,
            &produced)
        }
      }
    }
    guard result == LIBDEFLATE_SUCCESS, produced == filteredCount else { return nil }
    // Filter types 0 (None) to 4 (Paeth); libpng names any other.
    for y in 0..<height where filtered[y * rowBytes] > 4 { return nil }
    return (width, height)
  }

  /// Whether the four bytes at `start` are ASCII letters (libpng refuses other chunk names).
  private func isChunkName(_ file: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
    (start..<(start + 4)).allSatisfy { (file[$0] | 0x20) >= 0x61 && (file[$0] | 0x20) <= 0x7A }
  }

  /// Whether the CRC-32 stored after the chunk at `chunk` (type and `length` data bytes) matches.
  private func crcMatches(_ file: UnsafeBufferPointer<UInt8>, chunk: Int, length: Int) -> Bool {
    let end = chunk + 8 + length
    let stored =
      UInt32(file[end]) << 24 | UInt32(file[end + 1]) << 16 | UInt32(file[end + 2]) << 8
      | UInt32(file[end + 3])
    return libdeflate_crc32(0, file.baseAddress! + chunk + 4, 4 + length) == stored
  }

  /// Reverses the PNG filter `filter` (0 to 4) of one row (one byte per pixel: the left
  /// neighbour is one byte back), from `raw` into `row` (apart); `above` is the row above,
  /// already unfiltered (nil for the first row: zero, so Up copies, Average halves the left and
  /// Paeth reduces to Sub).
  fileprivate static func unfilter(
    filter: UInt8, _ raw: UnsafePointer<UInt8>, above up: UnsafePointer<UInt8>?,
    into row: UnsafeMutablePointer<UInt8>, width: Int
  ) {
    switch (filter, up) {
    case (0, _), (2, nil):
      row.update(from: raw, count: width)
    case (1, _), (4, nil):
      var left: UInt8 = 0
      for x in 0..<width {
        left = raw[x] &+ left
        row[x] = left
      }
    case (2, let up?):
      // 32 bytes at a time, written out: inlined into a loop over rows of one buffer, the
      // compiler cannot tell the three rows apart and would add byte by byte.
      var x = 0
      while x + 32 <= width {
        let sum =
          UnsafeRawPointer(raw + x).loadUnaligned(as: SIMD32<UInt8>.self)
          &+ UnsafeRawPointer(up + x).loadUnaligned(as: SIMD32<UInt8>.self)
        UnsafeMutableRawPointer(row + x).storeBytes(of: sum, as: SIMD32<UInt8>.self)
        x += 32
      }
      while x < width {
        row[x] = raw[x] &+ up[x]
        x += 1
      }
    case (3, nil):
      var left: UInt8 = 0
      for x in 0..<width {
        left = raw[x] &+ (left >> 1)
        row[x] = left
      }
    case (3, let up?):
      var left = 0
      for x in 0..<width {
        left = Int(raw[x] &+ UInt8((left + Int(up[x])) >> 1))
        row[x] = UInt8(left)
      }
    case (4, let up?):
      var (left, upLeft) = (0, 0)
      for x in 0..<width {
        let above = Int(up[x])
        let p = left + above - upLeft
        let (pa, pb, pc) = (abs(p - left), abs(p - above), abs(p - upLeft))
        let predictor = pa <= pb && pa <= pc ? left : pb <= pc ? above : upLeft
        left = Int(raw[x] &+ UInt8(predictor))
        row[x] = UInt8(left)
        upLeft = above
      }
    default:
      preconditionFailure("filter type \(filter) passed the check")
    }
  }
}
