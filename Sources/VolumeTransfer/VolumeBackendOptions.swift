import Foundation
import Medical
import Segmentation
import Tensor
import Transfer

/// The intensity windows of the volume backend.
public enum WindowKind: String, Sendable, Codable, CaseIterable {
  /// The 0.5th to 99.5th percentile of each volume.
  case mri
  /// -100 to 240 HU.
  case ct

  public var window: IntensityWindow { self == .ct ? .ct : .mri }
}

/// The losses the view networks of the volume backend train with.
public enum VolumeLoss: String, Sendable, Codable, CaseIterable {
  /// Cross-entropy (at a super-class level, the reduce-then-compute loss).
  case crossEntropy
  /// Soft Dice of the foreground classes plus cross-entropy, as nnU-Net
  /// (``TrainingLoss/diceCrossEntropy(superClassOfFine:)``).
  case diceCrossEntropy
}

/// The options of the ``VolumeBackend`` (`"kind": "volume"`): a case is the unit; S, R and E are
/// sets of whole volumes of Medical Segmentation Decathlon folders.
public struct VolumeBackendOptions: BackendOptions, Equatable {
  public static let kind = "volume"
  public static let summary = "three-view 2-D networks on MSD volumes, cases as units"
  /// The defaults of the shared training keys.
  public static let trainingDefaults = TrainingOptions.Defaults(
    batch: 8, weightDecay: 0, maxGradientNorm: 10, sourceIterations: 200,
    finetuneIterations: nil, unit: "slices")
  public static let keys: [BackendOptionKey] = dataKeys + TrainingOptions.keys(trainingDefaults)
  static let dataKeys: [BackendOptionKey] = [
    .init("dataset", .string, default: "required", "MSD folder (dataset.json) with the labeled data", isLocation: true),
    .init("target", .string, default: "none", "second MSD folder: R and E come from it (transfer)", isLocation: true),
    .init("labeledFraction", .number, default: "0.1, or 1 with target", "labeled share of dataset's cases (S)"),
    .init("testCases", .integer, default: "20% of the cases", "cases held out for E (of target if given)"),
    .init("splitSeed", .integer, default: "0", "seed of the case split"),
    .init("widths", .integers, default: "8,16,32, or a source model's", "U-Net widths of each view"),
    .init("neighbours", .integer, default: "1, or a source model's", "slices on either side given as channels"),
    .init("window", .string, default: "mri", "intensity window: mri or ct"),
    .init("loss", .string, default: "crossEntropy", "training loss: crossEntropy, or diceCrossEntropy (soft Dice of the foreground classes + cross-entropy, as nnU-Net)"),
    .init("slidingWindow", .string, default: "off", "predict each slice in Gaussian-weighted windows HxW, half overlapping (nnU-Net), e.g. 128x128: memory bounded by the window"),
    .init("pseudoShare", .number, default: "0.5", "share of a student's steps drawn from pseudo-labeled cases (each step is one case's slices)", scope: .studentTraining),
    .init("mappings", .string, default: "none", "folders of your own class sets and mappings, DIR[:DIR] (beside the shipped)", isLocation: true),
  ]

  /// The view networks and the test set without a source model (``keys`` documents them).
  static let defaultWidths = [8, 16, 32]
  static let defaultNeighbours = 1
  static func defaultTestCases(_ cases: Int) -> Int { cases / 5 }

  public var dataset: String
  public var target: String?
  public var labeledFraction: Double
  public var testCases: Int?
  public var splitSeed: UInt64
  public var widths: [Int]?
  public var neighbours: Int?
  /// The shared training keys (batch, optimizer, steps, learning rates, threads).
  public var training: TrainingOptions
  public var window: WindowKind
  /// Nil: cross-entropy (left out of the encoding, so that earlier runs keep their identities).
  public var loss: VolumeLoss?
  /// Nil: whole slices.
  public var slidingWindow: ImageSize?
  public var pseudoShare: Double
  public var mappings: String?

