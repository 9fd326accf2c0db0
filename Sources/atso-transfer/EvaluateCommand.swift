import ArgumentParser
import Dispatch
import Foundation
import Segmentation
import Taxonomy
import Tensor

/// One prediction file and its ground truth.
struct LabelPair: Sendable, Equatable {
  var prediction: String
  var truth: String
}

/// Collects per-worker confusion matrices and the first error (by pair index).
final class EvaluationCollector: @unchecked Sendable {
  private let lock = NSLock()
  private(set) var matrix: ConfusionMatrix
  private(set) var firstError: (index: Int, error: any Error)?

  init(_ matrix: ConfusionMatrix) { self.matrix = matrix }

  func merge(_ partial: ConfusionMatrix) {
    lock.lock()
    matrix.merge(partial)
    lock.unlock()
  }

  func fail(_ index: Int, _ error: any Error) {
    lock.lock()
    if firstError.map({ index < $0.index }) ?? true { firstError = (index, error) }
    lock.unlock()
  }
}

/// Scores label files against ground truth, streaming.
enum LabelEvaluation {
  /// Reads one label file and checks its values against a class set.
  static func readChecked(_ path: String, classes: ClassSet, role: String) throws -> LabelImage {
    let label = try ImageFile.readLabel(at: path)
    // One tight pass marks the values present; the class check then looks at 256 flags, not
    // at every pixel through a closure.
    var present = [Bool](repeating: false, count: 256)
    label.values.withUnsafeBufferPointer { values in
      present.withUnsafeMutableBufferPointer { flags in
        for v in values { flags[Int(v)] = true }
      }
    }
    try check(present, path: path, classes: classes, role: role)
    return label
  }

  /// Throws if a value flagged in `present` is neither a class of `classes` nor its ignore value.
  static func check(_ present: [Bool], path: String, classes: ClassSet, role: String) throws {
    var known = [Bool](repeating: false, count: 256)
    for c in classes.classes { known[c.id] = true }
    known[classes.ignoreIndex] = true
    if let bad = (0..<256).first(where: { present[$0] && !known[$0] }) {
      throw SegmentationCommandError(
        description: "\(path): \(role) label value \(bad) is not a class of \(classes.name) "
          + "(nor its ignore value \(classes.ignoreIndex))")
    }
  }

  /// Accumulates every pair into one matrix (ground truth rows in `truthClasses`, prediction
  /// columns in `predictionClasses`), decoding on `workers` threads, one pair per worker at a
  /// time, so memory stays flat.
  ///
  /// - Throws: the error of the first failing pair (in list order): an unreadable file, a size
  ///   difference, a value that is not a class.
  static func accumulate(
    _ pairs: [LabelPair], truthClasses: ClassSet, predictionClasses: ClassSet, workers: Int
  ) throws -> ConfusionMatrix {
    let collector = EvaluationCollector(
      ConfusionMatrix(groundTruth: truthClasses, prediction: predictionClasses))
    let width = max(1, min(workers, pairs.count))
    DispatchQueue.concurrentPerform(iterations: width) { worker in
      var partial = ConfusionMatrix(groundTruth: truthClasses, prediction: predictionClasses)
      // One raw-pair histogram per image (reused): its bins tell which values occur, so each
      // file's values are checked without another pass over its pixels.
      var histogram = RawPairHistogram()
      var index = worker
      while index < pairs.count {
        let pair = pairs[index]
        do {
          let truth = try ImageFile.readLabel(at: pair.truth)
          let prediction = try ImageFile.readLabel(at: pair.prediction)
          guard truth.width == prediction.width, truth.height == prediction.height else {
            throw SegmentationCommandError(
              description: "\(pair.prediction): prediction is \(prediction.width)x"
                + "\(prediction.height) but the ground truth \(pair.truth) is "
                + "\(truth.width)x\(truth.height)")
          }
          histogram.removeAll()
          histogram.add(groundTruth: truth.values, prediction: prediction.values)
          let present = histogram.presentValues
          try check(
            present.groundTruth, path: pair.truth, classes: truthClasses, role: "ground-truth")
          try check(
            present.prediction, path: pair.prediction, classes: predictionClasses,
            role: "prediction")
          partial.accumulate(histogram)
        } catch {
          collector.fail(index, error)
          return
        }
        index += width
      }
      collector.merge(partial)
    }
    if let failure = collector.firstError { throw failure.error }
    return collector.matrix
  }

