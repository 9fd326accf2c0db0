import ArgumentParser
import Dispatch
import Foundation
import Synchronization
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
  static func readChecked(_ path: String, classes: ClassSet) throws -> LabelImage {
    let label = try ImageFile.readLabel(at: path)
    try classes.checkLabelValues(ClassSet.valueHistogram(label.values), file: path)
    return label
  }

  /// Throws if a value flagged in `present` is neither a class of `classes` nor its ignore value,
  /// naming the file, every such value and its pixel count (`counts`, only computed then).
  static func check(
    _ present: [Bool], counts: () -> [Int64], path: String, classes: ClassSet
  ) throws {
    let accepted = classes.acceptedLabelValues
    if (0..<256).contains(where: { present[$0] && !accepted[$0] }) {
      try classes.checkLabelValues(counts(), file: path)
    }
  }

  /// Accumulates every pair into one matrix (ground truth rows in `truthClasses`, prediction
  /// columns in `predictionClasses`), decoding on `workers` threads, one pair per worker at a
  /// time (the next pair in list order as soon as a worker is free), so memory stays flat.
  ///
  /// - Throws: the error of the first failing pair (in list order): an unreadable file, a size
  ///   difference, a value that is not a class.
  static func accumulate(
    _ pairs: [LabelPair], truthClasses: ClassSet, predictionClasses: ClassSet, workers: Int
  ) throws -> ConfusionMatrix {
    let collector = EvaluationCollector(
      ConfusionMatrix(groundTruth: truthClasses, prediction: predictionClasses))
    let width = max(1, min(workers, pairs.count))
    let next = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: width) { _ in
      var partial = ConfusionMatrix(groundTruth: truthClasses, prediction: predictionClasses)
      // One raw-pair histogram per image (reused): its bins tell which values occur, so each
      // file's values are checked without another pass over its pixels.
      var histogram = RawPairHistogram()
      // One pair reader per worker, its buffers reused frame after frame (no allocation, no
      // page faults for frames of one size); each pair of rows is counted as soon as it is
      // decoded, while it is in the cache.
      var reader = LabelPairReader()
      while case let index = next.add(1, ordering: .relaxed).oldValue, index < pairs.count {
        let pair = pairs[index]
        do {
          let sizes = try reader.read(truthAt: pair.truth, predictionAt: pair.prediction)
          guard sizes.truth == sizes.prediction else {
            throw SegmentationCommandError(
              description: "\(pair.prediction): prediction is \(sizes.prediction.width)x"
                + "\(sizes.prediction.height) but the ground truth \(pair.truth) is "
                + "\(sizes.truth.width)x\(sizes.truth.height)")
          }
          histogram.removeAll()
          histogram.add { count in reader.forEachRowPair(count) }
          let present = histogram.presentValues
          try check(
            present.groundTruth, counts: { histogram.valueCounts.groundTruth }, path: pair.truth,
            classes: truthClasses)
          try check(
            present.prediction, counts: { histogram.valueCounts.prediction },
            path: pair.prediction, classes: predictionClasses)
          partial.accumulate(histogram)
        } catch {
          collector.fail(index, error)
          return
        }
      }
      collector.merge(partial)
    }
    if let failure = collector.firstError { throw failure.error }
    return collector.matrix
  }

  /// The pairs of a list file: `prediction truth` per line (fields apart by spaces or tabs,
  /// `\r\n` line ends accepted), relative to the list's folder; empty lines and lines starting
  /// with `#` are skipped. Read byte by byte (a list of 100,000 pairs takes milliseconds).
  ///
  /// - Throws: naming the file, the line and its text when a line has not two fields.
  static func pairs(listFile: String) throws -> [LabelPair] {
    let text: String
    do { text = try String(contentsOfFile: listFile, encoding: .utf8) } catch {
      throw SegmentationCommandError(description: "\(listFile): cannot read the list of pairs")
    }
    let base = URL(fileURLWithPath: listFile).deletingLastPathComponent().path
    func resolve(_ field: Substring.UTF8View) -> String {
      let path = String(decoding: field, as: UTF8.self)
      return field.first == UInt8(ascii: "/") ? path : base + "/" + path
    }
    let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    var pairs: [LabelPair] = []
    for (number, line) in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false)
      .enumerated()
    {
      let fields = line.split(whereSeparator: blank)
      if fields.isEmpty || fields[0].first == UInt8(ascii: "#") { continue }
      guard fields.count == 2 else {
        let shown = String(decoding: line.reversed().drop(while: blank).reversed(), as: UTF8.self)
        throw SegmentationCommandError(
          description: "\(listFile):\(number + 1): expected 'prediction truth', got '\(shown)'")
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

      Both sides are counted on their raw values, then mapped: the ground truth goes to the \
      prediction class set first (the finest class set both share), then both go to --at \
      (default: that shared class set) through the same mappings. So Mapillary ground truth \
      against cityscapes-19 predictions is scored in cityscapes-categories through \
      Mapillary -> cityscapes-19 -> categories, not through the direct Mapillary -> \
      categories table (which serves predictions in Mapillary's own classes; \
      `atso-transfer mapping check` lists where such tables differ). \
      --mapping NAME/FILE (repeatable) replaces the default mapping between its two class \
      sets on that path (a variant, your own file); --variants scores the same pixels under \
      every variant of the mappings on the path and prints the spread. The report names every \
      mapping used.

      With --checkpoint FILE the network is run on --truth at --size (default: the training \
      size, from training.json beside the checkpoint, as `predict`), the class probabilities \
      are upsampled bilinearly to each image's own size and scored against the labels at \
      full resolution; --at-working-size scores at the network size instead (labels resized \
      nearest, as the transfer backend does). --sliding-window (with --window HxW, \
      --full-resolution) runs the network in Gaussian-weighted windows, as `predict`. The \
      report states the resolution.

      Examples:
        atso-transfer evaluate --truth cityscapes:data/cityscapes:val \\
          --predictions out/pred --prediction-classes cityscapes-19 \\
          --json scores.json
        atso-transfer evaluate --truth mapillary:data/vistas:validation \\
          --predictions out/pred --prediction-classes cityscapes-19 --variants
        atso-transfer evaluate --checkpoint runs/camvid-day/checkpoint.safetensors \\
          --truth 'camvid:data/camvid/train.txt?include=0001TP'
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

  @Option(help: "The class set to score in (default: where ground truth and predictions meet).")
  var at: String?

  @Option(
    help: "A mapping name or file used instead of the default between its class sets (repeatable).")
  var mapping: [String] = []

  @Flag(help: "Also score under every variant of the mappings used, and print the spread.")
  var variants = false

  @Option(help: "A checkpoint to run on --truth instead of reading predictions.")
  var checkpoint: String?

  @Option(
    parsing: .unconditional,
    help: "With --checkpoint: the network input size HxW (default: the training size).")
  var size: SizeArgument?

  @Flag(help: "With --checkpoint: score at the network input size, labels resized (nearest).")
  var atWorkingSize = false

  @OptionGroup(title: "With --checkpoint") var inference: InferenceOptions

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
      if predictionClasses != nil {
        throw ValidationError("--checkpoint predicts the checkpoint's class set; drop --prediction-classes")
      }
      if atWorkingSize && inference.fullResolution {
        throw ValidationError("--at-working-size and --full-resolution exclude each other")
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
      if atWorkingSize { throw ValidationError("--at-working-size applies to --checkpoint only") }
      if inference.isSliding || inference.fullResolution {
        throw ValidationError(
          "--sliding-window, --window and --full-resolution apply to --checkpoint only")
      }
    }
    try validating {
      if let threads { try SettingChecks.threads(threads, field: "--threads") }
    }
  }

  /// The library: the search path plus the files named by the options.
  func library() throws -> MappingLibrary {
    try mappings.library(including: [truthClasses, predictionClasses, at] + mapping)
  }

  /// The scores the options ask for.
  func report() throws -> EvaluationReport {
    let library = try library()
    if let checkpoint {
      if let threads { BLASThreads.set(threads) }
      let saved = try Checkpoint.read(from: checkpoint)
      return try report(
        model: saved.makeModel(path: checkpoint),
        modelClasses: library.classSet(named: saved.description.classSetName), library: library)
    }
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
    return try scored(counts, library: library, notes: ["\(labelPairs.count) label pairs"])
  }

  /// The scores of `model` (predicting `modelClasses`) on `--truth`: the checkpoint path.
  func report(model: any SegmentationModel, modelClasses: ClassSet, library: MappingLibrary)
    throws -> EvaluationReport
  {
    var dataset = try DatasetSpec(parsing: truth ?? "").open()
    dataset.labelClasses = try library.classSet(named: truthClasses ?? dataset.classSetName)
    let plan = try inferencePlan(
      checkpoint: checkpoint ?? "", size: size?.size, options: inference,
      architecture: model.architecture)
    let counts = try ModelEvaluation.matrix(
      model, classes: modelClasses, on: dataset, plan: plan, atWorkingSize: atWorkingSize)
    let resolution =
      atWorkingSize
      ? "resolution: \(plan.description), scored at that size against the labels "
        + "resized (nearest)"
      : plan.inputSize == nil
        ? "resolution: \(plan.description), scored against the full-resolution labels"
        : "resolution: \(plan.description), class probabilities upsampled bilinearly to each "
          + "image's own size, scored against the full-resolution labels"
    return try scored(
      counts, library: library,
      notes: ["\(dataset.count) images, checkpoint \(checkpoint ?? "(in memory)")", resolution])
  }

  /// Scores a raw ground truth x prediction matrix along the scoring path (and its variants).
  func scored(_ counts: ConfusionMatrix, library: MappingLibrary, notes: [String]) throws
    -> EvaluationReport
  {
    let overrides = try mapping.map { try library.mapping(named: $0) }
    let truthName = counts.groundTruthClasses.name
    let predictionName = counts.predictionClasses.name
    let paths =
      variants
      ? try library.scoringPathVariants(
        groundTruth: truthName, prediction: predictionName, level: at, using: overrides)
      : [
        ScoringVariant(
          path: try library.scoringPath(
            groundTruth: truthName, prediction: predictionName, level: at, using: overrides),
          choices: [])
      ]
    var report = try paths[0].path.report(counts)
    report.notes += notes
    if let warning = singleClassWarning(counts.predictedClassNames, on: "the evaluated images") {
      report.notes.append(warning)
    }
    if variants {
      report.variants = try paths.map {
        EvaluationReport.VariantScore($0, report: try $0.path.report(counts))
      }
    }
    return report
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

/// The warning for predictions that hold a single class (e.g. only the background), or nil.
func singleClassWarning(_ predicted: [String], on what: String) -> String? {
  guard predicted.count == 1 else { return nil }
  return "warning: every prediction on \(what) is '\(predicted[0])': the model predicts a single "
    + "class (its scores say little; check the training and the labels)"
}
