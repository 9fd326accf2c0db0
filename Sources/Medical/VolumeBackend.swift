import Foundation
import Segmentation
import Taxonomy
import Tensor
import Transfer

/// The settings of a ``VolumeBackend``, read from the configuration's `backend` options.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `dataset` | Medical Segmentation Decathlon folder (`dataset.json`) with the labeled data | required |
/// | `target` | another MSD folder: the transfer setting (R and E come from it) | none |
/// | `labeled-fraction` | fraction of the training cases of `dataset` that are labeled (S) | 0.1, or 1 with `target` |
/// | `test-cases` | cases held out for E (from `target` if given, else from `dataset`) | 20 % of the cases |
/// | `split-seed` | seed of the case split | 0 |
/// | `widths` | U-Net widths, comma separated | `8,16,32` |
/// | `neighbours` | slices on either side given as channels | 1 |
/// | `iterations` | SGD steps per view to train M0 | 200 |
/// | `fine-tune-iterations` | SGD steps per view to fine-tune | `iterations` |
/// | `batch-size` | slices per step | 8 |
/// | `learning-rate` | base learning rate (poly schedule) | 0.01 |
/// | `window` | intensity window: `mri` (0.5-99.5 percentiles) or `ct` (-100..240 HU) | `mri` |
/// | `mappings` | the `mappings/` directory for `super:<mapping>` levels | located |
public struct VolumeBackendOptions: Sendable, Equatable {
  public var dataset: String
  public var target: String?
  public var labeledFraction: Double
  public var testCases: Int?
  public var splitSeed: UInt64
  public var widths: [Int]
  public var neighbours: Int
  public var iterations: Int
  public var fineTuneIterations: Int
  public var batchSize: Int
  public var learningRate: Float
  public var window: IntensityWindow
  public var mappings: String?

  /// The option keys this backend understands (besides `kind`).
  public static let keys: Set<String> = [
    "dataset", "target", "labeled-fraction", "test-cases", "split-seed", "widths", "neighbours",
    "iterations", "fine-tune-iterations", "batch-size", "learning-rate", "window", "mappings",
  ]

