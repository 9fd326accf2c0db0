import ArgumentParser
import Foundation
import TestSupport
import Testing
import Transfer
@testable import atso_transfer

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The `atso-transfer` executable next to the test bundle (built by `swift build`/`swift test`).
let atsoTransferExecutable = builtExecutable("atso-transfer")

func completedRecords(_ directory: String) -> [String] {
  ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/steps")) ?? [])
    .filter { $0.hasSuffix(".json") }.sorted()
}

@Test(
  "kill -9 at several points, then `atso-transfer resume`: same results, nothing redone",
  .enabled(if: atsoTransferExecutable != nil, "the atso-transfer executable is not built"))
func killNineAndResume() throws {
  let executable = try #require(atsoTransferExecutable)
  let root = try makeTemporaryDirectory("cli-kill")
  try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
  var configuration = TransferConfiguration(seed: 7, folds: 3, generations: 2)
  configuration.pseudoLabels.adaptBatchNorm = true
  configuration.backend = SimulationOptions(units: 8, delayMicroseconds: 2000)
  let file = root + "/run.json"
  try configuration.save(to: file)

  let reference = root + "/reference"
  let command = try #require(
    try AtsoTransfer.parseAsRoot(["transfer", "--config", file, "-o", reference])
      as? TransferCommand)
  try command.run()
  let jobs = completedRecords(reference).count
  #expect(jobs > 40)
  let results = ["metrics.jsonl", "table.json", "table.md", "curves-fine.png"]

  for killAfter in [0, 3, 11, jobs / 2, jobs - 4] {
    let directory = root + "/killed\(killAfter)"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = ["transfer", "--config", file, "-o", directory]
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    while process.isRunning && completedRecords(directory).count < killAfter { usleep(500) }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    #expect(process.terminationReason == .uncaughtSignal, "finished before the kill")
    var before: [String: (Data?, Date?)] = [:]
    for name in completedRecords(directory) {
      let path = directory + "/steps/" + name
      let attributes = try? FileManager.default.attributesOfItem(atPath: path)
      before[name] = (
        FileManager.default.contents(atPath: path), attributes?[.modificationDate] as? Date
      )
    }

    // Killed before the configuration was saved, the run is started again; otherwise resumed.
    let started = FileManager.default.fileExists(atPath: directory + "/configuration.json")
    #expect(started || killAfter == 0)
    let resume = Process()
    resume.executableURL = URL(fileURLWithPath: executable)
    resume.arguments =
      started ? ["resume", directory] : ["transfer", "--config", file, "-o", directory]
    resume.standardOutput = FileHandle.nullDevice
    try resume.run()
    resume.waitUntilExit()
    #expect(resume.terminationStatus == 0)
    for name in results {
      #expect(
        FileManager.default.contents(atPath: directory + "/" + name)
          == FileManager.default.contents(atPath: reference + "/" + name),
        "\(name) differs after a kill after \(killAfter) steps")
    }
    // Completed steps are not redone: their records are untouched.
    for (name, (data, date)) in before {
      let path = directory + "/steps/" + name
      let attributes = try? FileManager.default.attributesOfItem(atPath: path)
      #expect(FileManager.default.contents(atPath: path) == data, "\(name) rewritten")
      #expect(attributes?[.modificationDate] as? Date == date, "\(name) rewritten")
    }
    #expect(completedRecords(directory) == completedRecords(reference))
  }
}
