import Testing
import Tensor
import TestSupport

@Test("batch norm backward matches finite differences (input, scale, offset)",
      arguments: [[2, 3, 4, 3], [1, 5, 3, 2], [3, 1, 1, 4]])
func batchNormGradients(_ shape: [Int]) {
  var rng = SeededGenerator(seed: 3)
  let c = shape[3]
  let x = randomTensor(shape, &rng, scale: 2)
  let scale = randomTensor([c], &rng)
  let offset = randomTensor([c], &rng)
  let dy = randomTensor(shape, &rng)
  let forward = batchNormTrainingForward(x, scale: scale, offset: offset)
  let grads = batchNormBackward(
    outputGradient: dy, input: x, scale: scale, statistics: forward.statistics)
  let eps: Float = 3e-3
  expectClose(
    grads.input,
    numericalGradient(at: x, weights: dy, epsilon: eps) {
      batchNormTrainingForward($0, scale: scale, offset: offset).output
    }, relativeTolerance: 2e-2, absoluteTolerance: 2e-3, "input")
  expectClose(
    grads.scale,
    numericalGradient(at: scale, weights: dy, epsilon: eps) {
      batchNormTrainingForward(x, scale: $0, offset: offset).output
    }, absoluteTolerance: 2e-3, "scale")
  expectClose(
    grads.offset,
    numericalGradient(at: offset, weights: dy, epsilon: eps) {
      batchNormTrainingForward(x, scale: scale, offset: $0).output
    }, absoluteTolerance: 2e-3, "offset")
}

@Test("fused batch norm + ReLU equals batch norm then ReLU, forward and backward")
func batchNormReLUFused() {
  var rng = SeededGenerator(seed: 4)
  let x = randomTensor([2, 6, 5, 7], &rng)
  let scale = randomTensor([7], &rng)
  let offset = randomTensor([7], &rng)
  let dy = randomTensor(x.shape, &rng)
  let plain = batchNormTrainingForward(x, scale: scale, offset: offset)
  let relu = reluForward(plain.output)
  let fused = batchNormReLUTrainingForward(x, scale: scale, offset: offset)
  #expect(fused.output == relu)
  #expect(fused.statistics == plain.statistics)
  let reference = batchNormBackward(
    outputGradient: reluBackward(outputGradient: dy, output: relu), input: x, scale: scale,
    statistics: plain.statistics)
  let g = batchNormReLUBackward(
    outputGradient: dy, output: fused.output, input: x, scale: scale,
    statistics: fused.statistics)
  expectClose(g.input, reference.input, relativeTolerance: 1e-5, "input")
  expectClose(g.scale, reference.scale, relativeTolerance: 1e-5, "scale")
  expectClose(g.offset, reference.offset, relativeTolerance: 1e-5, "offset")
  let runningMean = randomTensor([7], &rng)
  let runningVariance = Tensor.randomUniform(shape: [7], lower: 0.5, upper: 2, using: &rng)
  #expect(
    batchNormReLUInferenceForward(
      x, scale: scale, offset: offset, runningMean: runningMean,
      runningVariance: runningVariance)
      == reluForward(
        batchNormInferenceForward(
          x, scale: scale, offset: offset, runningMean: runningMean,
          runningVariance: runningVariance)))
}

@Test("batch statistics and running statistics follow PyTorch (biased / unbiased variance)")
func batchNormStatistics() {
  var rng = SeededGenerator(seed: 5)
  let (n, h, w, c) = (2, 3, 5, 2)
  let x = randomTensor([n, h, w, c], &rng, scale: 3)
  let forward = batchNormTrainingForward(
    x, scale: Tensor(repeating: 1, shape: [c]), offset: Tensor.zeros([c]))
  let count = n * h * w
  var runningMean = Tensor(shape: [c], scalars: [0.5, -1])
  var runningVariance = Tensor(shape: [c], scalars: [2, 0.25])
  updateRunningStatistics(
    runningMean: &runningMean, runningVariance: &runningVariance,
    statistics: forward.statistics, count: count, momentum: 0.1)
  for j in 0..<c {
    var sum = 0.0
    for i in 0..<count { sum += Double(x.scalars[i * c + j]) }
    let mean = sum / Double(count)
    var squares = 0.0
    for i in 0..<count { squares += (Double(x.scalars[i * c + j]) - mean) * (Double(x.scalars[i * c + j]) - mean) }
    let biased = squares / Double(count)
    #expect(abs(Double(forward.statistics.mean.scalars[j]) - mean) < 1e-5)
    #expect(
      abs(Double(forward.statistics.inverseStandardDeviation.scalars[j]) - 1 / (biased + 1e-5).squareRoot())
        < 1e-5)
    let expectedMean = 0.9 * [0.5, -1][j] + 0.1 * mean
    let expectedVariance = 0.9 * [2, 0.25][j] + 0.1 * squares / Double(count - 1)
    #expect(abs(Double(runningMean.scalars[j]) - expectedMean) < 1e-5)
    #expect(abs(Double(runningVariance.scalars[j]) - expectedVariance) < 1e-4)
  }
  // The output is normalized: mean 0, biased variance 1 / (1 + eps / variance) per channel.
  for j in 0..<c {
    var sum: Float = 0
    for i in 0..<count { sum += forward.output.scalars[i * c + j] }
    #expect(abs(sum / Float(count)) < 1e-5)
  }
}
