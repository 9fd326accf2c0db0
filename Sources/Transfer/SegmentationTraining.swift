import Foundation
import Segmentation
import Taxonomy
import Tensor

/// Images and labels held in memory at the working size, for the segmentation backend.
struct InMemorySet: Sendable {
  var ids: [String]
  /// Normalised images, `[h, w, 3]` each.
  var images: [Tensor]
  /// Labels in model class ids (255 = ignore), nil when the set has no labels.
  var labels: [[UInt8]]?

  var count: Int { ids.count }

  /// Decodes `samples`, resizes them to `size` (bilinear images, nearest labels) and maps the
  /// labels through `table` (256 entries to model ids or 255); `labelClasses` checks the raw
  /// label values (``Dataset/load(_:labelTable:labelClasses:maxPixels:)``).
  static func load(
    _ samples: [SampleReference], table: [UInt8], size: ImageSize, withLabels: Bool,
    labelClasses: ClassSet? = nil
  ) throws -> InMemorySet {
    var set = InMemorySet(ids: [], images: [], labels: withLabels ? [] : nil)
    let augmenter = Augmenter(.evaluation(workingSize: size))
    for reference in samples {
      var ref = reference
      if !withLabels { ref.labelPath = nil }
      let sample = try Dataset.load(
        ref, labelTable: withLabels ? table : nil, labelClasses: withLabels ? labelClasses : nil)
      var generator = SeededGenerator(seed: 0)  // the evaluation recipe draws nothing
      let out = augmenter.apply(sample, using: &generator)
      set.ids.append(sample.id)
      set.images.append(out.image)
      if withLabels {
        guard let label = out.label else {
          throw TransferError.fileOperation(
            path: reference.imagePath, reason: "sample '\(reference.id)' has no label file")
        }
        set.labels?.append(label)
      }
    }
    return set
  }

  /// The subset at `indices`, in that order.
  func subset(_ indices: [Int]) -> InMemorySet {
    InMemorySet(
      ids: indices.map { ids[$0] }, images: indices.map { images[$0] },
      labels: labels.map { all in indices.map { all[$0] } })
  }
}

/// One training image with labels at the working size; `isSuper` labels are super-class ids.
struct TrainingItem: Sendable {
  var image: Tensor
  var labels: [UInt8]
}

/// What one training call did (for progress lines and tests).
package struct TrainingSummary: Sendable, Equatable {
  /// `source` or `finetune`.
  package var kind: String
  package var steps: Int
  /// Labeled pixels that went through plain cross-entropy (S, and fine pseudo labels).
  package var crossEntropyPixels: Int
  /// Labeled pixels that went through the reduce-then-compute loss (super pseudo labels).
  package var reducePixels: Int
  /// The mean loss of the last step.
  package var finalLoss: Float
}

/// Hyper-parameters of one training call.
struct TrainingSettings: Sendable {
  var iterations: Int
  var batch: Int
  var learningRate: Float
  var momentum: Float
  var weightDecay: Float
  var pseudoShare: Double
  var flipProbability: Float
  /// Fine-to-super table (count = class count) when the pseudo labels are super-class ids.
  var superClassOfFine: [Int?]?
}

