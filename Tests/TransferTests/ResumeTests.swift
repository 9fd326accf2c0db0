import Foundation
import TestSupport
import Testing
@testable import Transfer

/// The configuration of the resume tests: every schedule, K = 3, AdaBN, two generations.
let resumeConfiguration: TransferConfiguration = {
  var configuration = TransferConfiguration(seed: 21, folds: 3, generations: 2)
  configuration.pseudoLabels.adaptBatchNorm = true
  return configuration
}()

/// The files that must not depend on how the run was interrupted.
let resultFiles = [
  "metrics.jsonl", "table.json", "table.md", "curves-fine.png", "folds.json", "sets.json",
]

struct ReferenceRun {
  var directory: String
  var calls: [FakeCall]
  var files: [String: Data]
}

func referenceRun() throws -> ReferenceRun {
  let (run, backend, _) = try runFresh(resumeConfiguration, name: "reference")
  var files: [String: Data] = [:]
  for name in resultFiles {
    guard let data = FileManager.default.contents(atPath: run.directory + "/" + name) else {
      Issue.record("\(name) missing from the reference run")
      continue
    }
    files[name] = data
  }
  return ReferenceRun(directory: run.directory, calls: backend.calls, files: files)
}

func expectSameResults(_ directory: String, as reference: ReferenceRun) {
  for name in resultFiles {
    let data = FileManager.default.contents(atPath: directory + "/" + name)
    #expect(data == reference.files[name], "\(name) differs")
  }
  for folder in ["models", "labels", "steps", "losses"] {
    let names =
      (try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + folder)) ?? []
    #expect(!names.contains { $0.hasSuffix(".partial") }, "a .partial is left in \(folder)")
  }
  // One loss log per training job, with the bytes of the uninterrupted run.
  let logs = (try? FileManager.default.contentsOfDirectory(atPath: reference.directory + "/losses")) ?? []
  #expect(!logs.isEmpty)
  for name in logs {
    let path = "/losses/" + name
    #expect(
      FileManager.default.contents(atPath: directory + path)
        == FileManager.default.contents(atPath: reference.directory + path), "\(name) differs")
  }
}

@Test("resume after a crash at any call: same results, no completed job recomputed")
func resumeAfterCrash() throws {
  let reference = try referenceRun()
  let total = reference.calls.count
  #expect(total > 40)
  var crashPoints = Array(stride(from: 1, through: total, by: 8))
  crashPoints.append(total)
  for n in crashPoints {
    let directory = try makeTemporaryDirectory("crash\(n)")
    let crashing = FakeBackend(units: sevenUnits, crashAtCall: n)
    let first = try TransferRun.start(
      configuration: resumeConfiguration, directory: directory, backend: crashing)
    #expect(throws: SimulatedCrash(call: n)) { try first.execute() }
    #expect(crashing.calls == Array(reference.calls.prefix(n - 1)))

    let backend = FakeBackend(units: sevenUnits)
    let resumed = try TransferRun(resuming: directory, backend: backend)
    try resumed.execute()
    expectSameResults(directory, as: reference)
    // The resumed run continues where the first stopped: at most the calls of the interrupted
    // evaluation job (R and E as trained and with AdaBN, two agreements) are repeated; models
    // and labels are never recomputed.
    #expect(backend.calls == Array(reference.calls.suffix(backend.calls.count)), "crash at \(n)")
    #expect(backend.calls.count <= total - (n - 1) + 5, "crash at \(n)")
    let mutating = (crashing.calls + backend.calls).filter(\.isMutating)
    #expect(mutating == reference.calls.filter(\.isMutating), "crash at \(n)")
  }
}

@Test("repeated crashes, each resumed by a new orchestrator")
func repeatedCrashes() throws {
  let reference = try referenceRun()
  let directory = try makeTemporaryDirectory("repeated")
  var allMutating: [FakeCall] = []
  for crash in [5, 9, 13, 4, nil] {
    let backend = FakeBackend(units: sevenUnits, crashAtCall: crash)
    let run =
      crash == 5
      ? try TransferRun.start(
        configuration: resumeConfiguration, directory: directory, backend: backend)
      : try TransferRun(resuming: directory, backend: backend)
    if crash == nil {
      try run.execute()
    } else {
      #expect(throws: SimulatedCrash.self) { try run.execute() }
    }
    allMutating += backend.calls.filter(\.isMutating)
  }
  expectSameResults(directory, as: reference)
  #expect(allMutating == reference.calls.filter(\.isMutating))
}

