import ArgumentParser
import Foundation
import ImageTransfer
import Segmentation
import Taxonomy
import Testing
import Transfer

@testable import atso_transfer

/// The package root (Tests/CLITests/ -> package root).
private let packageRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path
}()

/// A folder of one's own with one class set and one mapping (nothing copied from mappings/).
private func userFolder(in root: String) throws -> String {
  let folder = root + "/my-mappings"
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  try """
  {"kind": "class-set", "version": 1, "name": "road-car-other", "ignoreIndex": 255,
   "classes": [{"id": 0, "name": "road", "color": [128, 64, 128]},
               {"id": 1, "name": "car", "color": [0, 0, 142]},
               {"id": 2, "name": "other", "color": [70, 70, 70]}]}
  """.write(toFile: folder + "/road-car-other.classes.json", atomically: true, encoding: .utf8)
  try """
  {"kind": "mapping", "version": 1, "name": "cityscapes-19-to-road-car-other",
   "from": "cityscapes-19", "to": "road-car-other",
   "entries": [{"to": "road", "from": ["road", "sidewalk"]}, {"to": "car", "from": ["car"]},
               {"to": "other", "from": ["building", "wall", "fence", "pole", "traffic light",
                 "traffic sign", "vegetation", "terrain", "sky", "person", "rider"]}],
   "unlisted": "ignore"}
  """.write(
    toFile: folder + "/cityscapes-19--road-car-other.mapping.json", atomically: true,
    encoding: .utf8)
  return folder
}

private func run(_ arguments: [String]) throws {
  var command = try AtsoTransfer.parseAsRoot(arguments)
  try command.run()
}