  /// Parses backend options.
  ///
  /// - Throws: `TransferError.invalidConfiguration` naming `backend.<key>` and the value.
  public init(_ options: [String: String]) throws {
    func fail(_ key: String, _ reason: String) -> TransferError {
      .invalidConfiguration(file: "configuration", key: "backend.\(key)", reason: reason)
    }
    for key in options.keys.sorted() where key != "kind" && !Self.keys.contains(key) {
      let known = Self.keys.sorted().joined(separator: ", ")
      throw fail(key, "unknown volume option (expected one of \(known))")
    }
    func integer(_ key: String, _ value: Int, minimum: Int) throws -> Int {
      guard let text = options[key] else { return value }
      guard let number = Int(text), number >= minimum else {
        throw fail(key, "'\(text)' is not an integer >= \(minimum)")
      }
      return number
    }
    guard let dataset = options["dataset"] else {
      throw fail("dataset", "missing: the folder of a Decathlon dataset (dataset.json)")
    }
    self.dataset = dataset
    target = options["target"]
    if let text = options["labeled-fraction"] {
      guard let value = Double(text), value > 0, value <= 1 else {
        throw fail("labeled-fraction", "'\(text)' is not in (0, 1]")
      }
      labeledFraction = value
    } else {
      labeledFraction = target == nil ? 0.1 : 1
    }
    testCases = try options["test-cases"].map { _ in try integer("test-cases", 0, minimum: 1) }
    if let text = options["split-seed"] {
      guard let value = UInt64(text) else { throw fail("split-seed", "'\(text)' is not a seed") }
      splitSeed = value
    } else {
      splitSeed = 0
    }
    let widthsText = options["widths"] ?? "8,16,32"
    let widths = widthsText.split(separator: ",").compactMap { Int($0) }
    guard widths.count >= 2, widths.count == widthsText.split(separator: ",").count,
      widths.allSatisfy({ $0 > 0 })
    else {
      throw fail("widths", "'\(widthsText)' is not two or more positive widths, e.g. 8,16,32")
    }
    self.widths = widths
    neighbours = try integer("neighbours", 1, minimum: 0)
    iterations = try integer("iterations", 200, minimum: 0)
    fineTuneIterations = try integer("fine-tune-iterations", iterations, minimum: 0)
    batchSize = try integer("batch-size", 8, minimum: 1)
    if let text = options["learning-rate"] {
      guard let value = Float(text), value > 0, value.isFinite else {
        throw fail("learning-rate", "'\(text)' is not a positive number")
      }
      learningRate = value
    } else {
      learningRate = 0.01
    }
    switch options["window"] ?? "mri" {
    case "mri": window = .mri
    case "ct": window = .ct
    case let other: throw fail("window", "'\(other)' is not mri or ct")
    }
    mappings = options["mappings"]
  }
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

/// The medical backend of a transfer run (`backend kind=volume`): the unit is a case.
///
/// Each model is three 2-D U-Nets (``ViewNetworks``), one per view, trained on slices with
/// neighbouring slices as channels; their predictions are fused by majority vote. Pseudo labels
/// are `.nii.gz` uint8 volumes of the fused prediction, one per case (`<case>.nii.gz`).
///
/// **Scores are Dice, not IoU.** ``evaluate(_:)`` returns the metric ``EvaluationMetric/meanDice``:
/// the mean Dice over the foreground classes of the level, each class's Dice being averaged over
/// the cases where it is defined (``DiceEvaluation/meanDicePerClass``); ``Evaluation/perClass``
/// holds that per-class Dice (background first). The run's tables and plots name the metric.
///
/// At a super-class level `super:<mapping>` (e.g. `super:msd-hippocampus-to-hippocampus`), the
/// networks still predict fine classes; S's labels are mapped to the super classes, training uses
/// the reduce-then-compute loss, and predictions sum the fine probabilities per super class.
public final class VolumeBackend: TransferBackend {
  public let options: VolumeBackendOptions
  public let split: VolumeSplit
  /// The number of fine classes (from the source `dataset.json` labels).
  public let classCount: Int
  /// The fine class set name recorded in checkpoints.
  public let classSetName: String
  /// The fine class names (`dataset.json` labels, by id).
  public let classNames: [String]
  let casesByName: [String: MedicalCase]
  /// Windowed images and ground truth, read once.
  private var loaded: [String: (image: Volume<Float>, labels: Volume<UInt8>)] = [:]
  /// Fused predictions by checkpoint, case and level (see ``predict(_:checkpoint:_:level:)``).
  private var predictions: [String: (labels: [UInt8], confidences: [Float])] = [:]

  /// Reads the dataset(s) and splits them.
  ///
  /// - Throws: `TransferError.invalidConfiguration` for bad options or a split that leaves a set
  ///   empty, and the dataset reading errors of ``MedicalDataset/decathlon(root:)``.
  public convenience init(options: [String: String]) throws {
    try self.init(options: try VolumeBackendOptions(options))
  }

  public init(options: VolumeBackendOptions) throws {
    self.options = options
    let source = try MedicalDataset.decathlon(root: options.dataset)
    guard source.classNames.count >= 2 else {
      throw TransferError.invalidConfiguration(
        file: options.dataset + "/dataset.json", key: "labels",
        reason: "needs at least two classes, found \(source.classNames.count)")
    }
    classCount = source.classNames.count
    classSetName = source.name
    classNames = source.classNames
    var cases: [String: MedicalCase] = [:]
    for item in source.cases { cases[item.name] = item }
    if let targetRoot = options.target {
      let target = try MedicalDataset.decathlon(root: targetRoot)
      for item in target.cases {
        if cases[item.name] != nil {
          throw TransferError.invalidConfiguration(
            file: targetRoot + "/dataset.json", key: "training",
            reason: "case name '\(item.name)' is also in \(options.dataset)")
        }
        cases[item.name] = item
      }
      let testCount = options.testCases ?? target.cases.count / 5
      split = .transfer(
        source: source.cases.map(\.name), target: target.cases.map(\.name),
        labeledFraction: options.labeledFraction, testCount: testCount, seed: options.splitSeed)
    } else {
      let testCount = options.testCases ?? source.cases.count / 5
      split = .semiSupervised(
        cases: source.cases.map(\.name), labeledFraction: options.labeledFraction,
        testCount: testCount, seed: options.splitSeed)
    }
    casesByName = cases
    for (name, set) in [("reference", split.reference), ("test", split.test)] where set.isEmpty {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "backend.test-cases",
        reason: "the \(name) set is empty (\(cases.count) cases in all)")
    }
  }

  // MARK: Data

