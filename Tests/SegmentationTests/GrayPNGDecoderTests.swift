import CDeflate
import Foundation
import Testing

@testable import Segmentation

/// A PNG file built chunk by chunk, so that tests choose every row's filter, the IDAT split and
/// irregular chunks (libpng's encoder chooses its filters itself).
private struct PNGBuilder {
  var width: Int
  var height: Int
  var values: [UInt8]

  /// The filtered rows for filter types `filters[y % filters.count]`.
  func filteredRows(_ filters: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    for y in 0..<height {
      let filter = filters[y % filters.count]
      out.append(filter)
      for x in 0..<width {
        let value = Int(values[y * width + x])
        let left = x > 0 ? Int(values[y * width + x - 1]) : 0
        let up = y > 0 ? Int(values[(y - 1) * width + x]) : 0
        let upLeft = x > 0 && y > 0 ? Int(values[(y - 1) * width + x - 1]) : 0
        let predictor: Int
        switch filter {
        case 0: predictor = 0
        case 1: predictor = left
        case 2: predictor = up
        case 3: predictor = (left + up) >> 1
        case 4:
          let p = left + up - upLeft
          let (pa, pb, pc) = (abs(p - left), abs(p - up), abs(p - upLeft))
          predictor = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft
        default: predictor = 0  // an invalid filter byte: the row as it is
        }
        out.append(UInt8(truncatingIfNeeded: value - predictor))
      }
    }
    return out
  }

  static func chunk(_ type: String, _ body: [UInt8], corruptCRC: Bool = false) -> [UInt8] {
    let typed = Array(type.utf8) + body
    var crc = UInt32(typed.withUnsafeBytes { libdeflate_crc32(0, $0.baseAddress, $0.count) })
    if corruptCRC { crc ^= 1 }
    return be32(body.count) + typed + be32(Int(crc))
  }

  static func be32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }

  static func zlib(_ data: [UInt8]) -> [UInt8] {
    let compressor = libdeflate_alloc_compressor(6)!
    defer { libdeflate_free_compressor(compressor) }
    var out = [UInt8](repeating: 0, count: data.count + 1024)
    let n = data.withUnsafeBytes { input in
      out.withUnsafeMutableBytes { output in
        libdeflate_zlib_compress(compressor, input.baseAddress, input.count, output.baseAddress, output.count)
      }
    }
    return Array(out.prefix(n))
  }

  /// The file: IHDR (8-bit gray unless `colorType` says otherwise), `extra` chunks, the image
  /// data in `idatParts` chunks, IEND. `zlibHeader` replaces the two bytes of the zlib header
  /// (libdeflate writes 0x78 0x9C: a 32 KiB window).
  func file(
    filters: [UInt8] = [0, 1, 2, 3, 4], idatParts: Int = 1, colorType: UInt8 = 0,
    extra: [[UInt8]] = [], corruptIDAT: Bool = false, zlibHeader: [UInt8]? = nil
  ) -> [UInt8] {
    let header = Self.be32(width) + Self.be32(height) + [8, colorType, 0, 0, 0]
    var stream = Self.zlib(filteredRows(filters))
    if let zlibHeader { stream.replaceSubrange(0..<2, with: zlibHeader) }
    var out = PNGCodec.signature + Self.chunk("IHDR", header)
    for chunk in extra { out += chunk }
    let step = (stream.count + idatParts - 1) / idatParts
    for start in stride(from: 0, to: stream.count, by: step) {
      out += Self.chunk("IDAT", Array(stream[start..<min(stream.count, start + step)]), corruptCRC: corruptIDAT)
    }
    return out + Self.chunk("IEND", [])
  }
}

/// Label-like content: blocks of class ids with noise, so every filter sees varied neighbours.
private func sampleImage(width: Int, height: Int, seed: UInt64) -> PNGBuilder {
  var state = seed
  func next() -> UInt64 {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return state >> 33
  }
  var values = [UInt8](repeating: 0, count: width * height)
  for y in 0..<height {
    for x in 0..<width {
      values[y * width + x] = next() % 5 == 0 ? UInt8(next() % 256) : UInt8((x / 7 + y / 5) * 37 % 34)
    }
  }
  return PNGBuilder(width: width, height: height, values: values)
}

