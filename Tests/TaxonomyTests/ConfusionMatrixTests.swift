import Foundation
import Tensor
import Testing
@testable import Taxonomy

/// Classes 0 a, 1 b, 2 c (not evaluated), 3 d; ignore 255.
func abcd() throws -> ClassSet {
  try ClassSet(
    name: "abcd",
    classes: [
      SemanticClass(id: 0, name: "a"), SemanticClass(id: 1, name: "b"),
      SemanticClass(id: 2, name: "c", isEvaluated: false), SemanticClass(id: 3, name: "d"),
    ])
}

func isClose(_ x: Double, _ y: Double, _ tolerance: Double = 1e-12) -> Bool {
  (x.isNaN && y.isNaN) || abs(x - y) <= tolerance
}

@Suite struct ConfusionMatrixTests {
  // (gt, pred): (a,a) (a,b) (a,a) (b,b) (b,a) (c,b) (255,a) (b,c) (a,77: not a class -> void)
  let groundTruth: [UInt8] = [0, 0, 0, 1, 1, 2, 255, 1, 0]
  let prediction: [UInt8] = [0, 1, 0, 1, 0, 1, 0, 2, 77]

  @Test func countsAndVoid() throws {
    var matrix = ConfusionMatrix(classes: try abcd())
    matrix.accumulate(groundTruth: groundTruth, prediction: prediction)
    #expect(matrix.rowCount == 5 && matrix.columnCount == 5)
    #expect(matrix.count(groundTruthID: 0, predictionID: 0) == 2)
    #expect(matrix.count(groundTruthID: 0, predictionID: 1) == 1)
    #expect(matrix[0, matrix.voidColumn] == 1)
    #expect(matrix[matrix.voidRow, 0] == 1)
    #expect(matrix.count(groundTruthID: 1, predictionID: 2) == 1)
    #expect(matrix.total == 9)
  }

  /// Scores worked out by hand:
  /// a: TP 2, FN 4 - 2 = 2, FP 1 (b row; the c and void rows do not count) -> IoU 2/5.
  /// b: TP 1, FN 3 - 1 = 2, FP 1 (a row) -> IoU 1/4. c: not evaluated. d: absent -> NaN, skipped.
  @Test func handComputedScores() throws {
    var matrix = ConfusionMatrix(classes: try abcd())
    matrix.accumulate(groundTruth: groundTruth, prediction: prediction)
    let report = try matrix.report()
    let a = try #require(report.score(id: 0))
    let b = try #require(report.score(id: 1))
    #expect((a.truePositives, a.falsePositives, a.falseNegatives) == (2, 1, 2))
    #expect((b.truePositives, b.falsePositives, b.falseNegatives) == (1, 1, 2))
    #expect(isClose(a.iou, 0.4) && isClose(b.iou, 0.25))
    #expect(isClose(a.dice, 4.0 / 7.0) && isClose(b.dice, 0.4))
    #expect(isClose(a.accuracy, 0.5) && isClose(b.accuracy, 1.0 / 3.0))
    #expect(try #require(report.score(id: 2)).iou.isNaN)
    #expect(try #require(report.score(id: 3)).iou.isNaN)
    #expect(isClose(report.meanIoU, 0.325))
    #expect(isClose(report.meanDice, (4.0 / 7.0 + 0.4) / 2))
    #expect(isClose(report.pixelAccuracy, 3.0 / 7.0))
    #expect(isClose(report.meanAccuracy, 5.0 / 12.0))
    #expect(isClose(report.frequencyWeightedIoU, (4.0 * 0.4 + 3.0 * 0.25) / 7.0))
    #expect(report.evaluatedPixels == 7)
    #expect(isClose(report.mean(\.dice, classIDs: [1, 2, 3, 99]), 0.4))
    #expect(report.mean(\.iou, classIDs: [3]).isNaN)
  }

  @Test func classPredictedButAbsentCountsAsZero() throws {
    var matrix = ConfusionMatrix(classes: try abcd())
    matrix.accumulate(groundTruth: [0, 0], prediction: [0, 3])
    let report = try matrix.report()
    #expect(isClose(try #require(report.score(id: 3)).iou, 0))
    #expect(isClose(report.meanIoU, 0.25))  // (1/2 + 0) / 2; b is absent and skipped
  }

