import CKernels
import Dispatch
import Synchronization

/// 2-D convolution on channels-last tensors.
///
/// Layout: `input` is `[n, h, w, c]`, `weight` is `[r, s, c, k]` (kernel height, kernel width,
/// input channels, output channels), `bias` is `[k]`, the output is `[n, outH, outW, k]` with
/// ```
/// outH = (h + 2 * padding - dilation * (r - 1) - 1) / stride + 1
/// outW = (w + 2 * padding - dilation * (s - 1) - 1) / stride + 1
/// ```
/// Two implementations, chosen by ``KernelISA``:
/// - **Vector kernels** (AVX-512 or AVX2 + FMA, `Sources/CKernels/conv_template.h`): a direct
///   convolution. A tile of up to 24 output pixels of one row x up to 64 output channels keeps
///   its sums in registers over all `r * s * c` products (the weights are packed once per call
///   into blocks of whole vectors). "Same"-padded stride-1 convolutions read their input rows in
///   place, and gather the border columns' windows, a tile of rows at a time, into small
///   zero-padded copies; other geometries copy the rows they read into a small ring of padded
///   rows. The input may be several tensors, read side by side as the concatenation of their
///   channels (the U-Net decoders never write that concatenation), and the output may be split
///   into several tensors (the input gradient of such a convolution). The kernel's epilogue adds
///   the bias, applies a ReLU, or gathers the batch-norm statistics of what it stores. The
///   weight gradient is tiled the other way: input channels x 64 output channels of one tap,
///   summed over the pixels in order.
///   3x3 convolutions with stride 1, padding 1 and enough channels (see `atso_conv_winograd_applies`) use Winograd
///   F(2x2, 3x3) instead (`winograd_template.h`): 16 products per 2x2 outputs instead of 36,
///   as 16 small GEMMs on the same tile, between input and output transforms.
/// - **Portable** (CPUs without AVX2): im2col + OpenBLAS `sgemm`. Every output pixel is one row
///   of the im2col matrix `col` (`r * s * c` columns), `out = col * W`, `dW = col^T * dY`,
///   `dX = col2im(dY * W^T)`; a 1x1 convolution with stride 1 and no padding uses the input as
///   `col`.
/// With stride 1 and a square kernel the input gradient is the forward convolution of `dY` with
/// the flipped, transposed kernel (``flippedTransposed(_:)``); otherwise `col2im(dY * W^T)`.
///
/// Threads: forward passes split aligned groups of output rows among ``kernelWidth`` workers
/// (blocks that free workers claim); vector weight gradients split weight tiles, or, for
/// activations larger than the caches, fixed chunks of output rows with partial sums added in
/// chunk order; portable ones split images (partial sums added in image order). Every output scalar is summed in one fixed order that depends on the sizes and
/// the instruction set only, so results do not depend on the thread count. The instruction sets
/// sum in different orders (and the portable path without fused multiply-adds), so results
/// differ between them, and so between CPUs, in the last bits.

/// The instruction set of the convolution kernels.
public enum KernelISA: String, Sendable, CaseIterable {
  /// im2col + OpenBLAS `sgemm` (any CPU).
  case portable
  /// AVX2 + FMA vector kernels, 8 floats per register.
  case avx2
  /// AVX-512F vector kernels, 16 floats per register.
  case avx512

  /// The widest set this CPU supports; the environment variable `ATSO_KERNEL_ISA` (`avx2` or
  /// `portable`) lowers it, for comparisons.
  public static let best: KernelISA = {
    switch atso_best_isa() {
    case ATSO_ISA_AVX512: .avx512
    case ATSO_ISA_AVX2: .avx2
    default: .portable
    }
  }()

  /// Whether this CPU can run the set.
  public var isSupported: Bool { atso_isa_supported(cValue) != 0 }

