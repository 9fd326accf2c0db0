import Testing
import Tensor
import TestSupport

/// One convolution configuration for the gradient tests.
struct ConvCase: Sendable, CustomTestStringConvertible {
  var n = 1, c = 2, h = 5, w = 5, k = 3
  var r = 3, s = 3
  var stride = 1, padding = 0, dilation = 1
  var testDescription: String {
    "n\(n) c\(c) \(h)x\(w) k\(k) kernel \(r)x\(s) stride \(stride) pad \(padding) dil \(dilation)"
  }
}

let convCases: [ConvCase] = [
  ConvCase(n: 1, c: 2, h: 5, w: 5, k: 3, stride: 1, padding: 1),
  ConvCase(n: 2, c: 3, h: 7, w: 6, k: 2, stride: 2, padding: 0),
  ConvCase(n: 2, c: 2, h: 7, w: 5, k: 3, stride: 1, padding: 2, dilation: 2),
  ConvCase(n: 1, c: 3, h: 9, w: 8, k: 2, stride: 2, padding: 1, dilation: 2),
  ConvCase(n: 3, c: 2, h: 5, w: 6, k: 2, stride: 1, padding: 0),
  ConvCase(n: 2, c: 4, h: 3, w: 5, k: 3, r: 1, s: 1),
  ConvCase(n: 1, c: 3, h: 5, w: 7, k: 2, r: 1, s: 1, stride: 2, padding: 1),
  ConvCase(n: 2, c: 2, h: 6, w: 5, k: 2, r: 3, s: 1, stride: 1, padding: 2),
  // Vector-kernel shapes: several channel blocks, a partial last vector, tile remainders.
  ConvCase(n: 2, c: 5, h: 4, w: 27, k: 37, stride: 1, padding: 1),
  ConvCase(n: 1, c: 3, h: 5, w: 19, k: 70, r: 1, s: 1),
  // Winograd F(2x2, 3x3) (enough channels in and out), odd sizes: partial tiles.
  ConvCase(n: 1, c: 32, h: 3, w: 5, k: 33, stride: 1, padding: 1),
]

/// The instruction sets this CPU can run: every test runs each of them.
let supportedISAs = KernelISA.allCases.filter(\.isSupported)

/// Direct-loop convolution in `Double` (independent of im2col), NHWC / [r, s, c, k].
func directConv(
  _ x: Tensor, _ weight: Tensor, _ bias: Tensor?, stride: Int, padding: Int, dilation: Int
) -> Tensor {
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (r, s, k) = (weight.shape[0], weight.shape[1], weight.shape[3])
  let oh = (h + 2 * padding - dilation * (r - 1) - 1) / stride + 1
  let ow = (w + 2 * padding - dilation * (s - 1) - 1) / stride + 1
  var out = Tensor.zeros([n, oh, ow, k])
  var acc = [Double](repeating: 0, count: k)
  for b in 0..<n {
    for oy in 0..<oh {
      for ox in 0..<ow {
        for j in 0..<k { acc[j] = Double(bias?.scalars[j] ?? 0) }
        for ky in 0..<r {
          let iy = oy * stride - padding + ky * dilation
          guard iy >= 0 && iy < h else { continue }
          for kx in 0..<s {
            let ix = ox * stride - padding + kx * dilation
            guard ix >= 0 && ix < w else { continue }
            for ci in 0..<c {
              let v = Double(x.scalars[((b * h + iy) * w + ix) * c + ci])
              let wo = ((ky * s + kx) * c + ci) * k
              for j in 0..<k { acc[j] += v * Double(weight.scalars[wo + j]) }
            }
          }
        }
        for j in 0..<k { out.scalars[((b * oh + oy) * ow + ox) * k + j] = Float(acc[j]) }
      }
    }
  }
  return out
}

@Test(
  "conv2d backward matches finite differences (input, weight, bias)",
  arguments: convCases, supportedISAs)