  /// The pairs of a list file: `prediction truth` per line, relative to the list's folder.
  static func pairs(listFile: String) throws -> [LabelPair] {
    let text: String
    do { text = try String(contentsOfFile: listFile, encoding: .utf8) } catch {
      throw SegmentationCommandError(description: "\(listFile): cannot read the list of pairs")
    }
    let base = URL(fileURLWithPath: listFile).deletingLastPathComponent().path
    func resolve(_ p: Substring) -> String { p.hasPrefix("/") ? String(p) : base + "/" + p }
    var pairs: [LabelPair] = []
    for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false)
      .enumerated()
    {
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      if fields.isEmpty || fields[0].hasPrefix("#") { continue }
      guard fields.count == 2 else {
        throw SegmentationCommandError(
          description: "\(listFile):\(number + 1): expected 'prediction truth', got '\(line)'")
      }
      pairs.append(LabelPair(prediction: resolve(fields[0]), truth: resolve(fields[1])))
    }
    guard !pairs.isEmpty else {
      throw SegmentationCommandError(description: "\(listFile): no pairs")
    }
    return pairs
  }

  /// Pairs the labelled samples of `truth` with `<folder>/<id>.png`.
  ///
  /// - Throws: naming the first ground-truth sample without a prediction.
  static func pairs(truth: Dataset, predictionFolder folder: String) throws -> [LabelPair] {
    var pairs: [LabelPair] = []
    for sample in truth.samples {
      guard let label = sample.labelPath else {
        throw SegmentationCommandError(
          description: "\(sample.imagePath): the ground-truth sample has no label file")
      }
      let prediction = folder + "/" + sample.id + ".png"
      guard FileManager.default.fileExists(atPath: prediction) else {
        throw SegmentationCommandError(
          description: "\(prediction): missing prediction for the ground truth \(label)")
      }
      pairs.append(LabelPair(prediction: prediction, truth: label))
    }
    return pairs
  }
}

