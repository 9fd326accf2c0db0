/// 2-D convolution on channels-last tensors: im2col + GEMM (OpenBLAS `sgemm`).
///
/// Layout: `input` is `[n, h, w, c]`, `weight` is `[r, s, c, k]` (kernel height, kernel width,
/// input channels, output channels), `bias` is `[k]`, the output is `[n, outH, outW, k]` with
/// ```
/// outH = (h + 2 * padding - dilation * (r - 1) - 1) / stride + 1
/// outW = (w + 2 * padding - dilation * (s - 1) - 1) / stride + 1
/// ```
/// Every output pixel is one row of the im2col matrix `col` (`r * s * c` columns, ordered like the
/// weight's first three axes), so the forward pass is `out = col * W` with `W` viewed as
/// `(r * s * c) x k`, the weight gradient is `col^T * dY` and the input gradient is
/// `col2im(dY * W^T)`. A 1x1 convolution with stride 1 and no padding needs no im2col: `col` is
/// the input itself.
///
/// Threads: the rows of each image are cut into fixed, cache-sized chunks; ``kernelWidth``
/// workers take contiguous blocks of chunks (forward) or of whole images (backward, so that the
/// col2im scatter-adds never race). Each worker builds the im2col matrix of one chunk at a time in
/// its own buffer and calls a single-threaded ``sgemm`` on it (OpenBLAS is set to one thread for
/// the duration of the call: its multi-threaded GEMM rounds differently). The backward pass of a
/// single image therefore runs on one core. Weight and bias gradients are accumulated per image
/// and summed in image order, so results do not depend on the thread count.