  /// The float FMA limit of `threads` threads running at once, in GFLOP/s: each runs 16
  /// independent chains of fused multiply-adds on this set's registers (no memory traffic) for
  /// `seconds` (`atso_fma_peak`), and the rates add up. nil for ``portable``.
  public func fmaPeak(threads: Int, seconds: Double = 0.3) -> Double? {
    guard self != .portable, isSupported else { return nil }
    let rates = Mutex([Double](repeating: 0, count: max(1, threads)))
    let isa = cValue
    DispatchQueue.concurrentPerform(iterations: max(1, threads)) { t in
      let rate = atso_fma_peak(isa, seconds)
      rates.withLock { $0[t] = rate }
    }
    return rates.withLock { $0.reduce(0, +) } * 1e-9
  }

  var cValue: atso_isa {
    switch self {
    case .portable: ATSO_ISA_NONE
    case .avx2: ATSO_ISA_AVX2
    case .avx512: ATSO_ISA_AVX512
    }
  }
}

/// The time the convolution kernels have run, summed over calls (and over concurrent callers):
/// benchmarks read it around a training step to report the convolutions' FLOP rate.
public enum ConvolutionClock {
  static let nanoseconds = Atomic<UInt64>(0)

  /// Seconds spent in convolution kernels (forward, weight and input gradients) so far.
  public static var seconds: Double {
    Double(nanoseconds.load(ordering: .relaxed)) * 1e-9
  }

  /// The start of a measured kernel call.
  static func start() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

  /// Adds the time since `start`.
  static func stop(_ start: UInt64) {
    nanoseconds.add(DispatchTime.now().uptimeNanoseconds - start, ordering: .relaxed)
  }
}

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
  /// The sizes as the vector kernels read them.
  var cShape: atso_conv_shape {
    atso_conv_shape(
      n: Int32(n), h: Int32(h), w: Int32(w), c: Int32(c), r: Int32(r), s: Int32(s), k: Int32(k),
      stride: Int32(stride), padding: Int32(padding), dilation: Int32(dilation),
      out_h: Int32(outH), out_w: Int32(outW))
  }

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

/// Computes a 2-D convolution, channels-last.
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
  conv2dForward(
    input, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
    isa: .best)
}

/// ``conv2dForward(_:weight:bias:stride:padding:dilation:)`` with the kernels of `isa`.
///
/// - Precondition: `isa.isSupported`, and the shapes of the public function.
package func conv2dForward(
  _ input: Tensor, weight: Tensor, bias: Tensor?,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1, isa: KernelISA
) -> Tensor {
  conv2dForward(
    concatenating: [input], weight: weight, bias: bias, stride: stride, padding: padding,
    dilation: dilation, isa: isa)
}

/// The convolution of the channel concatenation of `inputs` (``concatChannels(_:)``), without
/// writing that concatenation: the vector kernels read the parts side by side.
///
/// - Precondition: the parts agree in `[n, h, w]`; `weight` is `[r, s, sum of their c, k]`.
/// With `relu`, returns `max(0, conv)` (fused into the kernel's epilogue).
///
/// - Precondition: the parts agree in `[n, h, w]`; `weight` is `[r, s, sum of their c, k]`.
package func conv2dForward(
  concatenating inputs: [Tensor], weight: Tensor, bias: Tensor?,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1, relu: Bool = false,
  isa: KernelISA = .best
) -> Tensor {
  let g = ConvGeometry(
    input: concatenatedShape(inputs), weight: weight.shape, stride: stride, padding: padding,
    dilation: dilation)
  if let bias { precondition(bias.shape == [g.k], "conv2d bias \(bias.shape) != [\(g.k)]") }
  precondition(isa.isSupported, "this CPU cannot run the \(isa) kernels")
  if isa == .portable {
    let input = inputs.count == 1 ? inputs[0] : concatChannels(inputs)
    let z = im2colForward(g, input: input, weight: weight, bias: bias)
    return relu ? reluForward(z) : z
  }
  return vectorForward(
    g, inputs: inputs, weight: weight, bias: bias, isa: isa, outputs: [g.k], relu: relu
  ).outputs[0]
}