/// `atso-transfer evaluate`: confusion matrix, IoU and accuracy of label maps or a checkpoint.
struct EvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Score predicted label maps (or a checkpoint) against ground truth: IoU, accuracy.",
    discussion: """
      Ground truth is a dataset spec (--truth), e.g. cityscapes:ROOT:val, \
      mapillary:ROOT:validation, camvid:LIST?include=0016E5; its class set is the spec's \
      unless --truth-classes says otherwise. Predictions are PNGs named <sample id>.png in \
      --predictions DIR (what `atso-transfer predict` writes), in --prediction-classes. \
      Alternatively --pairs FILE lists 'prediction truth' lines.

      Both sides are counted at their own (finest) level, then reduced through the mappings to \
      --at (default: the prediction class set), e.g. Mapillary-trained predictions in \
      cityscapes-19 against Cityscapes labelIds (cityscapes-34) scored in cityscapes-19, or \
      in cityscapes-categories. --mapping NAME/FILE replaces the prediction side's mapping.

      With --checkpoint FILE the network is run on --truth at --size (default: each image's \
      own size) and scored against the labels resized to that size, without writing files.

      Examples:
        atso-transfer evaluate --truth cityscapes:data/cityscapes:val \\
          --predictions out/pred --prediction-classes cityscapes-19 \\
          --json scores.json
        atso-transfer evaluate --checkpoint runs/camvid-day/checkpoint.safetensors \\
          --truth 'camvid:data/camvid/train.txt?include=0001TP' --size 96x128
      """)

  @OptionGroup var mappings: MappingsDirectoryOption

  @Option(help: "The ground truth: a labelled dataset spec.")
  var truth: String?

  @Option(help: "The ground truth's class set (default: the dataset's).")
  var truthClasses: String?

  @Option(help: "A folder of predicted label PNGs named <sample id>.png.")
  var predictions: String?

  @Option(help: "The class set of the predicted values.")
  var predictionClasses: String?

  @Option(help: "A list file of 'prediction truth' label paths (instead of --truth).")
  var pairs: String?

  @Option(help: "The class set to score in (default: the prediction class set).")
  var at: String?

  @Option(help: "A mapping name or JSON file from the prediction class set to --at.")
  var mapping: String?

  @Option(help: "A checkpoint to run on --truth instead of reading predictions.")
  var checkpoint: String?

  @Option(parsing: .unconditional, help: "With --checkpoint: the working size HxW.")
  var size: SizeArgument?

  @Option(parsing: .unconditional, help: "Decoding threads (default: the number of processors).")
  var threads: Int?

  @Option(help: "Write the report as JSON.")
  var json: String?

  @Option(help: "Write the per-class scores as CSV.")
  var csv: String?

  @Flag(help: "Also print the confusion matrix.")
  var matrix = false

  func validate() throws {
    if checkpoint != nil {
      if truth == nil { throw ValidationError("--checkpoint needs --truth SPEC") }
      if predictions != nil || pairs != nil {
        throw ValidationError("--checkpoint replaces --predictions/--pairs; give one")
      }
    } else {
      if pairs == nil && (truth == nil || predictions == nil) {
        throw ValidationError("give --truth SPEC and --predictions DIR, or --pairs FILE")
      }
      if pairs != nil && (truth != nil || predictions != nil) {
        throw ValidationError("--pairs replaces --truth/--predictions; give one")
      }
      if predictionClasses == nil {
        throw ValidationError("give --prediction-classes (the class set of the predictions)")
      }
      if pairs != nil && truthClasses == nil {
        throw ValidationError("--pairs needs --truth-classes")
      }
      if size != nil { throw ValidationError("--size applies to --checkpoint only") }
    }
    try validating {
      if let threads { try SettingChecks.threads(threads, field: "--threads") }
    }
  }

  /// The scores the options ask for.
  func report() throws -> EvaluationReport {
    let directory = try mappings.locate()
    let library = try MappingLibrary(directory: directory)
    if let checkpoint { return try checkpointReport(checkpoint, library: library) }
    let predictionSet = try library.classSet(named: predictionClasses ?? "")
    let truthSet: ClassSet
    let labelPairs: [LabelPair]
    if let pairs {
      truthSet = try library.classSet(named: truthClasses ?? "")
      labelPairs = try LabelEvaluation.pairs(listFile: pairs)
    } else {
      let dataset = try DatasetSpec(parsing: truth ?? "").open()
      truthSet = try library.classSet(named: truthClasses ?? dataset.classSetName)
      labelPairs = try LabelEvaluation.pairs(truth: dataset, predictionFolder: predictions ?? "")
    }
    let counts = try LabelEvaluation.accumulate(
      labelPairs, truthClasses: truthSet, predictionClasses: predictionSet,
      workers: threads ?? ProcessInfo.processInfo.activeProcessorCount)
    let target = at ?? predictionSet.name
    let predictionMapping: LabelMapping
    if let mapping {
      predictionMapping =
        FileManager.default.fileExists(atPath: mapping)
        ? try LabelMapping(contentsOfFile: mapping, searchDirectories: [directory])
        : try library.mapping(named: mapping)
    } else {
      predictionMapping = try library.mapping(from: predictionSet.name, to: target)
    }
    let reduced = try counts.reduced(
      groundTruth: try library.mapping(from: truthSet.name, to: predictionMapping.target.name),
      prediction: predictionMapping)
    return try reduced.report()
  }

  func checkpointReport(_ path: String, library: MappingLibrary) throws -> EvaluationReport {
    if let threads { BLASThreads.set(threads) }
    let saved = try Checkpoint.read(from: path)
    if let size {
      try saved.description.architecture.check(workingSize: size.size, field: "--size")
      try saved.description.architecture.checkMemory(
        batch: 8, size: size.size, training: false, field: "--size (batches of 8)")
    }
    let model = try saved.makeModel(path: path)
    let modelClasses = try library.classSet(named: saved.description.classSetName)
    let dataset = try DatasetSpec(parsing: truth ?? "").open()
    let truthName = truthClasses ?? dataset.classSetName
    let table = trainingLabelTable(
      try library.mapping(from: truthName, to: modelClasses.name), modelClasses: modelClasses)
    let counts = try evaluateSegmentation(
      anyModel: model, on: LabeledSource(dataset: dataset, labelTable: table),
      classes: modelClasses, workingSize: size?.size)
    let target = at ?? modelClasses.name
    if target == modelClasses.name { return try counts.report() }
    let toTarget = try library.mapping(from: modelClasses.name, to: target)
    return try counts.reduced(groundTruth: toTarget, prediction: toTarget).report()
  }

  func run() throws {
    let report = try report()
    print(report.table(), terminator: report.table().hasSuffix("\n") ? "" : "\n")
    if matrix { print(report.matrixTable()) }
    if let json { try write(report.jsonText(), to: json) }
    if let csv { try write(report.csv(), to: csv) }
  }

  func write(_ text: String, to path: String) throws {
    do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
      throw SegmentationCommandError(description: "\(path): cannot write: \(error)")
    }
  }
}
