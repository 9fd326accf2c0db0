import Foundation
import Segmentation
import Tensor

/// Three 2-D networks, one per ``AnatomicalView``, that segment a volume slice by slice.
///
/// Each network sees one slice with `neighbours` slices on either side as input channels
/// (``CaseSlicer/batch(_:indices:neighbours:)``). The three label volumes are fused voxel by
/// voxel with ``ViewFusion/majorityVote(axial:coronal:sagittal:probabilities:classCount:)``.
///
/// On disk the set is a directory holding `axial.safetensors`, `coronal.safetensors` and
/// `sagittal.safetensors` (``Checkpoint`` files, each with its `.json` description).
public struct ViewNetworks: Sendable, Equatable {
  /// The networks in ``AnatomicalView/allCases`` order (axial, coronal, sagittal).
  public var networks: [UNet]
  /// The slices on either side of a slice given as extra channels.
  public var neighbours: Int { (networks[0].configuration.inputChannels - 1) / 2 }
  /// The number of fine classes predicted.
  public var classCount: Int { networks[0].configuration.classCount }

  /// Three He-initialised U-Nets.
  ///
  /// - Precondition: `neighbours >= 0`, at least two positive widths, `classCount > 0`.
  public init(
    widths: [Int], classCount: Int, neighbours: Int, using generator: inout SeededGenerator
  ) {
    precondition(neighbours >= 0, "neighbours must be non-negative")
    let configuration = UNet.Configuration(
      inputChannels: 2 * neighbours + 1, widths: widths, classCount: classCount)
    networks = AnatomicalView.allCases.map { _ in UNet(configuration, using: &generator) }
  }

  public init(networks: [UNet]) {
    precondition(networks.count == 3, "one network per view")
    self.networks = networks
  }

  /// The network of `view`.
  public subscript(view: AnatomicalView) -> UNet {
    get { networks[AnatomicalView.allCases.firstIndex(of: view) ?? 0] }
    set { networks[AnatomicalView.allCases.firstIndex(of: view) ?? 0] = newValue }
  }

  /// The file of `view`'s network in a set directory.
  public static func file(_ view: AnatomicalView, in directory: String) -> String {
    directory + "/\(view.rawValue).safetensors"
  }

  /// Writes the three checkpoints into `directory` (created if needed).
  ///
  /// - Throws: ``MedicalError/unreadableFile(path:reason:)`` when the directory cannot be made,
  ///   and the checkpoint writing errors (as `ModelError`).
  public func write(to directory: String, classSetName: String) throws {
    do {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw MedicalError.unreadableFile(path: directory, reason: "cannot create: \(error)")
    }
    for view in AnatomicalView.allCases {
      try Checkpoint(model: self[view], classSetName: classSetName)
        .write(to: Self.file(view, in: directory))
    }
  }

  /// Reads the three checkpoints of a set directory.
  ///
  /// - Throws: `ModelError` for a missing or malformed file, or a network that is not a U-Net;
  ///   ``MedicalError/badDimensions(path:dimensions:)`` when the three networks disagree on
  ///   their inputs or classes.
  public static func read(from directory: String) throws -> ViewNetworks {
    var networks: [UNet] = []
    for view in AnatomicalView.allCases {
      let path = file(view, in: directory)
      let checkpoint = try Checkpoint.read(from: path)
      guard case .unet(let configuration) = checkpoint.description.architecture else {
        throw ModelError.checkpointMismatch(path: path, reason: "not a U-Net")
      }
      var generator = SeededGenerator(seed: 0)
      var network = UNet(configuration, using: &generator)
      try checkpoint.restore(into: &network, path: path)
      networks.append(network)
    }
    let first = networks[0].configuration
    for network in networks where network.configuration.inputChannels != first.inputChannels
      || network.configuration.classCount != first.classCount
    {
      throw MedicalError.badDimensions(
        path: directory,
        dimensions: networks.map { [$0.configuration.inputChannels, $0.configuration.classCount] }
          .flatMap { $0 })
    }
    return ViewNetworks(networks: networks)
  }
}

