import Foundation
import TestSupport
import Testing
@testable import Transfer

let sevenUnits = (0..<7).map { "case\($0)" }

func runFresh(
  _ configuration: TransferConfiguration, units: [String] = sevenUnits, name: String
) throws -> (run: TransferRun, backend: FakeBackend, records: [MetricsRecord]) {
  let backend = FakeBackend(units: units)
  let directory = try makeTemporaryDirectory(name)
  let run = try TransferRun.start(
    configuration: configuration, directory: directory, backend: backend)
  let records = try run.execute()
  return (run, backend, records)
}

@Test("fold split is seeded, balanced, a partition, and independent of unit order")
func foldSplit() throws {
  let split = try FoldSplit(units: sevenUnits, count: 3, runSeed: 11)
  #expect(split.folds.map(\.count).sorted() == [2, 2, 3])
  #expect(split.allUnits == sevenUnits.sorted())
  #expect(try FoldSplit(units: sevenUnits.reversed(), count: 3, runSeed: 11) == split)
  let others = try (0..<8).map { try FoldSplit(units: sevenUnits, count: 3, runSeed: $0) }
  #expect(Set(others.map(\.folds)).count > 1)
  #expect(
    throws: TransferError.invalidReferenceSet(
      reason: "2 units cannot be split into 3 non-empty folds")
  ) { try FoldSplit(units: ["a", "b"], count: 3, runSeed: 0) }
  #expect(throws: TransferError.invalidReferenceSet(reason: "unit 'a' is listed twice")) {
    try FoldSplit(units: ["a", "b", "a"], count: 2, runSeed: 0)
  }
}

@Test("ATSO: no fold is ever labeled by a model that was fine-tuned on it", arguments: [2, 3])
func atsoFoldBookkeeping(folds: Int) throws {
  let generations = 3
  let configuration = TransferConfiguration(
    seed: 5, schedules: [.atso], folds: folds, generations: generations)
  let (run, backend, _) = try runFresh(configuration, name: "atso\(folds)")
  let split = run.split
  #expect(split.folds.count == folds)
  let labelCalls = backend.calls.filter { $0.kind == .label }
  // K label sets per generation plus K for the final model, each exactly one fold.
  #expect(labelCalls.count == folds * (generations + 1))
  for call in labelCalls {
    // Provenance as the fake backend sees it, from the checkpoint's own contents.
    #expect(Set(call.labelerTrainedOn).isDisjoint(with: call.units), "\(call)")
    #expect(split.folds.contains(call.units), "\(call) labels a whole fold")
  }
  for t in 1...generations {
    let calls = labelCalls.filter { $0.output.contains("-g\(t)-fold") }
    #expect(calls.map(\.units).sorted { $0[0] < $1[0] } == split.folds.sorted { $0[0] < $1[0] })
  }
  // Provenance as the run recorded it.
  var recordedSets = 0
  for job in run.plan.jobs {
    guard case .label = job.action else { continue }
    let data = try #require(FileManager.default.contents(atPath: run.records.path(of: job)))
    let record = try JSONDecoder().decode(StepRecord.self, from: data)
    let labelSet = try #require(record.labelSet)
    #expect(labelSet.isCrossFold)
    #expect(Set(labelSet.teacherTrainedOn).isDisjoint(with: labelSet.units))
    recordedSets += 1
  }
  #expect(recordedSets == labelCalls.count)
  // Every student restarts from M0; model k trains on every fold except k.
  let fineTunes = backend.calls.filter { $0.kind == .trainStudent }
  #expect(fineTunes.count == folds * generations + 1)
  #expect(fineTunes.allSatisfy { $0.input == "source.ckpt" })
  for call in fineTunes where call.output.contains("-m") {
    let k = try #require(
      Int(call.output.split(separator: "-m").last?.prefix(while: \.isNumber) ?? ""))
    let expected = split.folds.enumerated().filter { $0.offset != k - 1 }.flatMap(\.element)
    #expect(call.units == expected.sorted(), "\(call)")
  }
  let final = try #require(fineTunes.last)
  #expect(final.output == "fine-atso-final.ckpt" && final.units == sevenUnits.sorted())
}