/// Trains `model` with SGD and the poly schedule on fine-labeled items and pseudo-labeled items.
///
/// Each step draws `batch` items: `round(pseudoShare * batch)` of them (at least one) from
/// `pseudo` when it is not empty, the rest from `labeled`; each is flipped with
/// `flipProbability`. Labeled items (fine ids) go through softmax cross-entropy; pseudo items
/// too at the fine level, or through the reduce-then-compute loss with
/// `settings.superClassOfFine` at a super level. The two mean losses are combined weighted by
/// their image counts. Ignore is 255.
/// - Throws: `TransferError.invalidConfiguration` when the loss diverges.
func trainModel<M: SegmentationModel>(
  _ initial: M, labeled: [TrainingItem], pseudo: [TrainingItem], settings: TrainingSettings,
  seed: UInt64, kind: String
) throws -> (model: M, summary: TrainingSummary) {
  precondition(!labeled.isEmpty || !pseudo.isEmpty, "nothing to train on")
  var model = initial
  var generator = SeededGenerator(seed: seed)
  var optimizer = SGD(momentum: settings.momentum, weightDecay: settings.weightDecay)
  let schedule = PolySchedule(
    baseLearningRate: settings.learningRate, totalSteps: settings.iterations)
  let batch = settings.batch
  var pseudoCount = 0
  if !pseudo.isEmpty {
    pseudoCount =
      labeled.isEmpty
      ? batch : min(batch, max(1, Int((settings.pseudoShare * Double(batch)).rounded())))
    if settings.pseudoShare == 0 { pseudoCount = 0 }
  }
  if labeled.isEmpty { pseudoCount = batch }
  let labeledCount = batch - pseudoCount
  var summary = TrainingSummary(
    kind: kind, steps: 0, crossEntropyPixels: 0, reducePixels: 0, finalLoss: 0)
  for step in 0..<settings.iterations {
    var items: [TrainingItem] = []
    for _ in 0..<labeledCount {
      items.append(labeled[Int(generator.next() % UInt64(labeled.count))])
    }
    for _ in 0..<pseudoCount {
      items.append(pseudo[Int(generator.next() % UInt64(pseudo.count))])
    }
    let shape = items[0].image.shape
    let size = ImageSize(height: shape[0], width: shape[1])
    var scalars: [Float] = []
    scalars.reserveCapacity(items.count * items[0].image.count)
    var labels: [UInt8] = []
    for item in items {
      if generator.nextUniform() < settings.flipProbability {
        scalars += ImageOps.flippedHorizontally(item.image).scalars
        labels += ImageOps.flippedHorizontally(item.labels, size: size)
      } else {
        scalars += item.image.scalars
        labels += item.labels
      }
    }
    let images = Tensor(shape: [items.count] + shape, scalars: scalars)
    let (logits, cache) = model.trainingForward(images)
    let classes = logits.shape[3]
    let pixelsPerImage = size.height * size.width
    let loss: Float
    let gradient: Tensor
    if let table = settings.superClassOfFine, pseudoCount > 0 {
      // Fine part (labeled items) and super part (pseudo items), each a mean over its pixels.
      let split = labeledCount * pixelsPerImage
      let superLogits = Tensor(
        shape: [pseudoCount, size.height, size.width, classes],
        scalars: Array(logits.scalars[(split * classes)...]))
      let superLabels = Array(labels[split...])
      let reduced = reduceThenComputeLoss(
        logits: superLogits, superLabels: superLabels, superClassOfFine: table)
      summary.reducePixels += superLabels.reduce(0) { $0 + ($1 == 255 ? 0 : 1) }
      var combined = reduced.logitsGradient.scalars
      var total = reduced.loss
      if labeledCount > 0 {
        let fineLogits = Tensor(
          shape: [labeledCount, size.height, size.width, classes],
          scalars: Array(logits.scalars[..<(split * classes)]))
        let fineLabels = Array(labels[..<split])
        let fine = softmaxCrossEntropy(logits: fineLogits, labels: fineLabels)
        summary.crossEntropyPixels += fineLabels.reduce(0) { $0 + ($1 == 255 ? 0 : 1) }
        let a = Float(labeledCount) / Float(batch)
        let b = Float(pseudoCount) / Float(batch)
        combined = fine.logitsGradient.scalars.map { $0 * a } + combined.map { $0 * b }
        total = a * fine.loss + b * reduced.loss
      }
      loss = total
      gradient = Tensor(shape: logits.shape, scalars: combined)
    } else {
      let result = softmaxCrossEntropy(logits: logits, labels: labels)
      summary.crossEntropyPixels += labels.reduce(0) { $0 + ($1 == 255 ? 0 : 1) }
      loss = result.loss
      gradient = result.logitsGradient
    }
    guard loss.isFinite else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "backend.learning-rate",
        reason: "\(kind) training diverged at step \(step) (loss \(loss)); lower the rate")
    }
    let gradients = model.backward(cache, logitsGradient: gradient)
    var parameters = model.parameters
    optimizer.update(
      &parameters, gradients: gradients, learningRate: schedule.learningRate(atStep: step))
    model.parameters = parameters
    summary.steps += 1
    summary.finalLoss = loss
  }
  return (model, summary)
}

/// Class probabilities of every image, `[h, w, classes]` each, with the running statistics.
func predictProbabilities<M: SegmentationModel>(
  _ model: M, images: [Tensor], batch: Int
) -> [Tensor] {
  var result: [Tensor] = []
  var start = 0
  while start < images.count {
    let end = min(images.count, start + batch)
    let shape = images[start].shape
    var scalars: [Float] = []
    for i in start..<end { scalars += images[i].scalars }
    let probabilities = softmaxChannels(
      model(Tensor(shape: [end - start] + shape, scalars: scalars)))
    let classes = probabilities.shape[3]
    let per = shape[0] * shape[1] * classes
    for k in 0..<(end - start) {
      result.append(
        Tensor(
          shape: [shape[0], shape[1], classes],
          scalars: Array(probabilities.scalars[(k * per)..<((k + 1) * per)])))
    }
    start = end
  }
  return result
}

