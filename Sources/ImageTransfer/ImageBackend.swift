import Foundation
import Segmentation
import Taxonomy
import Tensor
import Transfer

/// The transfer backend with the real networks on images (`"kind": "image"`, the default).
///
/// Every image is resized to the working size `size` (pseudo labels are written and metrics
/// computed at that size). The network predicts the fine class set `classes` at every level;
/// the levels of the run are resolved once, at creation, into ``ClassLevel``s. At a
/// `super:<mapping>` level pseudo labels are the arg-max of the fine probabilities summed per
/// super class, students train the pseudo labels through the reduce-then-compute loss (S with
/// cross-entropy), and evaluation compares the super-class decision with the ground truth
/// mapped to the super classes. Every network trains through Segmentation's ``Trainer`` with the
/// augmentation of ``ImageBackendOptions``. Calls are deterministic given their requests;
/// datasets are decoded once per backend object.
public final class ImageBackend: TransferBackend {
  public let options: ImageBackendOptions
  public let library: MappingLibrary
  /// The class set the network predicts.
  public let classSet: ClassSet
  /// The working size.
  public let size: ImageSize
  /// The void label of the run (pseudo labels, training, scores, agreement).
  public let ignoreIndex: IgnoreIndex
  /// The default network's architecture (the source model's when the run imports one).
  let defaultArchitecture: (model: NetworkKind, widths: [Int])
  /// The run's levels, resolved once.
  let level: ResolvedLevels
  let progress: (@Sendable (String) -> Void)?
  let jobProgress: (@Sendable (JobProgress) -> Void)?
  /// The data as read (``dataSummary()``).
  let summary: DataSummary
  /// Every training call of this object, in order (for tests and logs).
  package private(set) var trainingLog: [TrainingSummary] = []
  /// The scores of the last evaluation, at every resolution (see ``evaluate(_:)``).
  var scoreCache: [String: [ScoreResolution: Evaluation]] = [:]

  let labeled: InMemorySet
  let reference: InMemorySet
  let test: InMemorySet
  var classCount: Int { classSet.outputCount }

  /// Creates the backend for a run: reads the source model's description (when the run imports
  /// one), resolves the class set and the levels, and decodes S, R and E.
  ///
  /// - Throws: `TransferError.invalidConfiguration` for options that do not fit the data or
  ///   the source model, the dataset readers' errors, `TaxonomyError` and ``LevelError`` for
  ///   unknown class sets or mappings.
  public init(options: ImageBackendOptions, context: BackendContext) throws {
    let fail = { (key: String, reason: String) in TransferError.invalid(key, reason) }
    self.options = options
    ignoreIndex = context.ignoreIndex
    progress = context.progress
    jobProgress = context.jobProgress
    options.training.applyThreads()
    library = try MappingLibrary.load(adding: MappingLibrary.folders(inList: options.mappings))
    let sourceData = try options.source.open()
    let imported = try context.sourceModel.map { try SourceModelDescription(path: $0) }
    let className =
      options.classes ?? imported?.classSetName ?? Self.defaultClasses(for: sourceData.classSetName)
    if let imported {
      try imported.check(
        classes: className, size: options.size, model: options.model, widths: options.widths)
    }
    classSet = try library.classSet(named: className)
    guard classSet.outputCount >= 2, classSet.outputCount <= 255 else {
      throw fail("backend.classes", "'\(className)' has \(classSet.outputCount) outputs (need 2...255)")
    }
    size = options.size ?? imported?.workingSize ?? ImageBackendOptions.defaultSize
    defaultArchitecture = (
      options.model ?? imported?.model ?? ImageBackendOptions.defaultModel,
      options.widths ?? imported?.widths ?? ImageBackendOptions.defaultWidths
    )
    let (library, classSet) = (library, classSet)
    level = try ResolvedLevels(context.levels, fine: .fine(classSet), ignore: ignoreIndex) {
      try ClassLevel.superClass(
        named: $0, library: library, fineClassSetName: classSet.name,
        fineClassCount: classSet.outputCount)
    }
    guard sourceData.isLabeled else {
      throw fail("backend.source", "'\(options.source)' has unlabeled samples; S must be labeled")
    }
    let sourceTable = try Self.modelTable(
      library, from: sourceData.classSetName, to: classSet, ignore: ignoreIndex)
    if let fraction = options.labeledFraction {
      var order = Array(sourceData.samples.indices)
      var generator = SeededGenerator(seed: options.splitSeed)
      for i in stride(from: order.count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
      }
      let count = min(order.count - 1, max(1, Int((fraction * Double(order.count)).rounded())))
      guard count >= 1, count < order.count else {
        throw TransferError.invalidReferenceSet(
          reason: "\(order.count) samples cannot be split with labeledFraction \(fraction)")
      }
      let s = order[..<count].sorted().map { sourceData.samples[$0] }
      let r = order[count...].sorted().map { sourceData.samples[$0] }
      let classes = try library.classSet(named: sourceData.classSetName)
      labeled = try InMemorySet.load(s, table: sourceTable, size: size, labelClasses: classes)
      reference = try InMemorySet.load(r, table: sourceTable, size: size, labelClasses: classes)
    } else {
      labeled = try InMemorySet.load(
        sourceData.samples, table: sourceTable, size: size,
        labelClasses: library.classSet(named: sourceData.classSetName))
      guard var spec = options.reference else {
        throw fail("backend.reference", "missing")
      }
      // R's labels (diagnosis only): reopen an `?unlabeled` spec with labels when they exist.
      spec.unlabeled = false
      let withLabels = (try? spec.open()).flatMap { $0.isLabeled ? $0 : nil }
      let data = try withLabels ?? options.reference?.open() ?? spec.open()
      let table = try Self.modelTable(
        library, from: data.classSetName, to: classSet, ignore: ignoreIndex)
      reference = try InMemorySet.load(
        data.samples, table: table, size: size,
        labelClasses: withLabels == nil ? nil : library.classSet(named: data.classSetName))
    }
    let testData = try options.test.open()
    guard testData.isLabeled else {
      throw fail("backend.test", "'\(options.test)' has unlabeled samples; E must be labeled")
    }
    test = try InMemorySet.load(
      testData.samples,
      table: try Self.modelTable(
        library, from: testData.classSetName, to: classSet, ignore: ignoreIndex),
      size: size, labelClasses: library.classSet(named: testData.classSetName))
    guard Set(reference.ids).count == reference.count else {
      throw TransferError.invalidReferenceSet(reason: "duplicate unit ids in R")
    }
    var notes: [String] = []
    if let fraction = options.labeledFraction {
      notes.append(
        "S: the seeded \(String(format: "%g", fraction * 100)) % of \(options.source) "
          + "(splitSeed \(options.splitSeed)); R: the rest of it, its labels dropped for training.")
    } else {
      notes.append("S: \(options.source); R: \(options.reference.map { "\($0)" } ?? "-").")
    }
    notes.append("E: \(options.test).")
    let labelSets = [("S", sourceData.classSetName), ("E", testData.classSetName)]
    notes.append(
      "Labels: "
        + labelSets.map { set, name in
          let mapping =
            (try? library.mapping(from: name, to: classSet.name)).map(library.recordName) ?? "?"
          return "\(set) \(name) -> \(classSet.name) by mapping \(mapping)"
        }.joined(separator: "; ") + "; unmapped and void labels are ignored.")
    let (kind, widths) = defaultArchitecture
    notes.append(
      "Network: \(kind.rawValue) widths \(widths.map(String.init).joined(separator: ",")) "
        + "predicting \(classSet.name) (\(classSet.outputCount) outputs); every image, label and "
        + "pseudo label at the working size \(size.height)x\(size.width) (HxW).")
    notes += level.descriptions(context.levels)
    summary = DataSummary(
      unit: "image", labeled: labeled.ids, reference: reference.ids, test: test.ids, notes: notes)
  }

