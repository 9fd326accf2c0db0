import Dispatch
import Foundation
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
  if KernelPool.shared.run(chunks, workers: workers, body) { return }
  // The pool is serving another loop (a nested loop, or kernels called from two threads).
  let next = Atomic<Int>(0)
  DispatchQueue.concurrentPerform(iterations: workers) { _ in
    while true {
      let i = next.add(1, ordering: .relaxed).oldValue
      guard i < chunks else { return }
      body(i)
    }
  }
}

/// The kernels' persistent worker threads: the calling thread and `width - 1` of them run a
/// parallel loop's chunks.
///
/// A loop of a few microseconds a chunk (the layers of a 96x128 batch) cannot wait for a
/// sleeping thread to be woken for every call, as `DispatchQueue.concurrentPerform` does (tens
/// of microseconds on a loaded machine), so after a loop the workers poll for the next one for
/// a short while (``spinNanoseconds``: 20 us busy, then yielding the core to any other runnable
/// thread) before they sleep on a condition. A worker joins a loop only while it is open: the
/// caller closes it once every chunk is claimed and waits only for the workers that are inside
/// a chunk, so a worker whose core another process holds delays nothing.
///
/// `ATSO_KERNEL_SPIN_US` sets the polling time in microseconds (default 200); 0 turns the pool
/// off (every loop then runs on `DispatchQueue.concurrentPerform`).
final class KernelPool: @unchecked Sendable {
  static let shared = KernelPool()

  /// How long an idle worker polls for the next loop before it sleeps (0: no pool).
  let spinNanoseconds: UInt64

  private let owned = Atomic<Bool>(false)  // a caller runs a loop on the pool
  private let generation = Atomic<Int>(0)  // the current loop's number
  private let closed = Atomic<Int>(0)  // the number of the last loop closed to new workers
  private let nextChunk = Atomic<Int>(0)
  private let seats = Atomic<Int>(0)  // workers that took a seat in the current loop
  private let active = Atomic<Int>(0)  // workers between joining and leaving a loop
  private let sleeping = Atomic<Int>(0)
  private let wake = NSCondition()
  // The current loop, written by its caller before `generation` moves and read by a worker
  // only while the loop is open (see `work`).
  private var body: ((Int) -> Void)?
  private var chunks = 0
  private var helpers = 0  // seats: the loop's width - 1
  private var threads = 0  // started workers (guarded by `owned`)

  private init() {
    let microseconds = ProcessInfo.processInfo.environment["ATSO_KERNEL_SPIN_US"].flatMap(UInt64.init)
    spinNanoseconds = (microseconds ?? 200) * 1000
  }

  /// Runs `body` on `0..<chunks` with the caller and `workers - 1` pool threads; false (nothing
  /// run) when the pool is off or already running a loop.
  func run(_ chunks: Int, workers: Int, _ body: (Int) -> Void) -> Bool {
    guard spinNanoseconds > 0,
      owned.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    else { return false }
    while threads < workers - 1 {
      Thread { KernelPool.shared.work() }.start()
      threads += 1
    }
    withoutActuallyEscaping(body) { body in
      self.body = body
      self.chunks = chunks
      helpers = workers - 1
      nextChunk.store(0, ordering: .relaxed)
      seats.store(0, ordering: .relaxed)
      let loop = generation.add(1, ordering: .sequentiallyConsistent).newValue
      if sleeping.load(ordering: .sequentiallyConsistent) > 0 {
        wake.lock()
        wake.broadcast()
        wake.unlock()
      }
      while case let i = nextChunk.add(1, ordering: .relaxed).oldValue, i < chunks { body(i) }
      // Closed: a worker that arrives now leaves at once; wait for those inside a chunk.
      closed.store(loop, ordering: .sequentiallyConsistent)
      var polls = 0
      while active.load(ordering: .sequentiallyConsistent) != 0 {
        polls += 1
        if polls & 1023 == 0 { sched_yield() }  // the worker may wait for this core
      }
      self.body = nil
    }
    owned.store(false, ordering: .releasing)
    return true
  }

  /// A worker thread: wait for a loop, claim its chunks while there are any, repeat.
  private func work() {
    var seen = generation.load(ordering: .acquiring)
    while true {
      var loop = generation.load(ordering: .acquiring)
      if loop == seen {
        let start = DispatchTime.now().uptimeNanoseconds
        var polls = 0
        while loop == seen {
          polls += 1
          if polls & 255 == 0 {
            let waited = DispatchTime.now().uptimeNanoseconds &- start
            if waited > spinNanoseconds {
              wake.lock()
              sleeping.add(1, ordering: .sequentiallyConsistent)
              while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
              sleeping.subtract(1, ordering: .sequentiallyConsistent)
              wake.unlock()
            } else if waited > 20_000 {
              sched_yield()
            }
          }
          loop = generation.load(ordering: .acquiring)
        }
      }
      seen = loop
      // Joining before looking at `generation` and `closed` (all sequentially consistent) means
      // that either the caller waits for this worker or this worker sees its loop closed or gone
      // (a worker late by several loops must not join a later one that is being closed).
      active.add(1, ordering: .sequentiallyConsistent)
      if generation.load(ordering: .sequentiallyConsistent) == loop,
        closed.load(ordering: .sequentiallyConsistent) != loop,
        seats.add(1, ordering: .relaxed).oldValue < helpers
      {
        runChunks()
      }
      active.subtract(1, ordering: .releasing)
    }
  }

  /// Claims and runs chunks of the open loop until none is left.
  @inline(never)
  private func runChunks() {
    guard let body else { return }
    while case let i = nextChunk.add(1, ordering: .relaxed).oldValue, i < chunks { body(i) }
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