@Suite("GrayPNGDecoder: the 8-bit gray fast path of label reading")
struct GrayPNGDecoderTests {
  @Test(
    "every filter type, first row included, and split image data decode to the raw samples, as libpng gives them",
    arguments: [[0, 1, 2, 3, 4], [1, 2], [2, 3], [3, 4], [4, 0], [2], [3], [4]] as [[UInt8]],
    [1, 3])
  func filters(_ filters: [UInt8], idatParts: Int) throws {
    let image = sampleImage(width: 37, height: 11, seed: UInt64(filters.count * 10 + idatParts))
    let file = image.file(filters: filters, idatParts: idatParts)
    let decoder = GrayPNGDecoder()
    var values: [UInt8] = []
    let size = try #require(decoder.decode(file, maxPixels: 1 << 20, into: &values))
    #expect(size.width == 37 && size.height == 11)
    #expect(values == image.values)
    #expect(values == (try PNGCodec.decodeLabel(file, path: "t.png")).values)
  }

  @Test("files of libpng's encoder take the fast path, with the values libpng decodes")
  func ownEncoder() throws {
    let image = sampleImage(width: 301, height: 97, seed: 7)
    let file = try PNGCodec.encodeGray(LabelImage(width: 301, height: 97, values: image.values))
    let decoder = GrayPNGDecoder()
    var values: [UInt8] = []
    #expect(decoder.decode(file, maxPixels: 1 << 20, into: &values) != nil)
    #expect(values == image.values)
    // A second frame of the same size reuses the storage.
    let storage = values.withUnsafeBufferPointer { $0.baseAddress }
    #expect(decoder.decode(file, maxPixels: 1 << 20, into: &values) != nil)
    #expect(values.withUnsafeBufferPointer { $0.baseAddress } == storage)
  }

  @Test("irregular files are left to libpng: a bad CRC, tRNS, PLTE, a bad filter byte, other formats, too many pixels")
  func leftToLibpng() throws {
    let image = sampleImage(width: 16, height: 8, seed: 3)
    let trns = PNGBuilder.chunk("tRNS", [0, 5])
    let plte = PNGBuilder.chunk("PLTE", [0, 0, 0])
    let cases: [(String, [UInt8], Int)] = [
      ("bad IDAT CRC", image.file(corruptIDAT: true), 1 << 20),
      ("tRNS", image.file(extra: [trns]), 1 << 20),
      ("PLTE", image.file(extra: [plte]), 1 << 20),
      ("filter byte 5", image.file(filters: [0, 5]), 1 << 20),
      ("palette colour type", image.file(colorType: 3, extra: [plte]), 1 << 20),
      ("truncated", Array(image.file().dropLast(12)), 1 << 20),
      ("over the pixel limit", image.file(), 127),
      ("a chunk name that is not letters", image.file(extra: [PNGBuilder.chunk("tE1t", [1])]), 1 << 20),
      ("over libpng's column limit", PNGBuilder(
        width: 1_000_001, height: 1, values: [UInt8](repeating: 0, count: 1_000_001)).file(filters: [0]), 1 << 21),
    ]
    let decoder = GrayPNGDecoder()
    for (name, file, limit) in cases {
      var values: [UInt8] = []
      #expect(decoder.decode(file, maxPixels: limit, into: &values) == nil, "\(name)")
    }
    // An ancillary chunk (tEXt) keeps the fast path.
    var values: [UInt8] = []
    let text = PNGBuilder.chunk("tEXt", Array("Comment\u{0}labels".utf8))
    #expect(decoder.decode(image.file(extra: [text]), maxPixels: 1 << 20, into: &values) != nil)
    #expect(values == image.values)
  }