/// The sizes of one convolution.
package struct ConvGeometry: Sendable, Equatable {
  package var n, h, w, c: Int
  package var r, s, k: Int
  package var stride, padding, dilation: Int
  package var outH, outW: Int

  /// Derives the geometry of a convolution, checking the shapes.
  ///
  /// - Precondition: `input` is `[n, h, w, c]`, `weight` is `[r, s, c, k]`, stride and dilation
  ///   are positive, padding is non-negative and the output is not empty.
  package init(input: [Int], weight: [Int], stride: Int, padding: Int, dilation: Int) {
    precondition(input.count == 4, "conv2d input must be [n, h, w, c], got \(input)")
    precondition(weight.count == 4, "conv2d weight must be [r, s, c, k], got \(weight)")
    precondition(
      input[3] == weight[2], "conv2d input channels \(input[3]) != weight channels \(weight[2])")
    precondition(input[0] >= 1, "conv2d needs at least one image, got \(input)")
    precondition(stride >= 1 && dilation >= 1 && padding >= 0,
                 "conv2d stride \(stride), dilation \(dilation), padding \(padding)")
    n = input[0]; h = input[1]; w = input[2]; c = input[3]
    r = weight[0]; s = weight[1]; k = weight[3]
    self.stride = stride; self.padding = padding; self.dilation = dilation
    outH = (h + 2 * padding - dilation * (r - 1) - 1) / stride + 1
    outW = (w + 2 * padding - dilation * (s - 1) - 1) / stride + 1
    precondition(
      outH >= 1 && outW >= 1 && h + 2 * padding >= dilation * (r - 1) + 1
        && w + 2 * padding >= dilation * (s - 1) + 1,
      "conv2d output is empty for input \(input), weight \(weight)")
  }

  /// Output pixels over the batch: the rows of the im2col matrix.
  package var rows: Int { n * outH * outW }
  /// Columns of the im2col matrix: `r * s * c`.
  package var patch: Int { r * s * c }
  /// Whether the im2col matrix is the input itself (1x1, stride 1, no padding).
  package var isPointwise: Bool { r == 1 && s == 1 && stride == 1 && padding == 0 }
  /// The output shape `[n, outH, outW, k]`.
  package var outputShape: [Int] { [n, outH, outW, k] }

  /// Scalars of one forward im2col chunk (1 MiB of `Float`).
  package static let forwardChunkFloats = 1 << 18
  /// Scalars of one backward im2col chunk (2 MiB of `Float`).
  package static let backwardChunkFloats = 1 << 19

  /// Rows per im2col chunk: about `floats` scalars of `col`, a multiple of 8, within 32...8192.
  package func chunkRows(floats: Int) -> Int {
    let rows = max(32, min(8192, floats / max(1, patch)))
    return rows & ~7
  }

  /// Writes the im2col rows `rows` into `col` (`rows.count x patch`, row-major).
  ///
  /// Row `p = (b * outH + oy) * outW + ox`, column `(ky * s + kx) * c + ci` holds
  /// `x[b, oy * stride - padding + ky * dilation, ox * stride - padding + kx * dilation, ci]`,
  /// or 0 in the padding.
  package func im2col(
    _ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, rows: Range<Int>
  ) {
    let plane = outH * outW
    var b = rows.lowerBound / plane
    var oy = (rows.lowerBound % plane) / outW
    var ox = rows.lowerBound % outW
    let runLength = s * c
    for i in 0..<rows.count {
      let dst = col + i * patch
      let image = x + b * h * w * c
      let iy0 = oy * stride - padding
      let ix0 = ox * stride - padding
      let contiguous = dilation == 1 && ix0 >= 0 && ix0 + s <= w
      for ky in 0..<r {
        let iy = iy0 + ky * dilation
        let run = dst + ky * runLength
        if iy < 0 || iy >= h {
          run.update(repeating: 0, count: runLength)
        } else if contiguous {
          run.update(from: image + (iy * w + ix0) * c, count: runLength)
        } else {
          for kx in 0..<s {
            let ix = ix0 + kx * dilation
            if ix < 0 || ix >= w {
              (run + kx * c).update(repeating: 0, count: c)
            } else {
              (run + kx * c).update(from: image + (iy * w + ix) * c, count: c)
            }
          }
        }
      }
      ox += 1
      if ox == outW {
        ox = 0; oy += 1
        if oy == outH { oy = 0; b += 1 }
      }
    }
  }

  /// Adds the im2col-shaped gradient `dcol` (rows `rows`) into the input gradient `dx`.
  ///
  /// The inverse scatter of ``im2col(_:_:rows:)``; accumulates.
  package func col2imAdd(
    _ dcol: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, rows: Range<Int>
  ) {
    let plane = outH * outW
    var b = rows.lowerBound / plane
    var oy = (rows.lowerBound % plane) / outW
    var ox = rows.lowerBound % outW
    let runLength = s * c
    for i in 0..<rows.count {
      let src = dcol + i * patch
      let image = dx + b * h * w * c
      let iy0 = oy * stride - padding
      let ix0 = ox * stride - padding
      let contiguous = dilation == 1 && ix0 >= 0 && ix0 + s <= w
      for ky in 0..<r {
        let iy = iy0 + ky * dilation
        if iy < 0 || iy >= h { continue }
        let run = src + ky * runLength
        if contiguous {
          let d = image + (iy * w + ix0) * c
          for j in 0..<runLength { d[j] += run[j] }
        } else {
          for kx in 0..<s {
            let ix = ix0 + kx * dilation
            if ix < 0 || ix >= w { continue }
            let d = image + (iy * w + ix) * c
            let g = run + kx * c
            for j in 0..<c { d[j] += g[j] }
          }
        }
      }
      ox += 1
      if ox == outW {
        ox = 0; oy += 1
        if oy == outH { oy = 0; b += 1 }
      }
    }
  }
}

