import Foundation
import Segmentation
import Taxonomy
import Tensor

/// The transfer backend with the real networks (`backend kind=segmentation`, the default).
///
/// One API for the two settings of ATSO (Huo et al., CVPR 2021):
/// - **semi-supervised**: `source=SPEC labeled-fraction=F`: S is a seeded fraction F of the
///   dataset (`split-seed`), R the rest (its labels are read only to report @R);
/// - **domain transfer**: `source=SPEC reference=SPEC`: S from the source dataset, R from the
///   target dataset (its own class set, mapped to the model's through the `MappingLibrary`).
///
/// E is `test=SPEC` in both. Every image is resized to the working size `size` (pseudo labels
/// are written and metrics computed at that size). The network predicts the fine class set
/// `classes` at every level; at a `super:<mapping>` level (`<mapping>` is a mapping name such as
/// `cityscapes-19-to-super-5`, a file stem `cityscapes-19--super-5`, or a super class set name
/// such as `super-5`):
/// - pseudo labels are the arg-max of the fine probabilities summed per super class;
/// - fine-tuning trains S with cross-entropy and the pseudo labels with the reduce-then-compute
///   loss through the mapping's fine-to-super table;
/// - evaluation compares the super-class decision with the ground truth mapped to the super
///   class set.
/// See ``SegmentationBackendOptions`` for every option. Calls are deterministic given their
/// requests; datasets are decoded once per backend object.
public final class SegmentationBackend: TransferBackend {
  public let options: SegmentationBackendOptions
  public let library: MappingLibrary
  /// The class set the network predicts.
  public let classSet: ClassSet
  /// The void value of pseudo label files.
  public let ignoreIndex: UInt8
  /// Receives one progress line per call (the CLI writes them to stderr).
  public var progress: ((String) -> Void)?
  /// Every training call of this object, in order (for tests and logs).
  package private(set) var trainingLog: [TrainingSummary] = []

  let labeled: InMemorySet
  let reference: InMemorySet
  let test: InMemorySet
  var classCount: Int { classSet.outputCount }

  /// Creates the backend from a run configuration (its `backend` options and the pseudo-label
  /// void value) and decodes S, R and E.
  ///
  /// - Throws: `TransferError.invalidConfiguration` for bad options, the dataset readers'
  ///   errors, `TaxonomyError` for unknown class sets or mappings.
  public convenience init(configuration: TransferConfiguration) throws {
    try self.init(
      options: SegmentationBackendOptions(configuration.backend),
      ignoreIndex: UInt8(clamping: configuration.pseudoLabels.ignoreIndex))
  }

