import Dispatch

/// Matrix product of 2-D tensors: `[m, k] x [k, n] -> [m, n]`.
///
/// The rows are split over ``BLASThreads/count`` workers, each running one single-threaded
/// ``sgemm`` (OpenBLAS is pinned to one thread, see ``BLASThreads``). Returns a new tensor.
/// - Precondition: `a` is `[m, k]` and `b` is `[k, n]`.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
  precondition(
    a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[0],
    "matmul needs [m, k] x [k, n], got \(a.shape) x \(b.shape)")
  let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
  var c = Tensor.zeros([m, n])
  guard m > 0, n > 0, k > 0 else { return c }
  let width = min(kernelWidth, m)
  c.scalars.withUnsafeMutableBufferPointer { cb in
    a.scalars.withUnsafeBufferPointer { ab in
      b.scalars.withUnsafeBufferPointer { bb in
        guard let cBase = cb.baseAddress, let aBase = ab.baseAddress, let bBase = bb.baseAddress
        else { return }
        let out = DisjointWrites(base: cBase)
        let left = SharedReads(base: aBase)
        let right = SharedReads(base: bBase)
        // Worker t owns rows [m * t / width, m * (t + 1) / width) of a and c.
        DispatchQueue.concurrentPerform(iterations: width) { t in
          let r0 = m * t / width
          let r1 = m * (t + 1) / width
          guard r1 > r0 else { return }
          sgemm(
            transposeA: false, transposeB: false, m: r1 - r0, n: n, k: k, alpha: 1,
            a: left.base + r0 * k, lda: k, b: right.base, ldb: n, beta: 0,
            c: out.base + r0 * n, ldc: n)
        }
      }
    }
  }
  return c
}
