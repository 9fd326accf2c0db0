import ArgumentParser
import Foundation
import Testing

@testable import atso_transfer

@Suite("dataset commands")
struct DatasetCommandTests {
  @Test("synthesize writes both domains; info reads them back")
  func synthesizeAndInfo() throws {
    let root = NSTemporaryDirectory() + "cli-dataset-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let synth = try #require(
      try AtsoTransfer.parseAsRoot([
        "dataset", "synthesize", "--output", root, "--count", "2", "--width", "32", "--height",
        "16",
      ]) as? DatasetCommand.Synthesize)
    let summary = try synth.write()
    #expect(summary.contains("source: 2 scenes (cityscapes-34)"))
    #expect(summary.contains("target: 2 scenes (mapillary-vistas-v1.2)"))

    let source = try #require(
      try AtsoTransfer.parseAsRoot([
        "dataset", "info", "cityscapes:\(root)/source:train",
      ]) as? DatasetCommand.Info)
    let text = try source.report()
    #expect(text.hasPrefix("2 samples, class set cityscapes-34, 2 labelled"))
    #expect(text.contains("sizes 16x32 (HxW)"))
    #expect(text.contains("    7 ") && text.contains("%  road"))  // road labelId, named

    let target = try #require(
      try AtsoTransfer.parseAsRoot([
        "dataset", "info", "mapillary:\(root)/target:training", "--decode", "1",
      ]) as? DatasetCommand.Info)
    let targetText = try target.report()
    #expect(targetText.contains("class set mapillary-vistas-v1.2"))
    #expect(targetText.contains("   13 ") && targetText.contains("%  construction--flat--road"))
    #expect(!targetText.contains("warning"))
  }

  @Test("flag validation")
  func validation() {
    #expect(throws: (any Error).self) {
      try AtsoTransfer.parseAsRoot(["dataset", "info", "/x"])
    }
    #expect(throws: (any Error).self) {
      try AtsoTransfer.parseAsRoot(["dataset", "synthesize", "--output", "/x", "--width", "8"])
    }
    #expect(throws: (any Error).self) {
      try AtsoTransfer.parseAsRoot(["dataset", "info", "pascal:/x"])
    }
  }

  @Test("a missing dataset is a clear error naming the folder")
  func missing() throws {
    let info = try #require(
      try AtsoTransfer.parseAsRoot([
        "dataset", "info", "mapillary:/nonexistent/vistas:training",
      ]) as? DatasetCommand.Info)
    #expect(throws: (any Error).self) { try info.report() }
    do {
      _ = try info.report()
    } catch {
      #expect("\(error)".contains("/nonexistent/vistas/training"))
    }
  }
}
