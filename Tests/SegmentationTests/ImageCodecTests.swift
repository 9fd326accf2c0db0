import Foundation
import Tensor
import Taxonomy
import Testing

@testable import Segmentation

// Values written by scripts/make_segmentation_fixtures.py.
private let gray = [UInt8]([0, 1, 2, 3, 7, 8, 11, 254, 255, 128, 64, 33])
private let paletteIndices = [UInt8]([0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0])
private let paletteColors = [
  LabelColor(128, 64, 128), LabelColor(244, 35, 232), LabelColor(70, 70, 70),
  LabelColor(107, 142, 35), LabelColor(70, 130, 180), LabelColor(0, 0, 142),
]
private let rgb: [UInt8] = (0..<12).flatMap { (i: Int) -> [UInt8] in
  let r = UInt8(10 * i)
  let g = UInt8(20 * i % 256)
  let b = UInt8(255 - 7 * i)
  return [r, g, b]
}

@Suite("PNG and JPEG codecs")
struct ImageCodecTests {
  @Test("8-bit gray label, with and without a gAMA chunk")
  func grayLabel() throws {
    for name in ["gray8.png", "gray8_gamma.png"] {
      let label = try ImageFile.readLabel(at: TestPaths.fixture(name))
      #expect(label.width == 4 && label.height == 3)
      #expect(label.values == gray, "\(name)")
    }
  }

  @Test("1-bit gray mask gives raw samples 0/1")
  func oneBitMask() throws {
    let label = try ImageFile.readLabel(at: TestPaths.fixture("gray1.png"))
    #expect(label.values == [0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1])
  }

  @Test("16-bit gray: exact values; as a label it is refused with the offending value")
  func gray16() throws {
    let image = try ImageFile.readGray16(at: TestPaths.fixture("gray16.png"))
    #expect(image.values == [0, 1, 255, 256, 1000, 24000, 24001, 26002, 65535, 7, 11, 300])
    let path = TestPaths.fixture("gray16.png")
    #expect(throws: ImageError.self) { try ImageFile.readLabel(at: path) }
    do {
      _ = try ImageFile.readLabel(at: path)
    } catch {
      #expect(error.description.contains("256"))
      #expect(error.description.contains(path))
    }
    // Read as RGB, 16-bit samples are rescaled, not converted from linear light.
    let rgb16 = try ImageFile.readRGB(at: path)
    let expected = image.values.map { UInt8((Double($0) / 257).rounded()) }
    #expect((0..<12).map { rgb16.pixels[3 * $0] } == expected)
    // 8-bit files read as 16-bit are widened, not rescaled.
    let widened = try ImageFile.readGray16(at: TestPaths.fixture("gray8.png"))
    #expect(widened.values == gray.map { UInt16($0) })
  }

  @Test(
    "palette PNGs keep their indices",
    arguments: ["palette8.png", "palette4bit.png", "palette_trns.png"])
  func palette(name: String) throws {
    let image = try ImageFile.readPalette(at: TestPaths.fixture(name))
    #expect(image.indices.values == paletteIndices)
    #expect(Array(image.palette.prefix(6)) == paletteColors)
    #expect(image.palette.count == (name == "palette8.png" ? 256 : 6))
    let label = try ImageFile.readLabel(at: TestPaths.fixture(name))
    #expect(label.values == paletteIndices)
    let info = try PNGCodec.info(TestPaths.fixtureBytes(name), path: name)
    #expect(info.colorKind == .palette)
    #expect(info.paletteCount == image.palette.count)
  }

  @Test("a palette read as LabelColor is expanded through the colour table")
  func paletteAsRGB() throws {
    let image = try ImageFile.readRGB(at: TestPaths.fixture("palette8.png"))
    for i in 0..<12 {
      let c = paletteColors[Int(paletteIndices[i])]
      #expect(Array(image.pixels[(3 * i)..<(3 * i + 3)]) == [c.red, c.green, c.blue])
    }
  }

