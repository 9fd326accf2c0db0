import CKernels

/// Max, average and global average pooling on NHWC tensors.
///
/// Windows are `size x size` with the given stride, no padding, and the floor output size
/// `outH = (h - size) / stride + 1` (PyTorch's `max_pool2d`/`avg_pool2d` defaults).
///
/// Threads: forward passes split output rows; backward passes split images (and channel blocks
/// when there are fewer images than workers), so the scatter-adds never race.

/// Checks a pooling input; returns `[n, h, w, c, outH, outW]`.
private func poolSizes(_ shape: [Int], size: Int, stride: Int) -> [Int] {
  precondition(shape.count == 4, "pooling input must be [n, h, w, c], got \(shape)")
  precondition(size >= 1 && stride >= 1, "pooling size \(size), stride \(stride)")
  precondition(
    shape[1] >= size && shape[2] >= size, "pooling window \(size) larger than input \(shape)")
  return [
    shape[0], shape[1], shape[2], shape[3],
    (shape[1] - size) / stride + 1, (shape[2] - size) / stride + 1,
  ]
}

/// Runs `body(image, channelRange)` over work items that cover every image and channel, split so
/// that there are at least ``kernelWidth`` items when possible.
package func parallelImagesAndChannels(
  n: Int, c: Int, _ body: @Sendable (Int, Range<Int>) -> Void
) {
  let width = kernelWidth
  let blocks = n >= width ? 1 : min(c, (width + n - 1) / n)
  parallelChunks(n * blocks) { item in
    let b = item / blocks
    let j = item % blocks
    body(b, (c * j / blocks)..<(c * (j + 1) / blocks))
  }
}

/// Max pooling; also returns, per output scalar, the flat index of the chosen input scalar.
///
/// `x` is `[n, h, w, c]`; the output is `[n, outH, outW, c]` and `argmax[i]` is the offset in
/// `x.scalars` of the maximum of output scalar `i`'s window (the first one on ties).
/// - Precondition: the window fits in the input; `x.count < 2^31`.
public func maxPool2dForward(_ x: Tensor, size: Int, stride: Int) -> (
  output: Tensor, argmax: [Int32]
) {
  let result = maxPool(x, size: size, stride: stride, argmax: true)
  return (result.output, result.argmax)
}

/// Max pooling for inference: ``maxPool2dForward(_:size:stride:)`` without the argmax.
public func maxPool2d(_ x: Tensor, size: Int, stride: Int) -> Tensor {
  maxPool(x, size: size, stride: stride, argmax: false).output
}

/// Max pooling, with the argmax of every output if `argmax` (else an empty array).
private func maxPool(_ x: Tensor, size: Int, stride: Int, argmax withArgmax: Bool) -> (
  output: Tensor, argmax: [Int32]
) {
  let d = poolSizes(x.shape, size: size, stride: stride)
  let (n, h, w, c, outH, outW) = (d[0], d[1], d[2], d[3], d[4], d[5])
  precondition(x.count < Int(Int32.max), "max pooling input too large for Int32 indices")
  let outCount = withArgmax ? n * outH * outW * c : 0
  // Every entry is written by the kernel below.
  var argmax = [Int32](unsafeUninitializedCapacity: outCount) { _, initialized in
    initialized = outCount
  }
  let output = Tensor.filled(shape: [n, outH, outW, c]) { out in
    x.scalars.withUnsafeBufferPointer { xb in
      argmax.withUnsafeMutableBufferPointer { ab in
        guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
        let src = SharedReads(base: xBase)
        let dst = DisjointWrites(base: outBase)
        let idx = withArgmax ? ab.baseAddress.map { DisjointWrites(base: $0) } : nil
        let isa = KernelISA.best.cValue
        parallelChunkBlocks(n * outH) { rows in  // row = b * outH + oy
          atso_max_pool_rows(
            isa, src.base, Int32(h), Int32(w), Int32(c), Int32(size), Int32(stride), Int32(outH),
            Int32(outW), dst.base, idx?.base, rows.lowerBound, rows.upperBound)
        }
      }
    }
  }
  return (output, argmax)
}

/// The gradient of ``maxPool2dForward(_:size:stride:)``: routes each output gradient to its
/// argmax. Returns a new `inputShape` tensor; with `base`, the routed gradients are added to
/// `base` instead of to zeros (a U-Net's skip gradient: no zero fill and no separate addition
/// pass; `base` is updated in place when nothing else holds its scalars).
/// - Precondition: `argmax.count == outputGradient.count`, `argmax` came from a forward pass
///   on an input of `inputShape` (image `b`'s indices point into image `b`), and `base` (if any)
///   has `inputShape`.
public func maxPool2dBackward(
  outputGradient: Tensor, argmax: [Int32], inputShape: [Int], adding base: consuming Tensor? = nil
) -> Tensor {
  precondition(inputShape.count == 4, "max pooling input shape \(inputShape)")
  precondition(
    argmax.count == outputGradient.count,
    "argmax has \(argmax.count) entries for \(outputGradient.count) gradients")
  let n = inputShape[0]
  let c = inputShape[3]
  let inputCount = inputShape.reduce(1, *)
  let perImageOut = n == 0 ? 0 : outputGradient.count / n
  var dx = (consume base) ?? Tensor.zeros(inputShape)
  precondition(dx.shape == inputShape, "max pooling base \(dx.shape) != \(inputShape)")
  dx.scalars.withUnsafeMutableBufferPointer { dxb in
    outputGradient.scalars.withUnsafeBufferPointer { dyb in
      argmax.withUnsafeBufferPointer { ab in
        guard let dxBase = dxb.baseAddress, let dyBase = dyb.baseAddress,
          let aBase = ab.baseAddress
        else { return }
        let dst = DisjointWrites(base: dxBase)
        let dy = SharedReads(base: dyBase)
        let idx = SharedReads(base: aBase)
        parallelImagesAndChannels(n: n, c: c) { b, channels in
          let lo = b * perImageOut
          for o in stride(from: lo, to: lo + perImageOut, by: c) {
            for j in channels {
              let target = Int(idx.base[o + j])
              precondition(target >= 0 && target < inputCount, "argmax \(target) out of range")
              dst.base[target] += dy.base[o + j]
            }
          }
        }
      }
    }
  }
  return dx
}