  enum CodingKeys: String, CodingKey {
    case dataset, target, labeledFraction, testCases, splitSeed, widths, neighbours, window
    case loss, slidingWindow, pseudoShare, mappings
  }

  /// Decodes the options with the defaults ``keys`` documents.
  public init(from decoder: any Decoder) throws {
    try decodeBackendKeys(decoder, Self.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    dataset = try c.decode(String.self, forKey: .dataset)
    target = try c.decodeIfPresent(String.self, forKey: .target)
    labeledFraction =
      try c.decodeIfPresent(Double.self, forKey: .labeledFraction) ?? (target == nil ? 0.1 : 1)
    testCases = try c.decodeInteger(Int.self, forKey: .testCases)
    splitSeed = try c.decodeInteger(UInt64.self, forKey: .splitSeed) ?? 0
    widths = try c.decodeIntegers(forKey: .widths)
    neighbours = try c.decodeInteger(Int.self, forKey: .neighbours)
    training = try TrainingOptions(from: decoder, defaults: Self.trainingDefaults)
    window = try c.decodeIfPresent(WindowKind.self, forKey: .window) ?? .mri
    loss = try c.decodeIfPresent(VolumeLoss.self, forKey: .loss)
    slidingWindow = try c.decodeSize(forKey: .slidingWindow, example: "128x128")
    pseudoShare = try c.decodeIfPresent(Double.self, forKey: .pseudoShare) ?? 0.5
    mappings = try c.decodeIfPresent(String.self, forKey: .mappings)
  }

  public func encode(to encoder: any Encoder) throws {
    try training.encode(to: encoder)
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(dataset, forKey: .dataset)
    try c.encodeIfPresent(target, forKey: .target)
    try c.encode(labeledFraction, forKey: .labeledFraction)
    try c.encodeIfPresent(testCases, forKey: .testCases)
    try c.encode(splitSeed, forKey: .splitSeed)
    try c.encodeIfPresent(widths, forKey: .widths)
    try c.encodeIfPresent(neighbours, forKey: .neighbours)
    try c.encode(window, forKey: .window)
    try c.encodeIfPresent(loss, forKey: .loss)
    try c.encodeIfPresent(
      slidingWindow.map { "\($0.height)x\($0.width)" }, forKey: .slidingWindow)
    try c.encode(pseudoShare, forKey: .pseudoShare)
    try c.encodeIfPresent(mappings, forKey: .mappings)
  }

  public func validate(file: String) throws {
    let fail = { (key: String, reason: String) in
      TransferError.invalid("backend." + key, reason, file: file)
    }
    if !(labeledFraction > 0 && labeledFraction <= 1) {
      throw fail("labeledFraction", "must be in (0, 1], got \(labeledFraction)")
    }
    if let testCases, testCases < 1 { throw fail("testCases", "must be at least 1, got \(testCases)") }
    if let widths {
      let architecture = ModelArchitecture.unet(configuration: .init(widths: widths, classCount: 1))
      do throws(ModelError) {
        try architecture.validate { $0 }
      } catch {
        throw TransferError.refused(error, key: "backend.widths", file: file)
      }
    }
    if let neighbours, neighbours < 0 { throw fail("neighbours", "must be >= 0, got \(neighbours)") }
    if let size = slidingWindow, size.height < 8 || size.width < 8 {
      throw fail("slidingWindow", "\(size.height)x\(size.width): both sides must be at least 8")
    }
    if !(0...1).contains(pseudoShare) { throw fail("pseudoShare", "must be in [0, 1], got \(pseudoShare)") }
    try training.validate(file: file)
  }

  public func makeBackend(_ context: BackendContext) throws -> any TransferBackend {
    try VolumeBackend(options: self, context: context)
  }

  /// `widths`, `neighbours`, `testCases` and `loss` as the backend will choose them: from the
  /// source model, else the defaults; `testCases` from the number of cases in `dataset.json`.
  public func resolvingDefaults(sourceModel: String?) -> ResolvedDefaults {
    var options = self
    var derived: [String: String] = [:]
    let imported = sourceModel.flatMap { try? ViewNetworks.read(from: $0) }
    let from = imported == nil ? "default" : "from the source model"
    if options.widths == nil {
      options.widths = imported?.networks[0].configuration.widths ?? Self.defaultWidths
      derived["widths"] = from
    }
    if options.neighbours == nil {
      options.neighbours = imported?.neighbours ?? Self.defaultNeighbours
      derived["neighbours"] = from
    }
    if options.testCases == nil,
      let cases = try? MedicalDataset.decathlon(root: target ?? dataset).cases.count
    {
      options.testCases = Self.defaultTestCases(cases)
      derived["testCases"] = "default: 20% of the \(cases) cases"
    }
    if options.loss == nil {
      options.loss = .crossEntropy
      derived["loss"] = "default"
    }
    return ResolvedDefaults(options: options, derived: derived)
  }

  /// The settings of a source model's training (`student: false`) or a student's at `level`.
  func settings(student: Bool, level: ClassLevel, ignore: IgnoreIndex) -> ViewTrainingSettings {
    let (steps, learningRate) = training.schedule(student: student)
    return ViewTrainingSettings(
      iterations: steps, batchSize: training.batch, learningRate: learningRate,
      optimizer: training.makeOptimizer, maxGradientNorm: training.maxGradientNorm,
      loss: loss == .diceCrossEntropy ? level.diceCrossEntropyLoss : level.loss,
      ignoreIndex: ignore, pseudoShare: student ? pseudoShare : nil)
  }

  /// The sliding window of every prediction (nil: whole slices).
  var predictionWindow: SlidingWindow? { slidingWindow.map { SlidingWindow(size: $0) } }
}

/// How the cases are divided: labeled S, unlabeled reference R, and test E (disjoint case
/// names). A unit is always a whole case: slices of one case never land in two sets.
public struct VolumeSplit: Sendable, Equatable, Codable {
  public var labeled: [String]
  public var reference: [String]
  public var test: [String]

