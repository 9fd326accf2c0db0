// Times the Tensor kernels on the reference U-Net (96x128, batch 8; shared/bench/REFERENCE_NET.md)
// next to a 2048^3 sgemm measured in the same process, for 1 and 2 threads.
//
//   cd Benchmarks && OPENBLAS_CORETYPE=Haswell swift run -c release KernelBench [--repeats 5] [--threads 1,2]
//                                                                   [--scale 2]
// (--scale S multiplies the input size: 2 gives the 192x256 configuration of bench_vs_torch.sh).
//
// Prints one line per convolution (forward, backward: milliseconds and GFLOP/s), the conv totals,
// and a full forward + backward pass of the network (conv, batch norm + ReLU, pooling, resize,
// concat; no loss or optimizer) as milliseconds per step with its GFLOP/s counted PyTorch-style as
// 3 x forward convolution FLOPs.
import Dispatch
import Tensor

#if canImport(Glibc)
  import Glibc
#endif

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// Median wall time in seconds of `repeats` runs after one warm-up run.
func median(_ repeats: Int, _ body: () -> Void) -> Double {
  body()
  var times: [Double] = []
  for _ in 0..<repeats {
    let t0 = now()
    body()
    times.append(now() - t0)
  }
  times.sort()
  return times[times.count / 2]
}

struct Layer {
  var name: String
  var h, w, c, k, r: Int
  var bias: Bool
  var inputGradient: Bool
}

let batch = 8
var scale = 1
var repeats = 5
var threadCounts = [1, 2]
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let a = arguments.next() {
  switch a {
  case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
  case "--scale": scale = max(1, Int(arguments.next() ?? "") ?? scale)
  case "--threads":
    threadCounts = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
  default: print("unknown argument \(a)"); exit(2)
  }
}

let (height, width) = (96 * scale, 128 * scale)
let layers: [Layer] = [
  Layer(name: "enc1a 3->16", h: 96, w: 128, c: 3, k: 16, r: 3, bias: false, inputGradient: false),
  Layer(name: "enc1b 16->16", h: 96, w: 128, c: 16, k: 16, r: 3, bias: false, inputGradient: true),
  Layer(name: "enc2a 16->32", h: 48, w: 64, c: 16, k: 32, r: 3, bias: false, inputGradient: true),
  Layer(name: "enc2b 32->32", h: 48, w: 64, c: 32, k: 32, r: 3, bias: false, inputGradient: true),
  Layer(name: "enc3a 32->64", h: 24, w: 32, c: 32, k: 64, r: 3, bias: false, inputGradient: true),
  Layer(name: "enc3b 64->64", h: 24, w: 32, c: 64, k: 64, r: 3, bias: false, inputGradient: true),
  Layer(name: "botta 64->128", h: 12, w: 16, c: 64, k: 128, r: 3, bias: false, inputGradient: true),
  Layer(name: "bottb 128->128", h: 12, w: 16, c: 128, k: 128, r: 3, bias: false, inputGradient: true),
  Layer(name: "dec3a 192->64", h: 24, w: 32, c: 192, k: 64, r: 3, bias: false, inputGradient: true),
  Layer(name: "dec3b 64->64", h: 24, w: 32, c: 64, k: 64, r: 3, bias: false, inputGradient: true),
  Layer(name: "dec2a 96->32", h: 48, w: 64, c: 96, k: 32, r: 3, bias: false, inputGradient: true),
  Layer(name: "dec2b 32->32", h: 48, w: 64, c: 32, k: 32, r: 3, bias: false, inputGradient: true),
  Layer(name: "dec1a 48->16", h: 96, w: 128, c: 48, k: 16, r: 3, bias: false, inputGradient: true),
  Layer(name: "dec1b 16->16", h: 96, w: 128, c: 16, k: 16, r: 3, bias: false, inputGradient: true),
  Layer(name: "head 16->19 1x1", h: 96, w: 128, c: 16, k: 19, r: 1, bias: true, inputGradient: true),
].map { layer in
  var scaled = layer
  (scaled.h, scaled.w) = (layer.h * scale, layer.w * scale)
  return scaled
}

var rng = SeededGenerator(seed: 1)
print("# KernelBench: reference U-Net \(height)x\(width), batch \(batch), median of \(repeats)")
print("# \(BLASLibrary.loaded.summary)")

