import COpenBLAS
import Synchronization

/// The one file that talks to OpenBLAS.

/// A base pointer shared by parallel workers that write disjoint index ranges.
/// Valid only while the owning buffer is alive and the ranges do not overlap.
package struct DisjointWrites<Element>: @unchecked Sendable {
  package let base: UnsafeMutablePointer<Element>
  package init(base: UnsafeMutablePointer<Element>) { self.base = base }
}

/// A base pointer shared read-only by parallel workers.
package struct SharedReads<Element>: @unchecked Sendable {
  package let base: UnsafePointer<Element>
  package init(base: UnsafePointer<Element>) { self.base = base }
}

/// The process-wide thread count of the toolkit's kernels, held apart from OpenBLAS.
///
/// OpenBLAS itself is pinned to one thread the first time any kernel runs: the kernels call
/// ``sgemm`` from inside their own parallel loops, and a process-global OpenBLAS setting that
/// kernels raised and lowered around their calls raced between concurrent callers (one caller's
/// "1 thread" leaked into another's parallel loop, and OpenBLAS's multi-threaded GEMM rounds
/// differently), which broke "same seed and thread count, same numbers".
final class KernelThreadSetting: Sendable {
  let value: Atomic<Int>

  init() {
    // OPENBLAS_NUM_THREADS (or OpenBLAS's default, the core count) sets the initial width.
    let initial = max(1, Int(openblas_get_num_threads()))
    openblas_set_num_threads(1)
    value = Atomic(initial)
  }
}

let kernelThreadSetting = KernelThreadSetting()

/// The number of threads the kernels use (parallel loops over coarse chunks; OpenBLAS runs
/// single-threaded inside them). Its initial value is OpenBLAS's own (`OPENBLAS_NUM_THREADS`, else
/// the core count). The corresponding C calls are `openblas_get_num_threads` (read once) and
/// `openblas_set_num_threads` (pinned to 1).
public enum BLASThreads {
  /// The number of threads a kernel uses.
  public static var count: Int { kernelThreadSetting.value.load(ordering: .relaxed) }
  /// Sets the number of threads every later kernel call uses (at least 1).
  public static func set(_ n: Int) { kernelThreadSetting.value.store(max(1, n), ordering: .relaxed) }
}

/// Single-precision GEMM on row-major matrices: `c = alpha * op(a) * op(b) + beta * c`.
///
/// `op(a)` is `m x k`, `op(b)` is `k x n`, `c` is `m x n`; `lda`, `ldb`, `ldc` are the row strides of
/// the matrices as stored. The corresponding C call is `cblas_sgemm` with `CblasRowMajor`.
/// - Precondition: the pointers address buffers large enough for the stated shapes.
@inline(__always)
package func sgemm(
  transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
  alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
  _ = kernelThreadSetting  // pins OpenBLAS to one thread before its first use
  cblas_sgemm(
    CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
