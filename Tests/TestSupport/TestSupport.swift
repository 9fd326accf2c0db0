import Tensor

/// Central finite differences of `L(x) = sum(weights * f(x))` with respect to every scalar of
/// `point`, computed in `Double` from `Float` evaluations with step `epsilon`.
public func numericalGradient(
  at point: Tensor, weights: Tensor, epsilon: Float = 1e-2, _ f: (Tensor) -> Tensor
) -> Tensor {
  var gradient = Tensor(repeating: 0, shape: point.shape)
  var x = point
  func loss(_ t: Tensor) -> Double {
    let y = f(t)
    precondition(y.shape == weights.shape, "weights \(weights.shape) vs output \(y.shape)")
    var s = 0.0
    for i in y.scalars.indices { s += Double(y.scalars[i]) * Double(weights.scalars[i]) }
    return s
  }
  for i in point.scalars.indices {
    let original = x.scalars[i]
    x.scalars[i] = original + epsilon
    let plus = loss(x)
    x.scalars[i] = original - epsilon
    let minus = loss(x)
    x.scalars[i] = original
    gradient.scalars[i] = Float((plus - minus) / (2 * Double(epsilon)))
  }
  return gradient
}

extension Tensor {
  /// Whether every scalar is within `absoluteTolerance + relativeTolerance * scale` of `other`,
  /// where `scale` is the largest magnitude in either tensor (a purely relative test fails near 0).
  public func isClose(
    to other: Tensor, relativeTolerance: Float = 1e-3, absoluteTolerance: Float = 1e-5
  ) -> Bool {
    guard shape == other.shape else { return false }
    var scale: Float = 0
    for v in scalars { scale = max(scale, abs(v)) }
    for v in other.scalars { scale = max(scale, abs(v)) }
    let tolerance = absoluteTolerance + relativeTolerance * scale
    return maxAbsoluteDifference(to: other) <= tolerance
  }
}
