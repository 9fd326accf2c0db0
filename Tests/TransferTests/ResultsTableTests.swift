import Foundation
import Testing
@testable import Transfer

func record(
  _ schedule: ScheduleKind, _ generation: Int?, fold: Int? = nil, r: Double, e: Double,
  stage: String = "fine"
) -> MetricsRecord {
  MetricsRecord(
    stage: stage, level: .fine, schedule: schedule, generation: generation, fold: fold,
    model: "m", metric: .meanIoU, atR: r, atE: e, agreement: nil, perClass: .init(reference: [r], test: [e]))
}

@Test("Table 1 in Markdown and JSON: means over ATSO's fold models, '-' for empty cells")
func tableShape() throws {
  let configuration = TransferConfiguration(schedules: [.selfLearning, .atso], generations: 1)
  let records = [
    record(.selfLearning, 0, r: 0.5, e: 0.4), record(.atso, 0, r: 0.5, e: 0.4),
    record(.selfLearning, 1, r: 0.9, e: 0.45),
    record(.atso, 1, fold: 1, r: 0.6, e: 0.5), record(.atso, 1, fold: 2, r: 0.7, e: 0.52),
    record(.atso, nil, r: 0.66, e: 0.55),
  ]
  let table = ResultsTable(records: records, configuration: configuration)
  #expect(
    table.markdown() == """
      # Results (mean IoU, %)

      ## Stage fine (schedules, level fine)

      | Generation | self-learning @R | self-learning @E | ATSO @R | ATSO @E |
      |---|---:|---:|---:|---:|
      | 0 | 50.00 | 40.00 | 50.00 | 40.00 |
      | 1 | 90.00 | 45.00 | 65.00 | 51.00 |
      | final | - | - | 66.00 | 55.00 |

      """)
  let json = try JSONSerialization.jsonObject(with: try table.json()) as? [String: Any]
  let stages = try #require(json?["stages"] as? [[String: Any]])
  let rows = try #require(stages.first?["rows"] as? [[String: Any]])
  #expect(rows.map { $0["generation"] as? String } == ["0", "1", "final"])
  let cells = try #require(rows[1]["cells"] as? [String: [String: Any]])
  #expect(cells["atso"]?["models"] as? Int == 2)
  #expect(abs((cells["atso"]?["atR"] as? Double ?? 0) - 0.65) < 1e-12)
  #expect(json?["schedules"] as? [String] == ["self-learning", "atso"])
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
  #expect(
    lines.contains { $0.hasPrefix("| Generation | self-learning @R | self-learning @E | STSO @R") })
  #expect(lines.filter { $0.hasPrefix("| ") && !$0.hasPrefix("| Generation") }.count == 4)
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