@Test("self-learning continues from the teacher; STSO restarts from M0; shared generation 1")
func selfLearningAndSTSO() throws {
  let configuration = TransferConfiguration(
    seed: 3, schedules: [.selfLearning, .stso], generations: 3)
  let (run, backend, records) = try runFresh(configuration, name: "slstso")
  let fineTunes = backend.calls.filter { $0.kind == .trainStudent }
  let byOutput = Dictionary(uniqueKeysWithValues: fineTunes.map { ($0.output, $0) })
  // Generation 1 is the same computation for both schedules and runs once.
  #expect(byOutput["fine-stso-g1.ckpt"] == nil)
  #expect(byOutput["fine-self-learning-g1.ckpt"]?.input == "source.ckpt")
  #expect(byOutput["fine-self-learning-g2.ckpt"]?.input == "fine-self-learning-g1.ckpt")
  #expect(byOutput["fine-self-learning-g3.ckpt"]?.input == "fine-self-learning-g2.ckpt")
  #expect(byOutput["fine-stso-g2.ckpt"]?.input == "source.ckpt")
  #expect(byOutput["fine-stso-g3.ckpt"]?.input == "source.ckpt")
  #expect(fineTunes.allSatisfy { $0.units == sevenUnits.sorted() })
  // The teacher of generation t is the student of t - 1.
  let labels = backend.calls.filter { $0.kind == .label }
  #expect(labels.map(\.input).contains("fine-stso-g2.ckpt"))
  #expect(labels.map(\.input).contains("fine-self-learning-g2.ckpt"))
  // The recorded provenance: self-learning accumulates R, STSO does not.
  let sl3 = records.first { $0.schedule == .selfLearning && $0.generation == 3 }
  #expect(sl3?.model == "fine-self-learning-g3")
  #expect(records.filter { $0.generation == 0 }.count == 2)
  #expect(run.plan.jobs.filter { $0.id.hasPrefix("eval-") }.count == 1 + 3 + 2)
}

@Test("job seeds depend on the run seed and the job identity only")
func jobSeeds() throws {
  let configuration = TransferConfiguration(seed: 9, schedules: [.atso, .stso], folds: 3)
  let split = try FoldSplit(units: sevenUnits, count: 3, runSeed: 9)
  let a = try TransferPlan(configuration: configuration.validated(), split: split)
  var reordered = configuration
  reordered.schedules = [.stso, .atso]
  let b = try TransferPlan(configuration: reordered.validated(), split: split)
  let seedsA = Dictionary(uniqueKeysWithValues: a.jobs.map { ($0.id, $0.seed) })
  let seedsB = Dictionary(uniqueKeysWithValues: b.jobs.map { ($0.id, $0.seed) })
  #expect(seedsA == seedsB)
  #expect(a.jobs.map(\.id) != b.jobs.map(\.id))
  #expect(Set(seedsA.values).count == seedsA.count)
  var reseeded = configuration
  reseeded.seed = 10
  let c = try TransferPlan(configuration: reseeded.validated(), split: split)
  #expect(c.jobs.first?.seed != a.jobs.first?.seed)
}

@Test("data locations change job identities, not seeds; speed options change neither")
func jobSeedsIgnoreLocations() throws {
  let configuration = TransferConfiguration(
    seed: 9, schedules: [.atso, .stso], folds: 2, backend: TestOptions(source: "/a/train.txt"))
  let split = try FoldSplit(units: sevenUnits, count: 2, runSeed: 9)
  func plan(_ edit: (inout TestOptions) -> Void) throws -> TransferPlan {
    var options = TestOptions(source: "/a/train.txt")
    edit(&options)
    var edited = configuration
    edited.backend = options
    return try TransferPlan(configuration: edited.validated(), split: split)
  }
  let a = try plan { _ in }
  let moved = try plan { $0.source = "/elsewhere/train.txt" }
  #expect(a.jobs.map(\.seed) == moved.jobs.map(\.seed))
  #expect(zip(a.jobs, moved.jobs).allSatisfy { $0.identity != $1.identity })
  let threaded = try plan { $0.threads = 7 }
  #expect(a.jobs.map(\.identity) == threaded.jobs.map(\.identity))
  #expect(a.jobs.map(\.seed) == threaded.jobs.map(\.seed))
  let resized = try plan { $0.size = 64 }
  #expect(zip(a.jobs, resized.jobs).allSatisfy { $0.seed != $1.seed && $0.identity != $1.identity })
}