/// Arg-max class and its probability per pixel of `[h, w, classes]` probabilities; with
/// `superClassOfFine`, the probabilities are first summed per super class (`superCount` of
/// them; fine classes without a super class are dropped).
func decide(
  _ probabilities: Tensor, superClassOfFine: [Int?]?, superCount: Int
) -> (classes: [UInt8], confidences: [Float]) {
  let classes = probabilities.shape[2]
  let pixels = probabilities.count / classes
  var labels = [UInt8](repeating: 0, count: pixels)
  var confidences = [Float](repeating: 0, count: pixels)
  probabilities.scalars.withUnsafeBufferPointer { p in
    if let table = superClassOfFine {
      var sums = [Float](repeating: 0, count: superCount)
      for i in 0..<pixels {
        for s in 0..<superCount { sums[s] = 0 }
        for c in 0..<classes { if let s = table[c] { sums[s] += p[i * classes + c] } }
        var best = 0
        for s in 1..<max(1, superCount) where sums[s] > sums[best] { best = s }
        labels[i] = UInt8(best)
        confidences[i] = sums[best]
      }
    } else {
      for i in 0..<pixels {
        var best = 0
        for c in 1..<classes where p[i * classes + c] > p[i * classes + best] { best = c }
        labels[i] = UInt8(best)
        confidences[i] = p[i * classes + best]
      }
    }
  }
  return (labels, confidences)
}

/// AdaBN (Li et al., 2016): the same weights with every batch-norm running statistic replaced
/// by the average of the batch statistics of `images` (in batches of `batch`, in order, in
/// training mode so that each layer sees inputs normalised by the new statistics of the layers
/// below). Nothing but the `running_mean`/`running_variance` buffers changes.
public func adaptedBatchNorm<M: SegmentationModel>(
  _ model: M, images: [Tensor], batch: Int
) -> M {
  let names = model.parameterNames.filter {
    $0.hasSuffix("running_mean") || $0.hasSuffix("running_variance")
  }
  guard !names.isEmpty, !images.isEmpty else { return model }
  let original = model.parameters

  func batchTensor(_ range: Range<Int>) -> Tensor {
    var scalars: [Float] = []
    for i in range { scalars += images[i].scalars }
    return Tensor(shape: [range.count] + images[range.lowerBound].shape, scalars: scalars)
  }
  /// The running buffers after one training forward pass from buffers all set to `value`.
  func runningAfter(_ x: Tensor, from value: Float) -> [String: Tensor] {
    var copy = model
    var start = original
    for name in names {
      start[name] = Tensor(repeating: value, shape: original[name]?.shape ?? [])
    }
    copy.parameters = start
    _ = copy.trainingForward(x)
    let after = copy.parameters
    return Dictionary(uniqueKeysWithValues: names.map { ($0, after[$0] ?? Tensor.zeros([])) })
  }
  // running = (1 - m) * running + m * statistic: from 0 it gives m * statistic, from 1 it
  // gives 1 - m + m * statistic, so the difference is 1 - m.
  let first = batchTensor(0..<min(batch, images.count))
  let fromZero = runningAfter(first, from: 0)
  let fromOne = runningAfter(first, from: 1)
  var momentum: [String: Float] = [:]
  for name in names {
    let m = 1 - ((fromOne[name]?.scalars.first ?? 1) - (fromZero[name]?.scalars.first ?? 0))
    momentum[name] = m > 0 ? m : 0.1
  }
  var sums: [String: [Double]] = [:]
  var total = 0
  var start = 0
  while start < images.count {
    let end = min(images.count, start + batch)
    let after = start == 0 ? fromZero : runningAfter(batchTensor(start..<end), from: 0)
    for name in names {
      guard let values = after[name], let m = momentum[name] else { continue }
      var sum = sums[name] ?? [Double](repeating: 0, count: values.count)
      for j in values.scalars.indices {
        sum[j] += Double(end - start) * Double(values.scalars[j] / m)
      }
      sums[name] = sum
    }
    total += end - start
    start = end
  }
  var adapted = original
  for name in names {
    guard let sum = sums[name], let shape = original[name]?.shape else { continue }
    adapted[name] = Tensor(shape: shape, scalars: sum.map { Float($0 / Double(total)) })
  }
  var result = model
  result.parameters = adapted
  return result
}
