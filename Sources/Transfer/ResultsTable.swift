import Foundation

/// The results in the shape of Table 1 of Huo et al. (generation x schedule), with the baselines
/// and every score the run measures.
///
/// A cell is the mean over the cell's models: one for self-learning and STSO, the K fold models
/// for an ATSO generation, the merged model for ATSO's `final` row. Generation 0 is the stage's
/// initial model (M0), shared by all schedules. Each cell holds the model's scores on R and E
/// as trained and with batch-norm statistics of R (AdaBN), the paper's @R (the pseudo labels the
/// next generation trains on, as written), and the lazy-mimicking measure (agreement with the
/// teacher and with M0). Values are the records' metric (mean IoU for images, mean foreground
/// Dice for volumes), fractions in JSON and percent in Markdown.
public struct ResultsTable: Sendable, Equatable {
  /// The stage name of the baseline records.
  public static let baselineStage = "baseline"

  /// Scores of a model on R and E, as trained and with AdaBN.
  public struct Scores: Codable, Sendable, Equatable {
    public var atR: Double
    public var atE: Double
    public var atRAdaBN: Double?
    public var atEAdaBN: Double?
  }
  /// One cell: means over `models` models.
  public struct Cell: Codable, Sendable, Equatable {
    public var atR: Double
    public var atE: Double
    public var atRAdaBN: Double?
    public var atEAdaBN: Double?
    /// The paper's @R: the row's pseudo labels as written (see ``MetricsRecord/labelsAtR``).
    public var labelsAtR: Double?
    public var agreement: Double?
    public var agreementWithM0: Double?
    public var models: Int
    /// The per-class scores averaged over the models, with the class names.
    public var perClass: MetricsRecord.PerClass?
    /// The same scores at the working size, when the backend also scores there.
    public var atWorkingSize: Scores?
  }
  /// One row: a generation (`"0"`, `"1"`, ..., or `"final"`) and a cell per schedule that has one.
  public struct Row: Codable, Sendable, Equatable {
    public var generation: String
    public var cells: [String: Cell]
  }
  public struct StageTable: Codable, Sendable, Equatable {
    public var name: String
    public var level: LabelLevel
    public var method: StageConfiguration.Method
    public var rows: [Row]
  }
  /// The baselines at a level: M0 as trained (source only) and with AdaBN (AdaBN alone).
  public struct Baseline: Codable, Sendable, Equatable {
    public var level: LabelLevel
    public var cell: Cell
  }

  public var metric: EvaluationMetric
  /// Where the scores were computed, in words (the labels' score: at their own size).
  public var resolution: String?
  /// Where the `atWorkingSize` scores were computed.
  public var workingResolution: String?
  /// Whether the run's teachers label through their AdaBN copies.
  public var adaptsBeforeLabeling: Bool
  public var schedules: [ScheduleKind]
  public var baselines: [Baseline]
  public var stages: [StageTable]

  /// Builds the table from metrics records, for the configuration's stages and schedules.
  public init(records: [MetricsRecord], configuration: TransferConfiguration) {
    metric = records.first?.metric ?? .meanIoU
    resolution = records.first?.resolution
    workingResolution =
      records.lazy.flatMap(\.scores).first { $0.resolution == .working }?.evaluation.resolution
    adaptsBeforeLabeling = configuration.pseudoLabels.adaptBatchNorm
    schedules = configuration.schedules
    baselines = configuration.levels.compactMap { level in
      Self.cell(records.filter { $0.stage == Self.baselineStage && $0.level == level })
        .map { Baseline(level: level, cell: $0) }
    }
    stages = configuration.stages.map { stage in
      let stageRecords = records.filter { $0.stage == stage.name }
      var keys: [Int?] = []
      if stage.method == .schedules {
        keys = (0...(stage.generations ?? configuration.generations)).map { $0 }
      }
      keys.append(nil)
      var rows: [Row] = []
      for generation in keys {
        var cells: [String: Cell] = [:]
        for schedule in configuration.schedules {
          let matching = stageRecords.filter {
            $0.schedule == schedule && $0.generation == generation
          }
          cells[schedule.rawValue] = Self.cell(matching)
        }
        if !cells.isEmpty {
          rows.append(Row(generation: generation.map { "\($0)" } ?? "final", cells: cells))
        }
      }
      return StageTable(name: stage.name, level: stage.level, method: stage.method, rows: rows)
    }
  }