@Test("staged transfer: ATSO at the super-class level, then the target network, then fine")
func stagedTransfer() throws {
  let level = LabelLevel.superClass(mapping: "coarse-3")
  var configuration = TransferConfiguration(
    seed: 1, schedules: [.atso], folds: 2, generations: 2,
    stages: [
      StageConfiguration(name: "coarse", method: .schedules, level: level),
      StageConfiguration(
        name: "target-coarse", method: .train, level: level, network: "target",
        labels: .previousStageFinal),
      StageConfiguration(
        name: "target-fine", method: .train, level: .fine, initialization: .previousStage,
        labels: .relabel),
    ])
  configuration.pseudoLabels.adaptBatchNorm = true
  let (_, backend, records) = try runFresh(configuration, name: "staged")
  let fineTunes = backend.calls.filter { $0.kind == .trainStudent }
  let target = try #require(fineTunes.first { $0.output == "target-coarse-atso.ckpt" })
  #expect(target.input == "source-target.ckpt")
  #expect(target.units == sevenUnits.sorted())
  let fine = try #require(fineTunes.first { $0.output == "target-fine-atso.ckpt" })
  #expect(fine.input == "target-coarse-atso.ckpt")
  // The fine labels come from the stage-2 model, through its AdaBN copy.
  let relabel = try #require(backend.calls.first { $0.output == "target-fine-atso-labels" })
  #expect(relabel.input == "target-coarse-atso-adabn.ckpt")
  // One copy per model that labels or is scored: M0, 4 fold models, the coarse final and the
  // two train stages' models.
  #expect(backend.calls.filter { $0.kind == .adaptBatchNorm }.count == 1 + 4 + 1 + 2)
  #expect(records.map(\.stage).contains("target-fine"))
  #expect(records.first { $0.stage == "coarse" }?.level == level)
}

@Test("a source model is imported instead of trained; it is identified by its content")
func importedSourceModel() throws {
  let folder = try makeTemporaryDirectory("import")
  let model = FakeModel(quality: 0.7, trainedOn: [], memorized: [:], adaptedOn: nil)
  try JSONEncoder().encode(model).write(to: URL(fileURLWithPath: folder + "/m0.json"))
  var configuration = TransferConfiguration(seed: 2, schedules: [.atso], generations: 1)
  configuration.sourceModel = folder + "/m0.json"
  let (run, backend, records) = try runFresh(configuration, name: "imported")
  #expect(!backend.calls.contains { $0.kind == .trainSource })
  #expect(backend.calls.first?.kind == .importSource)
  #expect(run.executedJobs.first == "import-source")
  #expect(records.first { $0.generation == 0 }?.atE == 0.7)
  // The same file elsewhere: other identities (a location), the same seeds; other content:
  // every job changes.
  let split = run.split
  func plan(_ path: String) throws -> TransferPlan {
    var edited = configuration
    edited.sourceModel = path
    return try TransferPlan(
      configuration: edited.validated(), split: split, sourceModelDigest: contentDigest(of: path))
  }
  let moved = try makeTemporaryDirectory("import-moved")
  try FileManager.default.copyItem(atPath: folder + "/m0.json", toPath: moved + "/m0.json")
  let a = try plan(folder + "/m0.json")
  let b = try plan(moved + "/m0.json")
  #expect(a.jobs.map(\.seed) == b.jobs.map(\.seed))
  #expect(a.jobs.map(\.identity) != b.jobs.map(\.identity))
  try JSONEncoder().encode(FakeModel(quality: 0.6, trainedOn: [], memorized: [:], adaptedOn: nil))
    .write(to: URL(fileURLWithPath: moved + "/m0.json"))
  let c = try plan(moved + "/m0.json")
  #expect(zip(b.jobs, c.jobs).allSatisfy { $0.seed != $1.seed })
  #expect(throws: TransferError.fileOperation(path: "/nonexistent/m0.json", reason: "no such file or directory")) {
    try contentDigest(of: "/nonexistent/m0.json")
  }
}
