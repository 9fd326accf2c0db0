/// Rectified linear unit, element-wise.
///
/// Threads: fixed chunks of ``elementwiseChunk`` scalars over ``kernelWidth`` workers.

/// Applies `f` to the scalars of `x` element-wise in parallel chunks, into a new tensor.
package func mapElements(
  _ x: Tensor, _ f: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
) -> Tensor {
  Tensor.filled(shape: x.shape) { out in
    x.scalars.withUnsafeBufferPointer { xb in
      guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
      let src = SharedReads(base: xBase)
      let dst = DisjointWrites(base: outBase)
      let count = xb.count
      parallelChunks((count + elementwiseChunk - 1) / elementwiseChunk) { i in
        let lo = i * elementwiseChunk
        f(src.base + lo, dst.base + lo, min(count, lo + elementwiseChunk) - lo)
      }
    }
  }
}

/// Combines the scalars of `a` and `b` element-wise in parallel chunks, into a new tensor.
package func zipElements(
  _ a: Tensor, _ b: Tensor,
  _ f: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int)
    -> Void
) -> Tensor {
  precondition(a.count == b.count, "element-wise operands differ: \(a.shape) and \(b.shape)")
  return Tensor.filled(shape: a.shape) { out in
    a.scalars.withUnsafeBufferPointer { ab in
      b.scalars.withUnsafeBufferPointer { bb in
        guard let outBase = out.baseAddress, let aBase = ab.baseAddress,
          let bBase = bb.baseAddress
        else { return }
        let sa = SharedReads(base: aBase)
        let sb = SharedReads(base: bBase)
        let dst = DisjointWrites(base: outBase)
        let count = ab.count
        parallelChunks((count + elementwiseChunk - 1) / elementwiseChunk) { i in
          let lo = i * elementwiseChunk
          f(sa.base + lo, sb.base + lo, dst.base + lo, min(count, lo + elementwiseChunk) - lo)
        }
      }
    }
  }
}

/// The rectified linear unit `max(0, x)`, element-wise; returns a new tensor of `x`'s shape.
public func reluForward(_ x: Tensor) -> Tensor {
  mapElements(x) { src, dst, n in
    for i in 0..<n { dst[i] = max(0, src[i]) }
  }
}

/// The gradient of ``reluForward(_:)``: `outputGradient` where `output > 0`, else 0.
///
/// `output` is the forward's result (the same mask as the input's sign). Returns a new tensor.
/// - Precondition: the shapes are equal.
public func reluBackward(outputGradient: Tensor, output: Tensor) -> Tensor {
  precondition(
    outputGradient.shape == output.shape,
    "relu gradient \(outputGradient.shape) != output \(output.shape)")
  return zipElements(outputGradient, output) { dy, y, dx, n in
    for i in 0..<n { dx[i] = y[i] > 0 ? dy[i] : 0 }
  }
}