@Test("a kill between a job's outputs and its record redoes that job only")
func killBeforeRecord() throws {
  let reference = try referenceRun()
  for victim in ["label-fine-atso-g1-fold2", "finetune-fine-stso-g2", "train-source"] {
    let directory = try makeTemporaryDirectory("record")
    let first = try TransferRun.start(
      configuration: resumeConfiguration, directory: directory,
      backend: FakeBackend(units: sevenUnits))
    first.faultInjection = { point in
      if point == "after-output:\(victim)" { throw SimulatedCrash(call: -1) }
    }
    #expect(throws: SimulatedCrash(call: -1)) { try first.execute() }
    #expect(first.executedJobs.last != victim)
    let resumed = try TransferRun(resuming: directory, backend: FakeBackend(units: sevenUnits))
    try resumed.execute()
    #expect(resumed.executedJobs.first == victim)
    expectSameResults(directory, as: reference)
  }
}

@Test("half-written files and corrupt records are discarded on resume")
func halfWrittenFilesDiscarded() throws {
  let reference = try referenceRun()
  let directory = try makeTemporaryDirectory("garbage")
  // Crash inside a fine-tuning call, which leaves a half-written checkpoint behind.
  let crash =
    try #require(
      reference.calls.indices.first { $0 >= 30 && reference.calls[$0].kind == .trainStudent }) + 1
  let first = try TransferRun.start(
    configuration: resumeConfiguration, directory: directory,
    backend: FakeBackend(units: sevenUnits, crashAtCall: crash))
  #expect(throws: SimulatedCrash.self) { try first.execute() }
  let done = first.executedJobs
  let pending = try #require(
    first.plan.jobs.first { job in
      if case .trainStudent = job.action { return !done.contains(job.id) }
      return false
    })
  // A checkpoint of an unfinished job that looks complete, a truncated completion record of a
  // finished job, and leftover temporary files.
  let pendingOutput = directory + "/" + pending.action.outputs[0]
  _ = FileManager.default.createFile(atPath: pendingOutput, contents: Data("{\"quality\": 1".utf8))
  let truncated = try #require(done.first { $0.hasPrefix("label-") })
  let recordPath = directory + "/steps/\(truncated).json"
  let record = try #require(FileManager.default.contents(atPath: recordPath))
  _ = FileManager.default.createFile(atPath: recordPath, contents: record.prefix(record.count / 2))
  _ = FileManager.default.createFile(
    atPath: directory + "/steps/\(pending.id).json.partial", contents: Data("{".utf8))
  _ = FileManager.default.createFile(
    atPath: directory + "/metrics.jsonl.partial", contents: Data("{\"stage".utf8))
  let partials = try FileManager.default.contentsOfDirectory(atPath: directory + "/models")
    .filter { $0.hasSuffix(".partial") }
  #expect(partials.count == 1)

  let backend = FakeBackend(units: sevenUnits)
  let resumed = try TransferRun(resuming: directory, backend: backend)
  try resumed.execute()
  #expect(resumed.executedJobs.first == truncated)
  #expect(resumed.executedJobs.contains(pending.id))
  let model = try JSONDecoder().decode(
    FakeModel.self, from: try #require(FileManager.default.contents(atPath: pendingOutput)))
  #expect(model.quality < 1)
  #expect(!FileManager.default.fileExists(atPath: directory + "/metrics.jsonl.partial"))
  expectSameResults(directory, as: reference)
}

