import Foundation
import Segmentation
import Taxonomy

/// The names of the label values flagged in `present` (256 entries), in value order: class
/// names of `classes`, or the value itself for one that is no class (the predicted classes of an
/// ``Evaluation``).
public func predictedClassNames(_ present: [Bool], classes: ClassSet) -> [String] {
  present.indices.filter { present[$0] }.map { classes.semanticClass(id: $0)?.name ?? "\($0)" }
}

/// The data of a run as a backend read it: the unit ids of S, R and E and how their labels were
/// read. Written as `sets.json` in the run directory and summarised in the legend of `table.md`.
public struct DataSummary: Codable, Sendable, Equatable {
  /// What a unit is, in the singular (`image`, `case`).
  public var unit: String
  /// The labeled set S, in the order the backend holds it.
  public var labeled: [String]
  /// The unlabeled reference set R (its labels, when it has some, give @R only).
  public var reference: [String]
  /// The labeled test set E.
  public var test: [String]
  /// One line each: where S, R and E come from, the label mappings and levels used, sizes.
  public var notes: [String]

  public init(
    unit: String, labeled: [String], reference: [String], test: [String], notes: [String]
  ) {
    self.unit = unit
    self.labeled = labeled
    self.reference = reference
    self.test = test
    self.notes = notes
  }

  /// `count` units in words: `1 case`, `305 images`.
  public func count(_ count: Int) -> String { "\(count) \(unit)\(count == 1 ? "" : "s")" }
}

/// Where a running transfer is: what ``TransferRun/events`` reports before and after each job.
public struct RunPosition: Sendable, Equatable {
  /// The job's id (its record is `steps/<job>.json`).
  public var job: String
  /// 1-based among the jobs this process runs.
  public var index: Int
  /// The number of jobs this process runs (completed jobs of a resumed run not counted).
  public var count: Int
  /// Seconds since this process started executing the run.
  public var elapsed: Double
  /// The estimated seconds of the jobs after this one (nil until a job has been timed): the
  /// mean time of the jobs of the same kind so far, else of their group (training or not);
  /// training jobs before any training job was timed are not in it (``untimedTrainingAfter``).
  public var remainingAfter: Double?
  /// The jobs after this one that train a network while no training job has been timed yet
  /// (minutes each, where the timed ones took seconds).
  public var untimedTrainingAfter: Int
  /// Whether this job trains a network (a reporter can then project its time onto the
  /// untimed training jobs).
  public var trains: Bool
  /// The estimated seconds of this job, as ``remainingAfter`` counts a job (nil until a job has
  /// been timed, and for a training job until a training job has been): what the line that
  /// starts the job adds to the time left.
  public var estimate: Double?

  public init(
    job: String, index: Int, count: Int, elapsed: Double, remainingAfter: Double?,
    untimedTrainingAfter: Int = 0, trains: Bool = false, estimate: Double? = nil
  ) {
    self.job = job
    self.index = index
    self.count = count
    self.elapsed = elapsed
    self.remainingAfter = remainingAfter
    self.untimedTrainingAfter = untimedTrainingAfter
    self.trains = trains
    self.estimate = estimate
  }
}

/// What a running transfer reports.
public enum RunEvent: Sendable, Equatable {
  /// A job starts.
  case started(RunPosition)
  /// A job ended after `seconds`.
  case finished(RunPosition, seconds: Double)
  /// Something the reader of the results must know (e.g. a model that predicts one class).
  case warning(String)
}

/// The progress of a long loop inside a backend call: training steps, cases predicted.
public struct JobProgress: Sendable, Equatable {
  /// What is running, e.g. `source model`, `axial view`, `Dice on E`.
  public var task: String
  /// Steps (or items) done, and their total.
  public var done: Int
  public var total: Int
  /// The loss of the last training step (nil for loops that do not train).
  public var loss: Float?
  /// Items per second, in ``rateUnit``.
  public var rate: Double
  /// `img/s`, `slices/s`, `cases/s`.
  public var rateUnit: String
  /// The estimated seconds left in this loop.
  public var secondsRemaining: Double

  public init(
    task: String, done: Int, total: Int, loss: Float? = nil, rate: Double, rateUnit: String,
    secondsRemaining: Double
  ) {
    self.task = task
    self.done = done
    self.total = total
    self.loss = loss
    self.rate = rate
    self.rateUnit = rateUnit
    self.secondsRemaining = secondsRemaining
  }

  /// The progress of a training step of `task` (`unit`: what a step's batch holds, e.g. `img`).
  public init(_ training: TrainingProgress, task: String, unit: String) {
    self.init(
      task: task, done: training.step, total: training.totalSteps, loss: training.loss,
      rate: training.imagesPerSecond, rateUnit: unit + "/s",
      secondsRemaining: training.secondsRemaining)
  }

  /// The progress of `done` of `total` items (`unit`: what an item is, e.g. `cases`) of a loop
  /// that started at `start`.
  public static func items(
    _ task: String, done: Int, total: Int, unit: String, since start: Date
  ) -> JobProgress {
    let elapsed = -start.timeIntervalSinceNow
    let perItem = elapsed / Double(max(1, done))
    return JobProgress(
      task: task, done: done, total: total, rate: elapsed > 0 ? Double(done) / elapsed : 0,
      rateUnit: unit + "/s", secondsRemaining: perItem * Double(total - done))
  }
}

/// The estimate of the time left in a run from the jobs timed so far.
struct RunClock {
  let start = Date()
  /// Seconds of the finished jobs, by kind.
  var seconds: [String: [Double]] = [:]