struct Prepared {
  var layer: Layer
  var x, weight, dy: Tensor
  var bias: Tensor?
  var flops: Double  // forward multiply-adds x 2
}
let prepared = layers.map { l -> Prepared in
  let x = Tensor.randomNormal(shape: [batch, l.h, l.w, l.c], using: &rng)
  let weight = Tensor.randomNormal(shape: [l.r, l.r, l.c, l.k], standardDeviation: 0.1, using: &rng)
  let dy = Tensor.randomNormal(shape: [batch, l.h, l.w, l.k], using: &rng)
  let flops = 2.0 * Double(batch * l.h * l.w) * Double(l.r * l.r * l.c) * Double(l.k)
  return Prepared(
    layer: l, x: x, weight: weight, dy: dy, bias: l.bias ? Tensor.zeros([l.k]) : nil, flops: flops)
}

/// One forward + backward pass of the reference network with these kernels.
func networkStep(_ p: [Prepared], input: Tensor) -> Float {
  var saved: [(x: Tensor, conv: Tensor, out: Tensor, stats: BatchNormStatistics)] = []
  var skips: [Tensor] = []
  var argmaxes: [[Int32]] = []
  var x = input
  let ones = p.map { Tensor(repeating: 1, shape: [$0.layer.k]) }
  let zeros = p.map { Tensor.zeros([$0.layer.k]) }
  func block(_ i: Int, _ input: Tensor) -> Tensor {
    let conv = conv2dForward(input, weight: p[i].weight, bias: nil, padding: 1)
    let bn = batchNormReLUTrainingForward(conv, scale: ones[i], offset: zeros[i])
    saved.append((input, conv, bn.output, bn.statistics))
    return bn.output
  }
  // Encoder.
  for stage in 0..<4 {
    if stage > 0 {
      let pooled = maxPool2dForward(x, size: 2, stride: 2)
      argmaxes.append(pooled.argmax)
      x = pooled.output
    }
    x = block(2 * stage + 1, block(2 * stage, x))
    if stage < 3 { skips.append(x) }
  }
  // Decoder.
  for stage in 0..<3 {
    let skip = skips[2 - stage]
    let up = resizeBilinearForward(x, height: skip.shape[1], width: skip.shape[2])
    x = block(9 + 2 * stage, block(8 + 2 * stage, concatChannels([up, skip])))
  }
  let logits = conv2dForward(x, weight: p[14].weight, bias: p[14].bias, stride: 1, padding: 0)
  // Backward with a stand-in logits gradient.
  var g = conv2dBackward(
    outputGradient: p[14].dy, input: x, weight: p[14].weight, hasBias: true).input
  var checksum = logits.scalars[0]
  func blockBackward(_ i: Int, _ dy: Tensor) -> Tensor {
    let s = saved[i]
    let bn = batchNormReLUBackward(
      outputGradient: dy, output: s.out, input: s.conv, scale: ones[i], statistics: s.stats)
    let conv = conv2dBackward(
      outputGradient: bn.input, input: s.x, weight: p[i].weight, hasBias: false, padding: 1,
      computeInputGradient: i != 0)
    checksum += conv.weight.scalars[0]
    return conv.input
  }
  var skipGradients: [Tensor] = []
  for stage in (0..<3).reversed() {
    g = blockBackward(8 + 2 * stage, blockBackward(9 + 2 * stage, g))
    let skipChannels = skips[2 - stage].shape[3]
    let parts = splitChannels(g, sizes: [g.shape[3] - skipChannels, skipChannels])
    skipGradients.append(parts[1])  // ends as [skip 0, skip 1, skip 2]
    let source = saved[7 + 2 * stage].out.shape  // the upsampled tensor: bottleneck, dec3, dec2
    g = resizeBilinearBackward(outputGradient: parts[0], inputHeight: source[1], inputWidth: source[2])
  }
  for stage in (0..<4).reversed() {
    if stage < 3 { g = add(g, skipGradients[stage]) }
    g = blockBackward(2 * stage, blockBackward(2 * stage + 1, g))
    if stage > 0 {
      g = maxPool2dBackward(
        outputGradient: g, argmax: argmaxes[stage - 1], inputShape: saved[2 * stage - 1].out.shape)
    }
  }
  return checksum
}

