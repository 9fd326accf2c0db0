import Foundation

/// The results in the shape of Table 1 of Huo et al. (generation x schedule x {@R, @E}).
///
/// A cell is the mean over the cell's models: one for self-learning and STSO, the K fold models
/// for an ATSO generation, the merged model for ATSO's `final` row. Generation 0 is the stage's
/// initial model (M0), shared by all schedules. Values are the records' metric (mean IoU for
/// images, mean foreground Dice for volumes) in percent.
public struct ResultsTable: Sendable, Equatable {
  /// One cell: the mean @R and @E of `models` models.
  public struct Cell: Codable, Sendable, Equatable {
    public var atR: Double
    public var atE: Double
    public var models: Int
    /// The per-class scores averaged over the models, with the class names.
    public var perClass: MetricsRecord.PerClass?
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

  public var metric: EvaluationMetric
  public var schedules: [ScheduleKind]
  public var stages: [StageTable]

  /// Builds the table from metrics records, for the configuration's stages and schedules.
  public init(records: [MetricsRecord], configuration: TransferConfiguration) {
    metric = records.first?.metric ?? .meanIoU
    schedules = configuration.schedules
    stages = configuration.stages.map { stage in
      let stageRecords = records.filter { $0.stage == stage.name }
      var keys: [Int?] = []
      if stage.method == .schedules { keys = (0...configuration.generations).map { $0 } }
      keys.append(nil)
      var rows: [Row] = []
      for generation in keys {
        var cells: [String: Cell] = [:]
        for schedule in configuration.schedules {
          let matching = stageRecords.filter {
            $0.schedule == schedule && $0.generation == generation
          }
          guard !matching.isEmpty else { continue }
          let n = Double(matching.count)
          cells[schedule.rawValue] = Cell(
            atR: matching.map(\.atR).reduce(0, +) / n,
            atE: matching.map(\.atE).reduce(0, +) / n, models: matching.count,
            perClass: Self.meanPerClass(matching.map(\.perClass)))
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

  static func title(_ schedule: ScheduleKind) -> String {
    switch schedule {
    case .selfLearning: "self-learning"
    case .stso: "STSO"
    case .atso: "ATSO"
    }
  }

  static func percent(_ value: Double) -> String { String(format: "%.2f", value * 100) }

  /// The table as Markdown: one section per stage, `-` for an empty cell.
  public func markdown() -> String {
    var text = "# Results (\(metric.title), %)\n"
    for stage in stages {
      text += "\n## Stage \(stage.name) (\(stage.method.rawValue), level \(stage.level))\n\n"
      let header = schedules.flatMap { ["\(Self.title($0)) @R", "\(Self.title($0)) @E"] }
      text += "| Generation | " + header.joined(separator: " | ") + " |\n"
      text += "|---|" + String(repeating: "---:|", count: header.count) + "\n"
      for row in stage.rows {
        let values = schedules.flatMap { schedule -> [String] in
          guard let cell = row.cells[schedule.rawValue] else { return ["-", "-"] }
          return [Self.percent(cell.atR), Self.percent(cell.atE)]
        }
        text += "| \(row.generation) | " + values.joined(separator: " | ") + " |\n"
      }
    }
    return text
  }

  /// The table as JSON (sorted keys, values as fractions in [0, 1]: `"scale": "fraction"`).
  public func json() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(JSONForm(metric: metric, schedules: schedules, stages: stages))
  }

  struct JSONForm: Codable {
    var scale = "fraction"
    var metric: EvaluationMetric
    var schedules: [ScheduleKind]
    var stages: [StageTable]
  }

  /// The line plot of a `schedules` stage: the metric (%) against generation, one style per
  /// schedule (``LinePlot/scheduleStyles``), solid with filled markers for @E and dashed with
  /// hollow markers for @R. `dataset` names the data in the subtitle (see
  /// ``LinePlot/datasetLine(_:)``).
  public func curves(stage name: String, dataset: String = "", width: Int = 640, height: Int = 400)
    -> PlotCanvas
  {
    curvesPlot(stage: name, dataset: dataset).render(width: width, height: height)
  }

  /// The plot ``curves(stage:dataset:width:height:)`` renders.
  func curvesPlot(stage name: String, dataset: String) -> LinePlot {
    var series: [LinePlot.Series] = []
    var level = ""
    if let stage = stages.first(where: { $0.name == name }) {
      level = "\(stage.level)"
      for schedule in schedules {
        let points = stage.rows.compactMap { row -> (Double, Cell)? in
          guard let generation = Int(row.generation), let cell = row.cells[schedule.rawValue]
          else { return nil }
          return (Double(generation), cell)
        }
        let index = ScheduleKind.allCases.firstIndex(of: schedule) ?? 0
        let style = LinePlot.scheduleStyles[index % LinePlot.scheduleStyles.count]
        series.append(
          .init(
            label: "\(Self.title(schedule)) @E", style: style,
            points: points.map { ($0.0, $0.1.atE * 100) }))
        series.append(
          .init(
            label: "\(Self.title(schedule)) @R", style: style, lineStyle: LinePlot.dashed,
            isMarkerFilled: false, points: points.map { ($0.0, $0.1.atR * 100) }))
      }
    }
    return LinePlot(
      title: "\(metric.title.prefix(1).uppercased() + metric.title.dropFirst()) (%) per generation",
      subtitle: ["stage \(name)" + (level.isEmpty ? "" : ", level \(level)"), dataset]
        .filter { !$0.isEmpty }.joined(separator: "; "),
      xLabel: "generation", yLabel: "\(metric.title) (%)", series: series)
  }
}
