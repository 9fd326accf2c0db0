import Foundation
import Tensor

/// Where a ``DataLoader`` stands: enough to resume training exactly.
///
/// The randomness is counter-based: the sample order of epoch `e` and the augmentation draws of
/// each slot derive from `generator`, which is a pure function of `(seed, epoch)`. So the state
/// is `(epoch, position, generator)` plus the sizes it was made for, and a restored loader
/// yields the same batches, bit for bit, as the one that was saved.
public struct LoaderState: Sendable, Equatable, Codable {
  /// The seed the loader was created with.
  public var seed: UInt64
  /// The current epoch (0-based).
  public var epoch: Int
  /// The index, within the epoch, of the next batch to be returned.
  public var position: Int
  /// The generator of the current epoch, at the start of the epoch.
  public var generator: SeededGenerator
  /// The dataset size the state was made for (a resume check).
  public var sampleCount: Int
  /// The batch size the state was made for (a resume check).
  public var batchSize: Int

  /// The state at the start of training.
  public init(seed: UInt64, sampleCount: Int, batchSize: Int) {
    self.seed = seed
    self.epoch = 0
    self.position = 0
    self.generator = LoaderState.epochGenerator(seed: seed, epoch: 0)
    self.sampleCount = sampleCount
    self.batchSize = batchSize
  }

  /// The generator of epoch `epoch`.
  public static func epochGenerator(seed: UInt64, epoch: Int) -> SeededGenerator {
    SeededGenerator(seed: seed ^ (UInt64(truncatingIfNeeded: epoch + 1) &* 0xD1B5_4A32_D192_ED03))
  }
}

/// The sample order and per-slot augmentation seeds of one epoch.
struct EpochPlan: Sendable {
  var order: [Int]
  var generator: SeededGenerator

  init(sampleCount: Int, shuffle: Bool, generator start: SeededGenerator) {
    var g = start
    var order = Array(0..<sampleCount)
    if shuffle && sampleCount > 1 {
      for i in stride(from: sampleCount - 1, to: 0, by: -1) {
        let j = Int(g.next() % UInt64(i + 1))
        order.swapAt(i, j)
      }
    }
    self.order = order
    self.generator = g
  }

  /// The augmentation generator of slot `slot` (independent of scheduling).
  func sampleGenerator(slot: Int) -> SeededGenerator {
    SeededGenerator(
      seed: generator.state[0] ^ (UInt64(truncatingIfNeeded: slot + 1) &* 0x9E37_79B9_7F4A_7C15))
  }
}

/// A shuffled, augmented, resumable stream of batches, decoded on background threads.
///
/// Epoch `e` visits the samples in an order drawn from ``LoaderState/epochGenerator(seed:epoch:)``;
/// each batch is decoded, label-mapped (once) and augmented by a pool of worker threads that run
/// at most `prefetch` batches ahead of the consumer, so memory stays flat (but for the samples
/// kept at the working size, `keptBytes`). Results are returned
/// strictly in order and do not depend on the number of workers or on timing.
///
/// ```swift
/// let loader = try DataLoader(dataset: cityscapes, labelTable: table,
///                             augmentation: .training(workingSize: w, cropSize: c, ignoreIndex: .standard),
///                             batchSize: 4, seed: 1)
/// let batch = try loader.next()      // Batch: images [4, h, w, 3], labels, ids
/// let saved = loader.state           // Codable; resume with DataLoader(..., resumingFrom: saved)
/// ```
public final class DataLoader: @unchecked Sendable {
  /// The samples.
  public let dataset: Dataset
  /// The number of samples per batch.
  public let batchSize: Int
  /// The number of batches in one epoch.
  public let batchesPerEpoch: Int
  private let pipeline: Pipeline

