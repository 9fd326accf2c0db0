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
  /// data in `idatParts` chunks, IEND.
  func file(
    filters: [UInt8] = [0, 1, 2, 3, 4], idatParts: Int = 1, colorType: UInt8 = 0,
    extra: [[UInt8]] = [], corruptIDAT: Bool = false
  ) -> [UInt8] {
    let header = Self.be32(width) + Self.be32(height) + [8, colorType, 0, 0, 0]
    let stream = Self.zlib(filteredRows(filters))
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