  public func dataSummary() throws -> DataSummary { summary }

  /// The network class set for a dataset's class set when `classes` is not given.
  static func defaultClasses(for datasetClasses: String) -> String {
    switch datasetClasses {
    case "cityscapes-34", "mapillary-vistas-v1.2": "cityscapes-19"
    default: datasetClasses
    }
  }

  /// The 256-entry table from a dataset's label pixels to network ids: `ignore` for everything
  /// that is ignored, void or not evaluated.
  static func modelTable(
    _ library: MappingLibrary, from name: String, to classes: ClassSet, ignore: IgnoreIndex
  ) throws -> [UInt8] {
    let mapping = try library.mapping(from: name, to: classes.name)
    return trainingLabelTable(mapping, modelClasses: classes).map {
      $0 == UInt8(classes.ignoreIndex) ? ignore.value : $0
    }
  }

  // MARK: Models

  func architecture(network: String?) -> ModelArchitecture {
    let override = network.flatMap { options.networks[$0] }
    let kind = override?.model ?? defaultArchitecture.model
    let widths = override?.widths ?? defaultArchitecture.widths
    switch kind {
    case .deeplab:
      return .deepLab(configuration: DeepLab.Configuration(widths: widths, classCount: classCount))
    case .unet:
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
    try Checkpoint(model: model, classSetName: classSet.name, workingSize: size).write(to: path)
    try? FileManager.default.removeItem(atPath: path + ".json")  // the readable side file
  }

  /// The training recipe of a source model (`student: false`) or a student.
  func recipe(student: Bool) -> ImageTrainingRecipe {
    let training = options.training
    let (steps, learningRate) = training.schedule(student: student)
    return ImageTrainingRecipe(
      steps: steps, batch: training.batch, learningRate: learningRate,
      optimizer: training.makeOptimizer, maxGradientNorm: training.maxGradientNorm,
      augmentation: options.augmentation(size: size, ignore: ignoreIndex),
      pseudoShare: options.pseudoShare, ignore: ignoreIndex, classSetName: classSet.name)
  }

  var labeledItems: [TrainingItem] {
    guard let labels = labeled.labels else { return [] }
    return zip(labeled.raw, labels).map { TrainingItem(image: $0, labels: $1) }
  }

  /// Reports the training steps of `task`.
  func report(_ task: String) -> (TrainingProgress) -> Void {
    { [jobProgress] step in jobProgress?(JobProgress(step, task: task, unit: "img")) }
  }

  func log(
    _ summary: TrainingSummary, _ what: String, seconds: Double,
    dataParallel: DataParallel? = nil
  ) {
    trainingLog.append(summary)
    let ranks = dataParallel.map { ", data-parallel over \($0.replicas.count) ranks" } ?? ""
    progress?(
      "\(what): \(summary.steps) steps, final loss \(String(format: "%.3f", summary.finalLoss)), "
        + "\(String(format: "%.1f", seconds)) s\(ranks)")
  }

  /// Class decisions of a checkpoint on images at a level.
  func decisions(_ checkpoint: String, images: [Tensor], level: ClassLevel) throws
    -> [ClassDecisions]
  {
    let model = try loadModel(checkpoint)
    return predictProbabilities(model, images: images, batch: options.training.batch).map(
      level.decide)
  }
}
