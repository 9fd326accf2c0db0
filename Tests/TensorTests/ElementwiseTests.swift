#if canImport(Glibc)
  import Glibc
#endif
import Testing
import Tensor
import TestSupport

@Test("concat and split are inverse; their gradients match finite differences")
func concatSplit() {
  var rng = SeededGenerator(seed: 41)
  let a = randomTensor([2, 3, 4, 2], &rng)
  let b = randomTensor([2, 3, 4, 5], &rng)
  let c = randomTensor([2, 3, 4, 1], &rng)
  let joined = concatChannels([a, b, c])
  #expect(joined.shape == [2, 3, 4, 8])
  #expect(joined[1, 2, 3, 2] == b[1, 2, 3, 0])
  #expect(joined[0, 1, 2, 7] == c[0, 1, 2, 0])
  #expect(splitChannels(joined, sizes: [2, 5, 1]) == [a, b, c])
  // d/da sum(dy * concat(a, b, c)) = split(dy)[0], and likewise for b.
  let dy = randomTensor(joined.shape, &rng)
  let parts = splitChannels(dy, sizes: [2, 5, 1])
  expectClose(parts[0], numericalGradient(at: a, weights: dy) { concatChannels([$0, b, c]) }, "a")
  expectClose(parts[1], numericalGradient(at: b, weights: dy) { concatChannels([a, $0, c]) }, "b")
  // And concat is the gradient of split.
  let da = randomTensor(a.shape, &rng)
  let db = randomTensor(b.shape, &rng)
  let dc = randomTensor(c.shape, &rng)
  let weights = concatChannels([da, db, dc])
  let numeric = numericalGradient(at: joined, weights: weights) {
    concatChannels(splitChannels($0, sizes: [2, 5, 1]))
  }
  expectClose(concatChannels([da, db, dc]), numeric, "split")
}

@Test("add sums element-wise")
func addition() {
  var rng = SeededGenerator(seed: 42)
  let a = randomTensor([3, 70000], &rng)
  let b = randomTensor([3, 70000], &rng)
  let s = add(a, b)
  #expect(s.shape == a.shape)
  #expect(zip(s.scalars, zip(a.scalars, b.scalars)).allSatisfy { $0 == $1.0 + $1.1 })
}

@Test("dropout: inverted scaling, keep rate, and gradient with a fixed mask")
func dropout() {
  var rng = SeededGenerator(seed: 43)
  let x = randomTensor([4, 50, 50, 8], &rng)
  var g1 = SeededGenerator(seed: 1)
  let (y, mask) = dropoutForward(x, probability: 0.3, using: &g1)
  let keep = Float(1) / 0.7
  #expect(mask.scalars.allSatisfy { $0 == 0 || $0 == keep })
  let kept = Float(mask.scalars.filter { $0 > 0 }.count) / Float(mask.count)
  #expect(abs(kept - 0.7) < 0.01)
  #expect(zip(y.scalars, zip(x.scalars, mask.scalars)).allSatisfy { $0 == $1.0 * $1.1 })
  // Same seed, same mask.
  var g2 = SeededGenerator(seed: 1)
  #expect(dropoutForward(x, probability: 0.3, using: &g2).mask == mask)
  #expect(g1 == g2)
  // Gradient with the mask held fixed: f(x) = x * mask.
  let small = randomTensor([2, 3, 3, 2], &rng)
  var g3 = SeededGenerator(seed: 2)
  let fixed = dropoutForward(small, probability: 0.5, using: &g3).mask
  let dy = randomTensor(small.shape, &rng)
  let numeric = numericalGradient(at: small, weights: dy) { t in
    Tensor(shape: t.shape, scalars: zip(t.scalars, fixed.scalars).map { $0 * $1 })
  }
  expectClose(dropoutBackward(outputGradient: dy, mask: fixed), numeric, "dropout input")
  var g4 = SeededGenerator(seed: 2)
  #expect(dropoutForward(small, probability: 0, using: &g4).output == small)
}

@Test("softmax over channels sums to 1 and matches a direct computation")
func softmax() {
  var rng = SeededGenerator(seed: 44)
  let logits = randomTensor([2, 3, 5, 7], &rng, scale: 10)
  let p = softmaxChannels(logits)
  for pixel in 0..<30 {
    let row = Array(logits.scalars[(pixel * 7)..<(pixel * 7 + 7)]).map { Double($0) }
    let m = row.max() ?? 0
    let e = row.map { exp($0 - m) }
    let s = e.reduce(0, +)
    for j in 0..<7 {
      #expect(abs(Double(p.scalars[pixel * 7 + j]) - e[j] / s) < 1e-6)
    }
  }
}