  /// The kind of a job for the estimate (jobs of one kind take similar times).
  static func kind(_ action: JobAction) -> String {
    switch action {
    case .trainSource: "train-source"
    case .importSource: "import-source"
    case .adaptBatchNorm: "adapt-bn"
    case .label: "label"
    case .scoreLabels: "score-labels"
    case .trainStudent: "train-student"
    case .evaluate: "evaluate"
    }
  }

  /// Whether jobs of `kind` train a network (minutes, where the others take seconds).
  static func trains(_ kind: String) -> Bool { kind == "train-source" || kind == "train-student" }

  /// The estimated seconds of `jobs`, nil before any job was timed: a job takes the mean time
  /// of the finished jobs of its kind, else of its group (training or not), else of all; but a
  /// training job counts 0 while no training job has been timed (a job of seconds says nothing
  /// of one of minutes): ``untimedTraining(_:)`` counts those.
  func estimate(_ jobs: some Sequence<TransferJob>) -> Double? {
    func mean(_ values: [Double]) -> Double? {
      values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
    guard let overall = mean(seconds.values.flatMap { $0 }) else { return nil }
    func group(_ training: Bool) -> Double? {
      mean(seconds.filter { Self.trains($0.key) == training }.values.flatMap { $0 })
    }
    let training = group(true)
    let other = group(false)
    return jobs.reduce(0) { total, job in
      let kind = Self.kind(job.action)
      let fallback = Self.trains(kind) ? (training ?? 0) : (other ?? overall)
      return total + (mean(seconds[kind] ?? []) ?? fallback)
    }
  }

  /// The estimated seconds of `job` alone (``estimate(_:)``), nil while nothing stands for it:
  /// no job timed yet, or a training job while no training job has been timed.
  func estimate(of job: TransferJob) -> Double? {
    if Self.trains(Self.kind(job.action)), untimedTraining([job]) > 0 { return nil }
    return estimate([job])
  }

  /// The training jobs of `jobs` while no training job has been timed (0 after the first).
  func untimedTraining(_ jobs: some Sequence<TransferJob>) -> Int {
    guard !seconds.keys.contains(where: Self.trains) else { return 0 }
    return jobs.filter { Self.trains(Self.kind($0.action)) }.count
  }
}

/// The legend under the results of `table.md`: what the columns mean and what the run used.
struct TableLegend {
  var configuration: TransferConfiguration
  var metric: EvaluationMetric
  var data: DataSummary?
  var warnings: [String]

  func markdown() -> String {
    var lines: [String] = []
    let unit = data?.unit ?? "unit"
    lines.append(
      "- Cells: \(metric.title) in percent, the mean over the cell's models (one for "
        + "self-learning and STSO, the K fold models of an ATSO generation, the model trained "
        + "on all folds for ATSO's `final` row). Generation 0 is the stage's initial model M0, "
        + "shared by all schedules.")
    lines.append(
      "- @R: the model's score on the reference set R, the unlabeled \(unit)s that the teachers "
        + "label; `labels @R` (the paper's @R): the score of pseudo labels on R. R's labels are "
        + "read for these diagnoses only, never for training or model selection (0 when R has "
        + "none). @E: the score on the held-out test set E.")
    if let data {
      lines.append(
        "- Sets: S (labeled) \(data.count(data.labeled.count)), R (unlabeled reference) "
          + "\(data.count(data.reference.count)), E (test) \(data.count(data.test.count)); "
          + "their \(unit) ids are in `sets.json`, R's folds in `folds.json`.")
      lines += data.notes.map { "- " + $0 }
    }
    let schedules = configuration.schedules.map { ResultsTable.title($0) }
    lines.append(
      "- Schedules: \(schedules.joined(separator: ", ")); \(configuration.generations) "
        + "generation\(configuration.generations == 1 ? "" : "s"), ATSO with K = "
        + "\(configuration.folds) folds.")
    for stage in configuration.stages {
      var text = "- Stage \(stage.name): \(stage.method.rawValue) at level \(stage.level)"
      if let labels = stage.labels { text += ", labels \(labels.rawValue)" }
      text += ", initialization \(stage.initialization.rawValue)"
      if let network = stage.network { text += ", network \(network)" }
      lines.append(text + ".")
    }
    let pseudo = configuration.pseudoLabels
    var filters: [String] = []
    if let t = pseudo.confidenceThreshold { filters.append("confidence >= \(t)") }
    if let q = pseudo.classBalancedPortion {
      filters.append("class-balanced portion \(q)")
    }
    lines.append(
      "- Pseudo labels: \(filters.isEmpty ? "every \(unit == "case" ? "voxel" : "pixel") kept" : filters.joined(separator: ", "))"
        + ", AdaBN before labeling \(pseudo.adaptBatchNorm ? "on" : "off"), void label "
        + "\(pseudo.ignoreIndex.value).")
    if let source = configuration.sourceModel { lines.append("- Source model M0: \(source).") }
    lines.append(
      "- Seeds: run seed \(configuration.seed); the fold split and every job seed derive from "
        + "it and from what the job computes (`steps/<job>.json` records each seed).")
    lines.append(
      "- Per-step training losses of every job: `losses/<job>.csv`; scores as fractions of 1 "
        + "in `metrics.jsonl` and `table.json`.")
    lines += warnings.map { "- **Warning:** " + $0 }
    return "\n## Legend\n\n" + lines.joined(separator: "\n") + "\n"
  }
}
