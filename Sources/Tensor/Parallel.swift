import Dispatch
import Synchronization

/// Parallel-loop helpers shared by the kernels of this module.
///
/// Every kernel runs on ``kernelWidth`` workers: the kernel thread count at call time
/// (``BLASThreads/count``), so that one knob (`OPENBLAS_NUM_THREADS` or ``BLASThreads/set(_:)``)
/// sets the parallelism of the whole toolkit. Work is cut into chunks (or contiguous blocks of
/// chunks) that the workers claim one after the other from a shared counter, so that a worker
/// whose core is busy with another process takes fewer of them instead of holding the others
/// up. Which worker runs a chunk never changes what the chunk computes: every chunk writes its
/// own outputs, and the cut depends only on the sizes and the width, so a kernel gives
/// bit-identical results for the same inputs and width. Reductions use fixed chunk sizes that do
/// not depend on the width at all, unless their documentation says otherwise.

/// The number of workers a kernel uses: ``BLASThreads/count``, at least 1.
package var kernelWidth: Int { max(1, BLASThreads.count) }

/// Runs `body(chunk)` for every `chunk` in `0..<chunks`, on up to `width` workers that claim the
/// chunks in increasing order as they become free.
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
  let next = Atomic<Int>(0)
  DispatchQueue.concurrentPerform(iterations: workers) { _ in
    while true {
      let i = next.add(1, ordering: .relaxed).oldValue
      guard i < chunks else { return }
      body(i)
    }
  }
}

/// Runs `body(block)` on contiguous blocks of chunk indices that together cover `0..<chunks`:
/// `piecesPerWorker` blocks per worker (fewer if there are fewer chunks), block `p` of `P` being
/// `chunks * p / P ..< chunks * (p + 1) / P`, claimed by up to `width` workers as they become
/// free. Use it when a call needs scratch memory for a run of chunks, or reads shared data once
/// per call (`piecesPerWorker: 1` then reads it once per worker).
package func parallelChunkBlocks(
  _ chunks: Int, width: Int = kernelWidth, piecesPerWorker: Int = 4,
  _ body: @Sendable (Range<Int>) -> Void
) {
  guard chunks > 0 else { return }
  let workers = min(max(1, width), chunks)
  if workers == 1 {
    body(0..<chunks)
    return
  }
  let pieces = min(chunks, workers * max(1, piecesPerWorker))
  parallelChunks(pieces, width: workers) { p in
    body((chunks * p / pieces)..<(chunks * (p + 1) / pieces))
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
