import Foundation
import TestSupport
import Testing

@testable import Tensor

struct DiceCase: Sendable, CustomStringConvertible {
  var pixels: Int
  var table: [Int?]
  var seed: UInt64
  var description: String { "\(pixels) pixels, table \(table)" }
}

@Test(
  "Dice + cross-entropy gradient matches finite differences in Double",
  arguments: [
    DiceCase(pixels: 1 * 3 * 5, table: [0, 1, 2], seed: 1),
    DiceCase(pixels: 2 * 4 * 3, table: [0, 1, 2, 3, 4], seed: 2),
    // A super level: fine 0 is background, fines 1 and 2 one organ, fine 3 in no class.
    DiceCase(pixels: 2 * 3 * 3, table: [0, 1, 1, nil], seed: 3),
    DiceCase(pixels: 1 * 5 * 5, table: [0, 2, 1, 1, 2], seed: 4),
  ])
func diceCrossEntropyGradient(_ c: DiceCase) {
  let classes = c.table.count
  let levels = (c.table.compactMap { $0 }.max() ?? 0) + 1
  let (logits, labels) = randomCase(
    pixels: c.pixels, classes: classes, labelRange: levels, seed: c.seed)
  let analytic = diceCrossEntropyCore(
    logits: logits, classes: classes, labels: labels, superClassOfFine: c.table)
  let numeric = finiteDifferences(logits) {
    diceCrossEntropyCore(logits: $0, classes: classes, labels: labels, superClassOfFine: c.table)
      .loss
  }
  let difference = zip(analytic.gradient, numeric).map { abs($0 - $1) }.max() ?? 0
  let scale = numeric.map(abs).max() ?? 1
  #expect(difference < 1e-7 * max(1, scale), "max difference \(difference)")
  // The Dice term adds to the cross-entropy: the loss is CE + 1 - mean Dice, Dice in [0, 1].
  let crossEntropy = reduceThenComputeCore(
    logits: logits, classes: classes, superLabels: labels, superClassOfFine: c.table
  ).loss
  #expect(analytic.loss > crossEntropy && analytic.loss < crossEntropy + 1)
  for (i, label) in labels.enumerated() where label == 255 {
    #expect(analytic.gradient[(i * classes)..<((i + 1) * classes)].allSatisfy { $0 == 0 })
  }
}

@Test("Dice + cross-entropy: a confident correct prediction costs almost nothing")
func diceCrossEntropyPerfect() {
  // Four pixels, classes background, a, b; logits 20 on the true class.
  let labels: [UInt8] = [0, 1, 2, 1]
  var logits = [Float](repeating: 0, count: 12)
  for (i, label) in labels.enumerated() { logits[i * 3 + Int(label)] = 20 }
  let result = diceCrossEntropyLoss(
    logits: Tensor(shape: [1, 2, 2, 3], scalars: logits), labels: labels,
    superClassOfFine: [0, 1, 2])
  #expect(result.loss < 1e-5, "loss \(result.loss)")
  // The same with b predicted as a: Dice of b is about 0, of a 2/3: the loss is about half.
  logits[8] = 0
  logits[7] = 20
  let wrong = diceCrossEntropyLoss(
    logits: Tensor(shape: [1, 2, 2, 3], scalars: logits), labels: labels,
    superClassOfFine: [0, 1, 2])
  #expect(abs(wrong.loss - (20.0 / 4 + 1 - (0.8 + 0) / 2)) < 1e-3, "loss \(wrong.loss)")
}

@Test("Dice + cross-entropy is zero with a zero gradient when every pixel is ignored")
func diceCrossEntropyAllIgnored() {
  let logits = Tensor(shape: [1, 1, 2, 3], scalars: [1, 2, 3, -1, 0, 1])
  let result = diceCrossEntropyLoss(
    logits: logits, labels: [255, 255], superClassOfFine: [0, 1, 2])
  #expect(result.loss == 0)
  #expect(result.logitsGradient.scalars.allSatisfy { $0 == 0 })
}

@Test("Dice + cross-entropy does not depend on the thread count")
func diceCrossEntropyThreads() {
  var rng = SeededGenerator(seed: 9)
  // More pixels than one chunk, so that several workers take part.
  let logits = Tensor.randomNormal(shape: [2, 64, 80, 3], standardDeviation: 2, using: &rng)
  let labels = (0..<(2 * 64 * 80)).map { _ in UInt8(rng.next() % 3) }
  let table: [Int?] = [0, 1, 2]
  let previous = BLASThreads.count
  BLASThreads.set(2)
  let wide = diceCrossEntropyLoss(logits: logits, labels: labels, superClassOfFine: table)
  BLASThreads.set(1)
  let narrow = diceCrossEntropyLoss(logits: logits, labels: labels, superClassOfFine: table)
  BLASThreads.set(previous)
  #expect(wide.loss == narrow.loss)
  #expect(wide.logitsGradient == narrow.logitsGradient)
}
