import Foundation
import Testing

@testable import Segmentation

@Suite("LabelFileReader: the evaluation's reader, buffers reused")
struct LabelReaderTests {
  @Test("one reader and one image for many files give what readLabel gives, file by file")
  func sameAsReadLabel() throws {
    var reader = LabelFileReader()
    var image = LabelImage(width: 0, height: 0, values: [])
    // Gray with and without gAMA (stripped), a 1-bit mask, a palette, then gray again.
    for name in ["gray8.png", "gray8_gamma.png", "gray1.png", "palette8.png", "gray8.png"] {
      let path = TestPaths.fixture(name)
      try reader.read(at: path, into: &image)
      #expect(image == (try ImageFile.readLabel(at: path)), "\(name)")
    }
  }

  @Test("an 8-bit gray frame of the same size is decoded into the same storage")
  func storageReused() throws {
    var reader = LabelFileReader()
    var image = LabelImage(width: 0, height: 0, values: [])
    let path = TestPaths.fixture("gray8_gamma.png")
    try reader.read(at: path, into: &image)
    let first = image.values.withUnsafeBufferPointer { $0.baseAddress }
    try reader.read(at: TestPaths.fixture("gray8.png"), into: &image)
    #expect(image.values.withUnsafeBufferPointer { $0.baseAddress } == first)
  }

  @Test("missing files and folders are refused with their path")
  func refusals() throws {
    var reader = LabelFileReader()
    var image = LabelImage(width: 0, height: 0, values: [])
    let missing = TestPaths.fixture("no-such-file.png")
    #expect(throws: ImageError.fileNotFound(path: missing)) {
      try reader.read(at: missing, into: &image)
    }
    let folder = FileManager.default.temporaryDirectory.path
    #expect(throws: ImageError.readFailed(path: folder, reason: "is a folder, not a file")) {
      try reader.read(at: folder, into: &image)
    }
    // The reader still works after a failure.
    try reader.read(at: TestPaths.fixture("gray8.png"), into: &image)
    #expect(image.width == 4 && image.height == 3)
  }
}
