import Testing
import Tensor
import TestSupport

@Test("relu forward and backward (inputs away from 0)")
func reluGradient() {
  var rng = SeededGenerator(seed: 9)
  var x = randomTensor([2, 3, 4, 5], &rng)
  // Keep every input at least 0.1 away from the kink.
  for i in x.scalars.indices where abs(x.scalars[i]) < 0.1 { x.scalars[i] += 0.2 }
  let y = reluForward(x)
  for (a, b) in zip(x.scalars, y.scalars) { #expect(b == max(0, a)) }
  let dy = randomTensor(x.shape, &rng)
  expectClose(
    reluBackward(outputGradient: dy, output: y),
    numericalGradient(at: x, weights: dy) { reluForward($0) }, "relu input")
}
