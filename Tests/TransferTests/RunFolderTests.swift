import Foundation
import TestSupport
import Testing

@testable import Transfer

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The completion record of a job id in a run directory.
private func record(_ directory: String, _ job: String) throws -> StepRecord {
  let data = try #require(FileManager.default.contents(atPath: directory + "/steps/\(job).json"))
  return try JSONDecoder().decode(StepRecord.self, from: data)
}

/// The first job of the plan that writes an output under `prefix` ("models/" or "labels/"), and
/// that output.
private func firstJob(writing prefix: String, in run: TransferRun) throws -> (String, String) {
  let found = run.plan.jobs.lazy.compactMap { job in
    job.action.outputs.first(where: { $0.hasPrefix(prefix) }).map { (job.id, $0) }
  }.first
  return try #require(found, "no job writes \(prefix)")
}

@Suite("run folders: one writer, temporary files, edited configurations, damaged outputs")
struct RunFolderTests {
  @Test("a second writer is refused at once with the holder's pid; the lock goes with its holder")
  func lock() throws {
    let directory = try makeTemporaryDirectory("lock")
    let first = try RunLock(directory: directory)
    do {
      _ = try RunLock(directory: directory)
      Issue.record("a second lock was granted")
    } catch let error as TransferError {
      guard case .runDirectory(directory, let reason) = error else {
        Issue.record("\(error)")
        return
      }
      #expect(reason.hasPrefix("in use by process \(getpid()) (it holds \(directory)/run.lock)"))
    }
    first.release()
    try RunLock.holding(directory) {}  // free again
    // A run being executed refuses a second executor of the same directory.
    let (run, _, _) = try runFresh(resumeConfiguration, name: "lock-run")
    try FileManager.default.removeItem(atPath: run.directory + "/steps")
    let holder = try TransferRun(resuming: run.directory, backend: FakeBackend(units: sevenUnits))
    var refused: (any Error)?
    holder.faultInjection = { point in
      guard refused == nil else { return }
      let second = try TransferRun(
        resuming: run.directory, backend: FakeBackend(units: sevenUnits))
      do { try second.execute() } catch { refused = error }
      #expect(second.executedJobs.isEmpty, "\(point)")
    }
    try holder.execute()
    #expect("\(refused.map { "\($0)" } ?? "not refused")".contains("in use by process \(getpid())"))
  }