  /// The semi-supervised split of one dataset's cases: a seeded permutation, the first
  /// `testCount` cases are E, then `round(labeledFraction * rest)` (at least 1) are S, the rest R.
  public static func semiSupervised(
    cases: [String], labeledFraction: Double, testCount: Int, seed: UInt64
  ) -> VolumeSplit {
    var generator = SeededGenerator(seed: seed)
    let shuffled = cases.sorted().shuffled(using: &generator)
    let test = Array(shuffled.prefix(testCount))
    let rest = Array(shuffled.dropFirst(testCount))
    let wanted = Int((labeledFraction * Double(rest.count)).rounded())
    let labeledCount = min(rest.count, max(1, wanted))
    return VolumeSplit(
      labeled: rest.prefix(labeledCount).sorted(), reference: rest.dropFirst(labeledCount).sorted(),
      test: test.sorted())
  }

  /// The transfer split: S is `labeledFraction` of the source cases; the target's cases are
  /// split into E (`testCount`) and R (the rest), with the same seeded permutation.
  public static func transfer(
    source: [String], target: [String], labeledFraction: Double, testCount: Int, seed: UInt64
  ) -> VolumeSplit {
    var generator = SeededGenerator(seed: seed)
    let sourceOrder = source.sorted().shuffled(using: &generator)
    let labeledCount = max(1, Int((labeledFraction * Double(sourceOrder.count)).rounded()))
    let targetOrder = target.sorted().shuffled(using: &generator)
    return VolumeSplit(
      labeled: sourceOrder.prefix(labeledCount).sorted(),
      reference: targetOrder.dropFirst(testCount).sorted(),
      test: targetOrder.prefix(testCount).sorted())
  }
}
