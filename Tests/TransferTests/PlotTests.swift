import Foundation
import Testing
@testable import Transfer

/// A decoded PNG: chunks checked, stored deflate blocks inflated by hand.
struct DecodedPNG {
  var width: Int
  var height: Int
  var colorType: UInt8
  var idat: [UInt8]
  var rows: [[UInt8]]
}

func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt32 {
  bytes.reduce(0) { $0 << 8 | UInt32($1) }
}

enum PNGTestError: Error { case bad(String) }

/// Parses a PNG whose IDAT is a zlib stream of stored blocks (what `encodePNG` writes).
func decodeStoredPNG(_ png: [UInt8]) throws -> DecodedPNG {
  guard png.prefix(8) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
    throw PNGTestError.bad("signature")
  }
  var offset = 8
  var chunks: [(String, [UInt8])] = []
  while offset < png.count {
    let length = Int(bigEndian(png[offset..<(offset + 4)]))
    let typeAndData = Array(png[(offset + 4)..<(offset + 8 + length)])
    let crc = bigEndian(png[(offset + 8 + length)..<(offset + 12 + length)])
    guard crc == crc32(typeAndData) else { throw PNGTestError.bad("CRC") }
    chunks.append(
      (String(decoding: typeAndData.prefix(4), as: UTF8.self), Array(typeAndData.dropFirst(4))))
    offset += 12 + length
  }
  guard chunks.first?.0 == "IHDR", chunks.last?.0 == "IEND", let header = chunks.first?.1 else {
    throw PNGTestError.bad("chunk order")
  }
  let width = Int(bigEndian(header[0..<4]))
  let height = Int(bigEndian(header[4..<8]))
  let idat = chunks.filter { $0.0 == "IDAT" }.flatMap(\.1)
  // zlib header, then stored blocks.
  guard idat.count > 6, (UInt16(idat[0]) << 8 | UInt16(idat[1])) % 31 == 0, idat[0] & 0x0F == 8
  else {
    throw PNGTestError.bad("zlib header")
  }
  var raw: [UInt8] = []
  var p = 2
  while true {
    let final = idat[p] & 1
    guard idat[p] >> 1 & 3 == 0 else { throw PNGTestError.bad("not a stored block") }
    let len = Int(idat[p + 1]) | Int(idat[p + 2]) << 8
    let nlen = Int(idat[p + 3]) | Int(idat[p + 4]) << 8
    guard len ^ nlen == 0xFFFF else { throw PNGTestError.bad("LEN/NLEN") }
    raw += idat[(p + 5)..<(p + 5 + len)]
    p += 5 + len
    if final == 1 { break }
  }
  guard bigEndian(idat[p..<(p + 4)]) == adler32(raw), p + 4 == idat.count else {
    throw PNGTestError.bad("Adler-32")
  }
  guard raw.count == height * (1 + 3 * width) else { throw PNGTestError.bad("size") }
  let rows = (0..<height).map { y -> [UInt8] in
    let start = y * (1 + 3 * width)
    return Array(raw[start..<(start + 1 + 3 * width)])
  }
  return DecodedPNG(width: width, height: height, colorType: header[9], idat: idat, rows: rows)
}

@Test("checksums match the standard check values")
func checksums() {
  let text = Array("123456789".utf8)
  #expect(crc32(text) == 0xCBF4_3926)
  #expect(adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
}

@Test("the PNG encoder round-trips pixels, across several stored blocks")
func pngRoundTrip() throws {
  var image = PlotCanvas(width: 150, height: 160, color: RGB(1, 2, 3))
  image.set(x: 149, y: 159, RGB(250, 0, 7))
  image.set(x: 0, y: 0, RGB(9, 8, 7))
  let decoded = try decodeStoredPNG(encodePNG(image))
  #expect(decoded.width == 150 && decoded.height == 160 && decoded.colorType == 2)
  #expect(decoded.rows.allSatisfy { $0[0] == 0 })
  #expect(decoded.rows.flatMap { $0.dropFirst() } == image.pixels)
  #expect(150 * 160 * 3 > 65535)  // more than one stored block
}

