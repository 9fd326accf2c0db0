import ArgumentParser
import Foundation
import TestSupport
import Testing
@testable import atso_transfer

/// The package's `mappings/` folder (Tests/CLITests/ -> package root).
private let demoMappings: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path + "/mappings"
}()

@Test("demo: checks its flags")
func demoValidation() throws {
  let command = try #require(try AtsoTransfer.parseAsRoot(["demo"]) as? DemoCommand)
  #expect(command.output == "./atso-demo")
  #expect(command.adaBn)
  for (arguments, message) in [
    (["--size", "8x8"], "--size '8x8': expected HxW with both at least 16"),
    (["--source-count", "1"], "--source-count and --target-count must be at least 2"),
    (["--generations", "0"], "iterations and generations must be at least 1"),
  ] {
    do {
      _ = try AtsoTransfer.parseAsRoot(["demo"] + arguments)
      Issue.record("\(arguments) accepted")
    } catch {
      #expect(AtsoTransfer.message(for: error) == message)
    }
  }
}

@Test("demo: a tiny run writes both layouts, runs the three stages and a second call resumes")
func demoTinyRun() throws {
  let root = try makeTemporaryDirectory("cli-demo")
  let arguments = [
    "demo", "-o", root, "--source-count", "4", "--target-count", "2", "--size", "32x48",
    "--widths", "4,8", "--source-iterations", "2", "--finetune-iterations", "1",
    "--generations", "1", "--mappings", demoMappings,
  ]
  var command = try #require(try AtsoTransfer.parseAsRoot(arguments) as? DemoCommand)
  try command.run()
  let files = [
    "data/source/leftImg8bit/train/synth/synth_000000_000019_leftImg8bit.png",
    "data/source/gtFine/train/synth/synth_000000_000019_gtFine_labelIds.png",
    "data/target/training/images/synth_000000.png",
    "data/target/validation/v1.2/labels/synth_100000.png",
    "run/table.md", "run/models/target-fine-atso.ckpt", "direct-adabn.ckpt",
  ]
  for file in files {
    #expect(FileManager.default.fileExists(atPath: root + "/" + file), "\(file) missing")
  }
  let table = try String(contentsOfFile: root + "/run/table.md", encoding: .utf8)
  for stage in ["coarse", "target-coarse", "target-fine"] {
    #expect(table.contains("Stage \(stage) "), "stage \(stage) missing")
  }
  command = try #require(try AtsoTransfer.parseAsRoot(arguments) as? DemoCommand)
  try command.run()  // resumes: every job is complete
  #expect(try String(contentsOfFile: root + "/run/table.md", encoding: .utf8) == table)
}
