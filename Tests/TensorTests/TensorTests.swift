import Testing
import Tensor
import TestSupport

@Test func seededGeneratorIsReproducible() {
  var a = SeededGenerator(seed: 42)
  var b = SeededGenerator(seed: 42)
  let x = (0..<100).map { _ in a.next() }
  let y = (0..<100).map { _ in b.next() }
  #expect(x == y)
  var c = SeededGenerator(seed: 43)
  #expect((0..<100).map { _ in c.next() } != x)
}

@Test func normalSamplesHaveUnitVariance() {
  var g = SeededGenerator(seed: 1)
  let t = Tensor.randomNormal(shape: [20000], using: &g)
  let mean = t.scalars.reduce(0, +) / Float(t.count)
  let variance = t.scalars.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(t.count)
  #expect(abs(mean) < 0.03)
  #expect(abs(variance - 1) < 0.05)
}
