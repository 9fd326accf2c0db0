import Foundation
import Segmentation
import Testing

@testable import atso_transfer

@Suite("evaluate --pairs: the list file")
struct PairsListTests {
  /// Writes `text` as a list file in a new folder; the folder and the file's path.
  private func list(_ text: String) throws -> (folder: String, path: String) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pairs-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let path = folder + "/pairs.txt"
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return (folder, path)
  }

  @Test("paths relative to the list's folder or absolute, spaces or tabs, comments, blank and CRLF lines, non-ASCII names")
  func format() throws {
    let (folder, path) = try list(
      "# prediction truth\n\npred/a.png gt/a.png\r\n/abs/b.png\t\t/abs/gtb.png\n"
        + "  pred/é.png   gt/é.png  \n\n")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let pairs = try LabelEvaluation.pairs(listFile: path)
    #expect(
      pairs == [
        LabelPair(prediction: folder + "/pred/a.png", truth: folder + "/gt/a.png"),
        LabelPair(prediction: "/abs/b.png", truth: "/abs/gtb.png"),
        LabelPair(prediction: folder + "/pred/é.png", truth: folder + "/gt/é.png"),
      ])
  }

  @Test("a line without two fields is refused with the file, its line number and its text; an empty list and a missing file are refused")
  func refusals() throws {
    let (folder, path) = try list("a.png b.png\n# note\na.png b.png c.png\r\n")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    #expect(throws: SegmentationCommandError(
      description: "\(path):3: expected 'prediction truth', got 'a.png b.png c.png'")) {
      try LabelEvaluation.pairs(listFile: path)
    }
    let (emptyFolder, empty) = try list("# nothing\n\n")
    defer { try? FileManager.default.removeItem(atPath: emptyFolder) }
    #expect(throws: SegmentationCommandError(description: "\(empty): no pairs")) {
      try LabelEvaluation.pairs(listFile: empty)
    }
    let missing = folder + "/missing.txt"
    #expect(throws: SegmentationCommandError(
      description: "\(missing): cannot read the list of pairs")) {
      try LabelEvaluation.pairs(listFile: missing)
    }
  }
}
