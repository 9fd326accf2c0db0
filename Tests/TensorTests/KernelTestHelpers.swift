import Testing
import Tensor
import TestSupport

/// Expects `actual` to be close to `expected` (see `Tensor.isClose`), reporting the max difference.
func expectClose(
  _ actual: Tensor, _ expected: Tensor, relativeTolerance: Float = 1e-2,
  absoluteTolerance: Float = 1e-4, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(actual.shape == expected.shape, "\(what): shape", sourceLocation: sourceLocation)
  guard actual.shape == expected.shape else { return }
  let difference = actual.maxAbsoluteDifference(to: expected)
  #expect(
    actual.isClose(
      to: expected, relativeTolerance: relativeTolerance, absoluteTolerance: absoluteTolerance),
    "\(what): max difference \(difference)", sourceLocation: sourceLocation)
}

/// Random normal tensor shorthand.
func randomTensor(_ shape: [Int], _ rng: inout SeededGenerator, scale: Float = 1) -> Tensor {
  Tensor.randomNormal(shape: shape, standardDeviation: scale, using: &rng)
}