  /// Creates a loader and starts its worker threads.
  ///
  /// - Parameters:
  ///   - dataset: the samples; unlabelled samples get labels equal to the ignore index.
  ///   - labelTable: 256 entries mapping label pixels to class ids (`nil` keeps pixels).
  ///   - augmentation: the pre-processing recipe. All samples of a batch must come out the
  ///     same size: use a crop size or a working size.
  ///   - batchSize: samples per batch.
  ///   - seed: the seed of every random draw (order and augmentation).
  ///   - shuffle: shuffle each epoch (`false` keeps the dataset order, e.g. for evaluation).
  ///   - dropLast: drop the incomplete last batch of an epoch (`false` returns a smaller one).
  ///   - prefetch: the most batches decoded ahead of the consumer (at least 1).
  ///   - workers: the number of background threads.
  ///   - state: a saved ``state`` to resume from.
  ///   - share: the positions of each batch to decode and augment (a data-parallel replica's,
  ///     ``TrainingReplicas/share(of:)``); the others are zero images with void labels and an
  ///     empty id. Nil: every position.
  ///   - keptBytes: with a working size, the samples are kept in memory at that size after
  ///     their first decoding (the random augmentation still runs on every draw, with the same
  ///     results) when all of them fit in this many bytes (default 1 GiB); 0 decodes every time.
  /// - Throws: `DatasetError.empty`, `.invalidLabelTable`, `.stateMismatch`.
  public init(
    dataset: Dataset, labelTable: [UInt8]? = nil, augmentation: AugmentationConfig,
    batchSize: Int, seed: UInt64, shuffle: Bool = true, dropLast: Bool = true,
    prefetch: Int = 2, workers: Int = 2, resumingFrom state: LoaderState? = nil,
    share: Range<Int>? = nil, keptBytes: Int = 1 << 30
  ) throws(DatasetError) {
    precondition(batchSize > 0, "batch size must be positive")
    if let table = labelTable, table.count != 256 { throw .invalidLabelTable(count: table.count) }
    let count = dataset.count
    let perEpoch = dropLast ? count / batchSize : (count + batchSize - 1) / batchSize
    guard perEpoch > 0 else {
      throw .empty(path: "dataset with \(count) samples for batch size \(batchSize)")
    }
    let start = state ?? LoaderState(seed: seed, sampleCount: count, batchSize: batchSize)
    if let s = state {
      guard s.sampleCount == count, s.batchSize == batchSize, s.seed == seed else {
        throw .stateMismatch(
          reason: "state is for \(s.sampleCount) samples, batch \(s.batchSize), seed \(s.seed); "
            + "loader has \(count) samples, batch \(batchSize), seed \(seed)")
      }
      guard s.position >= 0, s.position <= perEpoch, s.epoch >= 0,
        s.generator == LoaderState.epochGenerator(seed: seed, epoch: s.epoch)
      else {
        throw .stateMismatch(
          reason: "epoch \(s.epoch), position \(s.position) is not a valid state")
      }
    }
    self.dataset = dataset
    self.batchSize = batchSize
    self.batchesPerEpoch = perEpoch
    let first = start.epoch * perEpoch + start.position
    self.pipeline = Pipeline(
      job: BatchJob(
        dataset: dataset, labelTable: labelTable, augmenter: Augmenter(augmentation),
        batchSize: batchSize, batchesPerEpoch: perEpoch, seed: seed, shuffle: shuffle,
        share: share,
        decoded: DecodedSamples.fitting(
          count, workingSize: augmentation.workingSize, budget: keptBytes)),
      first: first, capacity: max(1, prefetch))
    for _ in 0..<max(1, min(workers, max(1, prefetch))) {
      let pipeline = self.pipeline
      let thread = Thread { pipeline.work() }
      thread.name = "atso.dataloader"
      thread.start()
    }
  }

  deinit { pipeline.stop() }

  /// The state before the next batch: save it to resume exactly there.
  public var state: LoaderState {
    let nextGlobal = pipeline.nextIndex
    let epoch = nextGlobal / batchesPerEpoch
    var s = LoaderState(seed: pipeline.job.seed, sampleCount: dataset.count, batchSize: batchSize)
    s.epoch = epoch
    s.position = nextGlobal % batchesPerEpoch
    s.generator = LoaderState.epochGenerator(seed: pipeline.job.seed, epoch: epoch)
    return s
  }

  /// Returns the next batch, moving on to the next epoch after the last batch of one.
  ///
  /// - Throws: the `DatasetError` of a sample of this batch (unreadable file, size mismatch);
  ///   the loader then moves past that batch.
  ///
  /// Safe to call from any thread; concurrent callers receive consecutive batches.
  public func next() throws(DatasetError) -> Batch {
    try pipeline.takeNext().get()
  }

