import Foundation
import Testing
@testable import Segmentation

@Suite struct DatasetSpecTests {
  @Test func parsesKindsSplitsAndFilters() throws {
    let a = try DatasetSpec(parsing: "cityscapes:/data/cs:val")
    #expect(a.kind == .cityscapes && a.path == "/data/cs" && a.argument == "val")
    let b = try DatasetSpec(parsing: "camvid:/x/train.txt?include=0006R0,0016E5&exclude=0016E5_07")
    #expect(b.kind == .camvid && b.path == "/x/train.txt" && b.argument == nil)
    #expect(b.includePrefixes == ["0006R0", "0016E5"] && b.excludePrefixes == ["0016E5_07"])
    let c = try DatasetSpec(parsing: "list:pairs.txt:cityscapes-19?unlabeled")
    #expect(c.argument == "cityscapes-19" && c.unlabeled)
    for spec in [a, b, c] { #expect(try DatasetSpec(parsing: spec.description) == spec) }
  }

  @Test func rejectsBadSpecsWithTheReason() {
    #expect(throws: DatasetError.invalidSpec("nonsense", reason: "expected KIND:PATH, e.g. camvid:data/train.txt")) {
      try DatasetSpec(parsing: "nonsense")
    }
    #expect(throws: DatasetError.self) { try DatasetSpec(parsing: "kitti:/x") }
    #expect(throws: DatasetError.invalidSpec("list:a.txt", reason: "a list needs its class set: list:FILE:CLASSSET")) {
      try DatasetSpec(parsing: "list:a.txt")
    }
    #expect(throws: DatasetError.self) { try DatasetSpec(parsing: "camvid:a.txt?colour=red") }
  }

  static let camvidList: String = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent("../shared/data/camvid/train.txt").standardized.path
  }()

  @Test(.enabled(if: FileManager.default.fileExists(atPath: camvidList), "needs ../shared/data/camvid"))
  func splitsCamVidIntoDayAndDusk() throws {
    let day = try DatasetSpec(parsing: "camvid:\(Self.camvidList)?include=0006R0,0016E5").open()
    let dusk = try DatasetSpec(parsing: "camvid:\(Self.camvidList)?include=0001TP&unlabeled").open()
    #expect(day.count == 305)
    #expect(dusk.count == 62)
    #expect(dusk.samples.allSatisfy { $0.labelPath == nil })
    #expect(throws: DatasetError.self) {
      try DatasetSpec(parsing: "camvid:\(Self.camvidList)?include=9999XX").open()
    }
  }
}
