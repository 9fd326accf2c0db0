import Dispatch

/// Parallel-loop helpers shared by the kernels of this module.
///
/// Every kernel runs on ``kernelWidth`` workers: the kernel thread count at call time
/// (``BLASThreads/count``), so that one knob (`OPENBLAS_NUM_THREADS` or ``BLASThreads/set(_:)``)
/// sets the parallelism of the whole toolkit. Work is split into coarse, contiguous blocks with
/// `DispatchQueue.concurrentPerform`; the split depends only on the sizes and the width, so a
/// kernel gives bit-identical results for the same inputs and width. Reductions use fixed chunk
/// sizes that do not depend on the width at all, unless their documentation says otherwise.

/// The number of workers a kernel uses: ``BLASThreads/count``, at least 1.
package var kernelWidth: Int { max(1, BLASThreads.count) }

/// Runs `body(chunk)` for every `chunk` in `0..<chunks`, on up to `width` workers; worker `t`
/// takes the contiguous block `chunks * t / workers ..< chunks * (t + 1) / workers`.
///
/// With one worker (or one chunk) the loop runs inline on the calling thread.
package func parallelChunks(
  _ chunks: Int, width: Int = kernelWidth, _ body: @Sendable (Int) -> Void
) {
  guard chunks > 0 else { return }
  let workers = min(max(1, width), chunks)
  if workers == 1 {
    for i in 0..<chunks { body(i) }
    return
  }
  DispatchQueue.concurrentPerform(iterations: workers) { t in
    for i in (chunks * t / workers)..<(chunks * (t + 1) / workers) { body(i) }
  }
}

/// Runs `body(block)` on up to `width` workers, each with one contiguous block of chunk indices
/// that together cover `0..<chunks` (worker `t` gets `chunks * t / workers ..< chunks * (t + 1) /
/// workers`). Use it when a worker needs scratch memory for all of its chunks.
package func parallelChunkBlocks(
  _ chunks: Int, width: Int = kernelWidth, _ body: @Sendable (Range<Int>) -> Void
) {
  guard chunks > 0 else { return }
  let workers = min(max(1, width), chunks)
  if workers == 1 {
    body(0..<chunks)
    return
  }
  DispatchQueue.concurrentPerform(iterations: workers) { t in
    body((chunks * t / workers)..<(chunks * (t + 1) / workers))
  }
}

/// Runs `body`, which calls ``sgemm`` from inside a parallel loop. OpenBLAS is pinned to one
/// thread (see ``BLASThreads``), so BLAS threads are never nested inside the loop's workers and
/// no global setting is changed here.
package func withSingleThreadedBLAS<R>(_ body: () -> R) -> R {
  body()
}

extension Tensor {
  /// Creates a tensor whose scalars `body` writes, every one of them, through a buffer pointer.
  ///
  /// The storage is not zeroed first: `body` must overwrite all `shape.reduce(1, *)` scalars.
  package static func filled(
    shape: [Int], _ body: (UnsafeMutableBufferPointer<Float>) -> Void
  ) -> Tensor {
    let count = shape.reduce(1, *)
    let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      body(buffer)
      initialized = count
    }
    return Tensor(shape: shape, scalars: scalars)
  }
}

/// Elements per chunk of the element-wise kernels (128 KiB of `Float`).
package let elementwiseChunk = 1 << 15
