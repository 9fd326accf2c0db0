import ArgumentParser
import Foundation
import Testing
import Transfer

@testable import atso_transfer

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Runs `atso-transfer` with `arguments` in the background; its stderr goes to `log`.
private func launch(_ executable: String, _ arguments: [String], log: String) throws -> Process {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  process.standardOutput = FileHandle.nullDevice
  FileManager.default.createFile(atPath: log, contents: nil)
  process.standardError = FileHandle(forWritingAtPath: log)
  try process.run()
  return process
}

@Test(
  "two `resume` at once on a killed run: one finishes, the other is refused naming it",
  .enabled(if: atsoTransferExecutable != nil, "the atso-transfer executable is not built"))
func concurrentResumes() throws {
  let executable = try #require(atsoTransferExecutable)
  let root = NSTemporaryDirectory() + "cli-concurrent-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: root) }
  var configuration = TransferConfiguration(seed: 5, folds: 2, generations: 2)
  // 20 ms inside every write: the remaining jobs take about a second, so the second `resume`
  // starts while the first holds the run.
  configuration.backend = SimulationOptions(units: 6, delayMicroseconds: 20000)
  let file = root + "/run.json"
  try configuration.save(to: file)
  let reference = root + "/reference"
  let command = try #require(
    try AtsoTransfer.parseAsRoot(["transfer", "--config", file, "-o", reference])
      as? TransferCommand)
  try command.run()
  let results = ["metrics.jsonl", "table.json", "table.md", "curves-fine.png"]

  for (attempt, killAfter) in [4, 9].enumerated() {
    let directory = root + "/killed\(attempt)"
    let first = try launch(
      executable, ["transfer", "--config", file, "-o", directory], log: root + "/first.log")
    while first.isRunning && completedRecords(directory).count < killAfter { usleep(500) }
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    #expect(first.terminationReason == .uncaughtSignal, "finished before the kill")
    let a = try launch(executable, ["resume", directory], log: root + "/a.log")
    let b = try launch(executable, ["resume", directory], log: root + "/b.log")
    a.waitUntilExit()
    b.waitUntilExit()
    let statuses = [a.terminationStatus, b.terminationStatus]
    #expect(statuses.sorted() == [0, 1], "exit statuses \(statuses)")
    let (winner, loser, log) =
      a.terminationStatus == 0 ? (a, b, root + "/b.log") : (b, a, root + "/a.log")
    let message = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    #expect(message.contains("in use by process \(winner.processIdentifier)"), "\(message)")
    #expect(loser.terminationReason == .exit)
    for name in results {
      #expect(
        FileManager.default.contents(atPath: directory + "/" + name)
          == FileManager.default.contents(atPath: reference + "/" + name), "\(name) differs")
    }
  }
}
