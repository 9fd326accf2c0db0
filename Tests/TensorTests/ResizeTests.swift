import Testing
import Tensor
import TestSupport

@Test("bilinear resize backward matches finite differences",
      arguments: [([1, 3, 4, 2], 6, 8), ([2, 6, 8, 2], 3, 4), ([1, 5, 7, 3], 7, 4),
                  ([1, 4, 6, 2], 9, 13), ([2, 7, 5, 1], 3, 11)])
func resizeGradient(shape: [Int], height: Int, width: Int) {
  var rng = SeededGenerator(seed: 31)
  let x = randomTensor(shape, &rng)
  let y = resizeBilinearForward(x, height: height, width: width)
  #expect(y.shape == [shape[0], height, width, shape[3]])
  let dy = randomTensor(y.shape, &rng)
  let g = resizeBilinearBackward(
    outputGradient: dy, inputHeight: shape[1], inputWidth: shape[2])
  expectClose(
    g, numericalGradient(at: x, weights: dy) {
      resizeBilinearForward($0, height: height, width: width)
    }, "resize input")
}

@Test("resizing to the same size is the identity; a constant image stays constant")
func resizeInvariants() {
  var rng = SeededGenerator(seed: 32)
  let x = randomTensor([2, 5, 6, 3], &rng)
  #expect(resizeBilinearForward(x, height: 5, width: 6) == x)
  let constant = Tensor(repeating: 0.75, shape: [1, 4, 5, 2])
  let y = resizeBilinearForward(constant, height: 11, width: 3)
  #expect(y.scalars.allSatisfy { abs($0 - 0.75) < 1e-6 })
}