@Test("resuming a finished run calls nothing; starting over an existing run is refused")
func resumeFinishedRun() throws {
  let reference = try referenceRun()
  let backend = FakeBackend(units: sevenUnits)
  let resumed = try TransferRun(resuming: reference.directory, backend: backend)
  try resumed.execute()
  #expect(backend.calls.isEmpty)
  #expect(resumed.executedJobs.isEmpty)
  expectSameResults(reference.directory, as: reference)
  #expect(
    throws: TransferError.runDirectory(
      path: reference.directory, reason: "already holds a run (configuration.json); use resume")
  ) {
    try TransferRun.start(
      configuration: resumeConfiguration, directory: reference.directory, backend: backend)
  }
  // A different reference set no longer matches the saved fold split.
  #expect(
    throws: TransferError.runDirectory(
      path: reference.directory + "/folds.json",
      reason: "the saved fold split differs from the one of the seed and the reference set")
  ) {
    try TransferRun(
      resuming: reference.directory, backend: FakeBackend(units: ["x", "y", "z", "w", "v"]))
  }
  #expect(
    throws: TransferError.runDirectory(
      path: reference.directory + "/nothing", reason: "no configuration.json: not a run directory")
  ) {
    try TransferRun(resuming: reference.directory + "/nothing", backend: backend)
  }
}

@Test("the same seed gives the same results in another directory; another seed does not")
func determinism() throws {
  let a = try referenceRun()
  let b = try referenceRun()
  #expect(a.files == b.files)
  var other = resumeConfiguration
  other.seed = 22
  let (run, _, _) = try runFresh(other, name: "seed22")
  let metrics = FileManager.default.contents(atPath: run.directory + "/metrics.jsonl")
  #expect(metrics != a.files["metrics.jsonl"])
}

@Test("editing the configuration of a run redoes exactly the jobs it affects")
func editedConfiguration() throws {
  let configuration = TransferConfiguration(seed: 1, schedules: [.atso], generations: 1)
  let (run, _, _) = try runFresh(configuration, name: "edit")
  var edited = run.configuration
  edited.pseudoLabels.confidenceThreshold = 0.5
  try edited.save(to: run.directory + "/configuration.json")
  let backend = FakeBackend(units: sevenUnits)
  // Refused, naming the key, unless the change is accepted.
  #expect(
    throws: TransferError.configurationChanged(
      file: run.directory + "/configuration.json",
      changes: ["pseudoLabels.confidenceThreshold: absent -> 0.5"])
  ) { try TransferRun(resuming: run.directory, backend: backend) }
  let resumed = try TransferRun(resuming: run.directory, backend: backend, acceptingChanges: true)
  try resumed.execute()
  #expect(!backend.calls.contains { $0.kind == .trainSource })
  #expect(!resumed.executedJobs.contains("eval-baseline-fine"))
  #expect(backend.calls.filter { $0.kind == .label }.count == 2 * 2)
  #expect(backend.calls.filter { $0.kind == .trainStudent }.count == 2 + 1)
  // A backend option that trains the source model changes every job: everything is recomputed.
  var options = TestOptions(source: "/a")
  edited.backend = options
  try edited.save(to: run.directory + "/configuration.json")
  try TransferRun(
    resuming: run.directory, backend: FakeBackend(units: sevenUnits), kinds: [TestOptions.self],
    acceptingChanges: true
  ).execute()
  options.sourceSteps = 20
  edited.backend = options
  try edited.save(to: run.directory + "/configuration.json")
  let again = FakeBackend(units: sevenUnits)
  let resumedAgain = try TransferRun(
    resuming: run.directory, backend: again, kinds: [TestOptions.self], acceptingChanges: true)
  try resumedAgain.execute()
  #expect(again.calls.filter { $0.kind == .trainSource }.count == 1)
  #expect(resumedAgain.executedJobs.count == resumedAgain.plan.jobs.count)
  // A student option leaves M0 and its evaluation alone.
  options.studentSteps = 9
  edited.backend = options
  try edited.save(to: run.directory + "/configuration.json")
  let students = FakeBackend(units: sevenUnits)
  let third = try TransferRun(
    resuming: run.directory, backend: students, kinds: [TestOptions.self], acceptingChanges: true)
  try third.execute()
  #expect(!students.calls.contains { $0.kind == .trainSource })
  #expect(!third.executedJobs.contains("eval-baseline-fine"))
  #expect(students.calls.filter { $0.kind == .trainStudent }.count == 2 + 1)
}
