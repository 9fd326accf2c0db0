import Tensor
import TestSupport
import Testing

@testable import Segmentation

/// `L = sum(w * y)` of a ConvBNReLU unit in training mode on two input parts.
private func unitLoss(_ unit: ConvBNReLU, _ parts: [Tensor], _ w: Tensor) -> Double {
  var copy = unit
  let y = copy.trainingForward(concatenating: parts).output
  return zip(y.scalars, w.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

@Test(
  "fused conv + batch norm + ReLU on concatenated inputs matches finite differences",
  arguments: [1, 2])
func fusedUnitGradients(stride: Int) throws {
  var rng = SeededGenerator(seed: 21)
  var unit = ConvBNReLU(inputChannels: 8, outputChannels: 6, stride: stride, using: &rng)
  // Offsets well above 0 keep the ReLU open almost everywhere: no kinks in the differences.
  unit.norm.offset = Tensor(repeating: 4, shape: [6])
  unit.norm.scale = Tensor.randomUniform(shape: [6], lower: 0.5, upper: 1.5, using: &rng)
  let parts = [
    Tensor.randomNormal(shape: [2, 5, 6, 5], using: &rng),
    Tensor.randomNormal(shape: [2, 5, 6, 3], using: &rng),
  ]
  var forward = unit
  let (y, cache) = forward.trainingForward(concatenating: parts)
  let w = Tensor.randomNormal(shape: y.shape, using: &rng)
  var gradients: [String: Tensor] = [:]
  let inputGradients = try #require(
    unit.backwardParts(outputGradient: w, cache: cache, prefix: "u", into: &gradients))
  for (i, part) in parts.enumerated() {
    let numeric = numericalGradient(at: part, weights: w, epsilon: 2e-3) { p in
      var copy = unit
      var changed = parts
      changed[i] = p
      return copy.trainingForward(concatenating: changed).output
    }
    #expect(
      inputGradients[i].isClose(to: numeric, relativeTolerance: 2e-2, absoluteTolerance: 2e-3),
      "input part \(i): max difference \(inputGradients[i].maxAbsoluteDifference(to: numeric))")
  }
  func check(_ name: String, _ value: Tensor, _ set: (inout ConvBNReLU, Tensor) -> Void) throws {
    let analytic = try #require(gradients["u." + name])
    var numeric = Tensor.zeros(value.shape)
    for i in 0..<value.count {
      var plus = value
      plus.scalars[i] += 2e-3
      var minus = value
      minus.scalars[i] -= 2e-3
      var a = unit
      set(&a, plus)
      var b = unit
      set(&b, minus)
      numeric.scalars[i] = Float((unitLoss(a, parts, w) - unitLoss(b, parts, w)) / 4e-3)
    }
    #expect(
      analytic.isClose(to: numeric, relativeTolerance: 2e-2, absoluteTolerance: 2e-3),
      "\(name): max difference \(analytic.maxAbsoluteDifference(to: numeric))")
  }
  try check("conv.weight", unit.conv.weight) { $0.conv.weight = $1 }
  try check("norm.scale", unit.norm.scale) { $0.norm.scale = $1 }
  try check("norm.offset", unit.norm.offset) { $0.norm.offset = $1 }
}

@Test("inference folds the batch norm into the convolution: same as convolution, then batch norm")
func foldedInference() {
  var rng = SeededGenerator(seed: 22)
  var unit = ConvBNReLU(inputChannels: 7, outputChannels: 20, using: &rng)
  unit.norm.runningMean = Tensor.randomNormal(shape: [20], using: &rng)
  unit.norm.runningVariance = Tensor.randomUniform(shape: [20], lower: 0.3, upper: 3, using: &rng)
  unit.norm.scale = Tensor.randomNormal(shape: [20], using: &rng)
  unit.norm.offset = Tensor.randomNormal(shape: [20], using: &rng)
  let parts = [
    Tensor.randomNormal(shape: [2, 6, 9, 4], using: &rng),
    Tensor.randomNormal(shape: [2, 6, 9, 3], using: &rng),
  ]
  let reference = batchNormReLUInferenceForward(
    unit.conv(concatChannels(parts)), scale: unit.norm.scale, offset: unit.norm.offset,
    runningMean: unit.norm.runningMean, runningVariance: unit.norm.runningVariance)
  let folded = unit(concatenating: parts)
  #expect(
    folded.isClose(to: reference, relativeTolerance: 1e-5),
    "max difference \(folded.maxAbsoluteDifference(to: reference))")
}
