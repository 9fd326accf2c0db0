import Foundation
import Testing

@testable import Segmentation

/// Inputs found by the libFuzzer harnesses of Fuzz/ (scripts/fuzz.sh) that crashed or broke an
/// invariant, kept as tests (their reproducers are in Fuzz/Corpus/<harness>/regression-*).
@Suite("fuzz findings (Segmentation)")
struct FuzzRegressionTests {
  @Test(
    "FuzzDatasetSpec: an option without a name or without values is an error, not a trap",
    arguments: ["camvid:x?=", "camvid:x?&=&", "camvid:x?=a", "camvid:x?include=", "camvid:x?exclude=,"])
  func emptyOptions(_ text: String) {
    #expect(throws: DatasetError.self) { try DatasetSpec(parsing: text) }
  }

  @Test("FuzzGrayPNG: a chunk announcing more bytes than the file has is refused before libpng allocates them")
  func overlongChunk() throws {
    // 80 bytes, a tEXt chunk of announced length 0x50000000: libpng allocated 1.3 GB for it.
    let file = try #require(Data(base64Encoded:
      "iVBORw0KGgoAAAANSUhEUgAAAAkAAAAGCAAAAAA0rOsZUAAAAHRFWHRDb21tZW50AGxhYmVsc43ZL90AQAAEZ0FNW0EAALGPC/xhBQAAYII="))
    let reason = "chunk 'tEXt' at byte 33 announces 1342177280 bytes, but the file has 35 left"
      + " (truncated or corrupt; a chunk must fit in the file)"
    let expected = ImageError.decodeFailed(path: "f.png", format: "PNG", reason: reason)
    #expect(throws: expected) { try PNGCodec.decodeLabel([UInt8](file), path: "f.png") }
    #expect(throws: expected) { try PNGCodec.decodeRGB([UInt8](file), path: "f.png") }
    var image = LabelImage(width: 0, height: 0, values: [])
    #expect(throws: expected) { try LabelFileReader().decode([UInt8](file), path: "f.png", into: &image) }
  }
}
