import ArgumentParser
import Foundation
import Segmentation
import TestSupport
import Testing
import Transfer
@testable import atso_transfer

/// The configuration files of `examples/`, one per story of the README.
let exampleFiles = [
  "camvid-day-dusk.jsonc", "camvid-staged-super-class.jsonc",
  "camvid-semi-supervised-10pct.jsonc", "hippocampus-10pct.jsonc",
]
let examplesFolder = packageRoot + "/examples"
let sharedCamVid = sharedDataRoot + "/camvid"
let sharedHippocampus = sharedDataRoot + "/hippocampus-msd"

/// A dataset spec of an example pointed at the shared CamVid folder, keeping only the first
/// `perPrefix` frames of each sequence it includes (so that the run is tiny).
func shrunkCamVid(_ text: String, perPrefix: Int = 3) throws -> String {
  var spec = try DatasetSpec(parsing: text.replacingOccurrences(of: "data/camvid", with: sharedCamVid))
  let ids = try spec.open().samples.map(\.id)
  spec.includePrefixes = spec.includePrefixes.flatMap { prefix in
    ids.filter { $0.hasPrefix(prefix) }.prefix(perPrefix)
  }
  return spec.description
}

/// A Decathlon folder holding the first `count` cases of the shared hippocampus data (its
/// image and label folders linked, `dataset.json` shortened).
func shrunkHippocampus(count: Int) throws -> String {
  let root = try makeTemporaryDirectory("example-hippocampus")
  let manager = FileManager.default
  for folder in ["imagesTr", "labelsTr"] {
    try manager.createSymbolicLink(
      atPath: root + "/" + folder, withDestinationPath: sharedHippocampus + "/" + folder)
  }
  let data = try #require(manager.contents(atPath: sharedHippocampus + "/dataset.json"))
  var description = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  let training = try #require(description["training"] as? [Any])
  description["training"] = Array(training.prefix(count))
  description["numTraining"] = count
  try JSONSerialization.data(withJSONObject: description)
    .write(to: URL(fileURLWithPath: root + "/dataset.json"))
  return root
}

/// The flags that run an example at tiny sizes on the shared data.
func tinyExampleFlags(_ file: String) throws -> [String] {
  let configuration = try TransferConfiguration.decode(
    try #require(FileManager.default.contents(atPath: examplesFolder + "/" + file)),
    file: file, kinds: BackendKinds.all)
  let backend = try #require(try configuration.backend?.jsonObject())
  var options: [String] = []
  if case .string("volume")? = backend["kind"] {
    options = [
      "dataset=" + (try shrunkHippocampus(count: 8)), "testCases=2", "widths=4,8", "batch=4",
    ]
  } else {
    for key in ["source", "reference", "test"] {
      guard case .string(let text)? = backend[key] else { continue }
      options.append("\(key)=" + (try shrunkCamVid(text)))
    }
    options += ["size=32x32", "widths=4,8", "batch=2"]
  }
  options += ["sourceIterations=2", "finetuneIterations=2", "threads=1"]
  return ["--config", examplesFolder + "/" + file, "--previews", "1"]
    + options.flatMap { ["--backend-option", $0] }
}

@Test("every example configuration loads and validates, comments and all")
func examplesLoad() throws {
  let shipped = try FileManager.default.contentsOfDirectory(atPath: examplesFolder)
    .filter { $0.hasSuffix(".jsonc") }.sorted()
  #expect(shipped == exampleFiles.sorted())
  for file in exampleFiles {
    let configuration = try TransferConfiguration.load(
      from: examplesFolder + "/" + file, kinds: BackendKinds.all)
    #expect(configuration.backend != nil, "\(file)")
    #expect(configuration.seed == 1, "\(file)")
  }
  // Comments are stripped outside strings only (a `//` in a value stays).
  let text = #"{"seed": 2, // the seed\n "runDirectory": "a//b"}"#.replacingOccurrences(of: "\\n", with: "\n")
  let parsed = try TransferConfiguration.decode(Data(text.utf8), file: "t.jsonc")
  #expect(parsed.seed == 2 && parsed.runDirectory == "a//b")
}

@Test(
  "the example configurations run at tiny sizes on the real data",
  .enabled(if: FileManager.default.fileExists(atPath: sharedCamVid + "/train.txt")),
  arguments: exampleFiles)
