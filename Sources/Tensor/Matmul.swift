/// Matrix product of 2-D tensors: `[m, k] x [k, n] -> [m, n]`.
///
/// One ``sgemm`` call, multi-threaded by OpenBLAS itself (``BLASThreads``); do not call it from
/// inside a parallel loop. Returns a new tensor.
/// - Precondition: `a` is `[m, k]` and `b` is `[k, n]`.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
  precondition(
    a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[0],
    "matmul needs [m, k] x [k, n], got \(a.shape) x \(b.shape)")
  let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
  var c = Tensor.zeros([m, n])
  c.scalars.withUnsafeMutableBufferPointer { cb in
    a.scalars.withUnsafeBufferPointer { ab in
      b.scalars.withUnsafeBufferPointer { bb in
        guard let cBase = cb.baseAddress, let aBase = ab.baseAddress, let bBase = bb.baseAddress,
          k > 0
        else { return }
        sgemm(
          transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: aBase, lda: k,
          b: bBase, ldb: n, beta: 0, c: cBase, ldc: n)
      }
    }
  }
  return c
}
