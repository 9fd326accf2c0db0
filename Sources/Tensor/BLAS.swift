import COpenBLAS

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

/// OpenBLAS's thread count. The corresponding C calls are `openblas_set_num_threads` and
/// `openblas_get_num_threads`.
public enum BLASThreads {
  /// The number of threads OpenBLAS uses for one GEMM.
  public static var count: Int { Int(openblas_get_num_threads()) }
  /// Sets the number of threads OpenBLAS uses for one GEMM.
  public static func set(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
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
  cblas_sgemm(
    CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
