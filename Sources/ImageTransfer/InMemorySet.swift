import Foundation
import Segmentation
import Taxonomy
import Tensor
import Transfer

/// Images and labels held in memory at the working size, for the image backend.
struct InMemorySet: Sendable {
  var ids: [String]
  /// The images resized to the working size, raw `0...255` values `[h, w, 3]` (what the
  /// training augmentation starts from).
  var raw: [Tensor]
  /// The same images normalised for the network (what prediction reads).
  var images: [Tensor]
  /// Labels in network class ids (the run's ignore index for void) at the working size, nil
  /// when the set has none.
  var labels: [[UInt8]]?
  /// The same labels at each image's own size (what ``ScoreResolution/native`` scores against).
  var nativeLabels: [LabelImage]?

  var count: Int { ids.count }

  /// Decodes `samples`, resizes them to `size` (antialiased bilinear images, nearest labels)
  /// and maps the labels through `table` (256 entries to network ids or the ignore index).
  ///
  /// - Parameter labelClasses: the class set of the label files, whose raw values are checked
  ///   (``Dataset/load(_:labelTable:labelClasses:maxPixels:)``); nil reads no labels.
  static func load(
    _ samples: [SampleReference], table: [UInt8], size: ImageSize, labelClasses: ClassSet?
  ) throws -> InMemorySet {
    let withLabels = labelClasses != nil
    var set = InMemorySet(
      ids: [], raw: [], images: [], labels: withLabels ? [] : nil,
      nativeLabels: withLabels ? [] : nil)
    let normalization = Normalization.imageNet
    for reference in samples {
      var ref = reference
      if !withLabels { ref.labelPath = nil }
      let sample = try Dataset.load(
        ref, labelTable: withLabels ? table : nil, labelClasses: labelClasses)
      let image = ImageOps.resizeBilinear(
        ImageOps.tensor(from: sample.image), to: size, antialias: true)
      var normalised = image
      normalization.normalize(&normalised)
      set.ids.append(sample.id)
      set.raw.append(image)
      set.images.append(normalised)
      if withLabels {
        guard let label = sample.label else {
          throw TransferError.fileOperation(
            path: reference.imagePath, reason: "sample '\(reference.id)' has no label file")
        }
        let from = ImageSize(height: label.height, width: label.width)
        set.labels?.append(ImageOps.resizeNearest(label.values, from: from, to: size))
        set.nativeLabels?.append(label)
      }
    }
    return set
  }

  /// The positions of `units` in the set.
  ///
  /// - Throws: `TransferError.invalidReferenceSet` for a unit that is not in the set.
  func indices(of units: [String], set name: String) throws -> [Int] {
    let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
    return try units.map { unit in
      guard let i = index[unit] else {
        throw TransferError.invalidReferenceSet(reason: "unit '\(unit)' is not in \(name)")
      }
      return i
    }
  }
}

/// One training image (raw, at the working size) with its labels.
struct TrainingItem: Sendable {
  var image: Tensor
  var labels: [UInt8]
}

/// What one training call did (for progress lines and tests).
package struct TrainingSummary: Sendable, Equatable {
  /// `source` or `student`.
  package var kind: String
  package var steps: Int
  /// Labeled pixels that went through cross-entropy (S, and fine pseudo labels).
  package var crossEntropyPixels: Int
  /// Labeled pixels that went through the reduce-then-compute loss (super pseudo labels).
  package var reducePixels: Int
  /// The loss of the last step.
  package var finalLoss: Float
}

/// How one network is trained by the image backend.
struct ImageTrainingRecipe {
  var steps: Int
  var batch: Int
  var learningRate: Float
  var optimizer: TrainingOptimizer
  var maxGradientNorm: Float?
  var augmentation: AugmentationConfig
  var pseudoShare: Double
  var ignore: IgnoreIndex
  var classSetName: String
}

/// The batches of one training: labeled and pseudo-labeled items, drawn and augmented.
///
/// Each batch holds `batch` items drawn with replacement: `round(pseudoShare * batch)` of them
/// (at least one) from `pseudo` when it is not empty, the rest from `labeled`. Every item goes
/// through the training augmentation (scale, crop or pad, flip, blur, jitter) with its own
/// generator, its labels transformed geometrically with its image. At the fine level a batch
/// trains with one cross-entropy; at a super-class level its labeled images with cross-entropy
/// and its pseudo-labeled ones with the reduce-then-compute loss (``LossGroup``).
struct TrainingBatches {
  let labeled: [TrainingItem]
  let pseudo: [TrainingItem]
  let labeledCount: Int
  let pseudoCount: Int
  let groups: [LossGroup]?
  let augmenter: Augmenter
  let ignore: IgnoreIndex
  var picks: SeededGenerator

