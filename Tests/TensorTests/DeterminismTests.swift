import Testing
import Tensor
import TestSupport

/// A small conv -> batch norm + ReLU -> pool -> resize -> concat -> dropout chain and its backward.
func miniStep(seed: UInt64) -> [Tensor] {
  var rng = SeededGenerator(seed: seed)
  let x = randomTensor([4, 24, 20, 8], &rng)
  let weight = randomTensor([3, 3, 8, 16], &rng, scale: 0.2)
  let scale = Tensor(repeating: 1, shape: [16])
  let offset = Tensor.zeros([16])
  let conv = conv2dForward(x, weight: weight, bias: nil, padding: 1)
  let bn = batchNormReLUTrainingForward(conv, scale: scale, offset: offset)
  let pooled = maxPool2dForward(bn.output, size: 2, stride: 2)
  let up = resizeBilinearForward(pooled.output, height: 24, width: 20)
  let joined = concatChannels([up, bn.output])
  let dropped = dropoutForward(joined, probability: 0.2, using: &rng)
  let dy = randomTensor(joined.shape, &rng)
  let dJoined = dropoutBackward(outputGradient: dy, mask: dropped.mask)
  let parts = splitChannels(dJoined, sizes: [16, 16])
  let dPooled = resizeBilinearBackward(outputGradient: parts[0], inputHeight: 12, inputWidth: 10)
  let dBN = add(
    parts[1],
    maxPool2dBackward(outputGradient: dPooled, argmax: pooled.argmax, inputShape: bn.output.shape))
  let gBN = batchNormReLUBackward(
    outputGradient: dBN, output: bn.output, input: conv, scale: scale, statistics: bn.statistics)
  let gConv = conv2dBackward(
    outputGradient: gBN.input, input: x, weight: weight, hasBias: false, padding: 1)
  return [dropped.output, gBN.scale, gConv.input, gConv.weight]
}

@Test("the same seed and thread count give bit-identical results")
func determinism() {
  let a = miniStep(seed: 77)
  let b = miniStep(seed: 77)
  #expect(a == b)
  #expect(miniStep(seed: 78) != a)
}

@Test("kernel results do not depend on the thread count (1 vs 2)")
func threadCountIndependence() {
  let previous = BLASThreads.count
  BLASThreads.set(2)
  let two = miniStep(seed: 91)
  BLASThreads.set(1)
  let one = miniStep(seed: 91)
  BLASThreads.set(previous)
  #expect(one == two)
}