/// The convolution (no bias) of the concatenation of `inputs` and, per output channel `j`, the
/// sums over all output pixels of `z - shift[j]` and of `(z - shift[j])^2`, in `Double`: the
/// batch-norm statistics of the output, gathered by the kernel as it stores it (per output row,
/// then the rows in order). `shift` (a running mean) keeps the two sums from cancelling.
///
/// - Precondition: as ``conv2dForward(concatenating:weight:bias:stride:padding:dilation:relu:isa:)``;
///   `shift` is `[k]`.
package func conv2dForwardWithMoments(
  concatenating inputs: [Tensor], weight: Tensor, stride: Int = 1, padding: Int = 0,
  dilation: Int = 1, shift: Tensor, isa: KernelISA = .best
) -> (output: Tensor, sums: [Double], squares: [Double]) {
  let g = ConvGeometry(
    input: concatenatedShape(inputs), weight: weight.shape, stride: stride, padding: padding,
    dilation: dilation)
  precondition(shift.shape == [g.k], "conv2d statistics shift \(shift.shape) != [\(g.k)]")
  precondition(isa.isSupported, "this CPU cannot run the \(isa) kernels")
  let k = g.k
  if isa == .portable {
    let input = inputs.count == 1 ? inputs[0] : concatChannels(inputs)
    let z = im2colForward(g, input: input, weight: weight, bias: nil)
    let moments = z.scalars.withUnsafeBufferPointer { zb -> [Double] in
      shift.scalars.withUnsafeBufferPointer { mb -> [Double] in
        guard let zBase = zb.baseAddress, let mBase = mb.baseAddress else {
          return [Double](repeating: 0, count: 2 * k)
        }
        let x = SharedReads(base: zBase)
        let m = SharedReads(base: mBase)
        return channelSums(rows: g.rows, c: k, quantities: 2) { range, sums in
          atso_channel_moments(
            ATSO_ISA_NONE, x.base, Int32(k), range.lowerBound, range.upperBound, m.base, sums,
            sums + k)
        }
      }
    }
    return (z, Array(moments[0..<k]), Array(moments[k..<(2 * k)]))
  }
  let result = vectorForward(
    g, inputs: inputs, weight: weight, bias: nil, isa: isa, outputs: [k], shift: shift.scalars)
  // Rows of [2][k] partial sums, added in row order.
  var totals = [Double](repeating: 0, count: 2 * k)
  result.statistics.withUnsafeBufferPointer { sb in
    for row in 0..<(g.n * g.outH) {
      for j in 0..<(2 * k) { totals[j] += Double(sb[row * 2 * k + j]) }
    }
  }
  return (result.outputs[0], Array(totals[0..<k]), Array(totals[k..<(2 * k)]))
}

/// The shape of the channel concatenation of `parts`, checking that they agree.
private func concatenatedShape(_ parts: [Tensor]) -> [Int] {
  precondition(!parts.isEmpty && parts[0].rank == 4, "conv2d input must be [n, h, w, c]")
  let lead = Array(parts[0].shape.dropLast())
  for part in parts {
    precondition(
      part.rank == 4 && Array(part.shape.dropLast()) == lead,
      "conv2d inputs \(parts.map(\.shape)) differ in [n, h, w]")
  }
  return lead + [parts.reduce(0) { $0 + $1.shape[3] }]
}