/// A case ready for training: its slicer holds the image and a label volume at the training
/// level (ground truth or a pseudo label, `ignoreIndex` where unknown).
public struct TrainingCase: Sendable {
  public var name: String
  public var slicer: CaseSlicer
  /// Whether the labels are a teacher's pseudo labels (see ``ViewTrainingSettings/pseudoShare``).
  public var isPseudoLabeled: Bool

  public init(name: String, slicer: CaseSlicer, isPseudoLabeled: Bool = false) {
    self.name = name
    self.slicer = slicer
    self.isPseudoLabeled = isPseudoLabeled
  }
}

/// How the three networks are trained.
public struct ViewTrainingSettings: Sendable, Equatable {
  /// Steps per view.
  public var iterations: Int
  /// Slices per step (all from one case, drawn at random).
  public var batchSize: Int
  public var learningRate: Float
  /// The optimizer each view starts with (fresh state per call).
  public var optimizer: TrainingOptimizer
  public var maxGradientNorm: Float?
  public var loss: TrainingLoss
  public var ignoreIndex: IgnoreIndex
  /// The share of steps whose case is drawn from the pseudo-labeled cases when there are both
  /// kinds (nil: every case equally likely).
  public var pseudoShare: Double?

  public init(
    iterations: Int, batchSize: Int, learningRate: Float, optimizer: TrainingOptimizer,
    maxGradientNorm: Float?, loss: TrainingLoss, ignoreIndex: IgnoreIndex,
    pseudoShare: Double? = nil
  ) {
    self.iterations = iterations
    self.batchSize = batchSize
    self.learningRate = learningRate
    self.optimizer = optimizer
    self.maxGradientNorm = maxGradientNorm
    self.loss = loss
    self.ignoreIndex = ignoreIndex
    self.pseudoShare = pseudoShare
  }
}

extension ViewNetworks {
  /// Trains each view's network on slices of `cases`, through Segmentation's ``Trainer`` loop.
  ///
  /// Every step draws one case and a block of `batchSize` consecutive slices of it around a
  /// slice that holds a foreground voxel (class other than 0 and the ignore label; any slice of
  /// a case without one), along the view being trained, with the poly schedule from
  /// `learningRate` over `iterations` steps. A fresh optimizer starts for each call, so a
  /// student starts from its initial model's weights only.
  /// - Parameter progress: the training events of each view, in view order.
  /// - Throws: `ModelError` for a label the loss does not accept or a diverged step.
  public mutating func train(
    on cases: [TrainingCase], settings: ViewTrainingSettings,
    using generator: inout SeededGenerator,
    progress: (AnatomicalView, TrainingEvent) throws -> Void = { _, _ in }
  ) throws {
    guard !cases.isEmpty, settings.iterations > 0 else { return }
    for view in AnatomicalView.allCases {
      let configuration = TrainerConfiguration(
        loss: settings.loss, ignoreIndex: settings.ignoreIndex,
        schedule: PolySchedule(
          baseLearningRate: settings.learningRate, totalSteps: settings.iterations),
        optimizer: settings.optimizer, maxGradientNorm: settings.maxGradientNorm,
        classSetName: "volume")
      var trainer = Trainer(
        model: self[view], configuration: configuration,
        generator: SeededGenerator(seed: generator.next()))
      // Slices holding a labeled foreground voxel, per case (all slices if there is none).
      let candidates = cases.map { item -> [Int] in
        let slices = item.slicer.batch(view, neighbours: 0)
        let pixels = slices.labels.count / max(1, slices.indices.count)
        let foreground = slices.indices.filter { s in
          slices.labels[(s * pixels)..<((s + 1) * pixels)].contains {
            $0 != 0 && !settings.ignoreIndex.isVoid($0)
          }
        }
        return foreground.isEmpty ? slices.indices : foreground
      }
      let neighbours = self.neighbours
      let pseudo = cases.indices.filter { cases[$0].isPseudoLabeled }
      let labeled = cases.indices.filter { !cases[$0].isPseudoLabeled }
      try trainer.train(
        until: settings.iterations, imagesPerStep: settings.batchSize,
        next: { _ in
          let pick: Int
          if let share = settings.pseudoShare, !pseudo.isEmpty, !labeled.isEmpty {
            let fromPseudo = Double(generator.next() >> 11) / Double(1 << 53) < share
            let pool = fromPseudo ? pseudo : labeled
            pick = pool[Int(generator.next() % UInt64(pool.count))]
          } else {
            pick = Int(generator.next() % UInt64(cases.count))
          }
          let chosen = cases[pick]
          // A block of consecutive slices around a random foreground slice.
          let count = chosen.slicer.sliceCount(view)
          let center = candidates[pick][Int(generator.next() % UInt64(candidates[pick].count))]
          let first = min(
            max(0, center - settings.batchSize / 2), max(0, count - settings.batchSize))
          let indices = (0..<settings.batchSize).map { min(first + $0, count - 1) }
          let slices = chosen.slicer.batch(view, indices: indices, neighbours: neighbours)
          return TrainingBatch(Batch(images: slices.images, labels: slices.labels))
        }, progress: { try progress(view, $0) })
      self[view] = trainer.model
    }
  }