/// Computes a 2-D convolution, channels-last, as im2col followed by GEMM.
///
/// `input` is `[n, h, w, c]`, `weight` is `[r, s, c, k]`, `bias` (if any) is `[k]`; the result is
/// `[n, outH, outW, k]` with `outH = (h + 2 * padding - dilation * (r - 1) - 1) / stride + 1`
/// (likewise `outW`). Padding is zero padding on all four sides. Same result as PyTorch's
/// `conv2d` on the NCHW-permuted tensors with the weight permuted to `[k, c, r, s]`.
/// - Parameters:
///   - input: The images, `[n, h, w, c]`.
///   - weight: The filters, `[r, s, c, k]`.
///   - bias: Per-output-channel bias `[k]`, or `nil`.
///   - stride: The step between output pixels, in input pixels.
///   - padding: Zero rows/columns added on each side.
///   - dilation: The spacing between kernel taps.
/// - Returns: A new tensor `[n, outH, outW, k]`.
/// - Precondition: shapes as above; at least one image; the output is not empty.
public func conv2dForward(
  _ input: Tensor, weight: Tensor, bias: Tensor?,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1
) -> Tensor {
  let g = ConvGeometry(
    input: input.shape, weight: weight.shape, stride: stride, padding: padding,
    dilation: dilation)
  if let bias { precondition(bias.shape == [g.k], "conv2d bias \(bias.shape) != [\(g.k)]") }
  let biasScalars = bias?.scalars ?? []
  let width = kernelWidth
  // At least 8 chunks when there are enough rows, so that every worker gets some; the split
  // depends on the sizes only, never on the thread count.
  let chunk = min(
    g.chunkRows(floats: ConvGeometry.forwardChunkFloats), max(32, (g.rows / 8 + 7) & ~7))
  let chunks = (g.rows + chunk - 1) / chunk
  return Tensor.filled(shape: g.outputShape) { out in
    biasScalars.withUnsafeBufferPointer { bb in
      input.scalars.withUnsafeBufferPointer { xb in
        weight.scalars.withUnsafeBufferPointer { wb in
          guard let outBase = out.baseAddress, let xBase = xb.baseAddress,
            let wBase = wb.baseAddress
          else { return }
          let biasBase = bias == nil ? nil : bb.baseAddress.map { SharedReads(base: $0) }
          let x = SharedReads(base: xBase)
          let wt = SharedReads(base: wBase)
          let y = DisjointWrites(base: outBase)
          let run = {
            parallelChunkBlocks(chunks, width: width) { block in
              // Worker-private im2col buffer for one chunk of rows.
              let col = UnsafeMutablePointer<Float>.allocate(
                capacity: g.isPointwise ? 1 : chunk * g.patch)
              defer { col.deallocate() }
              for i in block {
                let r0 = i * chunk
                let r1 = min(g.rows, r0 + chunk)
                let a: UnsafePointer<Float>
                if g.isPointwise {
                  a = x.base + r0 * g.c  // the input pixels are the im2col rows
                } else {
                  g.im2col(x.base, col, rows: r0..<r1)
                  a = UnsafePointer(col)
                }
                let dst = y.base + r0 * g.k  // output rows r0..<r1, k channels each
                var beta: Float = 0
                if let biasBase {
                  for row in 0..<(r1 - r0) { (dst + row * g.k).update(from: biasBase.base, count: g.k) }
                  beta = 1
                }
                sgemm(
                  transposeA: false, transposeB: false, m: r1 - r0, n: g.k, k: g.patch,
                  alpha: 1, a: a, lda: g.patch, b: wt.base, ldb: g.k,
                  beta: beta, c: dst, ldc: g.k)
              }
            }
          }
          // OpenBLAS's multi-threaded GEMM rounds differently: always call it single-threaded.
          withSingleThreadedBLAS(run)
        }
      }
    }
  }
}