func conv2dGradients(_ cc: ConvCase, isa: KernelISA) {
  var rng = SeededGenerator(seed: 7)
  let x = randomTensor([cc.n, cc.h, cc.w, cc.c], &rng)
  let weight = randomTensor([cc.r, cc.s, cc.c, cc.k], &rng, scale: 0.5)
  let bias = randomTensor([cc.k], &rng)
  let y = conv2dForward(
    x, weight: weight, bias: bias, stride: cc.stride, padding: cc.padding, dilation: cc.dilation,
    isa: isa)
  let reference = directConv(
    x, weight, bias, stride: cc.stride, padding: cc.padding, dilation: cc.dilation)
  expectClose(y, reference, relativeTolerance: 1e-5, "forward vs direct loops")
  let dy = randomTensor(y.shape, &rng)
  let grads = conv2dBackward(
    outputGradient: dy, input: x, weight: weight, hasBias: true, stride: cc.stride,
    padding: cc.padding, dilation: cc.dilation, isa: isa)
  func forward(_ x: Tensor, _ weight: Tensor, _ bias: Tensor) -> Tensor {
    conv2dForward(
      x, weight: weight, bias: bias, stride: cc.stride, padding: cc.padding,
      dilation: cc.dilation, isa: isa)
  }
  expectClose(
    grads.input, numericalGradient(at: x, weights: dy) { forward($0, weight, bias) }, "input")
  expectClose(
    grads.weight, numericalGradient(at: weight, weights: dy) { forward(x, $0, bias) }, "weight")
  #expect(grads.bias != nil)
  if let biasGradient = grads.bias {
    expectClose(
      biasGradient, numericalGradient(at: bias, weights: dy) { forward(x, weight, $0) }, "bias")
  }
  // Without the input gradient, the weight gradient is unchanged.
  let firstLayer = conv2dBackward(
    outputGradient: dy, input: x, weight: weight, hasBias: false, stride: cc.stride,
    padding: cc.padding, dilation: cc.dilation, computeInputGradient: false, isa: isa)
  #expect(firstLayer.input.shape == [0])
  #expect(firstLayer.bias == nil)
  #expect(firstLayer.weight == grads.weight)
}

/// Direct-loop gradients in `Double`: dX and dW of `sum(dy * conv(x, W))`.
func directConvBackward(
  _ dy: Tensor, _ x: Tensor, _ weight: Tensor, stride: Int, padding: Int, dilation: Int
) -> (input: Tensor, weight: Tensor) {
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (r, s, k) = (weight.shape[0], weight.shape[1], weight.shape[3])
  let (oh, ow) = (dy.shape[1], dy.shape[2])
  var dx = [Double](repeating: 0, count: x.count)
  var dw = [Double](repeating: 0, count: weight.count)
  for b in 0..<n {
    for oy in 0..<oh {
      for ox in 0..<ow {
        let go = ((b * oh + oy) * ow + ox) * k
        for ky in 0..<r {
          let iy = oy * stride - padding + ky * dilation
          guard iy >= 0 && iy < h else { continue }
          for kx in 0..<s {
            let ix = ox * stride - padding + kx * dilation
            guard ix >= 0 && ix < w else { continue }
            for ci in 0..<c {
              let xi = ((b * h + iy) * w + ix) * c + ci
              let wo = ((ky * s + kx) * c + ci) * k
              for j in 0..<k {
                let g = Double(dy.scalars[go + j])
                dx[xi] += g * Double(weight.scalars[wo + j])
                dw[wo + j] += g * Double(x.scalars[xi])
              }
            }
          }
        }
      }
    }
  }
  return (
    Tensor(shape: x.shape, scalars: dx.map { Float($0) }),
    Tensor(shape: weight.shape, scalars: dw.map { Float($0) })
  )
}

@Test(
  "conv2d on a shape with several im2col chunks per image matches direct loops",
  arguments: [(1, 1, 1), (2, 1, 1), (1, 2, 2)], supportedISAs)
func conv2dMultiChunk(geometry: (stride: Int, padding: Int, dilation: Int), isa: KernelISA) {
  let (stride, padding, dilation) = geometry
  var rng = SeededGenerator(seed: 11)
  // patch = 3 * 3 * 96 = 864 columns: 296 rows per forward chunk, 600 per backward chunk.
  let x = randomTensor([3, 26, 29, 96], &rng)
  let weight = randomTensor([3, 3, 96, 5], &rng, scale: 0.1)
  let bias = randomTensor([5], &rng)
  let y = conv2dForward(
    x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, isa: isa)
  let reference = directConv(x, weight, bias, stride: stride, padding: padding, dilation: dilation)
  expectClose(y, reference, relativeTolerance: 1e-5, "forward")
  let dy = randomTensor(y.shape, &rng)
  let grads = conv2dBackward(
    outputGradient: dy, input: x, weight: weight, hasBias: true, stride: stride,
    padding: padding, dilation: dilation, isa: isa)
  let direct = directConvBackward(
    dy, x, weight, stride: stride, padding: padding, dilation: dilation)
  expectClose(grads.input, direct.input, relativeTolerance: 1e-5, "input gradient")
  expectClose(grads.weight, direct.weight, relativeTolerance: 1e-5, "weight gradient")
  var biasSum = [Float](repeating: 0, count: 5)
  for (i, v) in dy.scalars.enumerated() { biasSum[i % 5] += v }
  if let b = grads.bias {
    expectClose(b, Tensor(shape: [5], scalars: biasSum), relativeTolerance: 1e-5, "bias gradient")
  }
}

