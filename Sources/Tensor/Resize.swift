import CKernels

/// Bilinear resizing of NHWC tensors with `align_corners = false` (PyTorch `F.interpolate`).
///
/// For an output coordinate `d` along an axis of input size `i` and output size `o`:
/// ```
/// scale = i / o
/// src   = max(0, (d + 0.5) * scale - 0.5)
/// i0    = floor(src),  i1 = min(i0 + 1, i - 1),  l1 = src - i0,  l0 = 1 - l1
/// ```
/// and the output is the product of the two axes' interpolations. Any sizes work, up or down
/// (downsampling does not anti-alias, as in PyTorch's default).
///
/// Threads: forward splits output rows; backward splits images (and channel blocks when there
/// are fewer images than workers).

/// The two taps and weights of every output coordinate along one axis.
package struct BilinearTaps: Sendable {
  package var first: [Int32]
  package var second: [Int32]
  package var firstWeight: [Float]
  package var secondWeight: [Float]

  /// PyTorch's `area_pixel_compute_source_index` with `align_corners = false`, in `Float`.
  package init(input: Int, output: Int) {
    let scale = Float(input) / Float(output)
    first = []; second = []; firstWeight = []; secondWeight = []
    for d in 0..<output {
      let src = max(0, scale * (Float(d) + 0.5) - 0.5)
      let i0 = min(Int(src), input - 1)
      let i1 = i0 < input - 1 ? i0 + 1 : i0
      let l1 = src - Float(i0)
      first.append(Int32(i0)); second.append(Int32(i1))
      firstWeight.append(1 - l1); secondWeight.append(l1)
    }
  }
}

/// Resizes images bilinearly to `height x width` (`align_corners = false`).
///
/// `x` is `[n, h, w, c]`; returns a new `[n, height, width, c]` tensor.
/// - Precondition: all sizes are positive.
public func resizeBilinearForward(_ x: Tensor, height: Int, width: Int) -> Tensor {
  precondition(x.rank == 4, "resize input must be [n, h, w, c], got \(x.shape)")
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  precondition(h >= 1 && w >= 1 && height >= 1 && width >= 1,
               "resize from \(x.shape) to \(height)x\(width)")
  let ty = BilinearTaps(input: h, output: height)
  let tx = BilinearTaps(input: w, output: width)
  return Tensor.filled(shape: [n, height, width, c]) { out in
    x.scalars.withUnsafeBufferPointer { xb in
      guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
      let src = SharedReads(base: xBase)
      let dst = DisjointWrites(base: outBase)
      let isa = KernelISA.best.cValue
      parallelChunkBlocks(n * height) { rows in  // row = b * height + oy
        // The tap arrays pass as pointers valid for the call.
        atso_resize_rows(
          isa, src.base, Int32(h), Int32(w), Int32(c), Int32(height), Int32(width), ty.first,
          ty.second, ty.firstWeight, ty.secondWeight, tx.first, tx.second, tx.firstWeight,
          tx.secondWeight, dst.base, rows.lowerBound, rows.upperBound)
      }
    }
  }
}

/// The gradient of ``resizeBilinearForward(_:height:width:)``: each output gradient is spread
/// over its four input taps with the bilinear weights.
///
/// `outputGradient` is `[n, height, width, c]`; returns a new `[n, inputHeight, inputWidth, c]`.
public func resizeBilinearBackward(
  outputGradient: Tensor, inputHeight: Int, inputWidth: Int
) -> Tensor {
  precondition(outputGradient.rank == 4, "resize gradient must be [n, h, w, c]")
  let (n, height, width, c) = (
    outputGradient.shape[0], outputGradient.shape[1], outputGradient.shape[2],
    outputGradient.shape[3]
  )
  let (h, w) = (inputHeight, inputWidth)
  precondition(h >= 1 && w >= 1 && height >= 1 && width >= 1,
               "resize gradient from \(outputGradient.shape) to \(h)x\(w)")
  let ty = BilinearTaps(input: h, output: height)
  let tx = BilinearTaps(input: w, output: width)
  var dx = Tensor.zeros([n, h, w, c])
  dx.scalars.withUnsafeMutableBufferPointer { dxb in
    outputGradient.scalars.withUnsafeBufferPointer { dyb in
      guard let dxBase = dxb.baseAddress, let dyBase = dyb.baseAddress else { return }
      let dst = DisjointWrites(base: dxBase)
      let dy = SharedReads(base: dyBase)
      let isa = KernelISA.best.cValue
      parallelImagesAndChannels(n: n, c: c) { b, channels in
        atso_resize_backward_image(
          isa, dy.base, Int32(h), Int32(w), Int32(c), Int32(height), Int32(width), ty.first,
          ty.second, ty.firstWeight, ty.secondWeight, tx.first, tx.second, tx.firstWeight,
          tx.secondWeight, dst.base, b, Int32(channels.lowerBound), Int32(channels.upperBound))
      }
    }
  }
  return dx
}