  /// The windowed image and ground truth of a case (cached).
  func load(_ name: String) throws -> (image: Volume<Float>, labels: Volume<UInt8>) {
    if let hit = loaded[name] { return hit }
    guard let item = casesByName[name] else {
      throw TransferError.fileOperation(path: name, reason: "volume backend: unknown case")
    }
    let (image, labels) = try item.load()
    let entry = (image.windowed(options.window), labels)
    loaded[name] = entry
    return entry
  }

  /// The super-class table of a level (nil at the fine level) and the number of its classes.
  func levelTables(_ level: LabelLevel) throws -> (
    superClassOfFine: [Int?]?, lookup: [UInt8]?, classCount: Int
  ) {
    guard case .superClass(let name) = level else { return (nil, nil, classCount) }
    let library = try MappingLibrary.load(adding: MappingLibrary.folders(inList: options.mappings))
    let mapping = try library.mapping(named: name)
    let table = mapping.superClassTable
    guard table.count == classCount else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "level",
        reason: "mapping '\(name)' maps \(table.count) classes; the dataset has \(classCount)")
    }
    let count = (mapping.target.classes.map(\.id).max() ?? 0) + 1
    return (table, mapping.lookupTable, count)
  }

  /// Ground truth at a level.
  func groundTruth(_ name: String, lookup: [UInt8]?) throws -> [UInt8] {
    let labels = try load(name).labels.voxels
    guard let lookup else { return labels }
    return labels.map { lookup[Int($0)] }
  }

  func pseudoLabelPath(_ directory: String, _ unit: String) -> String {
    directory + "/\(unit).nii.gz"
  }

  func settings(_ level: LabelLevel, iterations: Int, seed: UInt64) throws -> ViewTrainingSettings {
    let tables = try levelTables(level)
    return ViewTrainingSettings(
      iterations: iterations, batchSize: options.batchSize, learningRate: options.learningRate,
      loss: tables.superClassOfFine.map { .reduceThenCompute(superClassOfFine: $0) }
        ?? .crossEntropy())
  }

  /// S as training cases at a level.
  func labeledCases(_ level: LabelLevel) throws -> [TrainingCase] {
    let lookup = try levelTables(level).lookup
    return try split.labeled.map { name in
      let image = try load(name).image
      let labels = Volume(geometry: image.geometry, voxels: try groundTruth(name, lookup: lookup))
      return TrainingCase(name: name, slicer: CaseSlicer(image: image, labels: labels))
    }
  }

  // MARK: TransferBackend

  public func referenceUnits() throws -> [String] { split.reference }

  public func trainSource(_ request: SourceTrainingRequest) throws {
    var generator = SeededGenerator(seed: request.seed)
    var networks = ViewNetworks(
      widths: options.widths, classCount: classCount, neighbours: options.neighbours,
      using: &generator)
    try networks.train(
      on: try labeledCases(.fine),
      settings: try settings(.fine, iterations: options.iterations, seed: request.seed),
      using: &generator)
    try networks.write(to: request.output, classSetName: classSetName)
  }

  public func fineTune(_ request: FineTuningRequest) throws {
    var generator = SeededGenerator(seed: request.seed)
    var networks = try ViewNetworks.read(from: request.initialCheckpoint)
    var cases = try labeledCases(request.level)
    for source in request.pseudoLabels {
      for unit in source.units {
        let image = try load(unit).image
        let path = pseudoLabelPath(source.directory, unit)
        let labels = try NIfTI.readLabels(path)
        guard labels.shape == image.shape else {
          throw MedicalError.shapeMismatch(
            image: casesByName[unit]?.image ?? unit, label: path, imageShape: image.shape,
            labelShape: labels.shape)
        }
        cases.append(
          TrainingCase(
            name: unit,
            slicer: CaseSlicer(
              image: image, labels: Volume(geometry: image.geometry, voxels: labels.voxels))))
      }
    }
    try networks.train(
      on: cases,
      settings: try settings(
        request.level, iterations: options.fineTuneIterations, seed: request.seed),
      using: &generator)
    try networks.write(to: request.output, classSetName: classSetName)
  }

  public func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    var generator = SeededGenerator(seed: request.seed)
    var networks = try ViewNetworks.read(from: request.checkpoint)
    let slicers = try request.units.map { CaseSlicer(image: try load($0).image) }
    networks.adaptBatchNorm(on: slicers, batchSize: options.batchSize, using: &generator)
    try networks.write(to: request.output, classSetName: classSetName)
  }

  /// The fused prediction of a case at a level by the model at `checkpoint`.
  ///
  /// Predictions are kept in memory per (checkpoint path, case, level): the run never rewrites
  /// a checkpoint path once written, so evaluating a teacher on R and labeling R with it predict
  /// once.
  func predict(_ networks: ViewNetworks, checkpoint: String, _ unit: String, level: LabelLevel)
    throws -> (labels: [UInt8], confidences: [Float])
  {
    let key = "\(checkpoint)|\(unit)|\(level)"
    if let hit = predictions[key] { return hit }
    let tables = try levelTables(level)
    let result = networks.predict(
      CaseSlicer(image: try load(unit).image), superClassOfFine: tables.superClassOfFine,
      levelClassCount: tables.classCount)
    predictions[key] = result
    return result
  }

  public func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    let networks = try ViewNetworks.read(from: request.checkpoint)
    let classes = try levelTables(request.level).classCount
    let ignore = request.options.ignoreIndex
    var predictions: [(unit: String, labels: [UInt8], confidences: [Float])] = []
    var estimator = ClassBalancedThresholdEstimator(classCount: classes)
    for unit in request.units {
      let (labels, confidences) = try predict(
        networks, checkpoint: request.checkpoint, unit, level: request.level)
      if request.options.classBalancedPortion != nil {
        try estimator.add(classes: labels, confidences: confidences, ignoreIndex: ignore)
      }
      predictions.append((unit, labels, confidences))
    }
    let balanced = try request.options.classBalancedPortion.map {
      try estimator.thresholds(portion: $0)
    }
    for (unit, labels, confidences) in predictions {
      var kept = labels
      if let balanced {
        kept = balanced.apply(classes: labels, confidences: confidences, ignoreIndex: ignore)
      } else if let threshold = request.options.confidenceThreshold {
        for i in kept.indices where Double(confidences[i]) < threshold { kept[i] = ignore }
      }
      let geometry = try load(unit).image.geometry
      try NIfTI.write(
        Volume(geometry: geometry, voxels: kept),
        to: pseudoLabelPath(request.outputDirectory, unit))
    }
  }

  /// Dice of a model on a list of cases at a level.
  public func dice(checkpoint: String, units: [String], level: LabelLevel) throws
    -> DiceEvaluation
  {
    let networks = try ViewNetworks.read(from: checkpoint)
    let tables = try levelTables(level)
    var evaluation = DiceEvaluation(classCount: tables.classCount)
    for unit in units {
      let prediction = try predict(networks, checkpoint: checkpoint, unit, level: level).labels
      evaluation.add(
        prediction: prediction, groundTruth: try groundTruth(unit, lookup: tables.lookup))
    }
    return evaluation
  }

  /// Mean foreground Dice and per-class Dice; see the type's notes.
  public func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    let units = request.set == .test ? split.test : split.reference
    let evaluation = try dice(checkpoint: request.checkpoint, units: units, level: request.level)
    return Self.evaluation(evaluation)
  }

  /// The ``Evaluation`` of a Dice evaluation: mean of the foreground classes' mean Dice.
  public static func evaluation(_ dice: DiceEvaluation) -> Evaluation {
    let perClass = dice.meanDicePerClass
    let foreground = perClass.dropFirst().compactMap { $0 }
    let mean = foreground.isEmpty ? 0 : foreground.reduce(0, +) / Double(foreground.count)
    return Evaluation(metric: .meanDice, score: mean, perClass: perClass)
  }

  public func agreement(_ request: AgreementRequest) throws -> Double {
    let networks = try ViewNetworks.read(from: request.checkpoint)
    var agree = 0
    var total = 0
    for source in request.pseudoLabels {
      for unit in source.units {
        let labels = try NIfTI.readLabels(pseudoLabelPath(source.directory, unit)).voxels
        let prediction = try predict(
          networks, checkpoint: request.checkpoint, unit, level: request.level
        ).labels
        guard labels.count == prediction.count else {
          throw TransferError.fileOperation(
            path: pseudoLabelPath(source.directory, unit), reason: "label size differs from image")
        }
        for i in labels.indices where labels[i] != 255 {
          total += 1
          if labels[i] == prediction[i] { agree += 1 }
        }
      }
    }
    return total == 0 ? 1 : Double(agree) / Double(total)
  }

  // MARK: Previews

  /// The class set of a level, for colours and names: the mapping's target at a super level,
  /// else the dataset's labels (background black, the others from the fallback palette).
  func levelClassSet(_ level: LabelLevel) throws -> ClassSet {
    if case .superClass(let name) = level {
      return try MappingLibrary.load(adding: MappingLibrary.folders(inList: options.mappings))
        .mapping(named: name).target
    }
    return try ClassSet(
      name: classSetName,
      classes: classNames.enumerated().map { id, name in
        SemanticClass(
          id: id, name: name, color: id == 0 ? LabelColor(red: 0, green: 0, blue: 0) : nil)
      })
  }

  /// Draws `request.count` test cases spread over E: for each, the axial slice (canonical RAS
  /// orientation, shown radiologically: patient right on the left, anterior up) with the most
  /// ground-truth foreground, its ground truth and each model's fused prediction.
  public func writePreviews(_ request: PreviewRequest) throws -> Bool {
    let picks = evenlySpacedIndices(count: request.count, total: split.test.count)
      .map { split.test[$0] }
    guard !picks.isEmpty else { return false }
    let tables = try levelTables(request.level)
    let classes = try levelClassSet(request.level)
    let colors = classes.displayColors
    let networks = try request.models.map { try ViewNetworks.read(from: $0.checkpoint) }
    var slices: [(caption: String, image: [Float], maps: [[UInt8]], width: Int, height: Int)] = []
    for unit in picks {
      let image = try load(unit).image
      let reorientation = Reorientation(image.geometry)
      let canonicalShape = reorientation.canonicalShape
      let truth = reorientation.toCanonical(try groundTruth(unit, lookup: tables.lookup))
      let predicted = try zip(request.models, networks).map { model, network in
        reorientation.toCanonical(
          try predict(network, checkpoint: model.checkpoint, unit, level: request.level).labels)
      }
      let volume = reorientation.toCanonical(image.voxels)
      let (nx, ny, nz) = (canonicalShape[0], canonicalShape[1], canonicalShape[2])
      let plane = nx * ny
      let foreground = (0..<nz).map { z in
        truth[(z * plane)..<((z + 1) * plane)].reduce(0) { $0 + ($1 != 0 && $1 != 255 ? 1 : 0) }
      }
      let z = foreground.indices.max { foreground[$0] < foreground[$1] } ?? nz / 2
      // Display pixel (row r, column c) = voxel (nx - 1 - c, ny - 1 - r, z).
      func slice<T>(_ values: [T]) -> [T] {
        (0..<ny).flatMap { r in
          (0..<nx).map { c in values[z * plane + (ny - 1 - r) * nx + (nx - 1 - c)] }
        }
      }
      slices.append(
        ("\(unit) AXIAL \(z + 1)/\(nz)", slice(volume), [slice(truth)] + predicted.map(slice),
          nx, ny))
    }
    // Panels share one size: smaller slices are centred on black.
    let width = slices.map(\.width).max() ?? 1
    let height = slices.map(\.height).max() ?? 1
    var sheet = ContactSheet(columns: ["IMAGE", "GROUND TRUTH"] + request.models.map(\.title))
    var shown: [[UInt8]] = []
    for item in slices {
      let (dx, dy) = ((width - item.width) / 2, (height - item.height) / 2)
      func padded(_ pixels: [UInt8]) -> RGBImage {
        var out = [UInt8](repeating: 0, count: 3 * width * height)
        for r in 0..<item.height {
          let source = 3 * r * item.width
          let target = 3 * ((r + dy) * width + dx)
          out.replaceSubrange(target..<(target + 3 * item.width), with: pixels[source..<(source + 3 * item.width)])
        }
        return RGBImage(width: width, height: height, pixels: out)
      }
      let gray = item.image.flatMap { v -> [UInt8] in
        let g = UInt8(max(0, min(255, (v * 255).rounded())))
        return [g, g, g]
      }
      shown += item.maps
      sheet.addRow(
        caption: item.caption,
        panels: [padded(gray)]
          + item.maps.map {
            padded(
              LabelImage(width: item.width, height: item.height, values: $0).colorized(colors)
                .pixels)
          })
    }
    sheet.legend = ContactSheet.legend(for: shown, classes: classes, colors: colors)
    try writePNG(sheet.render(), to: request.output)
    return true
  }
}
