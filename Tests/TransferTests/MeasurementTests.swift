import Foundation
import TestSupport
import Testing
@testable import Transfer

/// The plan's jobs by id.
func jobsByID(_ plan: TransferPlan) -> [String: TransferJob] {
  Dictionary(uniqueKeysWithValues: plan.jobs.map { ($0.id, $0) })
}

/// The label sets a student job trains on, by the student's model id.
func studentLabels(_ plan: TransferPlan) -> [String: [String]] {
  var result: [String: [String]] = [:]
  for job in plan.jobs {
    if case .trainStudent(_, let labels, _, let output) = job.action {
      result[output.id] = labels.map(\.id)
    }
  }
  return result
}

/// The units a label job labels.
func labelUnits(_ job: TransferJob) -> [String] {
  guard case .label(_, _, let output) = job.action else { return [] }
  return output.units
}

/// The ids of the label sets a score job scores, and the teachers that wrote them.
func scored(_ job: TransferJob?) -> (sets: [String], teachers: [String])? {
  guard case .scoreLabels(let labels, _)? = job?.action else { return nil }
  return (labels.map(\.id), labels.map(\.teacher))
}

@Test("@R of generation t is the score of the labels generation t + 1 trains on (ATSO: the folds joined)")
func labelScoresAreTheNextGenerationsLabels() throws {
  var configuration = TransferConfiguration(seed: 3, folds: 2, generations: 2)
  configuration.pseudoLabels.adaptBatchNorm = true
  let (run, backend, records) = try runFresh(configuration, name: "label-scores")
  let jobs = jobsByID(run.plan)
  let trainsOn = studentLabels(run.plan)
  for schedule in ScheduleKind.allCases {
    let rows = (0...3).map { t in run.plan.entries.filter { $0.schedule == schedule && $0.generation == t } }
    for t in 0...2 {
      let scoreJob = try #require(rows[t].first?.labelScoreJob)
      let sets = try #require(scored(jobs[scoreJob]))
      // Every model of the row (ATSO: both fold models) reports the same joined score.
      #expect(Set(rows[t].map(\.labelScoreJob)).count == 1)
      // What the next generation's models train on, between them.
      let next =
        t < 2
        ? rows[t + 1].flatMap { trainsOn[$0.model] ?? [] }
        : schedule == .atso ? trainsOn["fine-atso-final"] ?? [] : sets.sets
      #expect(Set(next) == Set(sets.sets), "\(schedule) g\(t): \(sets.sets)")
      #expect(Set(sets.sets.flatMap { jobs["label-" + $0].map(labelUnits) ?? [] }) == Set(sevenUnits))
      // Written by the row's own models, through their AdaBN copies.
      #expect(Set(sets.teachers) == Set(rows[t].map { $0.model + "-adabn" }), "\(schedule) g\(t)")
    }
  }
  // The final model: the labels it trained on. Every generation row carries its score.
  let final = try #require(run.plan.entries.first { $0.generation == nil })
  let finalScoreJob = try #require(final.labelScoreJob)
  #expect(scored(jobs[finalScoreJob])?.sets == trainsOn[final.model])
  for record in records where record.stage == "fine" {
    #expect(record.labelsAtR != nil, "\(record.model)")
  }
  // The score job reads the joined folds in one call.
  let joined = backend.calls.filter { $0.kind == .scoreLabels && $0.input.contains("fold1+") }
  #expect(!joined.isEmpty && joined.allSatisfy { $0.units == sevenUnits.sorted() })
}

@Test("ATSO's final model: M0 trained on the labels the last generation's fold models wrote (Algorithm 1, line 12)")
func atsoFinalUsesTheLastGenerationsLabels() throws {
  for generations in [1, 3] {
    let configuration = TransferConfiguration(
      seed: 9, schedules: [.atso], folds: 2, generations: generations)
    let plan = try TransferPlan(
      configuration: configuration.validated(),
      split: try FoldSplit(units: sevenUnits, count: 2, runSeed: 9))
    let final = try #require(
      plan.jobs.first {
        if case .trainStudent(_, _, _, let output) = $0.action { return output.id == "fine-atso-final" }
        return false
      })
    guard case .trainStudent(let initial, let labels, _, _) = final.action else {
      Issue.record("not a student job")
      continue
    }
    #expect(initial.id == "source")
    let t = generations
    #expect(labels.map(\.teacher) == ["fine-atso-g\(t)-m1", "fine-atso-g\(t)-m2"])
    #expect(labels.allSatisfy { Set($0.teacherTrainedOn).isDisjoint(with: $0.units) })
    #expect(Set(labels.flatMap(\.units)) == Set(sevenUnits))
  }
}

