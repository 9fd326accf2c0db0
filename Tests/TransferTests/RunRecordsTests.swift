import Foundation
import TestSupport
import Testing
@testable import Transfer

@Test("run records: sets.json, S in the training records, one loss log per training job")
func runRecordFiles() throws {
  let configuration = TransferConfiguration(seed: 3, schedules: [.atso], generations: 1)
  let (run, _, records) = try runFresh(configuration, name: "records")
  let sets = try JSONDecoder().decode(
    DataSummary.self,
    from: try #require(FileManager.default.contents(atPath: run.directory + "/sets.json")))
  #expect(sets.labeled == ["s0", "s1"] && sets.reference == sevenUnits && sets.test == ["e0"])
  var logs = 0
  for job in run.plan.jobs {
    let record = try #require(run.records.completed(job))
    let log = run.directory + "/losses/\(job.id).csv"
    switch job.action {
    case .trainSource, .trainStudent:
      #expect(record.labeled == ["s0", "s1"], "\(job.id)")
      let text = try String(contentsOfFile: log, encoding: .utf8)
      #expect(text.hasPrefix("step,loss,learningRate,gradientNorm,labeledPixels\n1,"))
      logs += 1
    default:
      #expect(record.labeled == nil)
      #expect(!FileManager.default.fileExists(atPath: log))
    }
  }
  #expect(logs == 1 + 2 + 1)  // M0, two fold students, final
  // Per-class scores carry their class names, scores say they are fractions.
  #expect(records.allSatisfy { $0.perClass.classes == ["a", "b", "c"] && $0.scale == "fraction" })
  let line = try #require(
    try String(contentsOfFile: run.directory + "/metrics.jsonl", encoding: .utf8)
      .split(separator: "\n").first)
  #expect(line.contains("\"classes\":[\"a\",\"b\",\"c\"]") && line.contains("\"scale\":\"fraction\""))
  let table = try JSONSerialization.jsonObject(
    with: try #require(FileManager.default.contents(atPath: run.directory + "/table.json")))
    as? [String: Any]
  #expect(table?["scale"] as? String == "fraction")
  let stages = try #require(table?["stages"] as? [[String: Any]])
  let rows = try #require(stages.first?["rows"] as? [[String: Any]])
  let cell = try #require((rows.first?["cells"] as? [String: Any])?["atso"] as? [String: Any])
  #expect((cell["perClass"] as? [String: Any])?["classes"] as? [String] == ["a", "b", "c"])
}

@Test("table.md ends with a legend: @R and @E, the sets, stages, pseudo labels and seeds")
func tableLegend() throws {
  var configuration = TransferConfiguration(seed: 17, schedules: [.stso, .atso], generations: 2)
  configuration.pseudoLabels.confidenceThreshold = 0.9
  let (run, _, _) = try runFresh(configuration, name: "legend")
  let text = try String(contentsOfFile: run.directory + "/table.md", encoding: .utf8)
  let legend = try #require(text.components(separatedBy: "\n## Legend\n\n").last)
  for phrase in [
    "@R: the model's score on the reference set R", "`labels @R` (the paper's @R)", "@E: the score on the held-out test set E",
    "S (labeled) 2 units, R (unlabeled reference) 7 units, E (test) 1 unit",
    "Fake backend: units are names.", "Schedules: STSO, ATSO; 2 generations, ATSO with K = 2",
    "Stage fine: schedules at level fine", "confidence >= 0.9", "AdaBN before labeling off",
    "void label 255", "run seed 17", "`losses/<job>.csv`", "mean IoU in percent",
  ] {
    #expect(legend.contains(phrase), "legend lacks '\(phrase)':\n\(legend)")
  }
  #expect(!legend.contains("Warning"))
}

@Test("a model that predicts a single class is reported, as an event and in the legend")
func singleClassWarning() throws {
  let backend = FakeBackend(units: sevenUnits)
  backend.onlyClass = "background"
  let directory = try makeTemporaryDirectory("single-class")
  let run = try TransferRun.start(
    configuration: TransferConfiguration(schedules: [.selfLearning], generations: 1),
    directory: directory, backend: backend)
  var events: [RunEvent] = []
  run.events = { events.append($0) }
  try run.execute()
  let warnings = events.compactMap { event -> String? in
    if case .warning(let text) = event { return text }
    return nil
  }
  #expect(warnings.count == 2 * 2)  // M0 and the student, on E and on R
  #expect(
    warnings.contains {
      $0.hasPrefix("model source predicts a single class on E at level fine: 'background' everywhere")
    })
  let text = try String(contentsOfFile: directory + "/table.md", encoding: .utf8)
  #expect(text.components(separatedBy: "**Warning:** model").count == 5)
  // Every job starts and ends once, numbered, with the run's time and an estimate after the first.
  let started = events.compactMap { event -> RunPosition? in
    if case .started(let position) = event { return position }
    return nil
  }
  #expect(started.map(\.index) == Array(1...run.plan.jobs.count))
  #expect(started.allSatisfy { $0.count == run.plan.jobs.count })
  #expect(started.first?.remainingAfter == nil && started.dropFirst().allSatisfy { $0.remainingAfter != nil })
  #expect(started.last?.remainingAfter == 0)
}

@Test("the time left: a job takes the time of its kind, else of its group (training or not)")
func runClockEstimate() throws {
  let (run, _, _) = try runFresh(
    TransferConfiguration(schedules: [.atso], generations: 1), name: "clock")
  let jobs = run.plan.jobs
  let kinds = jobs.map { RunClock.kind($0.action) }
  let students = kinds.filter { $0 == "train-student" }.count
  let others = kinds.filter { !RunClock.trains($0) }.count
  var clock = RunClock()
  #expect(clock.estimate(jobs) == nil)
  // Only jobs of seconds timed: the training jobs are left out, and counted.
  clock.seconds["evaluate"] = [2]
  #expect(clock.estimate(jobs) == Double(2 * others))
  #expect(clock.untimedTraining(jobs) == students + 1)
  clock.seconds = [:]
  clock.seconds["train-source"] = [30]
  #expect(clock.untimedTraining(jobs) == 0)
  // Only training timed: everything else at the overall mean.
  #expect(clock.estimate(jobs) == Double(30 * jobs.count))
  clock.seconds["evaluate"] = [1, 3]
  // Students like the source model, labels and AdaBN like the evaluations.
  #expect(clock.estimate(jobs) == Double(30 * (1 + students) + 2 * others))
}

@Test("predictions.png: one column per model, named for every schedule it ends")
func previewColumns() throws {
  let (run, _, _) = try runFresh(
    TransferConfiguration(schedules: [.selfLearning, .stso, .atso], generations: 1),
    name: "preview-columns")
  #expect(
    run.previewModels().models.map(\.title)
      == ["source only", "self-learning g1 = STSO g1", "ATSO final"])
}