  /// AdaBN on the slices of `slicers`: each view's batch-norm statistics become the exact
  /// average over all its slices (``adaptedBatchNorm(_:batches:)``, the package's one AdaBN),
  /// in batches of `batchSize` consecutive slices of a case.
  public mutating func adaptBatchNorm(on slicers: [CaseSlicer], batchSize: Int) {
    let size = max(1, batchSize)
    let neighbours = self.neighbours
    for view in AnatomicalView.allCases {
      let batches = slicers.lazy.flatMap { slicer in
        stride(from: 0, to: slicer.sliceCount(view), by: size).lazy.map { start in
          let indices = Array(start..<min(slicer.sliceCount(view), start + size))
          return slicer.batch(view, indices: indices, neighbours: neighbours).images
        }
      }
      self[view] = adaptedBatchNorm(self[view], batches: batches)
    }
  }

  /// Segments one case: each view's probabilities at `level` (nil: the fine classes), the
  /// arg-max of each view (``ClassDecisions``), fused by majority vote.
  ///
  /// Without `window` each view's network sees all the slices of the view in one pass; with it,
  /// one slice at a time in Gaussian-weighted windows (``SlidingWindow``), so that memory is
  /// bounded by the window whatever the volume.
  /// - Returns: fused labels and the confidence of each voxel's label (its probability averaged
  ///   over the three views), both in the image's storage order.
  public func predict(
    _ slicer: CaseSlicer, level: ClassLevel? = nil, window: SlidingWindow? = nil
  ) -> (labels: [UInt8], confidences: [Float]) {
    let levelClassCount = level?.classCount ?? classCount
    var labels: [[UInt8]] = []
    var probabilities: [[Float]] = []
    for view in AnatomicalView.allCases {
      let slices = slicer.batch(view, neighbours: neighbours)
      let fine = predictProbabilities(self[view], images: slices.images, window: window).scalars
      let atLevel = level?.levelProbabilities(fine, fineCount: classCount) ?? fine
      let volume = slicer.assemble(atLevel, view: view, channels: levelClassCount)
      labels.append(ClassDecisions(probabilities: volume, classCount: levelClassCount).labels)
      probabilities.append(volume)
    }
    let fused = ViewFusion.majorityVote(
      axial: labels[0], coronal: labels[1], sagittal: labels[2], probabilities: probabilities,
      classCount: levelClassCount)
    var confidences = [Float](repeating: 0, count: fused.count)
    for v in fused.indices {
      let c = v * levelClassCount + Int(fused[v])
      confidences[v] = (probabilities[0][c] + probabilities[1][c] + probabilities[2][c]) / 3
    }
    return (fused, confidences)
  }
}