  /// a, b -> X; c (not evaluated) -> Y; d -> ignore. Block sums by hand:
  /// row X = rows a, b: X col 2+1+1+1 = 5, void col 1 (a->77) + 1 (b->c, c not evaluated) = 2.
  /// void row = row c (1 in X) + void row (1 in X).
  @Test func reductionByMapping() throws {
    let fine = try abcd()
    let coarse = try ClassSet(
      name: "xy", classes: [SemanticClass(id: 0, name: "X"), SemanticClass(id: 1, name: "Y")])
    let mapping = try LabelMapping(
      name: "abcd-to-xy", from: fine, to: coarse, targets: [0: 0, 1: 0, 2: 1, 3: nil])
    var matrix = ConfusionMatrix(classes: fine)
    matrix.accumulate(groundTruth: groundTruth, prediction: prediction)
    let reduced = try matrix.reduced(by: mapping)
    #expect(reduced.counts == [5, 0, 2, 0, 0, 0, 2, 0, 0])
    let report = try reduced.report()
    #expect(isClose(try #require(report.score(id: 0)).iou, 5.0 / 7.0))
    #expect(try #require(report.score(id: 1)).iou.isNaN)
    // Ground truth and prediction in different class sets: accumulate raw, then reduce.
    var mixed = ConfusionMatrix(groundTruth: fine, prediction: coarse)
    mixed.accumulate(groundTruth: [0, 1, 3, 2], prediction: [0, 1, 0, 0])
    #expect(throws: TaxonomyError.self) { try mixed.report() }
    let common = try mixed.reduced(groundTruth: mapping, prediction: .identity(coarse))
    #expect(common.counts == [1, 1, 0, 0, 0, 0, 2, 0, 0])
  }

  @Test func mergeEqualsOnePass() throws {
    var rng = SeededGenerator(seed: 11)
    let classes = try abcd()
    let values: [UInt8] = [0, 1, 2, 3, 255, 9]
    let gt = (0..<10_000).map { _ in values[Int(rng.next() % 6)] }
    let pred = (0..<10_000).map { _ in values[Int(rng.next() % 6)] }
    var whole = ConfusionMatrix(classes: classes)
    whole.accumulate(groundTruth: gt, prediction: pred)
    var first = ConfusionMatrix(classes: classes)
    first.accumulate(groundTruth: Array(gt[..<3_000]), prediction: Array(pred[..<3_000]))
    var second = ConfusionMatrix(classes: classes)
    second.accumulate(groundTruth: Array(gt[3_000...]), prediction: Array(pred[3_000...]))
    first.merge(second)
    #expect(first == whole)
    // Against a naive count.
    for g in values {
      for p in values
      where classes.position(ofID: Int(g)) != nil && classes.position(ofID: Int(p)) != nil {
        let naive = zip(gt, pred).filter { $0 == g && $1 == p }.count
        #expect(whole.count(groundTruthID: Int(g), predictionID: Int(p)) == Int64(naive))
      }
    }
  }

  @Test func renderings() throws {
    var matrix = ConfusionMatrix(classes: try abcd())
    matrix.accumulate(groundTruth: groundTruth, prediction: prediction)
    let report = try matrix.report()
    let table = report.table()
    #expect(table.contains("mIoU 32.50 % over 2 of 3 classes"))
    #expect(table.contains("40.00"))
    let csv = report.csv().split(separator: "\n")
    #expect(csv[0] == "id,name,evaluated,tp,fp,fn,iou,dice,accuracy")
    #expect(csv[1] == "0,\"a\",true,2,1,2,0.4,0.5714285714285714,0.5")
    #expect(csv[3] == "2,\"c\",false,0,0,0,,,")
    #expect(report.matrixCSV().split(separator: "\n")[1] == "a,2,1,0,0,1")
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(report.jsonText().utf8)) as? [String: Any])
    #expect(json["meanIoU"] as? Double == 0.325)
    let rows = try #require((json["confusionMatrix"] as? [String: Any])?["rows"] as? [[Int]])
    #expect(rows[0] == [2, 1, 0, 0, 1])
    #expect(report.matrixTable().contains("(void)"))
  }
}