  init(
    labeled: [TrainingItem], pseudo: [TrainingItem], pseudoLevel: ClassLevel,
    recipe: ImageTrainingRecipe, seed: UInt64
  ) {
    precondition(!labeled.isEmpty || !pseudo.isEmpty, "nothing to train on")
    let batch = recipe.batch
    var pseudoCount = 0
    if !pseudo.isEmpty && recipe.pseudoShare > 0 {
      pseudoCount =
        labeled.isEmpty
        ? batch : min(batch, max(1, Int((recipe.pseudoShare * Double(batch)).rounded())))
    }
    if labeled.isEmpty { pseudoCount = batch }
    self.labeled = labeled
    self.pseudo = pseudo
    self.pseudoCount = pseudoCount
    labeledCount = batch - pseudoCount
    var groups: [LossGroup]?
    if !pseudoLevel.isFine, pseudoCount > 0 {
      groups = [LossGroup(count: pseudoCount, loss: pseudoLevel.loss)]
      if labeledCount > 0 {
        groups?.insert(LossGroup(count: labeledCount, loss: .crossEntropy()), at: 0)
      }
    }
    self.groups = groups
    augmenter = Augmenter(recipe.augmentation)
    ignore = recipe.ignore
    picks = SeededGenerator(seed: seed)
  }

  /// The next batch. With `share` (a data-parallel replica's images, ``TrainingReplicas``),
  /// only the items of `share` are augmented; the others are zeros with void labels, which the
  /// replica never reads (the draws are the same, so its items are those of the whole batch).
  mutating func next(share: Range<Int>? = nil) -> TrainingBatch {
    var items: [TrainingItem] = []
    for _ in 0..<labeledCount { items.append(labeled[Int(picks.next() % UInt64(labeled.count))]) }
    for _ in 0..<pseudoCount { items.append(pseudo[Int(picks.next() % UInt64(pseudo.count))]) }
    var positions: [(image: Tensor, label: [UInt8]?)?] = []  // nil: outside `share`
    for (index, item) in items.enumerated() {
      var generator = SeededGenerator(seed: picks.next())
      guard share?.contains(index) ?? true else {
        positions.append(nil)
        continue
      }
      let out = augmenter.apply(image: item.image, label: item.labels, using: &generator)
      positions.append((out.image, out.label))
    }
    return TrainingBatch(Batch(positions: positions, void: ignore.value), groups: groups)
  }
}

/// Trains `model` through Segmentation's ``Trainer`` on the batches of ``TrainingBatches``,
/// writing every step's loss to `lossLog` and reporting it to `progress`. With
/// `dataParallel`, each replica augments and computes its share of every batch; replica 0
/// alone writes the loss log and reports.
func trainImages<M: SegmentationModel>(
  _ model: M, labeled: [TrainingItem], pseudo: [TrainingItem], pseudoLevel: ClassLevel,
  recipe: ImageTrainingRecipe, seed: UInt64, kind: String, lossLog: String? = nil,
  dataParallel: DataParallel? = nil, progress: (TrainingProgress) -> Void = { _ in }
) throws -> (model: M, summary: TrainingSummary) {
  var batches = TrainingBatches(
    labeled: labeled, pseudo: pseudo, pseudoLevel: pseudoLevel, recipe: recipe, seed: seed)
  var trainer = Trainer(
    model: model,
    configuration: TrainerConfiguration(
      ignoreIndex: recipe.ignore,
      schedule: PolySchedule(baseLearningRate: recipe.learningRate, totalSteps: recipe.steps),
      optimizer: recipe.optimizer, maxGradientNorm: recipe.maxGradientNorm,
      classSetName: recipe.classSetName),
    generator: SeededGenerator(seed: seed ^ 0x5DEE_CE66_D1CE_4E5B))
  let replicas = dataParallel?.replicas
  if let replicas, recipe.batch < replicas.count {
    throw ModelError.invalidBatch(
      reason: "the backend option batch=\(recipe.batch) cannot be split over the "
        + "\(replicas.count) ranks of a job (--ranks-per-job): give batch=\(replicas.count) or more")
  }
  trainer.replicas = replicas
  let share = replicas.map { $0.share(of: recipe.batch) }
  let log = try dataParallel.writes ? lossLog.map { try LossLog(path: $0) } : nil
  let result = try trainer.train(
    until: recipe.steps, imagesPerStep: recipe.batch, next: { _ in batches.next(share: share) },
    progress: { event in
      guard case .step(let step) = event, dataParallel.writes else { return }
      try log?.append(step)
      progress(step)
    })
  let counted = result.countedPixels
  let split = batches.groups != nil && batches.labeledCount > 0
  let summary = TrainingSummary(
    kind: kind, steps: result.steps,
    crossEntropyPixels: batches.groups == nil ? counted.reduce(0, +) : (split ? counted[0] : 0),
    reducePixels: batches.groups == nil ? 0 : counted.last ?? 0,
    finalLoss: result.last?.loss ?? 0)
  return (trainer.model, summary)
}