  /// The largest number of batches that were decoded or buffered at once (at most `prefetch`).
  package var peakInFlight: Int { pipeline.peakInFlight }
}

/// The pure work of producing batch `g`: no shared mutable state.
struct BatchJob: Sendable {
  let dataset: Dataset
  let labelTable: [UInt8]?
  let augmenter: Augmenter
  let batchSize: Int
  let batchesPerEpoch: Int
  let seed: UInt64
  let shuffle: Bool
  /// The positions of each batch that are decoded (nil: all).
  let share: Range<Int>?
  /// The samples decoded so far at the working size (nil: decode every time).
  let decoded: DecodedSamples?

  func makeBatch(global: Int) -> Result<Batch, DatasetError> {
    let epoch = global / batchesPerEpoch
    let position = global % batchesPerEpoch
    let plan = EpochPlan(
      sampleCount: dataset.count, shuffle: shuffle,
      generator: LoaderState.epochGenerator(seed: seed, epoch: epoch))
    let slots = (position * batchSize)..<min((position + 1) * batchSize, dataset.count)
    var positions: [(image: Tensor, label: [UInt8]?)?] = []  // nil: outside `share`
    var ids: [String] = []
    var shape: [Int] = []
    for slot in slots {
      guard share?.contains(slot - slots.lowerBound) ?? true else {
        positions.append(nil)
        ids.append("")
        continue
      }
      var generator = plan.sampleGenerator(slot: slot)
      let index = plan.order[slot]
      let prepared: DecodedSamples.Entry
      if let kept = decoded?[index] {
        prepared = kept
      } else {
        let sample: Sample
        do {
          sample = try dataset.load(index, labelTable: labelTable)
        } catch {
          return .failure(error)
        }
        let (image, label) = augmenter.atWorkingSize(
          image: ImageOps.tensor(from: sample.image), label: sample.label?.values)
        prepared = DecodedSamples.Entry(id: sample.id, image: image, label: label)
        decoded?[index] = prepared
      }
      let out = augmenter.apply(image: prepared.image, label: prepared.label, using: &generator)
      if shape.isEmpty {
        shape = out.image.shape
      } else if out.image.shape != shape {
        return .failure(.inconsistentBatch(id: prepared.id, shape: out.image.shape, expected: shape))
      }
      positions.append((out.image, out.label))
      ids.append(prepared.id)
    }
    return .success(Batch(positions: positions, void: augmenter.config.ignoreIndex.value, ids: ids))
  }
}

/// The samples of a dataset decoded once and kept at the working size: a training run over a
/// few hundred images (CamVid, 406 at 96x128: 65 MB) no longer decodes and resizes 8 files for
/// every step, which on two cores took a quarter of the step time from the kernels.
final class DecodedSamples: @unchecked Sendable {
  struct Entry: Sendable {
    var id: String
    /// Raw `0...255` values, `[h, w, 3]`, at the working size.
    var image: Tensor
    var label: [UInt8]?
  }

  private let lock = NSLock()
  private var entries: [Int: Entry] = [:]

  /// A store for `count` samples at `workingSize` if they fit in `budget` bytes, else nil.
  static func fitting(_ count: Int, workingSize: ImageSize?, budget: Int) -> DecodedSamples? {
    guard let size = workingSize, budget > 0 else { return nil }
    let perSample = size.height * size.width * (3 * MemoryLayout<Float>.size + 1)
    let (bytes, overflow) = count.multipliedReportingOverflow(by: perSample)
    return !overflow && bytes <= budget ? DecodedSamples() : nil
  }

  subscript(index: Int) -> Entry? {
    get { lock.withLock { entries[index] } }
    set { lock.withLock { entries[index] = newValue } }
  }
}

/// The bounded, ordered hand-over between worker threads and the consumer.
final class Pipeline: @unchecked Sendable {
  let job: BatchJob
  private let condition = NSCondition()
  private let consumerLock = NSLock()
  // Guarded by `condition`:
  private var scheduled: Int  // the next global batch index to hand to a worker
  private var consumed: Int  // the next global batch index the consumer will take
  private var results: [Int: Result<Batch, DatasetError>] = [:]
  private var stopped = false
  private var peak = 0
  private let capacity: Int