func examplesRun(_ file: String) throws {
  if file.hasPrefix("hippocampus"),
    !FileManager.default.fileExists(atPath: sharedHippocampus + "/dataset.json")
  {
    print("skipped \(file): no \(sharedHippocampus)")
    return
  }
  let directory = try makeTemporaryDirectory("example") + "/run"
  var flags = try tinyExampleFlags(file) + ["-o", directory]
  if file.hasPrefix("hippocampus") {
    // The volume-only options too: nnU-Net's loss and sliding-window inference.
    flags += ["--backend-option", "loss=diceCrossEntropy", "--backend-option", "slidingWindow=16x16"]
  }
  let command = try parseTransfer(flags)
  try command.run()
  let manager = FileManager.default
  for name in ["table.md", "table.json", "metrics.jsonl", "sets.json", "configuration.json"] {
    #expect(manager.fileExists(atPath: directory + "/" + name), "\(file): \(name) missing")
  }
  let table = try String(contentsOfFile: directory + "/table.md", encoding: .utf8)
  #expect(table.contains("## Legend"), "\(file)")
  let sets = try JSONDecoder().decode(
    DataSummary.self, from: try #require(manager.contents(atPath: directory + "/sets.json")))
  #expect(!sets.labeled.isEmpty && !sets.reference.isEmpty && !sets.test.isEmpty)
  let logs = try manager.contentsOfDirectory(atPath: directory + "/losses")
  #expect(logs.contains("train-source.csv"), "\(file): \(logs)")
  if file.hasPrefix("hippocampus") {
    let log = try String(contentsOfFile: directory + "/losses/train-source.csv", encoding: .utf8)
    #expect(log.hasPrefix("view,step,loss,"))
    #expect(log.split(separator: "\n").count == 1 + 3 * 2)  // three views of 2 steps
    #expect(table.contains("loss diceCrossEntropy") && table.contains("sliding window 16x16"))
  }
  if file.contains("semi-supervised") {
    #expect(sets.labeled.count == 1 && sets.reference.count == 5)  // 10 % of 6 frames
    #expect(table.contains("S: the seeded 10 % of camvid:"))
  }
  if file.contains("staged") {
    #expect(table.contains("## Stage target-fine"))
  }
}

@Test(
  "--dry-run prints every key with the derived defaults, slashes as they are, and reads back",
  .enabled(if: FileManager.default.fileExists(atPath: sharedCamVid + "/train.txt")))
func dryRunDefaults() throws {
  let flags = try tinyExampleFlags("camvid-day-dusk.jsonc") + ["-o", "runs/day-dusk"]
  let resolved = try parseTransfer(flags).resolvedConfiguration()
  let text = String(decoding: try resolved.configuration.encodedWithDefaults(), as: UTF8.self)
  for line in [
    #""classes" : "camvid-11",  // default: for labels in camvid-11"#, #""model" : "unet",  // default"#,
    #""threads" : 1"#, #""maxGradientNorm" : null"#, #""runDirectory" : "runs/day-dusk""#,
    #""sourceModel" : null"#, #""confidenceThreshold" : null"#, #""initialization" : "he""#,
    #""source" : "camvid:\#(sharedCamVid)/train.txt?include="#,
  ] {
    #expect(text.contains(line), "missing \(line) in\n\(text)")
  }
  #expect(!text.contains("\\/"))
  // The output is a configuration file: read back, it resolves to the same values (the
  // derived ones now given, so without their comments).
  let again = try TransferConfiguration.decode(Data(text.utf8), file: "dry", kinds: BackendKinds.all)
  let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
    line.range(of: "  // ").map { String(line[..<$0.lowerBound]) } ?? String(line)
  }.joined(separator: "\n")
  #expect(String(decoding: try again.encodedWithDefaults(), as: UTF8.self) == uncommented)
  #expect(again.seed == resolved.seed && again.schedules == resolved.schedules)
}

@Test("transfer --help points at the examples")
func transferHelpExamples() {
  let help = AtsoTransfer.helpMessage(for: TransferCommand.self)
  #expect(help.contains("examples/camvid-day-dusk.jsonc"))
  #expect(help.contains("examples/hippocampus-10pct.jsonc"))
  #expect(!help.contains("TransferConfiguration"))
}
