import Foundation
import TestSupport
import Testing

@testable import Tensor

/// Central differences of a scalar function of `Double` logits (the loss tests share it).
func finiteDifferences(
  _ logits: [Double], epsilon: Double = 1e-6, _ loss: ([Double]) -> Double
) -> [Double] {
  var x = logits
  var gradient = [Double](repeating: 0, count: logits.count)
  for i in x.indices {
    let original = x[i]
    x[i] = original + epsilon
    let plus = loss(x)
    x[i] = original - epsilon
    let minus = loss(x)
    x[i] = original
    gradient[i] = (plus - minus) / (2 * epsilon)
  }
  return gradient
}

private func maxDifference(_ a: [Double], _ b: [Double]) -> Double {
  zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Random logits and labels with about a fifth of the pixels ignored (the loss tests share it).
func randomCase(pixels: Int, classes: Int, labelRange: Int, seed: UInt64)
  -> (logits: [Double], labels: [UInt8])
{
  var rng = SeededGenerator(seed: seed)
  let logits = (0..<(pixels * classes)).map { _ in Double(2 * rng.nextNormal()) }
  let labels = (0..<pixels).map { _ -> UInt8 in
    rng.nextUniform() < 0.2 ? 255 : UInt8(Int(rng.next() % UInt64(labelRange)))
  }
  return (logits, labels)
}

@Test(
  "cross-entropy gradient matches finite differences in Double",
  arguments: [
    (pixels: 1 * 3 * 5, classes: 3, weighted: false),
    (pixels: 2 * 5 * 3, classes: 7, weighted: false),
    (pixels: 1 * 3 * 7, classes: 5, weighted: true),
  ])
func crossEntropyGradient(pixels: Int, classes: Int, weighted: Bool) {
  let (logits, labels) = randomCase(pixels: pixels, classes: classes, labelRange: classes, seed: 11)
  let weights: [Float]? = weighted ? (0..<classes).map { Float($0 % 3) * 0.75 + 0.25 } : nil
  let analytic = softmaxCrossEntropyCore(
    logits: logits, classes: classes, labels: labels, classWeights: weights)
  let numeric = finiteDifferences(logits) {
    softmaxCrossEntropyCore(logits: $0, classes: classes, labels: labels, classWeights: weights)
      .loss
  }
  let difference = maxDifference(analytic.gradient, numeric)
  #expect(difference < 1e-8, "max difference \(difference)")
  // Ignored pixels get no gradient.
  for (i, label) in labels.enumerated() where label == 255 {
    #expect(analytic.gradient[(i * classes)..<((i + 1) * classes)].allSatisfy { $0 == 0 })
  }
}

@Test(
  "reduce-then-compute gradient matches finite differences in Double, with nil fine classes",
  arguments: [[0, 0, 1, nil, 2, 1, 0] as [Int?], [1, nil, 0, 1, 1], [0, 1, 2]])
func reduceGradient(superClassOfFine: [Int?]) {
  let superClasses = (superClassOfFine.compactMap { $0 }.max() ?? 0) + 1
  let classes = superClassOfFine.count
  let (logits, labels) = randomCase(
    pixels: 3 * 5, classes: classes, labelRange: superClasses, seed: 5)
  let analytic = reduceThenComputeCore(
    logits: logits, classes: classes, superLabels: labels, superClassOfFine: superClassOfFine)
  let numeric = finiteDifferences(logits) {
    reduceThenComputeCore(
      logits: $0, classes: classes, superLabels: labels, superClassOfFine: superClassOfFine
    ).loss
  }
  let difference = maxDifference(analytic.gradient, numeric)
  #expect(difference < 1e-8, "max difference \(difference)")
  #expect(analytic.loss > 0)
}

/// One case of Fixtures/losses.json (written by scripts/make_loss_fixtures.py).
private struct LossFixture: Decodable {
  var kind: String
  var shape: [Int]
  var logits: [Float]
  var labels: [UInt8]
  var class_weights: [Float]?
  var super_class_of_fine: [Int?]?
  var loss: Double
  var gradient: [Float]
}

@Test("loss values and gradients match the numpy reference fixtures")
func lossesMatchNumpy() throws {
  let url = try #require(Bundle.module.url(forResource: "Fixtures/Losses/losses", withExtension: "json"))
  let cases = try JSONDecoder().decode([LossFixture].self, from: Data(contentsOf: url))
  #expect(cases.count == 4)
  for fixture in cases {
    let logits = Tensor(shape: fixture.shape, scalars: fixture.logits)
    let result: (loss: Float, logitsGradient: Tensor)
    switch fixture.kind {
    case "cross_entropy":
      result = softmaxCrossEntropy(
        logits: logits, labels: fixture.labels, classWeights: fixture.class_weights)
    default:
      let mapping = try #require(fixture.super_class_of_fine)
      result = reduceThenComputeLoss(
        logits: logits, superLabels: fixture.labels, superClassOfFine: mapping)
    }
    let lossError = abs(Double(result.loss) - fixture.loss)
    let gradientError = result.logitsGradient.maxAbsoluteDifference(
      to: Tensor(shape: fixture.shape, scalars: fixture.gradient))
    #expect(lossError < 1e-5 * max(1, fixture.loss), "\(fixture.kind): loss off by \(lossError)")
    #expect(gradientError < 1e-6, "\(fixture.kind): gradient off by \(gradientError)")
  }
}

@Test("the reduce loss with the identity mapping equals plain cross-entropy")
func reduceWithIdentityIsCrossEntropy() {
  var rng = SeededGenerator(seed: 3)
  let logits = Tensor.randomNormal(shape: [2, 3, 5, 6], standardDeviation: 3, using: &rng)
  let labels = (0..<30).map { i -> UInt8 in i % 7 == 0 ? 255 : UInt8(rng.next() % 6) }
  let plain = softmaxCrossEntropy(logits: logits, labels: labels)
  let reduced = reduceThenComputeLoss(
    logits: logits, superLabels: labels, superClassOfFine: Array(0..<6))
  #expect(abs(plain.loss - reduced.loss) < 1e-5)
  #expect(plain.logitsGradient.isClose(to: reduced.logitsGradient, relativeTolerance: 1e-5))
}

@Test("losses stay finite for huge logits and are zero when every pixel is ignored")
func lossEdgeCases() {
  let logits = Tensor(shape: [1, 1, 2, 3], scalars: [1000, -1000, 0, -500, 800, 799])
  let ce = softmaxCrossEntropy(logits: logits, labels: [1, 2])
  #expect(ce.loss.isFinite && ce.loss > 1000)
  #expect(ce.logitsGradient.scalars.allSatisfy { $0.isFinite })
  // Target masses e^-2000 and e^-1300 relative to the maxima: the loss is still exact (scipy).
  let reduced = reduceThenComputeLoss(
    logits: logits, superLabels: [1, 0], superClassOfFine: [0, 1, nil])
  #expect(reduced.loss.isFinite && abs(reduced.loss - 1650.1566) < 0.01)
  #expect(reduced.logitsGradient.scalars.allSatisfy { $0.isFinite })
  let none = softmaxCrossEntropy(logits: logits, labels: [255, 255])
  #expect(none.loss == 0 && none.logitsGradient.scalars.allSatisfy { $0 == 0 })
  let zeroWeight = softmaxCrossEntropy(logits: logits, labels: [0, 0], classWeights: [0, 1, 1])
  #expect(zeroWeight.loss == 0)
}