/// The portable forward pass: im2col + single-threaded `sgemm` per chunk of rows.
private func im2colForward(_ g: ConvGeometry, input: Tensor, weight: Tensor, bias: Tensor?)
  -> Tensor
{
  let clockStart = ConvolutionClock.start()
  defer { ConvolutionClock.stop(clockStart) }
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
/// tensor and that work is skipped. With stride 1 and a square kernel the input gradient is
/// computed as a forward convolution of `dY` with the flipped, transposed kernel (see
/// ``flippedTransposed(_:)``), otherwise as `col2im(dY * W^T)`.
/// - Precondition: shapes match the forward call.
public func conv2dBackward(
  outputGradient: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1, computeInputGradient: Bool = true
) -> (input: Tensor, weight: Tensor, bias: Tensor?) {
  conv2dBackward(
    outputGradient: outputGradient, input: input, weight: weight, hasBias: hasBias,
    stride: stride, padding: padding, dilation: dilation,
    computeInputGradient: computeInputGradient, isa: .best)
}

/// ``conv2dBackward(outputGradient:input:weight:hasBias:stride:padding:dilation:computeInputGradient:)``
/// with the kernels of `isa`.
///
/// - Precondition: `isa.isSupported`, and the shapes of the public function.
package func conv2dBackward(
  outputGradient: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1, computeInputGradient: Bool = true,
  isa: KernelISA
) -> (input: Tensor, weight: Tensor, bias: Tensor?) {
  let g = conv2dBackward(
    outputGradient: outputGradient, concatenating: [input], weight: weight, hasBias: hasBias,
    stride: stride, padding: padding, dilation: dilation,
    computeInputGradient: computeInputGradient, isa: isa)
  return (computeInputGradient ? g.inputs[0] : Tensor.zeros([0]), g.weight, g.bias)
}

/// The gradients of ``conv2dForward(concatenating:weight:bias:stride:padding:dilation:isa:)``:
/// one input gradient per part (none when `computeInputGradient` is false), the weight and the
/// bias gradient.
package func conv2dBackward(
  outputGradient: Tensor, concatenating inputs: [Tensor], weight: Tensor, hasBias: Bool,
  stride: Int = 1, padding: Int = 0, dilation: Int = 1, computeInputGradient: Bool = true,
  isa: KernelISA = .best
) -> (inputs: [Tensor], weight: Tensor, bias: Tensor?) {
  let g = ConvGeometry(
    input: concatenatedShape(inputs), weight: weight.shape, stride: stride, padding: padding,
    dilation: dilation)
  precondition(
    outputGradient.shape == g.outputShape,
    "conv2d output gradient \(outputGradient.shape) != \(g.outputShape)")
  precondition(isa.isSupported, "this CPU cannot run the \(isa) kernels")
  let parts = inputs.map { $0.shape[3] }
  // Stride 1 with a square kernel: the input gradient is itself a forward convolution of dY
  // with the flipped, transposed kernel, which avoids the thin dY * W^T GEMM and col2im.
  let transposedPadding = dilation * (g.r - 1) - padding
  let viaTransposedConv =
    computeInputGradient && stride == 1 && g.r == g.s && transposedPadding >= 0
    && (isa != .portable || !g.isPointwise)
  let scatter = computeInputGradient && !viaTransposedConv
  var inputGradients: [Tensor] = []
  let parameters: (weight: Tensor, bias: Tensor?)
  if isa == .portable {
    let input = inputs.count == 1 ? inputs[0] : concatChannels(inputs)
    let r = im2colBackward(
      g, outputGradient: outputGradient, input: input, weight: weight, hasBias: hasBias,
      weightGradient: true, scatterInputGradient: scatter)
    parameters = (r.weight, r.bias)
    if scatter { inputGradients = parts.count == 1 ? [r.input] : splitChannels(r.input, sizes: parts) }
  } else {
    parameters = vectorWeightGradient(
      g, outputGradient: outputGradient, inputs: inputs, hasBias: hasBias, isa: isa)
    if scatter {
      let input = inputs.count == 1 ? inputs[0] : concatChannels(inputs)
      let dx = im2colBackward(
        g, outputGradient: outputGradient, input: input, weight: weight, hasBias: false,
        weightGradient: false, scatterInputGradient: true
      ).input
      inputGradients = parts.count == 1 ? [dx] : splitChannels(dx, sizes: parts)
    }
  }
  if viaTransposedConv {
    let flipped = flippedTransposed(weight)
    if isa == .portable {
      let dx = conv2dForward(
        outputGradient, weight: flipped, bias: nil, stride: 1, padding: transposedPadding,
        dilation: dilation, isa: isa)
      inputGradients = parts.count == 1 ? [dx] : splitChannels(dx, sizes: parts)
    } else {
      // One output per part: the kernel writes each part's gradient in place.
      let tg = ConvGeometry(
        input: outputGradient.shape, weight: flipped.shape, stride: 1,
        padding: transposedPadding, dilation: dilation)
      inputGradients = vectorForward(
        tg, inputs: [outputGradient], weight: flipped, bias: nil, isa: isa, outputs: parts
      ).outputs
    }
  }
  return (inputGradients, parameters.weight, parameters.bias)
}

/// The portable backward pass: im2col + `sgemm` per chunk of rows, one image per worker.
/// Computes the weight and bias gradients if `weightGradient`, the input gradient by col2im if
/// `scatterInputGradient` (else `input` is `[0]`).
private func im2colBackward(
  _ g: ConvGeometry, outputGradient: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
  weightGradient: Bool, scatterInputGradient: Bool
) -> (input: Tensor, weight: Tensor, bias: Tensor?) {
  let clockStart = ConvolutionClock.start()
  defer { ConvolutionClock.stop(clockStart) }
  let width = kernelWidth
  let imageRows = g.outH * g.outW
  let chunk = g.chunkRows(floats: ConvGeometry.backwardChunkFloats)
  var inputGradient = Tensor.zeros(scatterInputGradient ? input.shape : [0])
  // partials[b] holds image b's weight gradient (patch * k) followed by its bias gradient (k).
  let weightSize = g.patch * g.k
  let partialSize = weightSize + g.k
  var partials = [Float](repeating: 0, count: weightGradient ? g.n * partialSize : 0)
  inputGradient.scalars.withUnsafeMutableBufferPointer { dxb in
    partials.withUnsafeMutableBufferPointer { pb in
      input.scalars.withUnsafeBufferPointer { xb in
        weight.scalars.withUnsafeBufferPointer { wb in
          outputGradient.scalars.withUnsafeBufferPointer { dyb in
            guard let xBase = xb.baseAddress, let wBase = wb.baseAddress,
              let dyBase = dyb.baseAddress
            else { return }
            let x = SharedReads(base: xBase)
            let wt = SharedReads(base: wBase)
            let dy = SharedReads(base: dyBase)
            let partial = weightGradient ? pb.baseAddress.map { DisjointWrites(base: $0) } : nil
            // An empty array may still have a base address: test the flag, not the pointer.
            let dx = scatterInputGradient ? dxb.baseAddress.map { DisjointWrites(base: $0) } : nil
            let needsCol = !g.isPointwise && weightGradient
            let run = {
              parallelChunkBlocks(g.n, width: width) { images in
                let col = UnsafeMutablePointer<Float>.allocate(
                  capacity: needsCol ? chunk * g.patch : 1)
                defer { col.deallocate() }
                let dcol = UnsafeMutablePointer<Float>.allocate(
                  capacity: dx != nil && !g.isPointwise ? chunk * g.patch : 1)
                defer { dcol.deallocate() }
                for b in images {
                  var r0 = b * imageRows
                  while r0 < (b + 1) * imageRows {
                    let r1 = min((b + 1) * imageRows, r0 + chunk)
                    let m = r1 - r0
                    let dyChunk = dy.base + r0 * g.k
                    // Weight gradient: dW += col^T * dY.
                    if let partial {
                      let dW = partial.base + b * partialSize  // image b's [patch, k], then [k]
                      let dB = dW + weightSize
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
                    }
                    // Input gradient: dcol = dY * W^T, scattered back by col2im.
                    if let dx {
                      if !g.isPointwise {
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
  guard weightGradient else { return (inputGradient, Tensor.zeros([0]), nil) }
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

/// The vector forward pass: packed weights, then groups of output rows split among the workers
/// (`atso_conv_forward_rows`). Returns one tensor per entry of `outputs` (its channels) and,
/// when `shift` is given, the per-row statistics `[rows][2][k]` of the output.
private func vectorForward(
  _ g: ConvGeometry, inputs: [Tensor], weight: Tensor, bias: Tensor?, isa: KernelISA,
  outputs: [Int], relu: Bool = false, shift: [Float]? = nil
) -> (outputs: [Tensor], statistics: [Float]) {
  let clockStart = ConvolutionClock.start()
  defer { ConvolutionClock.stop(clockStart) }
  let shape = g.cShape
  // Winograd F(2x2, 3x3) where it pays (3x3, stride 1, padding 1, enough channels); otherwise
  // the direct kernel.
  let winograd = withUnsafePointer(to: shape) { atso_conv_winograd_applies($0, isa.cValue) != 0 }
  let packed =
    winograd
    ? winogradWeights(shape, weight, outputs: outputs, isa: isa)
    : packedWeights(shape, weight, inputs: inputs.map { $0.shape[3] }, outputs: outputs, isa: isa)
  let rows = g.n * g.outH
  // Workers take whole groups of rows (the kernel's statistics and border windows follow them).
  let group = Int(atso_conv_row_group(isa.cValue))
  let groups = (rows + group - 1) / group
  let biasScalars = bias?.scalars ?? []
  let shiftScalars = shift ?? []
  var statistics = [Float](repeating: 0, count: shift == nil ? 0 : rows * 2 * g.k)
  let results = statistics.withUnsafeMutableBufferPointer { statisticsBuffer in
    let stats = shift == nil ? nil : statisticsBuffer.baseAddress.map { DisjointWrites(base: $0) }
    return withConvInputs(inputs) { sources in
      withNewConvOutputs(outputs.map { [g.n, g.outH, g.outW, $0] }) { sinks in
        packed.withUnsafeBufferPointer { wb in
          biasScalars.withUnsafeBufferPointer { bb in
            shiftScalars.withUnsafeBufferPointer { mb in
              guard let wBase = wb.baseAddress else { return }
              let w = SharedReads(base: wBase)
              let b = bias == nil ? nil : bb.baseAddress.map { SharedReads(base: $0) }
              let m = shift == nil ? nil : mb.baseAddress.map { SharedReads(base: $0) }
              parallelChunkBlocks(groups) { block in
                // Each worker's rows own their rows of the statistics.
                var epilogue = atso_conv_epilogue(
                  bias: b?.base, relu: relu ? 1 : 0, statistics: stats?.base, shift: m?.base)
                let r0 = Int32(block.lowerBound * group)
                let r1 = Int32(min(rows, block.upperBound * group))
                withUnsafePointer(to: shape) { s in
                  if winograd {
                    atso_conv_winograd_rows(
                      s, isa.cValue, sources.base, Int32(inputs.count), w.base, &epilogue,
                      sinks.base, Int32(outputs.count), r0, r1)
                  } else {
                    atso_conv_forward_rows(
                      s, isa.cValue, sources.base, Int32(inputs.count), w.base, &epilogue,
                      sinks.base, Int32(outputs.count), r0, r1)
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return (results, statistics)
}

/// Calls `body` with the C descriptions of `inputs` (valid during the call).
private func withConvInputs<R>(
  _ inputs: [Tensor], _ body: (SharedReads<atso_conv_input>) -> R
) -> R {
  var sources: [atso_conv_input] = []
  func visit(_ i: Int) -> R {
    guard i < inputs.count else {
      return sources.withUnsafeBufferPointer { b in
        guard let base = b.baseAddress else {
          preconditionFailure("a convolution needs at least one input")
        }
        return body(SharedReads(base: base))
      }
    }
    return inputs[i].scalars.withUnsafeBufferPointer { xb in
      sources.append(atso_conv_input(data: xb.baseAddress, channels: Int32(inputs[i].shape[3])))
      return visit(i + 1)
    }
  }
  return visit(0)
}

/// New tensors of `shapes` (`[n, h, w, c_i]`), whose scalars `body` must all write through the C
/// descriptions it receives (valid during the call).
private func withNewConvOutputs(
  _ shapes: [[Int]], _ body: (SharedReads<atso_conv_output>) -> Void
) -> [Tensor] {
  var sinks: [atso_conv_output] = []
  func level(_ i: Int) -> [[Float]] {
    guard i < shapes.count else {
      sinks.withUnsafeBufferPointer { b in b.baseAddress.map { body(SharedReads(base: $0)) } }
      return []
    }
    let count = shapes[i].reduce(1, *)
    var rest: [[Float]] = []
    let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      sinks.append(atso_conv_output(data: buffer.baseAddress, channels: Int32(shapes[i][3])))
      rest = level(i + 1)
      initialized = count
    }
    return [scalars] + rest
  }
  return zip(shapes, level(0)).map { Tensor(shape: $0, scalars: $1) }
}

/// The weights packed for the vector kernels of `isa`, for inputs of `inputs` channels and
/// outputs of `outputs` channels.
private func packedWeights(
  _ shape: atso_conv_shape, _ weight: Tensor, inputs: [Int], outputs: [Int], isa: KernelISA
) -> [Float] {
  let channels = outputs.map { Int32($0) }
  let inputChannels = inputs.map { Int32($0) }
  return withUnsafePointer(to: shape) { s in
    let count = atso_conv_packed_size(s, isa.cValue, channels, Int32(channels.count))
    return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      weight.scalars.withUnsafeBufferPointer { wb in
        if let base = buffer.baseAddress, let w = wb.baseAddress {
          atso_conv_pack(
            s, isa.cValue, w, inputChannels, Int32(inputChannels.count), channels,
            Int32(channels.count), base)
        }
      }
      initialized = count
    }
  }
}

/// The weights transformed and packed for the Winograd kernels of `isa`, for outputs of
/// `outputs` channels.
private func winogradWeights(
  _ shape: atso_conv_shape, _ weight: Tensor, outputs: [Int], isa: KernelISA
) -> [Float] {
  let channels = outputs.map { Int32($0) }
  return withUnsafePointer(to: shape) { s in
    let count = atso_conv_winograd_packed_size(s, isa.cValue, channels, Int32(channels.count))
    return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      weight.scalars.withUnsafeBufferPointer { wb in
        if let base = buffer.baseAddress, let w = wb.baseAddress {
          atso_conv_winograd_pack(s, isa.cValue, w, channels, Int32(channels.count), base)
        }
      }
      initialized = count
    }
  }
}

/// The vector weight gradient and the bias gradient (``channelSums(rows:c:quantities:_:)``).
///
/// Two splits among the workers, chosen by the sizes only (``weightGradientRowChunks(_:)``):
/// - activations that fit the caches: weight tiles (each summed over all pixels in order), in
///   blocks that the workers claim; every block reads all of the input and the gradient;
/// - larger activations (the full-resolution layers): fixed chunks of output rows, each summed
///   into its own copy of `dW` (all tiles, the largest ones), the copies then added in chunk
///   order. Every row is read once, whatever the number of workers.
/// Neither depends on the thread count.
private func vectorWeightGradient(
  _ g: ConvGeometry, outputGradient: Tensor, inputs: [Tensor], hasBias: Bool, isa: KernelISA
) -> (weight: Tensor, bias: Tensor?) {
  let clockStart = ConvolutionClock.start()
  defer { ConvolutionClock.stop(clockStart) }
  let shape = g.cShape
  let rows = g.n * g.outH
  let weightSize = g.r * g.s * g.c * g.k
  let rowChunks = weightGradientRowChunks(g)
  let width = kernelWidth
  // Tiles split: enough tiles for the workers to share them evenly (more, smaller tiles; same
  // results). Rows split: the largest tiles.
  let minimumTiles = Int32(rowChunks > 1 || width == 1 ? 1 : 8 * width)
  let dw = withConvInputs(inputs) { sources -> Tensor in
    let tiles = withUnsafePointer(to: shape) {
      atso_conv_weight_tiles($0, isa.cValue, sources.base, Int32(inputs.count), minimumTiles)
    }
    return outputGradient.scalars.withUnsafeBufferPointer { dyb -> Tensor in
      guard let dyBase = dyb.baseAddress else { return Tensor.zeros([g.r, g.s, g.c, g.k]) }
      let dy = SharedReads(base: dyBase)
      // [rowChunks][r][s][c][k]: chunk i's sums; with one chunk, dW itself.
      let partials = Tensor.filled(shape: [rowChunks * weightSize]) { out in
        guard let outBase = out.baseAddress else { return }
        let sums = DisjointWrites(base: outBase)  // chunks and tiles own disjoint parts
        if rowChunks == 1 {
          out.update(repeating: 0)
          // One block of tiles per worker: a call reads every row of the input and gradient.
          parallelChunkBlocks(Int(tiles), width: width, piecesPerWorker: 1) { block in
            withUnsafePointer(to: shape) { s in
              atso_conv_weight_gradient(
                s, isa.cValue, sources.base, Int32(inputs.count), minimumTiles, dy.base,
                sums.base, Int32(block.lowerBound), Int32(block.upperBound), 0, Int32(rows))
            }
          }
          return
        }
        parallelChunks(rowChunks, width: width) { i in
          let own = sums.base + i * weightSize
          own.update(repeating: 0, count: weightSize)
          withUnsafePointer(to: shape) { s in
            atso_conv_weight_gradient(
              s, isa.cValue, sources.base, Int32(inputs.count), minimumTiles, dy.base, own, 0,
              tiles, Int32(rows * i / rowChunks), Int32(rows * (i + 1) / rowChunks))
          }
        }
      }
      guard rowChunks > 1 else { return Tensor(shape: [g.r, g.s, g.c, g.k], scalars: partials.scalars) }
      return partials.scalars.withUnsafeBufferPointer { pb in
        let p = SharedReads(base: pb.baseAddress!)
        return Tensor.filled(shape: [g.r, g.s, g.c, g.k]) { out in
          let dst = DisjointWrites(base: out.baseAddress!)
          parallelChunks((weightSize + elementwiseChunk - 1) / elementwiseChunk, width: width) {
            block in
            let range = (block * elementwiseChunk)..<min(weightSize, (block + 1) * elementwiseChunk)
            for j in range { dst.base[j] = p.base[j] }
            for i in 1..<rowChunks {
              let chunk = p.base + i * weightSize
              for j in range { dst.base[j] += chunk[j] }
            }
          }
        }
      }
    }
  }
  guard hasBias else { return (dw, nil) }
  let k = g.k
  let sums = outputGradient.scalars.withUnsafeBufferPointer { dyb -> [Double] in
    guard let dyBase = dyb.baseAddress else { return [Double](repeating: 0, count: k) }
    let dy = SharedReads(base: dyBase)
    let isa = isa.cValue
    return channelSums(rows: g.rows, c: k, quantities: 1) { range, s in
      atso_channel_moments(isa, dy.base, Int32(k), range.lowerBound, range.upperBound, nil, s, nil)
    }
  }
  return (dw, Tensor(shape: [k], scalars: sums.map { Float($0) }))
}

/// The row chunks of a weight gradient (see ``vectorWeightGradient(_:outputGradient:inputs:hasBias:isa:)``):
/// 1 (split the tiles) when the input and the output gradient together fit in 8 MiB, otherwise
/// up to 32 chunks of at least 8 output rows, with their copies of `dW` within 2 MiB (2^19
/// scalars: zeroing and adding them costs little next to the gradient itself).
private func weightGradientRowChunks(_ g: ConvGeometry) -> Int {
  let activationBytes = 4 * (g.n * g.h * g.w * g.c + g.rows * g.k)
  guard activationBytes > 1 << 23 else { return 1 }
  let weightSize = g.r * g.s * g.c * g.k
  return max(1, min(g.n * g.outH / 8, 32, (1 << 19) / max(1, weightSize)))
}

/// The kernel of the transposed convolution: `w'[r - 1 - ky, s - 1 - kx, k, c] = w[ky, kx, c, k]`.
///
/// For stride 1, `conv(dY, w', padding: dilation * (r - 1) - padding)` is the input gradient of
/// `conv(x, w, padding: padding)`.
package func flippedTransposed(_ weight: Tensor) -> Tensor {
  let (r, s, c, k) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
  var out = Tensor.zeros([r, s, k, c])
  for ky in 0..<r {
    for kx in 0..<s {
      let src = (ky * s + kx) * c * k
      let dst = ((r - 1 - ky) * s + (s - 1 - kx)) * k * c
      for ci in 0..<c {
        for j in 0..<k { out.scalars[dst + j * c + ci] = weight.scalars[src + ci * k + j] }
      }
    }
  }
  return out
}