@Test("matmul matches a direct product")
func matmulDirect() {
  var rng = SeededGenerator(seed: 12)
  let a = randomTensor([5, 7], &rng)
  let b = randomTensor([7, 3], &rng)
  var expected = Tensor.zeros([5, 3])
  for i in 0..<5 {
    for j in 0..<3 {
      var s = 0.0
      for t in 0..<7 { s += Double(a[i, t]) * Double(b[t, j]) }
      expected[i, j] = Float(s)
    }
  }
  expectClose(matmul(a, b), expected, relativeTolerance: 1e-5, "matmul")
}

@Test(
  "a convolution of concatenated parts equals the convolution of their concatenation",
  arguments: supportedISAs)
func conv2dConcatenatedParts(isa: KernelISA) {
  var rng = SeededGenerator(seed: 13)
  let parts = [randomTensor([2, 7, 9, 5], &rng), randomTensor([2, 7, 9, 11], &rng)]
  let whole = concatChannels(parts)
  let weight = randomTensor([3, 3, 16, 20], &rng, scale: 0.3)
  let bias = randomTensor([20], &rng)
  let y = conv2dForward(
    concatenating: parts, weight: weight, bias: bias, padding: 1, isa: isa)
  // The parts are summed one after the other (another order than the whole's): close, not equal.
  expectClose(
    y, conv2dForward(whole, weight: weight, bias: bias, padding: 1, isa: isa),
    relativeTolerance: 1e-5, "forward")
  // Gradients: the same sums in the same order, bit for bit.
  let dy = randomTensor(y.shape, &rng)
  let split = conv2dBackward(
    outputGradient: dy, concatenating: parts, weight: weight, hasBias: true, padding: 1, isa: isa)
  let joined = conv2dBackward(
    outputGradient: dy, input: whole, weight: weight, hasBias: true, padding: 1, isa: isa)
  #expect(split.inputs == splitChannels(joined.input, sizes: [5, 11]))
  #expect(split.weight == joined.weight)
  #expect(split.bias == joined.bias)
}

@Test("the fused ReLU epilogue equals ReLU after the convolution, bit for bit", arguments: supportedISAs)
func conv2dReLUEpilogue(isa: KernelISA) {
  var rng = SeededGenerator(seed: 14)
  let x = randomTensor([2, 6, 7, 4], &rng)
  let weight = randomTensor([3, 3, 4, 19], &rng, scale: 0.4)
  let bias = randomTensor([19], &rng)
  let plain = conv2dForward(x, weight: weight, bias: bias, padding: 1, isa: isa)
  let fused = conv2dForward(
    concatenating: [x], weight: weight, bias: bias, padding: 1, relu: true, isa: isa)
  #expect(fused == reluForward(plain))
}

@Test(
  "batch-norm moments gathered by the convolution kernel match a two-pass computation",
  arguments: supportedISAs)
func conv2dMoments(isa: KernelISA) {
  var rng = SeededGenerator(seed: 15)
  // A large mean: with the shift (a running mean near it) the sums do not cancel.
  let x = Tensor.randomNormal(shape: [3, 5, 9, 6], mean: 40, standardDeviation: 1, using: &rng)
  let weight = randomTensor([3, 3, 6, 21], &rng, scale: 0.2)
  let z = conv2dForward(x, weight: weight, bias: nil, padding: 1, isa: isa)
  // The reference mean and biased variance per channel, in Double.
  let k = 21
  let count = z.count / k
  var mean = [Double](repeating: 0, count: k)
  var variance = [Double](repeating: 0, count: k)
  for (i, v) in z.scalars.enumerated() { mean[i % k] += Double(v) / Double(count) }
  for (i, v) in z.scalars.enumerated() {
    variance[i % k] += (Double(v) - mean[i % k]) * (Double(v) - mean[i % k]) / Double(count)
  }
  let shift = Tensor(shape: [k], scalars: mean.map { Float($0) + 0.5 })
  let fused = conv2dForwardWithMoments(
    concatenating: [x], weight: weight, padding: 1, shift: shift, isa: isa)
  #expect(fused.output == z)
  for j in 0..<k {
    let centred = fused.sums[j] / Double(count)
    let m = Double(shift.scalars[j]) + centred
    let v = fused.squares[j] / Double(count) - centred * centred
    #expect(abs(m - mean[j]) <= 1e-5 * max(1, abs(mean[j])), "mean of channel \(j)")
    #expect(abs(v - variance[j]) <= 1e-4 * variance[j], "variance of channel \(j)")
  }
  let scale = randomTensor([k], &rng)
  let offset = randomTensor([k], &rng)
  let a = batchNormTrainingForward(
    z, sums: fused.sums, squares: fused.squares, shift: shift, scale: scale, offset: offset,
    relu: true)
  let b = batchNormReLUTrainingForward(z, scale: scale, offset: offset)
  expectClose(a.output, b.output, relativeTolerance: 1e-4, "normalised output")
}