@Test("every model is scored as trained and through one AdaBN copy on all of R; baselines at every level")
func adaptedScoresAndBaselines() throws {
  var configuration = TransferConfiguration(seed: 2, schedules: [.stso, .atso], folds: 2, generations: 1)
  configuration.stages = [
    StageConfiguration(name: "coarse", method: .schedules, level: .superClass(mapping: "m")),
    StageConfiguration(
      name: "fine", method: .train, initialization: .previousStage, labels: .relabel),
  ]
  let (run, backend, records) = try runFresh(configuration, name: "adapted-scores")
  var adapted: [String: Int] = [:]
  for call in backend.calls where call.kind == .adaptBatchNorm {
    adapted[call.input, default: 0] += 1
    #expect(call.units == sevenUnits.sorted(), "\(call) adapts on all of R")
  }
  // One copy per model, whatever labels or scores it.
  #expect(adapted.values.allSatisfy { $0 == 1 })
  let evaluated = Set(run.plan.jobs.compactMap { job -> String? in
    guard case .evaluate(let evaluation) = job.action else { return nil }
    #expect(evaluation.adapted?.id == evaluation.model.id + "-adabn")
    #expect(evaluation.adapted?.batchNormAdaptedOn == sevenUnits.sorted())
    return evaluation.model.checkpoint
  })
  #expect(evaluated.allSatisfy { adapted[($0 as NSString).lastPathComponent] == 1 })
  for record in records {
    #expect(record.atRAdaBN != nil && record.atEAdaBN != nil, "\(record.model)")
    #expect(record.scores.count == 4)
    // The simulated AdaBN copy scores 0.01 above its model on E.
    #expect(abs((record.atEAdaBN ?? 0) - min(0.99, record.atE + 0.01)) < 1e-9)
  }
  // Baselines: M0 as trained and adapted, at the fine level and at the super level.
  let baselines = records.filter { $0.stage == ResultsTable.baselineStage }
  #expect(baselines.map(\.level) == [.fine, .superClass(mapping: "m")])
  #expect(baselines.allSatisfy { $0.schedule == nil && $0.model == "source" })
  let table = ResultsTable(records: records, configuration: run.configuration)
  #expect(table.baselines.count == 2)
  #expect(table.markdown().contains("| super:m | AdaBN alone (M0 + AdaBN on R) |"))
}

@Test("agreement with the teacher and with M0 on R, per generation; the pseudo labels of M0 are generation 1's")
func agreementWithTeacherAndSource() throws {
  let configuration = TransferConfiguration(seed: 6, schedules: [.selfLearning, .atso], generations: 2)
  let (run, _, records) = try runFresh(configuration, name: "agreements")
  for job in run.plan.jobs {
    guard case .evaluate(let evaluation) = job.action else { continue }
    guard evaluation.model.initializedFrom != nil else {
      #expect(evaluation.teacherLabels.isEmpty && evaluation.sourceLabels.isEmpty)
      continue
    }
    #expect(evaluation.sourceLabels.allSatisfy { $0.teacher == "source" }, "\(job.id)")
    #expect(Set(evaluation.sourceLabels.flatMap(\.units)) == Set(sevenUnits), "\(job.id)")
    #expect(!evaluation.teacherLabels.isEmpty)
  }
  let students = records.filter { ($0.generation ?? 1) > 0 && $0.stage == "fine" }
  #expect(students.allSatisfy { $0.agreement != nil && $0.agreementWithM0 != nil })
  // Self-learning generation 1's teacher is M0: the two agreements are one measurement.
  let g1 = try #require(records.first { $0.schedule == .selfLearning && $0.generation == 1 })
  #expect(g1.agreement == g1.agreementWithM0)
  let table = ResultsTable(records: records, configuration: configuration)
  let plot = table.agreementPlot(stage: "fine", dataset: "")
  #expect(plot.series.map(\.label) == [
    "self-learning with teacher", "self-learning with M0", "ATSO with teacher", "ATSO with M0",
  ])
  #expect(plot.series.allSatisfy { $0.points.map(\.x) == [1, 2] })
  #expect(FileManager.default.fileExists(atPath: run.directory + "/agreement-fine.png"))
}