  @Test("RGB and RGBA (alpha composited onto black)")
  func rgbAndRGBA() throws {
    let image = try ImageFile.readRGB(at: TestPaths.fixture("rgb8.png"))
    #expect(image.width == 4 && image.height == 3 && image.pixels == rgb)
    let rgba = try ImageFile.readRGB(at: TestPaths.fixture("rgba8.png"))
    for i in 0..<12 {
      let expected = i % 2 == 0 ? Array(rgb[(3 * i)..<(3 * i + 3)]) : [0, 0, 0]
      #expect(Array(rgba.pixels[(3 * i)..<(3 * i + 3)]) == expected)
    }
    let path = TestPaths.fixture("rgb8.png")
    #expect(
      throws: ImageError.unsupported(
        path: path, reason: "label PNG is rgb; expected gray or palette")
    ) {
      try ImageFile.readLabel(at: path)
    }
  }

  @Test("JPEG LabelColor and grayscale match Pillow's decode within 3 levels")
  func jpeg() throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("expected.json")))
    struct Expected: Decodable {
      var rgb: [Int]
      var gray: [Int]
      enum CodingKeys: String, CodingKey {
        case rgb = "rgb8.jpg"
        case gray = "gray8.jpg"
      }
    }
    let decoded = try JSONDecoder().decode(Expected.self, from: data)
    let expected = ["rgb8.jpg": decoded.rgb, "gray8.jpg": decoded.gray]
    let color = try ImageFile.readRGB(at: TestPaths.fixture("rgb8.jpg"))
    #expect(color.width == 8 && color.height == 8)
    let colorRef = try #require(expected["rgb8.jpg"])
    let colorDiff = zip(color.pixels, colorRef).map { abs(Int($0) - $1) }.max() ?? 99
    #expect(colorDiff <= 3, "max difference \(colorDiff)")
    let grayImage = try ImageFile.readRGB(at: TestPaths.fixture("gray8.jpg"))
    let grayRef = try #require(expected["gray8.jpg"])
    var grayDiff = 0
    for i in 0..<64 {
      #expect(grayImage.pixels[3 * i] == grayImage.pixels[3 * i + 1])
      grayDiff = max(grayDiff, abs(Int(grayImage.pixels[3 * i]) - grayRef[i]))
    }
    #expect(grayDiff <= 3, "max difference \(grayDiff)")
  }

  @Test("round trips: gray, LabelColor, palette (indices and colours)")
  func roundTrips() throws {
    var generator = SeededGenerator(seed: 3)
    let w = 37
    let h = 11
    let values = (0..<(w * h)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let label = LabelImage(width: w, height: h, values: values)
    #expect(try PNGCodec.decodeLabel(PNGCodec.encodeGray(label), path: "g") == label)

    let pixels = (0..<(3 * w * h)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let image = RGBImage(width: w, height: h, pixels: pixels)
    #expect(try PNGCodec.decodeRGB(PNGCodec.encodeRGB(image), path: "c") == image)

    for entries in [2, 5, 66, 256] {
      let palette = (0..<entries).map { LabelColor(UInt8($0), UInt8(255 - $0), UInt8($0 / 2)) }
      let indices = (0..<(w * h)).map { _ in UInt8(Int.random(in: 0..<entries, using: &generator)) }
      let paletted = PaletteImage(
        indices: LabelImage(width: w, height: h, values: indices), palette: palette)
      let bytes = try PNGCodec.encodePalette(paletted)
      #expect(try PNGCodec.decodePalette(bytes, path: "p") == paletted, "\(entries) entries")
      #expect(try PNGCodec.info(bytes, path: "p").colorKind == .palette)
    }
    // Through files.
    let dir = try TestPaths.temporaryDirectory("roundtrip")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try ImageFile.writePNG(label, to: dir + "/sub/label.png")
    #expect(try ImageFile.readLabel(at: dir + "/sub/label.png") == label)
  }

  @Test("palette encode refuses indices outside the palette")
  func paletteIndexOutOfRange() {
    let image = PaletteImage(
      indices: LabelImage(width: 2, height: 1, values: [0, 3]),
      palette: [LabelColor(0, 0, 0), LabelColor(1, 1, 1)])
    #expect(throws: ImageError.self) { try PNGCodec.encodePalette(image, path: "x.png") }
    #expect(throws: ImageError.self) {
      try PNGCodec.encodePalette(PaletteImage(indices: image.indices, palette: []), path: "x.png")
    }
  }

  @Test("headers over the pixel limit are refused before decoding")
  func tooLarge() throws {
    let png = TestPaths.fixture("huge_header.png")
    #expect(throws: ImageError.tooLarge(path: png, width: 100000, height: 100000, limit: 1 << 28)) {
      try ImageFile.readLabel(at: png)
    }
    #expect(throws: ImageError.tooLarge(path: png, width: 100000, height: 100000, limit: 1 << 28)) {
      try ImageFile.readRGB(at: png)
    }
    let jpg = TestPaths.fixture("huge_header.jpg")
    #expect(throws: ImageError.tooLarge(path: jpg, width: 60000, height: 60000, limit: 1 << 28)) {
      try ImageFile.readRGB(at: jpg)
    }
    // A small limit refuses small images too.
    let small = TestPaths.fixture("rgb8.png")
    #expect(throws: ImageError.tooLarge(path: small, width: 4, height: 3, limit: 11)) {
      try ImageFile.readRGB(at: small, maxPixels: 11)
    }
    let smallJPEG = TestPaths.fixture("rgb8.jpg")
    #expect(throws: ImageError.tooLarge(path: smallJPEG, width: 8, height: 8, limit: 63)) {
      try ImageFile.readRGB(at: smallJPEG, maxPixels: 63)
    }
  }

  @Test(
    "every truncation of every fixture is refused with an error naming the file",
    arguments: [
      "gray8.png", "gray16.png", "palette8.png", "palette_trns.png", "rgb8.png", "rgba8.png",
      "rgb8.jpg", "gray8.jpg",
    ])
  func truncated(name: String) throws {
    let bytes = try TestPaths.fixtureBytes(name)
    for length in 0..<bytes.count {
      let prefix = Array(bytes.prefix(length))
      let path = "\(name)[0..<\(length)]"
      do {
        if name.hasSuffix(".jpg") {
          _ = try JPEGCodec.decodeRGB(prefix, path: path)
          // libjpeg pads a stream cut inside the scan data with a warning; the size is still right.
          continue
        }
        _ = try PNGCodec.decodeRGB(prefix, path: path)
        // libpng stops after the last IDAT: a file cut inside the 12-byte IEND chunk has all its
        // pixels and may decode; a cut anywhere earlier must be refused.
        #expect(length >= bytes.count - 12, "\(path) decoded")
      } catch {
        #expect(error.description.hasPrefix(path))
      }
      do {
        if name.hasSuffix(".png") { _ = try PNGCodec.decodeLabel(prefix, path: path) }
      } catch {
        #expect(error.description.hasPrefix(path))
      }
    }
  }

  @Test(
    "corrupt bytes are refused or decoded, never crash",
    arguments: ["palette8.png", "rgb8.png", "rgb8.jpg"])
  func corrupt(name: String) throws {
    let bytes = try TestPaths.fixtureBytes(name)
    var generator = SeededGenerator(seed: 11)
    var refused = 0
    // ATSO_FUZZ_TRIALS raises the number of damaged copies for a longer local run.
    let trials = ProcessInfo.processInfo.environment["ATSO_FUZZ_TRIALS"].flatMap { Int($0) } ?? 300
    for trial in 0..<trials {
      var damaged = bytes
      for _ in 0..<(1 + trial % 4) {
        let i = Int.random(in: 0..<damaged.count, using: &generator)
        damaged[i] = UInt8.random(in: 0...255, using: &generator)
      }
      do {
        if name.hasSuffix(".jpg") {
          _ = try JPEGCodec.decodeRGB(damaged, path: name)
        } else {
          _ = try PNGCodec.decodeRGB(damaged, path: name)
          _ = try PNGCodec.decodeLabel(damaged, path: name)
        }
      } catch {
        refused += 1
        #expect(error.description.hasPrefix(name))
      }
    }
    #expect(refused > 0)
  }

  @Test("missing files, directories and unknown formats")
  func badFiles() throws {
    #expect(throws: ImageError.fileNotFound(path: "/nonexistent/x.png")) {
      try ImageFile.readRGB(at: "/nonexistent/x.png")
    }
    let dir = try TestPaths.temporaryDirectory("bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(throws: ImageError.readFailed(path: dir, reason: "is a folder, not a file")) {
      try ImageFile.readLabel(at: dir)
    }
    try ImageFile.writeBytes(Array("hello".utf8), to: dir + "/t.png")
    #expect(throws: ImageError.self) { try ImageFile.readRGB(at: dir + "/t.png") }
    #expect(
      throws: ImageError.decodeFailed(
        path: dir + "/t.png", format: "PNG", reason: "missing PNG signature")
    ) {
      try ImageFile.readLabel(at: dir + "/t.png")
    }
  }

  @Test("a file over the byte limit is refused before it is read (sparse file, no disk used)")
  func oversizeFile() throws {
    let dir = try TestPaths.temporaryDirectory("sparse")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/huge.png"
    #expect(FileManager.default.createFile(atPath: path, contents: Data(PNGCodec.signature)))
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.truncate(atOffset: UInt64(ImageLimits.maxFileBytes) + 1)
    try handle.close()
    // Guard against reading 1 GiB here if file sizes could not be queried.
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    try #require((attributes[.size] as? NSNumber)?.intValue == ImageLimits.maxFileBytes + 1)
    do {
      _ = try ImageFile.readBytes(at: path)
      Issue.record("\(path) was read")
    } catch {
      guard case .readFailed(let p, let reason) = error else {
        Issue.record("unexpected \(error)")
        return
      }
      #expect(p == path && reason.contains("exceeds"))
    }
  }

  @Test("colour chunks are stripped, other chunks kept")
  func stripChunks() throws {
    let bytes = try TestPaths.fixtureBytes("gray8_gamma.png")
    let stripped = PNGCodec.strippingColorChunks(bytes)
    #expect(stripped.count == bytes.count - 16)
    #expect(try PNGCodec.decodeLabel(stripped, path: "s").values == gray)
    // Without stripping, libpng applies the gamma 1.0 -> sRGB curve (what a label reader avoids).
    let converted = try PNGCodec.decodeRGB(bytes, path: "g")
    #expect((0..<12).map { converted.pixels[3 * $0] } != gray)
  }
}