@Test(
  "Winograd convolutions (3x3, many channels) match direct loops, with bias, ReLU and statistics",
  arguments: supportedISAs.filter { $0 != .portable })
func conv2dWinograd(isa: KernelISA) {
  var rng = SeededGenerator(seed: 17)
  // Two parts of 20 and 13 channels, odd height and width (partial 2x2 tiles), 40 outputs.
  let parts = [randomTensor([2, 7, 9, 20], &rng), randomTensor([2, 7, 9, 13], &rng)]
  let weight = randomTensor([3, 3, 33, 40], &rng, scale: 0.2)
  let bias = randomTensor([40], &rng)
  let reference = directConv(
    concatChannels(parts), weight, bias, stride: 1, padding: 1, dilation: 1)
  let y = conv2dForward(
    concatenating: parts, weight: weight, bias: bias, padding: 1, relu: true, isa: isa)
  expectClose(y, reluForward(reference), relativeTolerance: 1e-5, "forward + ReLU")
  // Statistics around a shift, against the direct convolution's output.
  let z = directConv(concatChannels(parts), weight, nil, stride: 1, padding: 1, dilation: 1)
  let shift = randomTensor([40], &rng)
  let fused = conv2dForwardWithMoments(
    concatenating: parts, weight: weight, padding: 1, shift: shift, isa: isa)
  expectClose(fused.output, z, relativeTolerance: 1e-5, "forward with moments")
  // The input gradient (a Winograd convolution of dY with two outputs, the parts' gradients).
  let dy = randomTensor(y.shape, &rng)
  let split = conv2dBackward(
    outputGradient: dy, concatenating: parts, weight: weight, hasBias: false, padding: 1, isa: isa)
  let direct = directConvBackward(
    dy, concatChannels(parts), weight, stride: 1, padding: 1, dilation: 1)
  expectClose(concatChannels(split.inputs), direct.input, relativeTolerance: 1e-5, "input gradient")
  expectClose(split.weight, direct.weight, relativeTolerance: 1e-5, "weight gradient")
  for j in 0..<40 {
    var sum = 0.0
    var squares = 0.0
    for i in stride(from: j, to: z.count, by: 40) {
      let d = Double(z.scalars[i]) - Double(shift.scalars[j])
      sum += d
      squares += d * d
    }
    #expect(abs(fused.sums[j] - sum) <= 1e-4 * max(1, squares.squareRoot()), "sum of channel \(j)")
    #expect(abs(fused.squares[j] - squares) <= 1e-4 * squares, "squares of channel \(j)")
  }
}

@Test(
  "a full-resolution weight gradient (summed in row chunks) matches direct loops, on 1 and 2 threads alike",
  arguments: supportedISAs)
func rowChunkedWeightGradient(isa: KernelISA) {
  // x [2, 256, 256, 4] and dY [2, 256, 256, 16]: 10 MiB of activations, above the 8 MiB from
  // which the vector kernels split the rows instead of the tiles.
  var rng = SeededGenerator(seed: 41)
  let (n, h, w, c, k) = (2, 256, 256, 4, 16)
  let x = randomTensor([n, h, w, c], &rng)
  let weight = randomTensor([3, 3, c, k], &rng, scale: 0.2)
  let dy = randomTensor([n, h, w, k], &rng)
  var reference = [Double](repeating: 0, count: 9 * c * k)
  for b in 0..<n {
    for oy in 0..<h {
      for ox in 0..<w {
        let g = ((b * h + oy) * w + ox) * k
        for ky in 0..<3 {
          let iy = oy + ky - 1
          guard iy >= 0 && iy < h else { continue }
          for kx in 0..<3 {
            let ix = ox + kx - 1
            guard ix >= 0 && ix < w else { continue }
            for ci in 0..<c {
              let v = Double(x.scalars[((b * h + iy) * w + ix) * c + ci])
              let row = ((ky * 3 + kx) * c + ci) * k
              for j in 0..<k { reference[row + j] += v * Double(dy.scalars[g + j]) }
            }
          }
        }
      }
    }
  }
  let previous = BLASThreads.count
  defer { BLASThreads.set(previous) }
  var results: [Tensor] = []
  for threads in [1, 2] {
    BLASThreads.set(threads)
    results.append(
      conv2dBackward(
        outputGradient: dy, input: x, weight: weight, hasBias: false, padding: 1,
        computeInputGradient: false, isa: isa
      ).weight)
  }
  #expect(results[0] == results[1], "\(isa): 1 and 2 threads differ")
  let largest = reference.map(abs).max() ?? 1
  let error = zip(results[0].scalars, reference).map { abs(Double($0) - $1) }.max() ?? 0
  #expect(error <= 1e-5 * largest, "\(isa): error \(error) of \(largest)")
}