/// Computes the gradients of ``conv2dForward(_:weight:bias:stride:padding:dilation:)``.
///
/// With `dY = outputGradient` (`[n, outH, outW, k]`), returns new tensors (overwrites nothing):
/// ```
/// input  = col2im(dY * W^T)             [n, h, w, c]
/// weight = col^T * dY                   [r, s, c, k]
/// bias   = sum of dY over n, outH, outW [k]   (nil unless hasBias)
/// ```
/// When `computeInputGradient` is false (a network's first layer) `input` is an empty `[0]`
/// tensor and the dY * W^T and col2im work is skipped.
/// - Precondition: shapes match the forward call.
public func conv2dBackward(
  outputGradient: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1, computeInputGradient: Bool = true
) -> (input: Tensor, weight: Tensor, bias: Tensor?) {
  let g = ConvGeometry(
    input: input.shape, weight: weight.shape, stride: stride, padding: padding,
    dilation: dilation)
  precondition(
    outputGradient.shape == g.outputShape,
    "conv2d output gradient \(outputGradient.shape) != \(g.outputShape)")
  let width = kernelWidth
  let imageRows = g.outH * g.outW
  let chunk = g.chunkRows(floats: ConvGeometry.backwardChunkFloats)
  var inputGradient = Tensor.zeros(computeInputGradient ? input.shape : [0])
  // partials[b] holds image b's weight gradient (patch * k) followed by its bias gradient (k).
  let weightSize = g.patch * g.k
  let partialSize = weightSize + g.k
  var partials = [Float](repeating: 0, count: g.n * partialSize)
  inputGradient.scalars.withUnsafeMutableBufferPointer { dxb in
    partials.withUnsafeMutableBufferPointer { pb in
      input.scalars.withUnsafeBufferPointer { xb in
        weight.scalars.withUnsafeBufferPointer { wb in
          outputGradient.scalars.withUnsafeBufferPointer { dyb in
            guard let xBase = xb.baseAddress, let wBase = wb.baseAddress,
              let dyBase = dyb.baseAddress, let pBase = pb.baseAddress
            else { return }
            let x = SharedReads(base: xBase)
            let wt = SharedReads(base: wBase)
            let dy = SharedReads(base: dyBase)
            let partial = DisjointWrites(base: pBase)
            // An empty array may still have a base address: test the flag, not the pointer.
            let dx = computeInputGradient ? dxb.baseAddress.map { DisjointWrites(base: $0) } : nil
            let needsCol = !g.isPointwise
            let run = {
              parallelChunkBlocks(g.n, width: width) { images in
                let col = UnsafeMutablePointer<Float>.allocate(
                  capacity: needsCol ? chunk * g.patch : 1)
                defer { col.deallocate() }
                let dcol = UnsafeMutablePointer<Float>.allocate(
                  capacity: dx != nil && needsCol ? chunk * g.patch : 1)
                defer { dcol.deallocate() }
                for b in images {
                  let dW = partial.base + b * partialSize  // image b's [patch, k], then [k]
                  let dB = dW + weightSize
                  var r0 = b * imageRows
                  while r0 < (b + 1) * imageRows {
                    let r1 = min((b + 1) * imageRows, r0 + chunk)
                    let m = r1 - r0
                    let dyChunk = dy.base + r0 * g.k
                    // Weight gradient: dW += col^T * dY.
                    let a: UnsafePointer<Float>
                    if needsCol {
                      g.im2col(x.base, col, rows: r0..<r1)
                      a = UnsafePointer(col)
                    } else {
                      a = x.base + r0 * g.c
                    }
                    sgemm(
                      transposeA: true, transposeB: false, m: g.patch, n: g.k, k: m,
                      alpha: 1, a: a, lda: g.patch, b: dyChunk, ldb: g.k,
                      beta: 1, c: dW, ldc: g.k)
                    if hasBias {
                      for i in 0..<m {
                        let row = dyChunk + i * g.k
                        for j in 0..<g.k { dB[j] += row[j] }
                      }
                    }
                    // Input gradient: dcol = dY * W^T, scattered back by col2im.
                    if let dx {
                      if needsCol {
                        sgemm(
                          transposeA: false, transposeB: true, m: m, n: g.patch, k: g.k,
                          alpha: 1, a: dyChunk, lda: g.k, b: wt.base, ldb: g.k,
                          beta: 0, c: dcol, ldc: g.patch)
                        g.col2imAdd(dcol, dx.base, rows: r0..<r1)
                      } else {
                        sgemm(
                          transposeA: false, transposeB: true, m: m, n: g.c, k: g.k,
                          alpha: 1, a: dyChunk, lda: g.k, b: wt.base, ldb: g.k,
                          beta: 0, c: dx.base + r0 * g.c, ldc: g.c)
                      }
                    }
                    r0 = r1
                  }
                }
              }
            }
            withSingleThreadedBLAS(run)
          }
        }
      }
    }
  }
  // Sum the per-image partials in image order, in parallel over blocks of scalars.
  let gradients = Tensor.filled(shape: [partialSize]) { out in
    partials.withUnsafeBufferPointer { pb in
      guard let outBase = out.baseAddress, let pBase = pb.baseAddress else { return }
      let dst = DisjointWrites(base: outBase)
      let src = SharedReads(base: pBase)
      parallelChunks((partialSize + elementwiseChunk - 1) / elementwiseChunk) { i in
        let lo = i * elementwiseChunk
        let hi = min(partialSize, lo + elementwiseChunk)
        (dst.base + lo).update(from: src.base + lo, count: hi - lo)
        for b in 1..<max(1, g.n) {
          let p = src.base + b * partialSize
          for j in lo..<hi { dst.base[j] += p[j] }
        }
      }
    }
  }
  return (
    input: inputGradient,
    weight: Tensor(shape: weight.shape, scalars: Array(gradients.scalars[0..<weightSize])),
    bias: hasBias
      ? Tensor(shape: [g.k], scalars: Array(gradients.scalars[weightSize..<partialSize])) : nil
  )
}
