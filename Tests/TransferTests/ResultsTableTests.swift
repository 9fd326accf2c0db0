import Foundation
import Testing
@testable import Transfer

func record(
  _ schedule: ScheduleKind?, _ generation: Int?, fold: Int? = nil, r: Double, e: Double,
  stage: String = "fine", adapted: (r: Double, e: Double)? = nil, labels: Double? = nil,
  agreement: (teacher: Double, source: Double)? = nil
) -> MetricsRecord {
  var scores = [
    ModelScore(
      set: .reference, statistics: .asTrained, resolution: .native,
      evaluation: Evaluation(score: r, perClass: [r])),
    ModelScore(
      set: .test, statistics: .asTrained, resolution: .native,
      evaluation: Evaluation(score: e, perClass: [e])),
  ]
  if let adapted {
    for (set, statistics, value) in [
      (EvaluationSet.reference, BatchNormStatistics.asTrained, r), (.test, .asTrained, e),
      (.reference, .adapted, adapted.r), (.test, .adapted, adapted.e),
    ] {
      scores.append(
        ModelScore(
          set: set, statistics: statistics, resolution: .working,
          evaluation: Evaluation(
            score: value - 0.01, perClass: [], resolution: "8x8, the working size")))
    }
  }
  return MetricsRecord(
    stage: stage, level: .fine, schedule: schedule, generation: generation, fold: fold,
    model: "m", metric: .meanIoU, resolution: "each image's own size", atR: r, atE: e,
    atRAdaBN: adapted?.r, atEAdaBN: adapted?.e, labelsAtR: labels,
    agreement: agreement?.teacher, agreementWithM0: agreement?.source,
    perClass: .init(reference: [r], test: [e]), scores: scores)
}

@Test("Table 1 in Markdown and JSON: baselines, means over ATSO's fold models, '-' for what is not measured")
func tableShape() throws {
  let configuration = TransferConfiguration(schedules: [.selfLearning, .atso], generations: 1)
  let records = [
    record(nil, nil, r: 0.5, e: 0.4, stage: "baseline", adapted: (0.6, 0.55)),
    record(.selfLearning, 0, r: 0.5, e: 0.4, labels: 0.48),
    record(.atso, 0, r: 0.5, e: 0.4, labels: 0.48),
    record(.selfLearning, 1, r: 0.9, e: 0.45, labels: 0.7, agreement: (0.9, 0.8)),
    record(.atso, 1, fold: 1, r: 0.6, e: 0.5, adapted: (0.62, 0.56), labels: 0.6, agreement: (0.7, 0.6)),
    record(.atso, 1, fold: 2, r: 0.7, e: 0.52, adapted: (0.72, 0.58), labels: 0.6, agreement: (0.8, 0.7)),
    record(.atso, nil, r: 0.66, e: 0.55, labels: 0.6),
  ]
  let table = ResultsTable(records: records, configuration: configuration)
  let markdown = table.markdown()
  #expect(markdown.hasPrefix("# Results (mean IoU, %)\n\nModels are scored at each image's own size"))
  #expect(
    markdown.contains(
      """
      ## Baselines

      | level | model | @R | @E | @R (8x8, the working size) | @E (8x8, the working size) |
      |---|---|---:|---:|---:|---:|
      | fine | source only (M0) | 50.00 | 40.00 | 49.00 | 39.00 |
      | fine | AdaBN alone (M0 + AdaBN on R) | 60.00 | 55.00 | 59.00 | 54.00 |
      """))
  // The working-size table: ATSO generation 1 averages its fold models there too.
  #expect(markdown.contains("### Stage fine at 8x8, the working size"))
  #expect(markdown.contains("| 1 | - | - | 50.00 | 56.00 |"))
  #expect(
    markdown.contains(
      """
      ### ATSO

      | Generation | labels @R | @R | @E | @R +AdaBN | @E +AdaBN | agrees with teacher | agrees with M0 |
      |---|---:|---:|---:|---:|---:|---:|---:|
      | 0 | 48.00 | 50.00 | 40.00 | - | - | - | - |
      | 1 | 60.00 | 65.00 | 51.00 | 67.00 | 57.00 | 75.00 | 65.00 |
      | final | 60.00 | 66.00 | 55.00 | - | - | - | - |
      """))
  #expect(markdown.contains("| 1 | 70.00 | 90.00 | 45.00 | - | - | 90.00 | 80.00 |"))
  let json = try JSONSerialization.jsonObject(with: try table.json()) as? [String: Any]
  let stages = try #require(json?["stages"] as? [[String: Any]])
  let rows = try #require(stages.first?["rows"] as? [[String: Any]])
  #expect(rows.map { $0["generation"] as? String } == ["0", "1", "final"])
  let cells = try #require(rows[1]["cells"] as? [String: [String: Any]])
  #expect(cells["atso"]?["models"] as? Int == 2)
  #expect(abs((cells["atso"]?["atR"] as? Double ?? 0) - 0.65) < 1e-12)
  #expect(abs((cells["atso"]?["agreementWithM0"] as? Double ?? 0) - 0.65) < 1e-12)
  #expect(json?["schedules"] as? [String] == ["self-learning", "atso"])
  let baselines = try #require(json?["baselines"] as? [[String: Any]])
  #expect((baselines.first?["cell"] as? [String: Any])?["atEAdaBN"] as? Double == 0.55)
}

@Test("a tiny run writes table.md and table.json with a row per generation and schedule")
func tinyRunTable() throws {
  let configuration = TransferConfiguration(seed: 2, folds: 2, generations: 2)
  let (run, _, records) = try runFresh(configuration, name: "table")
  let markdown = try #require(
    FileManager.default.contents(atPath: run.directory + "/table.md").flatMap {
      String(data: $0, encoding: .utf8)
    })
  let lines = markdown.split(separator: "\n")
  #expect(lines.filter { $0.hasPrefix("### ") } == ["### self-learning", "### STSO", "### ATSO"])
  // Two baseline rows, three generation rows of self-learning and STSO, four of ATSO.
  #expect(
    lines.filter { $0.hasPrefix("| ") && !$0.hasPrefix("| Generation") && !$0.hasPrefix("| level") }
      .count == 2 + 3 + 3 + 4)
  let data = try #require(FileManager.default.contents(atPath: run.directory + "/table.json"))
  let decoded = try JSONDecoder().decode(ResultsTable.JSONForm.self, from: data)
  let rows = try #require(decoded.stages.first?.rows)
  #expect(rows.map(\.generation) == ["0", "1", "2", "final"])
  let atso2 = records.filter { $0.schedule == .atso && $0.generation == 2 }
  #expect(atso2.count == 2)
  let cell = try #require(rows[2].cells["atso"])
  #expect(abs(cell.atE - (atso2[0].atE + atso2[1].atE) / 2) < 1e-12)
  #expect(rows[3].cells.keys.sorted() == ["atso"])
  // metrics.jsonl: one decodable record per line.
  let metrics = try #require(
    FileManager.default.contents(atPath: run.directory + "/metrics.jsonl").flatMap {
      String(data: $0, encoding: .utf8)
    })
  let decodedRecords = try metrics.split(separator: "\n").map {
    try JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8))
  }
  #expect(decodedRecords == records)
}