  @Test("resume removes every temporary file a kill can leave")
  func temporaryFiles() throws {
    for name in [
      "x.ckpt.partial", "x.ckpt.partial.json", "x.ckpt.partial.tmp-123", "metrics.jsonl.tmp-9",
      "configuration.started.json.partial",
    ] {
      #expect(RunFolder.isTemporary(name), "\(name)")
    }
    for name in ["x.ckpt", "x.ckpt.json", "steps", "partial.json", "run.lock"] {
      #expect(!RunFolder.isTemporary(name), "\(name)")
    }
    let reference = try referenceRun()
    let directory = reference.directory
    let manager = FileManager.default
    let leftovers = [
      "models/src.ckpt.partial.tmp-4242", "models/src.ckpt.partial.json", "steps/a.json.partial",
      "metrics.jsonl.tmp-77", "table.md.partial",
    ]
    for file in leftovers { #expect(manager.createFile(atPath: directory + "/" + file, contents: Data([1]))) }
    try manager.createDirectory(
      atPath: directory + "/labels/set.partial/deeper", withIntermediateDirectories: true)
    try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits)).execute()
    for file in leftovers + ["labels/set.partial"] {
      #expect(!manager.fileExists(atPath: directory + "/" + file), "\(file) left")
    }
    expectSameResults(directory, as: reference)
  }

  @Test("the keys of an edited configuration are listed; runDirectory is not one of them")
  func configurationChanges() {
    let old = Data(
      #"{"folds": 3, "runDirectory": "/a", "backend": {"units": "8"}, "stages": [{"name": "a"}], "ada": true}"#
        .utf8)
    let new = Data(
      #"{"folds": 4, "runDirectory": "/b", "backend": {"units": "9", "kind": "simulation"}, "stages": [{"name": "a"}, {"name": "b"}], "ada": false}"#
        .utf8)
    #expect(
      RunFolder.configurationChanges(from: old, to: new) == [
        "ada: true -> false", "backend.kind: absent -> \"simulation\"",
        "backend.units: \"8\" -> \"9\"", "folds: 3 -> 4", "stages[1].name: absent -> \"b\"",
      ])
    #expect(RunFolder.configurationChanges(from: old, to: old).isEmpty)
    #expect(RunFolder.configurationChanges(from: old, to: Data("{".utf8)).count == 1)
  }

  @Test("an edited configuration.json is refused on resume unless accepted; the run goes on")
  func editedConfiguration() throws {
    let reference = try referenceRun()
    let directory = reference.directory
    let path = directory + "/configuration.json"
    var edited = try TransferConfiguration.load(from: path, kinds: []).configuration
    edited.generations = 3
    edited.pseudoLabels.confidenceThreshold = 0.5
    try edited.save(to: path)
    #expect(
      throws: TransferError.configurationChanged(
        file: path,
        changes: ["generations: 2 -> 3", "pseudoLabels.confidenceThreshold: absent -> 0.5"])
    ) { try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits)) }
    // Restored: accepted as it was; nothing is recomputed.
    var restored = resumeConfiguration
    restored.runDirectory = directory
    try restored.save(to: path)
    let again = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    try again.execute()
    #expect(again.executedJobs.isEmpty)
    // Accepted: the new configuration becomes the started one, and the run is extended.
    try edited.save(to: path)
    let accepted = try TransferRun(
      resuming: directory, backend: FakeBackend(units: sevenUnits), acceptingChanges: true)
    try accepted.execute()
    #expect(!accepted.executedJobs.isEmpty)
    let later = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    try later.execute()
    #expect(later.executedJobs.isEmpty)
  }

  @Test("every output's checksum is recorded; a damaged checkpoint or label set is recomputed")
  func damagedOutputs() throws {
    let reference = try referenceRun()
    let directory = reference.directory
    let probe = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    let (modelJob, model) = try firstJob(writing: "models/", in: probe)
    let (labelJob, labels) = try firstJob(writing: "labels/", in: probe)
    let stored = try record(directory, modelJob)
    #expect(stored.checksums == [model: try contentDigest(of: directory + "/" + model)])
    // A truncated checkpoint in a finished run: its job alone runs again, same results.
    let file = directory + "/" + model
    let bytes = try #require(FileManager.default.contents(atPath: file))
    try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: file))
    let resumed = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    try resumed.execute()
    #expect(resumed.executedJobs == [modelJob])
    #expect(FileManager.default.contents(atPath: file) == bytes)
    expectSameResults(directory, as: reference)
    // A label set with one file missing and one edited.
    let names = try FileManager.default.contentsOfDirectory(atPath: directory + "/" + labels)
      .sorted()
    try FileManager.default.removeItem(atPath: directory + "/" + labels + "/" + names[0])
    try Data("{}".utf8).write(to: URL(fileURLWithPath: directory + "/" + labels + "/" + names[1]))
    let relabeled = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    try relabeled.execute()
    #expect(relabeled.executedJobs == [labelJob])
    expectSameResults(directory, as: reference)
  }

  @Test("an unfinished run with a damaged checkpoint recovers it and finishes the same")
  func damagedUnfinishedRun() throws {
    let reference = try referenceRun()
    let directory = try makeTemporaryDirectory("damaged-unfinished")
    let crashing = FakeBackend(units: sevenUnits, crashAtCall: 20)
    let first = try TransferRun.start(
      configuration: resumeConfiguration, directory: directory, backend: crashing)
    #expect(throws: SimulatedCrash(call: 20)) { try first.execute() }
    let (_, model) = try firstJob(writing: "models/", in: first)
    try Data().write(to: URL(fileURLWithPath: directory + "/" + model))
    let resumed = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    try resumed.execute()
    expectSameResults(directory, as: reference)
  }
}