for threads in threadCounts {
  BLASThreads.set(threads)
  let n = 2048
  let a = Tensor.randomNormal(shape: [n, n], using: &rng)
  let b = Tensor.randomNormal(shape: [n, n], using: &rng)
  let gemmSeconds = median(repeats) { _ = matmul(a, b) }
  let gemmRate = 2.0 * Double(n * n * n) / gemmSeconds / 1e9
  print("\n## threads \(threads): sgemm 2048^3 \(fmt(gemmSeconds * 1e3)) ms = \(fmt(gemmRate)) GFLOP/s")
  print("layer             fwd ms  fwd GF/s  %gemm   bwd ms  bwd GF/s  %gemm")
  var totalForward = 0.0, totalBackward = 0.0, forwardFlops = 0.0, backwardFlops = 0.0
  for p in prepared {
    let l = p.layer
    let pad = l.r / 2
    let fwd = median(repeats) {
      _ = conv2dForward(p.x, weight: p.weight, bias: p.bias, padding: pad)
    }
    let bwd = median(repeats) {
      _ = conv2dBackward(
        outputGradient: p.dy, input: p.x, weight: p.weight, hasBias: l.bias, padding: pad,
        computeInputGradient: l.inputGradient)
    }
    let bFlops = p.flops * (l.inputGradient ? 2 : 1)
    totalForward += fwd; totalBackward += bwd
    forwardFlops += p.flops; backwardFlops += bFlops
    let fr = p.flops / fwd / 1e9, br = bFlops / bwd / 1e9
    print(
      "\(l.name.padding(16)) \(fmt(fwd * 1e3, 7)) \(fmt(fr, 9)) \(fmt(100 * fr / gemmRate, 6))%"
        + " \(fmt(bwd * 1e3, 8)) \(fmt(br, 9)) \(fmt(100 * br / gemmRate, 6))%")
  }
  let fr = forwardFlops / totalForward / 1e9, br = backwardFlops / totalBackward / 1e9
  let all = (forwardFlops + backwardFlops) / (totalForward + totalBackward) / 1e9
  print(
    "conv total: forward \(fmt(totalForward * 1e3)) ms (\(fmt(fr)) GFLOP/s, \(fmt(100 * fr / gemmRate))% of sgemm),"
      + " backward \(fmt(totalBackward * 1e3)) ms (\(fmt(br)) GFLOP/s, \(fmt(100 * br / gemmRate))%),"
      + " together \(fmt(all)) GFLOP/s = \(fmt(100 * all / gemmRate))% of sgemm")
  // The other kernels, on the largest activation of the network ([8, height, width, 16]).
  let big = Tensor.randomNormal(shape: [batch, height, width, 16], using: &rng)
  let ones = Tensor(repeating: 1, shape: [16]), zeros = Tensor.zeros([16])
  let bn = batchNormReLUTrainingForward(big, scale: ones, offset: zeros)
  let pooled = maxPool2dForward(big, size: 2, stride: 2)
  let half = pooled.output
  var line = "other kernels on [8, \(height), \(width), 16] (ms):"
  func time(_ name: String, _ body: () -> Void) { line += " \(name) \(fmt(median(repeats, body) * 1e3))," }
  time("bn+relu fwd") { _ = batchNormReLUTrainingForward(big, scale: ones, offset: zeros) }
  time("bn+relu bwd") {
    _ = batchNormReLUBackward(outputGradient: big, output: bn.output, input: big, scale: ones, statistics: bn.statistics)
  }
  time("bn bwd") {
    _ = batchNormBackward(outputGradient: big, input: big, scale: ones, statistics: bn.statistics)
  }
  time("bn fwd") { _ = batchNormTrainingForward(big, scale: ones, offset: zeros) }
  time("relu") { _ = reluForward(big) }
  time("add") { _ = add(big, big) }
  time("maxpool fwd") { _ = maxPool2dForward(big, size: 2, stride: 2) }
  time("maxpool bwd") {
    _ = maxPool2dBackward(outputGradient: half, argmax: pooled.argmax, inputShape: big.shape)
  }
  time("resize x2 fwd") { _ = resizeBilinearForward(half, height: height, width: width) }
  time("resize x2 bwd") { _ = resizeBilinearBackward(outputGradient: big, inputHeight: height / 2, inputWidth: width / 2) }
  time("concat") { _ = concatChannels([big, big, big]) }
  time("split") { _ = splitChannels(big, sizes: [8, 8]) }
  print(line)
  let input = Tensor.randomNormal(shape: [batch, height, width, 3], using: &rng)
  var sink: Float = 0
  let step = median(repeats) { sink += networkStep(prepared, input: input) }
  print(
    "network forward+backward step: \(fmt(step * 1e3)) ms, \(fmt(Double(batch) / step)) images/s,"
      + " \(fmt(3 * forwardFlops / step / 1e9)) GFLOP/s (3 x forward conv FLOPs) [checksum \(sink.isFinite)]")
}

func fmt(_ v: Double, _ width: Int = 0) -> String {
  let s = String(Double(Int((v * 10).rounded())) / 10)
  return String(repeating: " ", count: max(0, width - s.count)) + s
}
extension String {
  func padding(_ n: Int) -> String { self + String(repeating: " ", count: max(0, n - count)) }
}