  @Test("a zlib window smaller than the image data is left to libpng, which refuses distances beyond it (found writing the FuzzGrayPNG seeds)")
  func smallWindow() throws {
    // Rows 2 and 3 repeat rows 0 and 1: the only matches are 2 * 301 bytes back, beyond the
    // 256-byte window of the header 0x08 0x1D (CINFO 0; (0x08 * 256 + 0x1D) % 31 == 0).
    var image = sampleImage(width: 300, height: 4, seed: 5)
    var state: UInt64 = 99
    for x in 0..<600 {
      state = state &* 6_364_136_223_846_793_005 &+ 1
      image.values[x] = UInt8(truncatingIfNeeded: state >> 56)
    }
    image.values.replaceSubrange(600..<1200, with: image.values[0..<600])
    let file = image.file(filters: [0], zlibHeader: [0x08, 0x1D])
    let decoder = GrayPNGDecoder()
    var values: [UInt8] = []
    #expect(decoder.decode(file, maxPixels: 1 << 20, into: &values) == nil)
    let expected = Result { () throws(ImageError) in try PNGCodec.decodeLabel(file, path: "w.png") }
    var label = LabelImage(width: 0, height: 0, values: [])
    let got = Result { () throws(ImageError) in
      try LabelFileReader().decode(file, path: "w.png", into: &label)
      return label
    }
    #expect(got == expected)
    #expect(throws: ImageError.self) { try PNGCodec.decodeLabel(file, path: "w.png") }
    // The same window over data that fits in it (libpng's encoder shrinks the window of small
    // images) keeps the fast path.
    let small = sampleImage(width: 15, height: 8, seed: 4)
    let fits = small.file(zlibHeader: [0x08, 0x1D])
    #expect(decoder.decode(fits, maxPixels: 1 << 20, into: &values) != nil)
    #expect(values == small.values)
    let encoded = try PNGCodec.encodeGray(LabelImage(width: 15, height: 8, values: small.values))
    let idat = try #require((0..<(encoded.count - 4)).first { Array(encoded[$0..<($0 + 4)]) == Array("IDAT".utf8) })
    #expect(encoded[idat + 4] >> 4 < 7, "libpng's encoder wrote a 32 KiB window for 128 bytes")
    #expect(decoder.decode(encoded, maxPixels: 1 << 20, into: &values) != nil)
    #expect(values == small.values)
  }

  @Test("a fixed-code length 286, which zlib refuses, with a matching Adler-32: libdeflate decodes it (known difference, as for distance codes 30/31)")
  func invalidDeflateCodes() throws {
    // Raw fixed-Huffman blocks written MSB-first code by code (RFC 1951 3.2.6): a zero literal,
    // then one of the two codes, then end of block.
    func fixedBlock(_ codes: [(code: Int, bits: Int)], extra: [(Int, Int)] = []) -> [UInt8] {
      var bits: [Int] = [1, 1, 0]  // BFINAL, BTYPE 01 (LSB first)
      for (code, n) in codes { bits += (0..<n).reversed().map { (code >> $0) & 1 } }
      bits += bits.count % 8 == 0 ? [] : [Int](repeating: 0, count: 8 - bits.count % 8)
      return stride(from: 0, to: bits.count, by: 8).map { i in
        UInt8((0..<8).reduce(0) { $0 | bits[i + $1] << $1 })
      }
    }
    let zero = (code: 0x30, bits: 8), end = (code: 0, bits: 7)
    // filter byte, pixel, length code 286 (read by libdeflate as 258) at distance 1: 260 bytes.
    let length286 = fixedBlock([zero, zero, (0xC6, 8), (0, 5), end])
    let raw = [UInt8](repeating: 0, count: 260)
    let adler = UInt32(raw.withUnsafeBytes { libdeflate_adler32(1, $0.baseAddress, $0.count) })
    let stream = [0x78, 0x01] + length286 + PNGBuilder.be32(Int(adler))
    let header = PNGBuilder.be32(259) + PNGBuilder.be32(1) + [8, 0, 0, 0, 0]
    let file = PNGCodec.signature + PNGBuilder.chunk("IHDR", header) + PNGBuilder.chunk("IDAT", stream)
      + PNGBuilder.chunk("IEND", [])
    #expect(throws: ImageError.self) { try PNGCodec.decodeLabel(file, path: "c.png") }
    var values: [UInt8] = []
    withKnownIssue("libdeflate 1.14 reads fixed-code lengths 286/287 and distance codes 30/31") {
      #expect(GrayPNGDecoder().decode(file, maxPixels: 1 << 20, into: &values) == nil)
    }
  }

  @Test("LabelFileReader gives libpng's values for fast-path files and libpng's errors for the rest")
  func reader() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gray-png-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let image = sampleImage(width: 23, height: 9, seed: 11)
    var reader = LabelFileReader()
    var label = LabelImage(width: 0, height: 0, values: [])
    for (name, file) in [("good.png", image.file()), ("bad-filter.png", image.file(filters: [1, 7]))] {
      let path = folder.appendingPathComponent(name).path
      try Data(file).write(to: URL(fileURLWithPath: path))
      let expected = Result { () throws(ImageError) in try PNGCodec.decodeLabel(file, path: path) }
      let got = Result { () throws(ImageError) in
        try reader.read(at: path, into: &label)
        return label
      }
      #expect(got == expected, "\(name)")
    }
  }
}