  /// The per-class means of `lists` (each class over the models where it is defined).
  static func meanPerClass(_ lists: [MetricsRecord.PerClass]) -> MetricsRecord.PerClass? {
    guard let first = lists.first else { return nil }
    func mean(_ values: [[Double?]]) -> [Double?] {
      (0..<(values.map(\.count).max() ?? 0)).map { i in
        let defined = values.compactMap { i < $0.count ? $0[i] : nil }
        return defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count)
      }
    }
    return .init(
      classes: first.classes, reference: mean(lists.map(\.reference)),
      test: mean(lists.map(\.test)))
  }

  /// The mean of some values, nil when there are none.
  static func mean(_ values: [Double?]) -> Double? {
    let present = values.compactMap { $0 }
    return present.isEmpty ? nil : present.reduce(0, +) / Double(present.count)
  }

  /// The cell of some records (nil for none).
  static func cell(_ records: [MetricsRecord]) -> Cell? {
    guard !records.isEmpty else { return nil }
    func working(_ set: EvaluationSet, _ statistics: BatchNormStatistics) -> Double? {
      mean(
        records.map { record in
          record.scores.first {
            $0.set == set && $0.statistics == statistics && $0.resolution == .working
          }?.evaluation.score
        })
    }
    var atWorkingSize: Scores?
    if let r = working(.reference, .asTrained), let e = working(.test, .asTrained) {
      atWorkingSize = Scores(
        atR: r, atE: e, atRAdaBN: working(.reference, .adapted), atEAdaBN: working(.test, .adapted))
    }
    return Cell(
      atR: mean(records.map(\.atR)) ?? 0, atE: mean(records.map(\.atE)) ?? 0,
      atRAdaBN: mean(records.map(\.atRAdaBN)), atEAdaBN: mean(records.map(\.atEAdaBN)),
      labelsAtR: mean(records.map(\.labelsAtR)), agreement: mean(records.map(\.agreement)),
      agreementWithM0: mean(records.map(\.agreementWithM0)), models: records.count,
      perClass: meanPerClass(records.map(\.perClass)), atWorkingSize: atWorkingSize)
  }

  static func title(_ schedule: ScheduleKind) -> String {
    switch schedule {
    case .selfLearning: "self-learning"
    case .stso: "STSO"
    case .atso: "ATSO"
    }
  }

  static func percent(_ value: Double?) -> String {
    value.map { String(format: "%.2f", $0 * 100) } ?? "-"
  }

  /// The table as Markdown: the baselines, then per stage a table per schedule and the scores
  /// at the working size; `-` for a value not measured.
  public func markdown() -> String {
    let at = resolution.map { " at \($0)" } ?? ""
    var text = "# Results (\(metric.title), %)\n\n"
    text += "Models are scored\(at), as trained and \"+AdaBN\" (the same model with batch-norm "
    text += "statistics re-estimated on the images of R). \"labels @R\" (the paper's @R) scores "
    text += "a generation's pseudo labels for the next generation (ATSO: its folds joined), and "
    text += "for a final model the labels it trained on, as written under labels/ (their own "
    text += "size). \"agrees\": the share of R's labelled pixels where the model"
    text += adaptsBeforeLabeling ? " (+AdaBN, as it would label)" : ""
    text += " predicts its teacher's label, or M0's. ATSO generations average the fold models.\n"
    if !baselines.isEmpty {
      let working = workingResolution.map { " (\($0))" } ?? ""
      text += "\n## Baselines\n\n| level | model | @R | @E |"
      text += workingResolution == nil ? "\n|---|---|---:|---:|\n" : " @R\(working) | @E\(working) |\n|---|---|---:|---:|---:|---:|\n"
      for baseline in baselines {
        let cell = baseline.cell
        let rows: [(String, Double?, Double?, Double?, Double?)] = [
          ("source only (M0)", cell.atR, cell.atE, cell.atWorkingSize?.atR, cell.atWorkingSize?.atE),
          ("AdaBN alone (M0 + AdaBN on R)", cell.atRAdaBN, cell.atEAdaBN,
            cell.atWorkingSize?.atRAdaBN, cell.atWorkingSize?.atEAdaBN),
        ]
        for (name, r, e, wr, we) in rows {
          text += "| \(baseline.level) | \(name) | \(Self.percent(r)) | \(Self.percent(e)) |"
          text += workingResolution == nil ? "\n" : " \(Self.percent(wr)) | \(Self.percent(we)) |\n"
        }
      }
    }
    for stage in stages {
      text += "\n## Stage \(stage.name) (\(stage.method.rawValue), level \(stage.level))\n"
      for schedule in schedules where stage.rows.contains(where: { $0.cells[schedule.rawValue] != nil }) {
        text += "\n### \(Self.title(schedule))\n\n"
        text += "| Generation | labels @R | @R | @E | @R +AdaBN | @E +AdaBN | agrees with teacher | agrees with M0 |\n"
        text += "|---|" + String(repeating: "---:|", count: 7) + "\n"
        for row in stage.rows {
          guard let cell = row.cells[schedule.rawValue] else { continue }
          let values = [
            cell.labelsAtR, cell.atR, cell.atE, cell.atRAdaBN, cell.atEAdaBN, cell.agreement,
            cell.agreementWithM0,
          ].map(Self.percent)
          text += "| \(row.generation) | " + values.joined(separator: " | ") + " |\n"
        }
      }
      if let workingResolution {
        text += "\n### Stage \(stage.name) at \(workingResolution)\n\n"
        let header = schedules.flatMap {
          ["\(Self.title($0)) @E", "\(Self.title($0)) @E +AdaBN"]
        }
        text += "| Generation | " + header.joined(separator: " | ") + " |\n"
        text += "|---|" + String(repeating: "---:|", count: header.count) + "\n"
        for row in stage.rows {
          let values = schedules.flatMap { schedule -> [String] in
            let scores = row.cells[schedule.rawValue]?.atWorkingSize
            return [Self.percent(scores?.atE), Self.percent(scores?.atEAdaBN)]
          }
          text += "| \(row.generation) | " + values.joined(separator: " | ") + " |\n"
        }
      }
    }
    return text
  }

  /// The table as JSON (sorted keys, values as fractions in [0, 1]: `"scale": "fraction"`).
  public func json() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(
      JSONForm(
        metric: metric, resolution: resolution, workingResolution: workingResolution,
        adaptsBeforeLabeling: adaptsBeforeLabeling, schedules: schedules, baselines: baselines,
        stages: stages))
  }

  struct JSONForm: Codable {
    var scale = "fraction"
    var metric: EvaluationMetric
    var resolution: String?
    var workingResolution: String?
    var adaptsBeforeLabeling: Bool
    var schedules: [ScheduleKind]
    var baselines: [Baseline]
    var stages: [StageTable]
  }

  /// The line plot of a `schedules` stage: the metric (%) against generation, one style per
  /// schedule (``LinePlot/scheduleStyles``), solid with filled markers for @E (with AdaBN when
  /// the run labels with AdaBN) and dashed with hollow markers for the pseudo labels' @R.
  /// `dataset` names the data in the subtitle (see ``LinePlot/datasetLine(_:)``).
  public func curves(stage name: String, dataset: String = "", width: Int = 640, height: Int = 400)
    -> PlotCanvas
  {
    curvesPlot(stage: name, dataset: dataset).render(width: width, height: height)
  }

  /// The points of one value of a stage's cells per schedule, against generation.
  func series(
    stage: StageTable, _ label: (ScheduleKind) -> String, dashed: Bool, _ value: (Cell) -> Double?
  ) -> [LinePlot.Series] {
    schedules.map { schedule in
      let points = stage.rows.compactMap { row -> (x: Double, y: Double)? in
        guard let generation = Int(row.generation), let cell = row.cells[schedule.rawValue],
          let y = value(cell)
        else { return nil }
        return (Double(generation), y * 100)
      }
      let index = ScheduleKind.allCases.firstIndex(of: schedule) ?? 0
      let style = LinePlot.scheduleStyles[index % LinePlot.scheduleStyles.count]
      return LinePlot.Series(
        label: label(schedule), style: style, lineStyle: dashed ? LinePlot.dashed : .solid,
        isMarkerFilled: !dashed, points: points)
    }
  }

  /// The plot ``curves(stage:dataset:width:height:)`` renders.
  func curvesPlot(stage name: String, dataset: String) -> LinePlot {
    let adapted = adaptsBeforeLabeling
    return stagePlot(
      stage: name, dataset: dataset,
      title: "\(metric.title.prefix(1).uppercased() + metric.title.dropFirst()) (%) per generation",
      yLabel: "\(metric.title) (%)",
      solid: ({ "\(Self.title($0)) @E\(adapted ? " +AdaBN" : "")" }, { adapted ? $0.atEAdaBN : $0.atE }),
      dashed: ({ "\(Self.title($0)) labels @R" }, \.labelsAtR))
  }

  /// A plot of two values of a stage's cells against generation, per schedule a solid and a
  /// dashed series in the schedule's style.
  func stagePlot(
    stage name: String, dataset: String, title: String, yLabel: String,
    solid: (label: (ScheduleKind) -> String, value: (Cell) -> Double?),
    dashed: (label: (ScheduleKind) -> String, value: (Cell) -> Double?)
  ) -> LinePlot {
    var series: [LinePlot.Series] = []
    var level = ""
    if let stage = stages.first(where: { $0.name == name }) {
      level = "\(stage.level)"
      let lines = self.series(stage: stage, solid.label, dashed: false, solid.value)
      let dashes = self.series(stage: stage, dashed.label, dashed: true, dashed.value)
      for (a, b) in zip(lines, dashes) { series += [a, b] }
    }
    return LinePlot(
      title: title,
      subtitle: ["stage \(name)" + (level.isEmpty ? "" : ", level \(level)"), dataset]
        .filter { !$0.isEmpty }.joined(separator: "; "),
      xLabel: "generation", yLabel: yLabel, series: series)
  }

  /// The lazy-mimicking plot of a `schedules` stage: per schedule, the agreement (%) on R of each
  /// generation's models with their teacher's labels (solid) and with M0's labels (dashed).
  public func agreementCurves(
    stage name: String, dataset: String = "", width: Int = 640, height: Int = 400
  ) -> PlotCanvas {
    agreementPlot(stage: name, dataset: dataset).render(width: width, height: height)
  }

  /// The plot ``agreementCurves(stage:dataset:width:height:)`` renders.
  func agreementPlot(stage name: String, dataset: String) -> LinePlot {
    stagePlot(
      stage: name, dataset: dataset, title: "Agreement on R (%) per generation",
      yLabel: "pixels agreeing (%)",
      solid: ({ "\(Self.title($0)) with teacher" }, \.agreement),
      dashed: ({ "\(Self.title($0)) with M0" }, \.agreementWithM0))
  }
}
