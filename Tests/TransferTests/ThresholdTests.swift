import Segmentation
import Tensor
import Testing
@testable import Transfer

@Test("confidence threshold keeps pixels at or above the threshold")
func confidenceThreshold() {
  let labels = applyConfidenceThreshold(
    classes: [0, 1, 2, 1], confidences: [0.9, 0.5, 0.49, .nan], threshold: 0.5, ignoreIndex: 255)
  #expect(labels == [0, 1, 255, 255])
}

@Test("keep counts: max(1, ceil(p * n)) without floating-point surprises")
func keepCounts() {
  #expect(classBalancedKeepCount(portion: 0.3, count: 10) == 3)
  #expect(classBalancedKeepCount(portion: 0.5, count: 5) == 3)
  #expect(classBalancedKeepCount(portion: 0.01, count: 5) == 1)
  #expect(classBalancedKeepCount(portion: 1, count: 7) == 7)
  #expect(classBalancedKeepCount(portion: 0.5, count: 0) == 0)
}

@Test("class-balanced thresholds keep the top portion of every class")
func classBalancedExact() throws {
  // Class 0: 4 pixels, class 1: 2 pixels, class 2: none, one ignored pixel.
  let classes: [UInt8] = [0, 0, 0, 0, 1, 1, 255]
  let confidences: [Float] = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.99]
  let cbst = try ClassBalancedThresholds(
    classes: classes, confidences: confidences, classCount: 3, portion: 0.5, ignoreIndex: 255)
  #expect(cbst.thresholds == [0.8, 0.3, nil])
  #expect(
    cbst.apply(classes: classes, confidences: confidences, ignoreIndex: 255)
      == [0, 0, 255, 255, 1, 255, 255])
  // A rare, unconfident class keeps its best pixel where a global threshold would drop it all.
  let global = applyConfidenceThreshold(
    classes: classes, confidences: confidences, threshold: 0.6, ignoreIndex: 255)
  #expect(!global.contains(1))
  #expect(throws: TransferError.invalidThreshold(name: "classBalancedPortion", value: 0)) {
    try ClassBalancedThresholds(
      classes: [0], confidences: [1], classCount: 1, portion: 0, ignoreIndex: 255)
  }
  #expect(throws: TransferError.invalidThreshold(name: "class id", value: 3)) {
    try ClassBalancedThresholds(
      classes: [3], confidences: [1], classCount: 3, portion: 0.5, ignoreIndex: 255)
  }
}

@Test("random data: exact CBST keeps k_c per class; the filters apply it over all units")
func classBalancedRandom() throws {
  var rng = SeededGenerator(seed: 4)
  let n = 5000
  let classCount = 5
  let classes = (0..<n).map { _ in UInt8(rng.next() % UInt64(classCount)) }
  let confidences = (0..<n).map { _ in rng.nextUniform() }
  for portion in [0.1, 0.35, 1.0] {
    let exact = try ClassBalancedThresholds(
      classes: classes, confidences: confidences, classCount: classCount, portion: portion,
      ignoreIndex: 255)
    let kept = exact.apply(classes: classes, confidences: confidences, ignoreIndex: 255)
    for c in 0..<classCount {
      let total = classes.filter { $0 == c }.count
      let k = classBalancedKeepCount(portion: portion, count: total)
      #expect(kept.filter { $0 == c }.count == k)  // no ties in random floats
    }
    // Ten "images": the thresholds are over all of them, not per image.
    let units = stride(from: 0, to: n, by: 500).map {
      ClassDecisions(
        labels: Array(classes[$0..<($0 + 500)]), confidences: Array(confidences[$0..<($0 + 500)]))
    }
    let filters = PseudoLabelFilters(classBalancedPortion: portion, ignoreIndex: 250)
    let filtered = try filters.apply(units, classCount: classCount).flatMap { $0 }
    #expect(filtered == kept.map { $0 == 255 ? 250 : $0 })
  }
}