let python3Path = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first {
  FileManager.default.isExecutableFile(atPath: $0)
}

@Test(
  "python3's zlib inflates the plot PNG", .enabled(if: python3Path != nil, "python3 is missing"))
func pngWithPythonZlib() throws {
  let plot = LinePlot(
    title: "TEST", xLabel: "GENERATION", yLabel: "MIOU %",
    series: [
      .init(
        label: "ATSO @E", color: LinePlot.palette[2], isDashed: false,
        points: [(0, 40), (1, 45), (2, 47)])
    ])
  let image = plot.render(width: 200, height: 120)
  let png = encodePNG(image)
  let directory = try temporaryDirectory("png")
  let path = directory + "/plot.png"
  _ = FileManager.default.createFile(atPath: path, contents: Data(png))
  let script = """
    import struct, sys, zlib
    d = open(sys.argv[1], 'rb').read()
    assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
    i, idat, size = 8, b'', None
    while i < len(d):
        n, = struct.unpack('>I', d[i:i+4]); t = d[i+4:i+8]; body = d[i+8:i+8+n]
        assert zlib.crc32(t + body) == struct.unpack('>I', d[i+8+n:i+12+n])[0]
        if t == b'IHDR': size = struct.unpack('>II', body[:8])
        if t == b'IDAT': idat += body
        i += 12 + n
    raw = zlib.decompress(idat)
    w, h = size
    assert len(raw) == h * (1 + 3 * w)
    print(w, h, sum(raw[r * (1 + 3 * w)] for r in range(h)), raw[1:4].hex())
    """
  let process = Process()
  process.executableURL = URL(fileURLWithPath: try #require(python3Path))
  process.arguments = ["-c", script, path]
  let pipe = Pipe()
  process.standardOutput = pipe
  try process.run()
  process.waitUntilExit()
  let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  #expect(process.terminationStatus == 0)
  #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "200 120 0 ffffff")
}

@Test("the curves plot draws the axes, every series color, and text")
func curvesPlot() throws {
  let configuration = TransferConfiguration(seed: 2, folds: 2, generations: 2)
  let (run, _, records) = try runFresh(configuration, name: "plot")
  let table = ResultsTable(records: records, configuration: run.configuration)
  let image = table.curves(stage: "fine", width: 480, height: 300)
  var colors: Set<RGB> = []
  for y in 0..<image.height { for x in 0..<image.width { colors.insert(image.pixel(x: x, y: y)) } }
  for color in LinePlot.palette { #expect(colors.contains(color)) }
  #expect(colors.contains(.black) && colors.contains(.white) && colors.contains(.gray))
  // The y axis is a vertical black line at x = 60 through the plot area (where no curve
  // point covers it).
  let axis = (30..<(300 - 45)).filter { image.pixel(x: 60, y: $0) == .black }.count
  #expect(axis > (300 - 45 - 30) * 8 / 10)
  #expect(image.pixel(x: 59, y: 100) == .white)
  let file = try #require(FileManager.default.contents(atPath: run.directory + "/curves-fine.png"))
  let decoded = try decodeStoredPNG(Array(file))
  #expect(decoded.width == 640 && decoded.height == 400)
}

@Test("bitmap font: every glyph is 7 rows of 5 columns")
func fontGlyphs() {
  for (character, rows) in BitmapFont.glyphs {
    #expect(rows.count == 7 && rows.allSatisfy { $0.count == 5 }, "glyph \(character)")
  }
  var image = PlotCanvas(width: 20, height: 10)
  #expect(image.text("1%", x: 1, y: 1, .black) == 12)
  #expect(image.pixel(x: 3, y: 1) == .black)  // the top of the "1"
}