@Test("stage 3 either relabels R with the stage-2 model or runs ATSO from it; the fold check stays on")
func stageThreeReadings() throws {
  let coarse = StageConfiguration(name: "coarse", method: .schedules, level: .superClass(mapping: "m"))
  var relabel = TransferConfiguration(seed: 1, schedules: [.atso], folds: 2, generations: 1)
  relabel.stages = [
    coarse,
    StageConfiguration(name: "fine", method: .train, initialization: .previousStage, labels: .relabel),
  ]
  var fromPrevious = relabel
  fromPrevious.stages[1] = StageConfiguration(
    name: "fine", method: .schedules, initialization: .previousStage, generations: 2)
  let (run, backend, records) = try runFresh(fromPrevious, name: "stage3-atso")
  // ATSO at the fine level from the coarse stage's final model: every student starts from it,
  // the folds are labeled by the fold models of the fine stage, which never trained on them.
  let fineStudents = backend.calls.filter { $0.kind == .trainStudent && $0.output.hasPrefix("fine-") }
  #expect(fineStudents.count == 2 * 2 + 1)
  #expect(fineStudents.allSatisfy { $0.input == "coarse-atso-final.ckpt" })
  let fineLabels = run.plan.jobs.compactMap { job -> LabelSetProvenance? in
    guard case .label(_, _, let output) = job.action, output.id.hasPrefix("fine-") else { return nil }
    return output
  }
  #expect(fineLabels.count == 2 * 3)
  for labels in fineLabels {
    // Everything counts as seen (the coarse stage trained on all of R) ...
    #expect(Set(labels.teacherTrainedOn) == Set(sevenUnits))
    // ... and within the stage no fold model labels a fold it trained on.
    let inStage = try #require(labels.teacherStageTrainedOn)
    #expect(Set(inStage).isDisjoint(with: labels.units), "\(labels.id)")
  }
  let fine = records.filter { $0.stage == "fine" }
  #expect(fine.map(\.generation) == [0, 1, 1, 2, 2, nil])
  #expect(fine.first?.model == "coarse-atso-final")
  // The relabel reading: one student on R relabeled by the coarse final model.
  let (_, relabelBackend, relabelRecords) = try runFresh(relabel, name: "stage3-relabel")
  let relabeled = relabelBackend.calls.filter { $0.kind == .trainStudent && $0.output.hasPrefix("fine-") }
  #expect(relabeled.map(\.input) == ["coarse-atso-final.ckpt"])
  #expect(relabelRecords.filter { $0.stage == "fine" }.map(\.generation) == [nil])
  // A schedules stage cannot start from a previous stage that does not exist.
  var first = relabel
  first.stages = [StageConfiguration(name: "a", method: .schedules, initialization: .previousStage)]
  #expect(throws: TransferError.self) { try first.validated() }
  var badGenerations = fromPrevious
  badGenerations.stages[1].generations = 0
  #expect(throws: TransferError.self) { try badGenerations.validated() }
  #expect(
    try StageConfiguration(pairs: "name=x,method=schedules,initialization=previous-stage,generations=2")
      == fromPrevious.stages[1].with(name: "x"))
}

extension StageConfiguration {
  func with(name: String) -> StageConfiguration {
    var copy = self
    copy.name = name
    return copy
  }
}

@Test("M0 depends only on what trains it: student settings, R, E, schedules and AdaBN leave its identity and seed")
func sourceModelIdentityIgnoresStudentSettings() throws {
  func sourceJob(_ options: TestOptions, _ edit: (inout TransferConfiguration) -> Void = { _ in })
    throws -> TransferJob
  {
    var configuration = TransferConfiguration(seed: 4, generations: 2, backend: options)
    edit(&configuration)
    let plan = try TransferPlan(
      configuration: configuration.validated(),
      split: try FoldSplit(units: sevenUnits, count: configuration.folds, runSeed: 4))
    return try #require(plan.jobs.first { $0.id == "train-source" })
  }
  let base = TestOptions(source: "/data/s")
  let reference = try sourceJob(base)
  var students = base
  students.studentSteps = 50
  students.reference = "/data/other-r"
  students.test = "/data/other-e"
  let same = [
    try sourceJob(students),
    try sourceJob(base) { $0.schedules = [.atso] },
    try sourceJob(base) { $0.generations = 5; $0.folds = 3 },
    try sourceJob(base) { $0.pseudoLabels.adaptBatchNorm = true },
    try sourceJob(base) { $0.pseudoLabels.confidenceThreshold = 0.9 },
  ]
  for job in same {
    #expect(job.identity == reference.identity && job.seed == reference.seed)
  }
  var source = base
  source.sourceSteps = 11
  var size = base
  size.size = 16
  for job in [try sourceJob(source), try sourceJob(size)] {
    #expect(job.identity != reference.identity && job.seed != reference.seed)
  }
  // The run seed enters every job's seed (not its identity: the content it computes from).
  #expect(try sourceJob(base) { $0.seed = 5 }.seed != reference.seed)
  // Students, labels and evaluations read R: another R changes them, another E only evaluations.
  var otherR = base
  otherR.reference = "/data/other-r"
  let plans = try [base, otherR].map {
    try TransferPlan(
      configuration: TransferConfiguration(seed: 4, generations: 1, backend: $0).validated(),
      split: try FoldSplit(units: sevenUnits, count: 2, runSeed: 4))
  }
  for (a, b) in zip(plans[0].jobs, plans[1].jobs) where a.id != "train-source" {
    #expect(a.identity != b.identity, "\(a.id)")
    #expect(a.seed == b.seed, "\(a.id): a data location enters no seed")
  }
}