/// Average pooling: the mean of each `size x size` window.
///
/// `x` is `[n, h, w, c]`; returns a new `[n, outH, outW, c]` tensor.
public func avgPool2dForward(_ x: Tensor, size: Int, stride: Int) -> Tensor {
  let d = poolSizes(x.shape, size: size, stride: stride)
  let (n, h, w, c, outH, outW) = (d[0], d[1], d[2], d[3], d[4], d[5])
  let scale = 1 / Float(size * size)
  return Tensor.filled(shape: [n, outH, outW, c]) { out in
    x.scalars.withUnsafeBufferPointer { xb in
      guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
      let src = SharedReads(base: xBase)
      let dst = DisjointWrites(base: outBase)
      parallelChunks(n * outH) { row in
        let b = row / outH
        let oy = row % outH
        for ox in 0..<outW {
          let o = dst.base + (row * outW + ox) * c
          o.update(repeating: 0, count: c)
          for ky in 0..<size {
            for kx in 0..<size {
              let p = src.base + ((b * h + oy * stride + ky) * w + ox * stride + kx) * c
              for j in 0..<c { o[j] += p[j] }
            }
          }
          for j in 0..<c { o[j] *= scale }
        }
      }
    }
  }
}

/// The gradient of ``avgPool2dForward(_:size:stride:)``: spreads each output gradient evenly
/// over its window. Returns a new `inputShape` tensor.
/// - Precondition: `outputGradient` has the forward's output shape for `inputShape`.
public func avgPool2dBackward(
  outputGradient: Tensor, inputShape: [Int], size: Int, stride: Int
) -> Tensor {
  let d = poolSizes(inputShape, size: size, stride: stride)
  let (n, h, w, c, outH, outW) = (d[0], d[1], d[2], d[3], d[4], d[5])
  precondition(
    outputGradient.shape == [n, outH, outW, c],
    "average pooling gradient \(outputGradient.shape) != \([n, outH, outW, c])")
  let scale = 1 / Float(size * size)
  var dx = Tensor.zeros(inputShape)
  dx.scalars.withUnsafeMutableBufferPointer { dxb in
    outputGradient.scalars.withUnsafeBufferPointer { dyb in
      guard let dxBase = dxb.baseAddress, let dyBase = dyb.baseAddress else { return }
      let dst = DisjointWrites(base: dxBase)
      let dy = SharedReads(base: dyBase)
      parallelImagesAndChannels(n: n, c: c) { b, channels in
        for oy in 0..<outH {
          for ox in 0..<outW {
            let g = dy.base + ((b * outH + oy) * outW + ox) * c
            for ky in 0..<size {
              for kx in 0..<size {
                let p = dst.base + ((b * h + oy * stride + ky) * w + ox * stride + kx) * c
                for j in channels { p[j] += g[j] * scale }
              }
            }
          }
        }
      }
    }
  }
  return dx
}

/// Global average pooling: the mean over `h` and `w` of each image and channel.
///
/// `x` is `[n, h, w, c]`; returns a new `[n, 1, 1, c]` tensor (ASPP image pooling).
public func globalAvgPoolForward(_ x: Tensor) -> Tensor {
  precondition(x.rank == 4, "global pooling input must be [n, h, w, c], got \(x.shape)")
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  precondition(h * w >= 1, "global pooling of an empty image \(x.shape)")
  return Tensor.filled(shape: [n, 1, 1, c]) { out in
    x.scalars.withUnsafeBufferPointer { xb in
      guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
      let src = SharedReads(base: xBase)
      let dst = DisjointWrites(base: outBase)
      parallelChunks(n) { b in
        let o = dst.base + b * c
        o.update(repeating: 0, count: c)
        for p in 0..<(h * w) {
          let row = src.base + (b * h * w + p) * c
          for j in 0..<c { o[j] += row[j] }
        }
        let scale = 1 / Float(h * w)
        for j in 0..<c { o[j] *= scale }
      }
    }
  }
}

/// The gradient of ``globalAvgPoolForward(_:)``: each pixel gets `outputGradient / (h * w)`.
///
/// `outputGradient` is `[n, 1, 1, c]`; returns a new `inputShape` tensor.
public func globalAvgPoolBackward(outputGradient: Tensor, inputShape: [Int]) -> Tensor {
  precondition(inputShape.count == 4, "global pooling input shape \(inputShape)")
  let (n, h, w, c) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
  precondition(
    outputGradient.shape == [n, 1, 1, c],
    "global pooling gradient \(outputGradient.shape) != \([n, 1, 1, c])")
  let scale = 1 / Float(h * w)
  return Tensor.filled(shape: inputShape) { out in
    outputGradient.scalars.withUnsafeBufferPointer { dyb in
      guard let outBase = out.baseAddress, let dyBase = dyb.baseAddress else { return }
      let dy = SharedReads(base: dyBase)
      let dst = DisjointWrites(base: outBase)
      parallelChunks(n * h) { row in
        let g = dy.base + (row / h) * c
        for x in 0..<w {
          let p = dst.base + (row * w + x) * c
          for j in 0..<c { p[j] = g[j] * scale }
        }
      }
    }
  }
}