@Suite("real samples in shared/data")
struct RealImageTests {
  @Test(
    "Mapillary v1.2 palette label: indices 17, 44, 45; JPEG 100x100",
    .enabled(if: TestPaths.hasSharedData("mapillary-mini")))
  func mapillary() throws {
    let root = TestPaths.sharedData + "/mapillary-mini"
    let label = try ImageFile.readPalette(at: root + "/v1.2/__CRyFzoDOXn6unQ6a3DnQ.png")
    #expect(Set(label.indices.values) == [17, 44, 45])
    #expect(label.palette[17] == LabelColor(70, 70, 70))
    let image = try ImageFile.readRGB(at: root + "/images/__CRyFzoDOXn6unQ6a3DnQ.jpg")
    #expect(image.width == label.indices.width && image.height == label.indices.height)
    #expect(image.width == 100 && image.height == 100)
  }

  @Test(
    "Cityscapes labelIds, trainIds, 16-bit instanceIds, LabelColor frame",
    .enabled(if: TestPaths.hasSharedData("cityscapes-mini")))
  func cityscapes() throws {
    let base = TestPaths.sharedData + "/cityscapes-mini"
    let stem = "val/frankfurt/frankfurt_000000_000294"
    let ids = try ImageFile.readLabel(at: "\(base)/gtFine/\(stem)_gtFine_labelIds.png")
    #expect(Set(ids.values) == [1, 2, 3, 4, 7, 8, 11, 13, 17, 20, 21, 23, 24, 26])
    let train = try ImageFile.readLabel(at: "\(base)/gtFine/\(stem)_gtFine_labelTrainIds.png")
    #expect(Set(train.values) == [0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 255])
    let instances = try ImageFile.readGray16(at: "\(base)/gtFine/\(stem)_gtFine_instanceIds.png")
    let things = Set(instances.values.filter { $0 >= 1000 })
    #expect(things == [24000, 24001, 24002, 24003, 26000, 26001, 26002])
    let image = try ImageFile.readRGB(at: "\(base)/leftImg8bit/\(stem)_leftImg8bit.png")
    #expect(image.width == 256 && image.height == 128 && ids.width == 256)
  }

  @Test("CamVid frame and label", .enabled(if: TestPaths.hasSharedData("camvid")))
  func camvid() throws {
    let base = TestPaths.sharedData + "/camvid"
    let image = try ImageFile.readRGB(at: base + "/train/0001TP_006690.png")
    let label = try ImageFile.readLabel(at: base + "/trainannot/0001TP_006690.png")
    #expect(image.width == 480 && image.height == 360)
    #expect(label.width == 480 && label.height == 360)
    #expect(label.values.allSatisfy { $0 <= 11 })
  }
}
