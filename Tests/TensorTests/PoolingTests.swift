import Testing
import Tensor
import TestSupport

/// A tensor of distinct values (a random permutation of a grid), so pooling has no ties.
func distinctTensor(_ shape: [Int], _ rng: inout SeededGenerator) -> Tensor {
  let count = shape.reduce(1, *)
  var values = (0..<count).map { Float($0) * 0.1 - Float(count) * 0.05 }
  values.shuffle(using: &rng)
  return Tensor(shape: shape, scalars: values)
}

@Test("max pool backward matches finite differences (no ties)",
      arguments: [(2, 2, [2, 6, 7, 3]), (3, 2, [1, 7, 9, 2]), (3, 3, [2, 7, 6, 2])])
func maxPoolGradient(size: Int, stride: Int, shape: [Int]) {
  var rng = SeededGenerator(seed: 21)
  let x = distinctTensor(shape, &rng)
  let forward = maxPool2dForward(x, size: size, stride: stride)
  let dy = randomTensor(forward.output.shape, &rng)
  let g = maxPool2dBackward(outputGradient: dy, argmax: forward.argmax, inputShape: shape)
  expectClose(
    g, numericalGradient(at: x, weights: dy, epsilon: 1e-2) {
      maxPool2dForward($0, size: size, stride: stride).output
    }, "max pool input")
  for (i, v) in forward.output.scalars.enumerated() {
    #expect(x.scalars[Int(forward.argmax[i])] == v)
  }
  // Added to a base (a skip gradient) in place: the same as adding the two afterwards, bit for
  // bit where windows do not overlap (one routed gradient per input at most).
  let base = randomTensor(shape, &rng)
  let added = maxPool2dBackward(
    outputGradient: dy, argmax: forward.argmax, inputShape: shape, adding: base)
  if stride >= size {
    #expect(added == add(g, base))
  } else {
    expectClose(added, add(g, base), "max pool gradient added to a base")
  }
}

@Test("average pool backward matches finite differences",
      arguments: [(2, 2, [2, 6, 7, 3]), (3, 2, [1, 7, 9, 2]), (2, 3, [1, 8, 5, 4])])
func avgPoolGradient(size: Int, stride: Int, shape: [Int]) {
  var rng = SeededGenerator(seed: 22)
  let x = randomTensor(shape, &rng)
  let y = avgPool2dForward(x, size: size, stride: stride)
  let dy = randomTensor(y.shape, &rng)
  let g = avgPool2dBackward(outputGradient: dy, inputShape: shape, size: size, stride: stride)
  expectClose(
    g, numericalGradient(at: x, weights: dy) { avgPool2dForward($0, size: size, stride: stride) },
    "average pool input")
}

@Test("global average pool forward and backward")
func globalAvgPoolGradient() {
  var rng = SeededGenerator(seed: 23)
  let x = randomTensor([3, 5, 7, 4], &rng)
  let y = globalAvgPoolForward(x)
  #expect(y.shape == [3, 1, 1, 4])
  var mean: Float = 0
  for p in 0..<35 { mean += x.scalars[(35 + p) * 4 + 2] }
  #expect(abs(y[1, 0, 0, 2] - mean / 35) < 1e-5)
  let dy = randomTensor(y.shape, &rng)
  expectClose(
    globalAvgPoolBackward(outputGradient: dy, inputShape: x.shape),
    numericalGradient(at: x, weights: dy) { globalAvgPoolForward($0) }, "global pool input")
}

@Test("inference max pooling equals the training forward's output")
func maxPoolInference() {
  var rng = SeededGenerator(seed: 16)
  let x = randomTensor([2, 9, 8, 5], &rng)
  for (size, stride) in [(2, 2), (3, 2), (2, 1)] {
    #expect(maxPool2d(x, size: size, stride: stride) == maxPool2dForward(x, size: size, stride: stride).output)
  }
}