@Suite("LabelPairReader: rows of a ground truth and its prediction, in step")
struct LabelPairReaderTests {
  /// Writes `files` into a new folder; their paths.
  private func write(_ files: [(String, [UInt8])]) throws -> (folder: URL, paths: [String]) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pair-reader-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    var paths: [String] = []
    for (name, bytes) in files {
      let path = folder.appendingPathComponent(name).path
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      paths.append(path)
    }
    return (folder, paths)
  }

  /// The rows the reader hands over for one pair, concatenated.
  private func rows(_ reader: inout LabelPairReader, truth: String, prediction: String) throws
    -> (truth: [UInt8], prediction: [UInt8])
  {
    let sizes = try reader.read(truthAt: truth, predictionAt: prediction)
    #expect(sizes.truth == sizes.prediction)
    var (t, p): ([UInt8], [UInt8]) = ([], [])
    reader.forEachRowPair { truthRow, predictionRow in
      #expect(truthRow.count == sizes.truth.width && predictionRow.count == sizes.truth.width)
      t += truthRow
      p += predictionRow
    }
    return (t, p)
  }

  @Test("every filter type on the fast path, libpng's files (a tRNS chunk, a palette), in any mix: the values libpng decodes, row by row")
  func mixes() throws {
    let truth = sampleImage(width: 45, height: 13, seed: 21)
    let prediction = sampleImage(width: 45, height: 13, seed: 22)
    let trns = PNGBuilder.chunk("tRNS", [0, 5])
    let plte = PNGBuilder.chunk("PLTE", [UInt8](repeating: 7, count: 3 * 256))
    let files: [(String, [UInt8])] = [
      ("t-fast.png", truth.file()),
      ("t-split.png", truth.file(filters: [4, 3, 2, 1, 0], idatParts: 4)),
      ("t-libpng.png", truth.file(extra: [trns])),
      ("p-fast.png", prediction.file(filters: [2, 4])),
      ("p-libpng.png", prediction.file(colorType: 3, extra: [plte])),
    ]
    let (folder, paths) = try write(files)
    defer { try? FileManager.default.removeItem(at: folder) }
    var reader = LabelPairReader()
    // Every truth with every prediction, twice over with one reader (buffers reused, sizes
    // unchanged or not).
    for _ in 0..<2 {
      for t in paths.filter({ $0.hasSuffix(".png") && $0.contains("/t-") }) {
        for p in paths.filter({ $0.contains("/p-") }) {
          let got = try rows(&reader, truth: t, prediction: p)
          #expect(got.truth == (try ImageFile.readLabel(at: t)).values, "\(t)")
          #expect(got.prediction == (try ImageFile.readLabel(at: p)).values, "\(p)")
        }
      }
    }
    // A pair of another size, then the first size again.
    let small = sampleImage(width: 8, height: 3, seed: 5)
    let (other, smallPaths) = try write([("s.png", small.file())])
    defer { try? FileManager.default.removeItem(at: other) }
    let got = try rows(&reader, truth: smallPaths[0], prediction: smallPaths[0])
    #expect(got.truth == small.values && got.prediction == small.values)
    #expect(try rows(&reader, truth: paths[0], prediction: paths[3]).truth == truth.values)
  }

  @Test("sizes are returned before any row (a size mismatch is the caller's to name); unreadable files throw libpng's error, naming the file")
  func sizesAndErrors() throws {
    let a = sampleImage(width: 20, height: 6, seed: 1)
    let b = sampleImage(width: 6, height: 20, seed: 2)
    let (folder, paths) = try write([
      ("a.png", a.file()), ("b.png", b.file()), ("bad.png", a.file(corruptIDAT: true)),
    ])
    defer { try? FileManager.default.removeItem(at: folder) }
    var reader = LabelPairReader()
    let sizes = try reader.read(truthAt: paths[0], predictionAt: paths[1])
    #expect(sizes.truth == (20, 6) && sizes.prediction == (6, 20))
    let expected = #expect(throws: ImageError.self) {
      try PNGCodec.decodeLabel(a.file(corruptIDAT: true), path: paths[2])
    }
    let got = #expect(throws: ImageError.self) {
      try reader.read(truthAt: paths[0], predictionAt: paths[2])
    }
    #expect(got == expected && got != nil)
    #expect(throws: ImageError.fileNotFound(path: paths[0] + ".missing")) {
      _ = try reader.read(truthAt: paths[0] + ".missing", predictionAt: paths[0])
    }
    // After a failure nothing of the last pair is handed over; the reader goes on.
    var count = 0
    reader.forEachRowPair { _, _ in count += 1 }
    #expect(count == 0)
    #expect(try rows(&reader, truth: paths[0], prediction: paths[0]).prediction == a.values)
  }
}