  /// Creates the backend from parsed options.
  public init(options: SegmentationBackendOptions, ignoreIndex: UInt8 = 255) throws {
    self.options = options
    self.ignoreIndex = ignoreIndex
    if let threads = options.threads { BLASThreads.set(threads) }
    library = try MappingLibrary.load(adding: MappingLibrary.folders(inList: options.mappings))
    let sourceData = try options.source.open()
    let className = options.classes ?? Self.defaultClasses(for: sourceData.classSetName)
    classSet = try library.classSet(named: className)
    guard classSet.outputCount >= 2, classSet.outputCount <= 255 else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "backend.classes",
        reason: "'\(className)' has \(classSet.outputCount) outputs (need 2...255)")
    }
    let size = options.size
    let sourceTable = try Self.modelTable(library, from: sourceData.classSetName, to: classSet)
    guard sourceData.isLabeled else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "backend.source",
        reason: "'\(options.source)' has unlabeled samples; S must be labeled")
    }
    if let fraction = options.labeledFraction {
      var order = Array(sourceData.samples.indices)
      var generator = SeededGenerator(seed: options.splitSeed)
      for i in stride(from: order.count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
      }
      let count = min(order.count - 1, max(1, Int((fraction * Double(order.count)).rounded())))
      guard count >= 1, count < order.count else {
        throw TransferError.invalidReferenceSet(
          reason: "\(order.count) samples cannot be split with labeled-fraction \(fraction)")
      }
      let s = order[..<count].sorted().map { sourceData.samples[$0] }
      let r = order[count...].sorted().map { sourceData.samples[$0] }
      let classes = try library.classSet(named: sourceData.classSetName)
      labeled = try InMemorySet.load(
        s, table: sourceTable, size: size, withLabels: true, labelClasses: classes)
      reference = try InMemorySet.load(
        r, table: sourceTable, size: size, withLabels: true, labelClasses: classes)
    } else {
      labeled = try InMemorySet.load(
        sourceData.samples, table: sourceTable, size: size, withLabels: true,
        labelClasses: library.classSet(named: sourceData.classSetName))
      guard var spec = options.reference else {
        throw TransferError.invalidConfiguration(
          file: "configuration", key: "backend.reference", reason: "missing")
      }
      // R's labels (diagnosis only): reopen an `?unlabeled` spec with labels when they exist.
      spec.unlabeled = false
      let withLabels = (try? spec.open()).flatMap { $0.isLabeled ? $0 : nil }
      let data = try withLabels ?? options.reference?.open() ?? spec.open()
      let table = try Self.modelTable(library, from: data.classSetName, to: classSet)
      reference = try InMemorySet.load(
        data.samples, table: table, size: size, withLabels: withLabels != nil,
        labelClasses: library.classSet(named: data.classSetName))
    }
    let testData = try options.test.open()
    guard testData.isLabeled else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "backend.test",
        reason: "'\(options.test)' has unlabeled samples; E must be labeled")
    }
    test = try InMemorySet.load(
      testData.samples,
      table: try Self.modelTable(library, from: testData.classSetName, to: classSet), size: size,
      withLabels: true, labelClasses: library.classSet(named: testData.classSetName))
    guard Set(reference.ids).count == reference.count else {
      throw TransferError.invalidReferenceSet(reason: "duplicate unit ids in R")
    }
  }

  /// The model class set for a dataset's class set when `classes` is not given.
  static func defaultClasses(for datasetClasses: String) -> String {
    switch datasetClasses {
    case "cityscapes-34", "mapillary-vistas-v1.2": "cityscapes-19"
    default: datasetClasses
    }
  }

  /// The 256-entry table from a dataset's label pixels to model ids, 255 for everything that
  /// is ignored, void or not evaluated. The mapping is the ground-truth step of the scoring
  /// semantics (``MappingLibrary/mapping(from:to:)``, ``ScoringPath``).
  static func modelTable(_ library: MappingLibrary, from name: String, to classes: ClassSet)
    throws -> [UInt8]
  {
    let mapping = try library.mapping(from: name, to: classes.name)
    let count = classes.outputCount
    return mapping.lookupTable.map { id in
      guard Int(id) < count, classes.semanticClass(id: Int(id))?.isEvaluated == true else {
        return 255
      }
      return id
    }
  }

  // MARK: Levels

  /// A super-class level resolved through the library.
  struct SuperLevel {
    var mapping: LabelMapping
    /// `table[fine]`: the super id (count = class count).
    var table: [Int?]
    var count: Int
  }

  /// Resolves `super:<name>`; nil for the fine level.
  func superLevel(_ level: LabelLevel) throws -> SuperLevel? {
    guard case .superClass(let name) = level else { return nil }
    var mapping: LabelMapping?
    var candidates = [name]
    if name.contains("--") { candidates.append(name.replacingOccurrences(of: "--", with: "-to-")) }
    for candidate in candidates where mapping == nil {
      mapping = try? library.mapping(named: candidate)
    }
    if mapping == nil { mapping = try? library.mapping(from: classSet.name, to: name) }
    guard let mapping else {
      throw TransferError.unknownLabelLevel("super:\(name)", file: "no such mapping in mappings/")
    }
    guard mapping.source.name == classSet.name else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "level",
        reason: "mapping '\(mapping.name)' maps \(mapping.source.name), not \(classSet.name)")
    }
    var table = mapping.superClassTable
    table = (0..<classCount).map { $0 < table.count ? table[$0] : nil }
    let count = mapping.target.outputCount
    guard table.allSatisfy({ ($0 ?? 0) < count }) else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "level", reason: "mapping '\(mapping.name)' is not usable")
    }
    return SuperLevel(mapping: mapping, table: table, count: count)
  }

  // MARK: Models

  func architecture(network: String?) -> ModelArchitecture {
    let kind = network.flatMap { options.networkModels[$0] } ?? options.model
    let widths = network.flatMap { options.networkWidths[$0] } ?? options.widths
    switch kind {
    case "deeplab":
      return .deepLab(configuration: DeepLab.Configuration(widths: widths, classCount: classCount))
    default:
      return .unet(configuration: UNet.Configuration(widths: widths, classCount: classCount))
    }
  }

  func loadModel(_ path: String) throws -> any SegmentationModel {
    let model = try Checkpoint.read(from: path).makeModel(path: path)
    guard model.classCount == classCount else {
      throw TransferError.fileOperation(
        path: path,
        reason: "checkpoint predicts \(model.classCount) classes, \(classSet.name) has \(classCount)")
    }
    return model
  }

  func save<M: SegmentationModel>(_ model: M, to path: String) throws {
    try Checkpoint(model: model, classSetName: classSet.name).write(to: path)
    try? FileManager.default.removeItem(atPath: path + ".json")  // the readable side file
  }

  var settings: TrainingSettings {
    TrainingSettings(
      iterations: options.sourceIterations, batch: options.batch,
      learningRate: options.learningRate, momentum: options.momentum,
      weightDecay: options.weightDecay, pseudoShare: options.pseudoShare,
      flipProbability: options.flipProbability, superClassOfFine: nil)
  }

  var labeledItems: [TrainingItem] {
    guard let labels = labeled.labels else { return [] }
    return zip(labeled.images, labels).map { TrainingItem(image: $0, labels: $1) }
  }

  func log(_ summary: TrainingSummary, _ what: String, seconds: Double) {
    trainingLog.append(summary)
    progress?(
      "\(what): \(summary.steps) steps, final loss \(String(format: "%.3f", summary.finalLoss)), "
        + "\(String(format: "%.1f", seconds)) s")
  }

  // MARK: TransferBackend

  public func referenceUnits() throws -> [String] { reference.ids }

  public func trainSource(_ request: SourceTrainingRequest) throws {
    let start = Date()
    var generator = SeededGenerator(seed: request.seed)
    var model = architecture(network: request.network).makeModel(using: &generator)
    if options.initialization != .he { model.initialize(options.initialization, using: &generator) }
    let (trained, summary) = try trainModel(
      model, labeled: labeledItems, pseudo: [], settings: settings, seed: generator.next(),
      kind: "source")
    try save(trained, to: request.output)
    log(summary, "source model \(request.network ?? "")", seconds: -start.timeIntervalSinceNow)
  }

  /// Reads the pseudo labels of a set of units, checking their size and values.
  func readPseudoLabels(_ sources: [PseudoLabelSource], valueCount: Int) throws
    -> [(unit: String, labels: [UInt8])]
  {
    var result: [(unit: String, labels: [UInt8])] = []
    let size = options.size
    for source in sources {
      for unit in source.units {
        let path = source.directory + "/\(unit).png"
        let image = try ImageFile.readLabel(at: path)
        guard image.width == size.width, image.height == size.height else {
          throw TransferError.fileOperation(
            path: path,
            reason: "pseudo label is \(image.width)x\(image.height), working size is \(size)")
        }
        var values = image.values
        for i in values.indices {
          if values[i] == ignoreIndex {
            values[i] = 255
          } else if Int(values[i]) >= valueCount {
            throw TransferError.fileOperation(
              path: path, reason: "pixel \(i) has label \(values[i]) (\(valueCount) classes)")
          }
        }
        result.append((unit, values))
      }
    }
    return result
  }

  public func fineTune(_ request: FineTuningRequest) throws {
    let start = Date()
    let level = try superLevel(request.level)
    let labels = try readPseudoLabels(
      request.pseudoLabels, valueCount: level?.count ?? classCount)
    let index = Dictionary(uniqueKeysWithValues: reference.ids.enumerated().map { ($1, $0) })
    var pseudo: [TrainingItem] = []
    for (unit, values) in labels {
      guard let i = index[unit] else {
        throw TransferError.invalidReferenceSet(reason: "pseudo-labeled unit '\(unit)' is not in R")
      }
      pseudo.append(TrainingItem(image: reference.images[i], labels: values))
    }
    var training = settings
    training.iterations = options.fineTuneIterations
    training.learningRate = options.fineTuneLearningRate
    training.superClassOfFine = level?.table
    let initial = try loadModel(request.initialCheckpoint)
    let (model, summary) = try trainModel(
      initial, labeled: labeledItems, pseudo: pseudo, settings: training, seed: request.seed,
      kind: "finetune")
    try save(model, to: request.output)
    log(
      summary, "fine-tuned (\(request.level), \(pseudo.count) pseudo-labeled)",
      seconds: -start.timeIntervalSinceNow)
  }

  public func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    let index = Dictionary(uniqueKeysWithValues: reference.ids.enumerated().map { ($1, $0) })
    let images = try request.units.map { unit in
      guard let i = index[unit] else {
        throw TransferError.invalidReferenceSet(reason: "AdaBN unit '\(unit)' is not in R")
      }
      return reference.images[i]
    }
    let model = try loadModel(request.checkpoint)
    try save(adaptedBatchNorm(model, images: images, batch: options.batch), to: request.output)
    progress?("AdaBN on \(images.count) images")
  }

  /// Predictions (class, confidence per pixel) of a checkpoint on images, at a level.
  func decisions(_ checkpoint: String, images: [Tensor], level: SuperLevel?) throws
    -> [(classes: [UInt8], confidences: [Float])]
  {
    let model = try loadModel(checkpoint)
    return predictProbabilities(model, images: images, batch: options.batch).map {
      decide($0, superClassOfFine: level?.table, superCount: level?.count ?? 0)
    }
  }

  public func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    let level = try superLevel(request.level)
    let index = Dictionary(uniqueKeysWithValues: reference.ids.enumerated().map { ($1, $0) })
    let images = try request.units.map { unit in
      guard let i = index[unit] else {
        throw TransferError.invalidReferenceSet(reason: "unit '\(unit)' is not in R")
      }
      return reference.images[i]
    }
    let predicted = try decisions(request.checkpoint, images: images, level: level)
    let void = request.options.ignoreIndex
    var labels = predicted.map(\.classes)
    if let threshold = request.options.confidenceThreshold {
      labels = predicted.map {
        applyConfidenceThreshold(
          classes: $0.classes, confidences: $0.confidences, threshold: Float(threshold),
          ignoreIndex: void)
      }
    } else if let portion = request.options.classBalancedPortion {
      let thresholds = try ClassBalancedThresholds(
        classes: predicted.flatMap(\.classes), confidences: predicted.flatMap(\.confidences),
        classCount: level?.count ?? classCount, portion: portion, ignoreIndex: void)
      labels = predicted.map {
        thresholds.apply(classes: $0.classes, confidences: $0.confidences, ignoreIndex: void)
      }
    }
    let size = options.size
    for (unit, values) in zip(request.units, labels) {
      try ImageFile.writePNG(
        LabelImage(width: size.width, height: size.height, values: values),
        to: request.outputDirectory + "/\(unit).png")
    }
    let kept = labels.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 == void ? 0 : 1) } }
    let total = labels.reduce(0) { $0 + $1.count }
    progress?(
      "pseudo labels (\(request.level)): \(request.units.count) units, "
        + "\(String(format: "%.1f", 100 * Double(kept) / Double(max(1, total))))% of pixels kept")
  }

  public func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    let set = request.set == .test ? test : reference
    guard let groundTruth = set.labels else {
      // Only R can be unlabeled (E is checked at init): @R is then reported as 0, no classes.
      progress?("R has no labels: @R is reported as 0")
      return Evaluation(score: 0, perClass: [])
    }
    let level = try superLevel(request.level)
    let classes = level?.mapping.target ?? classSet
    let predicted = try decisions(request.checkpoint, images: set.images, level: level)
    var matrix = ConfusionMatrix(classes: classes)
    for (truth, prediction) in zip(groundTruth, predicted) {
      matrix.accumulate(groundTruth: Self.truth(truth, at: level), prediction: prediction.classes)
    }
    let report = try matrix.report()
    let perClass: [Double?] = report.perClass.filter(\.isEvaluated).map {
      $0.iou.isNaN ? nil : $0.iou
    }
    return Evaluation(score: report.meanIoU.isNaN ? 0 : report.meanIoU, perClass: perClass)
  }

  public func agreement(_ request: AgreementRequest) throws -> Double {
    let level = try superLevel(request.level)
    let labels = try readPseudoLabels(
      request.pseudoLabels, valueCount: level?.count ?? classCount)
    let index = Dictionary(uniqueKeysWithValues: reference.ids.enumerated().map { ($1, $0) })
    let images = try labels.map { unit, _ in
      guard let i = index[unit] else {
        throw TransferError.invalidReferenceSet(reason: "unit '\(unit)' is not in R")
      }
      return reference.images[i]
    }
    let predicted = try decisions(request.checkpoint, images: images, level: level)
    var same = 0
    var total = 0
    for ((_, teacher), student) in zip(labels, predicted) {
      for (t, s) in zip(teacher, student.classes) where t != 255 {
        total += 1
        if t == s { same += 1 }
      }
    }
    return total == 0 ? 1 : Double(same) / Double(total)
  }

  /// Model-class ground truth at a level (255 stays 255; fine classes without a super class
  /// become 255).
  static func truth(_ labels: [UInt8], at level: SuperLevel?) -> [UInt8] {
    guard let level else { return labels }
    return labels.map { $0 == 255 ? 255 : level.table[Int($0)].map { UInt8($0) } ?? 255 }
  }

  /// Draws `request.count` test images spread over E: the image, its ground truth and each
  /// model's predictions at the request's level, in the level's class colours.
  public func writePreviews(_ request: PreviewRequest) throws -> Bool {
    let picks = evenlySpacedIndices(count: request.count, total: test.count)
    guard !picks.isEmpty, let truths = test.labels else { return false }
    let level = try superLevel(request.level)
    let classes = level?.mapping.target ?? classSet
    let colors = classes.displayColors
    let images = picks.map { test.images[$0] }
    let predictions = try request.models.map { model in
      try decisions(model.checkpoint, images: images, level: level).map(\.classes)
    }
    let (height, width) = (options.size.height, options.size.width)
    let normalization = AugmentationConfig.evaluation(workingSize: nil).normalization
    var sheet = ContactSheet(columns: ["IMAGE", "GROUND TRUTH"] + request.models.map(\.title))
    var shown: [[UInt8]] = []
    for (row, index) in picks.enumerated() {
      let truth = Self.truth(truths[index], at: level)
      let maps = [truth] + predictions.map { $0[row] }
      shown += maps
      sheet.addRow(
        caption: test.ids[index],
        panels: [normalization.rgbImage(from: test.images[index])]
          + maps.map { LabelImage(width: width, height: height, values: $0).colorized(colors) })
    }
    sheet.legend = ContactSheet.legend(for: shown, classes: classes, colors: colors)
    try writePNG(sheet.render(), to: request.output)
    progress?("predictions of \(request.models.count) models on \(picks.count) test images")
    return true
  }

}