  init(job: BatchJob, first: Int, capacity: Int) {
    self.job = job
    self.scheduled = first
    self.consumed = first
    self.capacity = capacity
  }

  /// A worker thread's loop: take the next index while the window has room, build, publish.
  func work() {
    while true {
      condition.lock()
      while !stopped && scheduled >= consumed + capacity { condition.wait() }
      if stopped {
        condition.unlock()
        return
      }
      let index = scheduled
      scheduled += 1
      peak = max(peak, scheduled - consumed)
      condition.unlock()

      let result = job.makeBatch(global: index)

      condition.lock()
      results[index] = result
      condition.broadcast()
      condition.unlock()
    }
  }

  /// Waits for the next batch in order and removes it from the buffer.
  func takeNext() -> Result<Batch, DatasetError> {
    // One consumer at a time, so that concurrent callers receive consecutive batches.
    consumerLock.lock()
    defer { consumerLock.unlock() }
    condition.lock()
    defer { condition.unlock() }
    let index = consumed
    while results[index] == nil { condition.wait() }
    let result =
      results.removeValue(forKey: index) ?? .failure(.stateMismatch(reason: "lost batch"))
    consumed += 1
    condition.broadcast()
    return result
  }

  func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    condition.unlock()
  }

  /// The global index of the next batch to be taken.
  var nextIndex: Int {
    condition.lock()
    defer { condition.unlock() }
    return consumed
  }

  var peakInFlight: Int {
    condition.lock()
    defer { condition.unlock() }
    return peak
  }
}

/// One sample prepared for prediction, with what is needed to map the prediction back.
public struct PredictionSample: Sendable {
  public var id: String
  /// The normalised image, `[1, h, w, 3]`, at the working size (or the file's size).
  public var image: Tensor
  /// The size of the decoded file.
  public var originalSize: ImageSize
  /// The label map at the original resolution, already mapped (`nil` when unlabelled).
  public var label: LabelImage?
  /// Where the sample came from.
  public var reference: SampleReference

  /// Resizes a prediction (`h * w` class ids at the network's input size) back to the
  /// original resolution with nearest-neighbour sampling.
  public func predictionAtOriginalSize(_ prediction: [UInt8]) -> [UInt8] {
    let size = ImageSize(height: image.shape[1], width: image.shape[2])
    return ImageOps.resizeNearest(prediction, from: size, to: originalSize)
  }
}

/// Visits a dataset in order, once, without augmentation: for prediction and evaluation.
public struct PredictionIterator: Sendable {
  public let dataset: Dataset
  public let labelTable: [UInt8]?
  public let workingSize: ImageSize?
  public let normalization: Normalization
  /// The index of the next sample.
  public private(set) var position = 0

  /// - Parameters:
  ///   - workingSize: the network input size (`nil` keeps each file's size).
  public init(
    dataset: Dataset, labelTable: [UInt8]? = nil, workingSize: ImageSize? = nil,
    normalization: Normalization = .imageNet
  ) {
    self.dataset = dataset
    self.labelTable = labelTable
    self.workingSize = workingSize
    self.normalization = normalization
  }

  /// Returns the next sample, or `nil` after the last one.
  ///
  /// - Throws: `DatasetError` for an unreadable sample (the iterator moves past it).
  public mutating func next() throws(DatasetError) -> PredictionSample? {
    guard position < dataset.count else { return nil }
    let reference = dataset.samples[position]
    position += 1
    let sample = try Dataset.load(
      reference, labelTable: labelTable, labelClasses: dataset.labelClasses)
    var generator = SeededGenerator(seed: 0)  // evaluation recipe: no random draw is used
    let out = Augmenter(.init(workingSize: workingSize, normalization: normalization))
      .apply(Sample(id: sample.id, image: sample.image, label: nil), using: &generator)
    return PredictionSample(
      id: sample.id, image: out.image.reshaped(to: [1] + out.image.shape),
      originalSize: out.originalSize, label: sample.label, reference: reference)
  }
}
