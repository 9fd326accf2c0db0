import Foundation
import Medical
import Segmentation
import Taxonomy
import Tensor
import Transfer

/// The medical backend of a transfer run (`"kind": "volume"`): the unit is a case.
///
/// Each model is three 2-D U-Nets (``ViewNetworks``), one per view, trained on slices with
/// neighbouring slices as channels through Segmentation's ``Trainer``; their predictions are
/// fused by majority vote. Pseudo labels are `.nii.gz` uint8 volumes of the fused prediction, one
/// per case (`<case>.nii.gz`), the run's ignore index marking filtered voxels.
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
  /// The fine classes (from the source `dataset.json` labels; its name is the dataset's).
  public let classSet: ClassSet
  /// The void label of the run (pseudo labels, training, agreement).
  public let ignoreIndex: IgnoreIndex
  /// The view networks' widths and neighbours (the source model's when the run imports one).
  let widths: [Int]
  let neighbours: Int
  /// The run's levels, resolved once.
  let level: ResolvedLevels
  let progress: (@Sendable (String) -> Void)?
  let jobProgress: (@Sendable (JobProgress) -> Void)?
  let casesByName: [String: MedicalCase]
  /// The data as read (``dataSummary()``).
  let summary: DataSummary
  /// Windowed images and ground truth, read once.
  private var loaded: [String: (image: Volume<Float>, labels: Volume<UInt8>)] = [:]
  /// Fused predictions by checkpoint, case and level (see ``predict(_:checkpoint:_:level:)``),
  /// of the two checkpoints predicted last.
  private var predictions: [String: (labels: [UInt8], confidences: [Float])] = [:]
  private var predictedCheckpoints: [String] = []

  /// The number of fine classes.
  public var classCount: Int { classSet.outputCount }

  /// Reads the dataset(s), splits them, and resolves the run's levels.
  ///
  /// - Throws: `TransferError.invalidConfiguration` for bad options, a source model that does
  ///   not fit, or a split that leaves a set empty; the dataset reading errors of
  ///   ``MedicalDataset/decathlon(root:)``; ``LevelError`` for unknown mappings.
  public init(options: VolumeBackendOptions, context: BackendContext) throws {
    let fail = { (key: String, reason: String) in TransferError.invalid(key, reason) }
    self.options = options
    ignoreIndex = context.ignoreIndex
    progress = context.progress
    jobProgress = context.jobProgress
    options.training.applyThreads()
    let source = try MedicalDataset.decathlon(root: options.dataset)
    guard source.classNames.count >= 2 else {
      throw TransferError.invalidConfiguration(
        file: options.dataset + "/dataset.json", key: "labels",
        reason: "needs at least two classes, found \(source.classNames.count)")
    }
    classSet = try ClassSet(
      name: source.name,
      classes: source.classNames.enumerated().map { id, name in
        SemanticClass(
          id: id, name: name, color: id == 0 ? LabelColor(red: 0, green: 0, blue: 0) : nil)
      })
    if let path = context.sourceModel {
      let networks = try ViewNetworks.read(from: path)
      if networks.classCount != source.classNames.count {
        throw fail(
          "sourceModel",
          "\(path) predicts \(networks.classCount) classes, \(options.dataset) has \(source.classNames.count)")
      }
      let modelWidths = networks.networks[0].configuration.widths
      if let widths = options.widths, widths != modelWidths {
        throw fail("backend.widths", "\(widths), but the source model has \(modelWidths)")
      }
      if let neighbours = options.neighbours, neighbours != networks.neighbours {
        throw fail(
          "backend.neighbours", "\(neighbours), but the source model has \(networks.neighbours)")
      }
      widths = modelWidths
      neighbours = networks.neighbours
    } else {
      widths = options.widths ?? VolumeBackendOptions.defaultWidths
      neighbours = options.neighbours ?? VolumeBackendOptions.defaultNeighbours
    }
    let fineCount = source.classNames.count
    var library: MappingLibrary?  // read once, and only for a super-class level
    level = try ResolvedLevels(
      context.levels, fine: .fine(classSet, fineClassCount: fineCount), ignore: ignoreIndex
    ) { name in
      let mappings =
        try library
        ?? MappingLibrary.load(adding: MappingLibrary.folders(inList: options.mappings))
      library = mappings
      return try ClassLevel.superClass(
        named: name, library: mappings, fineClassSetName: nil, fineClassCount: fineCount)
    }
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
      split = .transfer(
        source: source.cases.map(\.name), target: target.cases.map(\.name),
        labeledFraction: options.labeledFraction,
        testCount: options.testCases ?? VolumeBackendOptions.defaultTestCases(target.cases.count),
        seed: options.splitSeed)
    } else {
      split = .semiSupervised(
        cases: source.cases.map(\.name), labeledFraction: options.labeledFraction,
        testCount: options.testCases ?? VolumeBackendOptions.defaultTestCases(source.cases.count),
        seed: options.splitSeed)
    }
    casesByName = cases
    for (name, set) in [("reference", split.reference), ("test", split.test)] where set.isEmpty {
      throw fail("backend.testCases", "the \(name) set is empty (\(cases.count) cases in all)")
    }
    var notes: [String] = []
    if let target = options.target {
      notes.append(
        "S: \(split.labeled.count) of the cases of \(options.dataset) (labeledFraction "
          + "\(options.labeledFraction)); R and E: the cases of \(target), \(split.test.count) "
          + "held out for E (testCases), splitSeed \(options.splitSeed).")
    } else {
      notes.append(
        "S, R, E: the cases of \(options.dataset): \(split.test.count) held out for E "
          + "(testCases), then \(String(format: "%g", options.labeledFraction * 100)) % of the "
          + "rest labeled (S), splitSeed \(options.splitSeed).")
    }
    notes.append(
      "Network: three 2-D U-Nets (axial, coronal, sagittal; widths "
        + "\(widths.map(String.init).joined(separator: ",")), \(neighbours) neighbouring "
        + "slice\(neighbours == 1 ? "" : "s") on each side as channels), fused by majority vote; "
        + "loss \((options.loss ?? .crossEntropy).rawValue); intensity window "
        + "\(options.window.rawValue)"
        + (options.slidingWindow.map { "; sliding window \($0.height)x\($0.width)" } ?? "")
        + ". Scores are Dice: the mean over the foreground classes of each class's Dice "
        + "averaged over the cases.")
    notes += level.descriptions(context.levels)
    summary = DataSummary(
      unit: "case", labeled: split.labeled, reference: split.reference, test: split.test,
      notes: notes)
  }

  public func dataSummary() throws -> DataSummary { summary }

  // MARK: Data

  /// The windowed image and ground truth of a case (cached).
  func load(_ name: String) throws -> (image: Volume<Float>, labels: Volume<UInt8>) {
    if let hit = loaded[name] { return hit }
    guard let item = casesByName[name] else {
      throw TransferError.fileOperation(path: name, reason: "volume backend: unknown case")
    }
    let (image, labels) = try item.load()
    let entry = (image.windowed(options.window.window), labels)
    loaded[name] = entry
    return entry
  }

  /// Ground truth of a case at a level (fine labels mapped, unmapped ones void).
  func groundTruth(_ name: String, level: ClassLevel) throws -> [UInt8] {
    level.labels(fromFine: try load(name).labels.voxels, ignore: ignoreIndex)
  }

  func pseudoLabelPath(_ directory: String, _ unit: String) -> String {
    directory + "/\(unit).nii.gz"
  }

  /// S as training cases at a level.
  func labeledCases(_ level: ClassLevel) throws -> [TrainingCase] {
    try split.labeled.map { name in
      let image = try load(name).image
      let labels = Volume(geometry: image.geometry, voxels: try groundTruth(name, level: level))
      return TrainingCase(name: name, slicer: CaseSlicer(image: image, labels: labels))
    }
  }

  /// Reads a teacher's pseudo label volume, checking its grid and values.
  func readPseudoLabels(_ set: PseudoLabelSet, unit: String, level: ClassLevel) throws
    -> Volume<UInt8>
  {
    let image = try load(unit).image
    let path = pseudoLabelPath(set.directory, unit)
    let labels = try NIfTI.readLabels(path)
    guard labels.shape == image.shape else {
      throw MedicalError.shapeMismatch(
        image: casesByName[unit]?.image ?? unit, label: path, imageShape: image.shape,
        labelShape: labels.shape)
    }
    if let i = labels.voxels.firstIndex(where: {
      Int($0) >= level.classCount && !ignoreIndex.isVoid($0)
    }) {
      throw TransferError.fileOperation(
        path: path,
        reason: "voxel \(i) has label \(labels.voxels[i]) (\(level.classCount) classes, void "
          + "\(ignoreIndex))")
    }
    return Volume(geometry: image.geometry, voxels: labels.voxels)
  }

  /// Trains `networks` on S plus the pseudo-labeled cases, reporting every step and one line
  /// at the end, and writing every step's loss to `lossLog` (a `view` column first).
  func train(
    _ networks: inout ViewNetworks, level: ClassLevel, pseudo: [TrainingCase], student: Bool,
    seed: UInt64, what: String, lossLog: String?
  ) throws {
    let start = Date()
    var generator = SeededGenerator(seed: seed)
    var last: TrainingProgress?
    let log = try lossLog.map { try LossLog(path: $0, leading: ["view"]) }
    try networks.train(
      on: try labeledCases(level) + pseudo,
      settings: options.settings(student: student, level: level, ignore: ignoreIndex),
      using: &generator
    ) { view, event in
      guard case .step(let step) = event else { return }
      last = step
      try log?.append(step, leading: [view.rawValue])
      // The steps of the three views, one after the other, as one loop.
      let views = AnatomicalView.allCases.count
      let done = (AnatomicalView.allCases.firstIndex(of: view) ?? 0) * step.totalSteps + step.step
      var all = JobProgress(step, task: "\(what), \(view.rawValue) view", unit: "slices")
      all.done = done
      all.total = views * step.totalSteps
      all.secondsRemaining = step.secondsPerStep * Double(all.total - done)
      jobProgress?(all)
    }
    progress?(
      "\(what): \(last?.step ?? 0) steps per view, final loss "
        + "\(String(format: "%.3f", last?.loss ?? 0)), "
        + "\(String(format: "%.1f", -start.timeIntervalSinceNow)) s")
  }

  /// The fused prediction of a case at a level by the model at `checkpoint`.
  ///
  /// Predictions of the last two checkpoints are kept in memory per (checkpoint path, case,
  /// level): the run never rewrites a checkpoint path once written, so evaluating a model and
  /// its AdaBN copy, then labeling R with the copy, predict once.
  func predict(_ networks: ViewNetworks, checkpoint: String, _ unit: String, level: LabelLevel)
    throws -> (labels: [UInt8], confidences: [Float])
  {
    let key = Self.predictionKey(checkpoint, unit, level)
    if let hit = predictions[key] { return hit }
    if !predictedCheckpoints.contains(checkpoint) {
      predictedCheckpoints.append(checkpoint)
      if predictedCheckpoints.count > 2 {
        let dropped = predictedCheckpoints.removeFirst() + "|"
        predictions = predictions.filter { !$0.key.hasPrefix(dropped) }
      }
    }
    let result = networks.predict(
      CaseSlicer(image: try load(unit).image), level: try self.level(level),
      window: options.predictionWindow)
    predictions[key] = result
    return result
  }

  /// Whether ``predict(_:checkpoint:_:level:)`` has the prediction in memory (progress lines
  /// say so: their speed is not the network's).
  func hasPrediction(checkpoint: String, _ unit: String, level: LabelLevel) -> Bool {
    predictions[Self.predictionKey(checkpoint, unit, level)] != nil
  }

  private static func predictionKey(_ checkpoint: String, _ unit: String, _ level: LabelLevel)
    -> String
  {
    "\(checkpoint)|\(unit)|\(level)"
  }

  /// The task of a loop over cases in progress lines: `task`, or `task` marked as read from
  /// memory while every case so far was (`cached` of `done`).
  static func task(_ task: String, cached: Int, done: Int) -> String {
    cached == done ? "\(task) (predicted before, from memory)" : task
  }
}