@Suite("your own class set and mapping (issue 13)")
struct YourOwnDataTests {
  @Test("one folder, one class set, one mapping: mapping, train, evaluate, predict, transfer")
  func userFolderEverywhere() throws {
    let root = NSTemporaryDirectory() + "cli-own-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: root) }
    let mine = try userFolder(in: root)
    try SyntheticStreets.writeDataset(
      domain: .source, root: root + "/city", split: "train", count: 3, seed: 11, width: 32,
      height: 16)
    try SyntheticStreets.writeDataset(
      domain: .target, root: root + "/vistas", split: "training", count: 3, seed: 11, width: 32,
      height: 16)
    let city = "cityscapes:\(root)/city:train"
    let own = ["--mappings", mine]

    // mapping: show by name, apply through the shipped 34 -> 19 and your 19 -> yours.
    let show = try #require(
      try AtsoTransfer.parseAsRoot(["mapping", "show", "road-car-other"] + own)
        as? MappingCommand.Show)
    #expect(try show.text().contains("class set road-car-other: 3 classes"))
    try run(
      ["mapping", "apply", "cityscapes-34:road-car-other", "--input",
       root + "/city/gtFine/train/synth", "--output", root + "/applied"] + own)
    let applied = try FileManager.default.contentsOfDirectory(atPath: root + "/applied")
    #expect(applied.count == 3)
    for name in applied {
      #expect(try ImageFile.readLabel(at: root + "/applied/" + name).values.allSatisfy {
        $0 <= 2 || $0 == 255
      })
    }

    // train a network on your class set (labels 34 -> 19 -> yours).
    try run(
      ["train", "--dataset", city, "--classes", "road-car-other", "--widths", "4,8", "--size",
       "16x32", "--batch", "2", "--iterations", "2", "--output", root + "/run", "--threads",
       "1"] + own)
    let checkpoint = root + "/run/checkpoint.safetensors"
    #expect(try Checkpoint.read(from: checkpoint).description.classSetName == "road-car-other")

    // predict in your classes; evaluate the files and the checkpoint: the same numbers.
    try run(["predict", "--checkpoint", checkpoint, "--dataset", city, "--output", root + "/pred"] + own)
    let evaluate = { (arguments: [String]) throws -> EvaluationReport in
      try #require(try AtsoTransfer.parseAsRoot(["evaluate"] + arguments + own) as? EvaluateCommand)
        .report()
    }
    let files = try evaluate([
      "--truth", city, "--predictions", root + "/pred", "--prediction-classes", "road-car-other",
    ])
    let direct = try evaluate(["--checkpoint", checkpoint, "--truth", city])
    #expect(files.classes.name == "road-car-other" && direct.classes.name == "road-car-other")
    #expect(files.matrix == direct.matrix)
    #expect(
      direct.mappings == [
        "cityscapes-34-to-cityscapes-19", "cityscapes-19-to-road-car-other",
      ])

    // The second case: the mapping given by path, no folder, --at its class set by name.
    try run(
      ["mapping", "apply", "cityscapes-34:cityscapes-19", "--input",
       root + "/city/gtFine/train/synth", "--output", root + "/exact"])
    for name in try FileManager.default.contentsOfDirectory(atPath: root + "/exact") {
      try FileManager.default.moveItem(
        atPath: root + "/exact/" + name,
        toPath: root + "/exact/" + name.replacingOccurrences(of: "_gtFine_labelIds", with: ""))
    }
    let byPath = try #require(
      try AtsoTransfer.parseAsRoot([
        "evaluate", "--truth", city, "--predictions", root + "/exact", "--prediction-classes",
        "cityscapes-19", "--mapping", mine + "/cityscapes-19--road-car-other.mapping.json",
        "--at", "road-car-other",
      ]) as? EvaluateCommand
    ).report()
    #expect(byPath.classes.name == "road-car-other")
    #expect(byPath.meanIoU == 1)

    // transfer: the backend option `mappings` adds your folder (Mapillary R and E go
    // 66 -> 19 -> yours).
    let configuration = TransferConfiguration(
      seed: 2, schedules: [.selfLearning], folds: 2, generations: 1,
      backend: try ImageBackendOptions.decoding([
        "source": .string(city), "reference": .string("mapillary:\(root)/vistas:training?unlabeled"),
        "test": .string("mapillary:\(root)/vistas:training"), "classes": "road-car-other",
        "widths": [4, 8], "size": "16x32", "batch": 2, "sourceIterations": 2,
        "finetuneIterations": 1, "mappings": .string(mine),
      ]))
    try configuration.save(to: root + "/transfer.json")
    try run(["transfer", "--config", root + "/transfer.json", "-o", root + "/transfer", "--previews", "0"])
    let metrics = try String(contentsOfFile: root + "/transfer/metrics.jsonl", encoding: .utf8)
    #expect(!metrics.isEmpty)
    #expect(FileManager.default.fileExists(atPath: root + "/transfer/table.md"))
  }

  @Test(
    "README 'Your own data' runs as written",
    .enabled(if: atsoTransferExecutable != nil, "the atso-transfer executable is not built"))
  func readmeExampleRuns() throws {
    let executable = try #require(atsoTransferExecutable)
    let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
    let begin = try #require(readme.range(of: "<!-- your-own-data:begin -->\n```sh\n"))
    let end = try #require(readme.range(of: "```\n<!-- your-own-data:end -->"))
    let script = String(readme[begin.upperBound..<end.lowerBound])
    #expect(script.contains("atso-transfer train") && script.contains("--at road-vehicle-other"))
    let root = NSTemporaryDirectory() + "cli-readme-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-euo", "pipefail", "-c", script]
    process.currentDirectoryURL = URL(fileURLWithPath: root)
    var environment = ProcessInfo.processInfo.environment
    let folder = URL(fileURLWithPath: executable).deletingLastPathComponent().path
    environment["PATH"] = folder + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
    environment.removeValue(forKey: MappingLibrary.environmentVariable)
    process.environment = environment
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    #expect(process.terminationStatus == 0, "\(text)")
    #expect(text.contains("scored at road-vehicle-other"), "\(text)")
    #expect(text.contains("spread of mIoU"))
    let json = try String(contentsOfFile: root + "/run/val.json", encoding: .utf8)
    #expect(json.contains("\"classSet\": \"road-vehicle-other\""))
    #expect(json.contains("cityscapes-19-to-road-vehicle-other"))
    // List ids are the image paths as written, without extension: run/pred/images/<id>.png.
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: root + "/run/pred/images").count == 2)
  }
}
