import ArgumentParser
import Foundation
import Segmentation
import Taxonomy
import Tensor

/// How predicted label maps are written.
enum LabelEncoding: String, ExpressibleByArgument, CaseIterable {
  /// 8-bit gray, the class ids of the output class set (Cityscapes trainIds).
  case trainid
  /// 8-bit gray, the ids of a finer label class set (Cityscapes labelIds) via the inverse mapping.
  case labelid
  /// A palette PNG: indices = class ids, colour table = the class colours.
  case palette
  /// An RGB PNG of the class colours.
  case color
}

/// Writes class-id maps in one of the ``LabelEncoding``s.
struct LabelWriter {
  let classes: ClassSet
  let encoding: LabelEncoding
  /// For `.labelid`: class id -> label id (256 entries).
  let labelIDs: [UInt8]?

  /// The inverse of `mapping` (label class set -> `classes`) where it is unambiguous: each
  /// class of `classes` must have exactly one evaluated source class.
  ///
  /// - Throws: naming the first class with no or several label ids.
  static func inverseTable(_ mapping: LabelMapping) throws -> [UInt8] {
    var table = [UInt8](repeating: UInt8(mapping.source.ignoreIndex), count: 256)
    for target in mapping.target.classes where target.id != mapping.target.ignoreIndex {
      let children = mapping.children(ofTargetID: target.id).filter {
        mapping.source.semanticClass(id: $0)?.isEvaluated ?? false
      }
      guard children.count == 1 else {
        throw SegmentationCommandError(
          description: "mapping '\(mapping.name)': class '\(target.name)' (\(target.id)) has "
            + "\(children.count) source classes \(children), so its label id is ambiguous")
      }
      table[target.id] = UInt8(children[0])
    }
    return table
  }

  /// The RGB colour of every pixel value (``ClassSet/displayColors``).
  var colors: [LabelColor] { classes.displayColors }

  func write(_ labels: LabelImage, to path: String) throws {
    switch encoding {
    case .trainid:
      try ImageFile.writePNG(labels, to: path)
    case .labelid:
      try ImageFile.writePNG(labels.mapped(through: labelIDs ?? Array(0...255)), to: path)
    case .palette:
      let count = max(Int(labels.values.max() ?? 0), classes.maximumID, classes.ignoreIndex) + 1
      try ImageFile.writePNG(
        PaletteImage(indices: labels, palette: Array(colors.prefix(min(256, count)))), to: path)
    case .color:
      try ImageFile.writePNG(colorImage(labels), to: path)
    }
  }

  func colorImage(_ labels: LabelImage) -> RGBImage { labels.colorized(colors) }
}

/// `atso-transfer predict`: label maps from a checkpoint.
struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Predict label maps with a trained checkpoint, at each image's own resolution.",
    discussion: """
      Input: --dataset SPEC (e.g. cityscapes:ROOT:val, camvid:LIST?include=0001TP), \
      --images DIR (every .png/.jpg in it) or --list FILE (one image path a line). Each image \
      is resized to the working size (--size; default the training.json beside the \
      checkpoint), run through the network (--flip averages with the mirrored image), and the \
      class probabilities are resized bilinearly back to the image's size. For large images, \
      --sliding-window runs the network in Gaussian-weighted windows (as nnU-Net, half \
      overlapping) of the training crop size (or --window HxW), and --full-resolution at each \
      image's own size instead of the working size.

      OUTPUT/<id>.png holds the labels in --classes (default: the model's class set, mapped \
      through the shipped mappings) in --encoding:
        trainid   gray, the class ids (Cityscapes trainIds for cityscapes-19)
        labelid   gray, ids of --label-classes (default cityscapes-34 labelIds)
                  through the inverse mapping (each class needs one source class)
        palette   palette PNG, index = class id, colours from the class set
        color     LabelColor class colours
      --overlay also writes OUTPUT/<id>_overlay.png (image blended with the colours), \
      --confidence OUTPUT/<id>_confidence.png (8-bit, 255 = probability 1 of the chosen class).

      Examples:
        atso-transfer predict --checkpoint runs/camvid-day/checkpoint.safetensors \\
          --dataset 'camvid:data/camvid/val.txt' --encoding palette --overlay \\
          --output pred
        atso-transfer predict --checkpoint runs/city/checkpoint.safetensors \\
          --dataset cityscapes:data/cityscapes:val --full-resolution \\
          --window 256x512 --output pred-full
      """)

  @OptionGroup var mappings: MappingsDirectoryOption

  @Option(help: "The checkpoint (.safetensors) to run.")
  var checkpoint: String

  @Option(help: "A dataset spec to predict.")
  var dataset: String?

  @Option(help: "A folder of images to predict.")
  var images: String?

  @Option(help: "A file listing image paths, one a line.")
  var list: String?

  @Option(
    parsing: .unconditional,
    help: "The working size HxW (default: from training.json beside the checkpoint).")
  var size: SizeArgument?

  @Option(help: "The class set of the written labels (default: the model's).")
  var classes: String?

  @Option(help: "The encoding: trainid, labelid, palette or color.")
  var encoding: LabelEncoding = .trainid

  @Option(help: "With --encoding labelid: the label class set (default cityscapes-34).")
  var labelClasses = "cityscapes-34"

  @Flag(help: "Also write <id>_overlay.png.")
  var overlay = false

  @Flag(help: "Also write <id>_confidence.png.")
  var confidence = false

  @Flag(help: "Average with the horizontally mirrored image (test-time augmentation).")
  var flip = false

  @OptionGroup var inference: InferenceOptions

  @Option(parsing: .unconditional, help: "Compute threads.")
  var threads: Int?

  @Option(help: "The output folder.")
  var output: String

  func validate() throws {
    let inputs = [dataset, images, list].compactMap { $0 }
    if inputs.count != 1 { throw ValidationError("give one of --dataset, --images or --list") }
    try validating {
      if let threads { try SettingChecks.threads(threads, field: "--threads") }
    }
  }

  /// The samples to predict (labels dropped).
  func samples() throws -> [SampleReference] {
    if let dataset { return try DatasetSpec(parsing: dataset).open().samples }
    var paths: [String] = []
    if let images {
      let names: [String]
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: images, isDirectory: &isDirectory),
        isDirectory.boolValue
      else {
        throw SegmentationCommandError(description: "\(images): no such folder (--images)")
      }
      do { names = try FileManager.default.contentsOfDirectory(atPath: images).sorted() } catch {
        throw SegmentationCommandError(
          description: "\(images): cannot list the folder (permission denied?)")
      }
      paths = names.filter {
        let e = ($0 as NSString).pathExtension.lowercased()
        return e == "png" || e == "jpg" || e == "jpeg"
      }.map { images + "/" + $0 }
    } else if let list {
      let text: String
      switch FileRead.bytes(at: list, limit: 1 << 28) {
      case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
      case .failure(let failure):
        throw SegmentationCommandError(description: "\(list): cannot read the list: \(failure)")
      }
      let base = URL(fileURLWithPath: list).deletingLastPathComponent().path
      paths = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        .map { $0.hasPrefix("/") ? $0 : base + "/" + $0 }
    }
    guard !paths.isEmpty else {
      throw SegmentationCommandError(
        description: images.map { "\($0): no .png, .jpg or .jpeg file in the folder (empty)" }
          ?? "\(list ?? ""): the list names no image (empty)")
    }
    var seen = Set<String>()
    return try paths.map { path in
      let id = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
      guard seen.insert(id).inserted else {
        throw SegmentationCommandError(description: "\(path): a second image with id '\(id)'")
      }
      return SampleReference(id: id, imagePath: path)
    }
  }

  func run() throws {
    if let threads { BLASThreads.set(threads) }
    let library = try mappings.library(including: [classes, labelClasses])
    let saved = try Checkpoint.read(from: checkpoint)
    let model = try saved.makeModel(path: checkpoint)
    let modelClasses = try library.classSet(named: saved.description.classSetName)
    let outClasses = try library.classSet(named: classes ?? modelClasses.name)
    let toOutput = try library.mapping(from: modelClasses.name, to: outClasses.name).lookupTable
    var labelIDs: [UInt8]?
    if encoding == .labelid {
      labelIDs = try LabelWriter.inverseTable(
        library.mapping(from: labelClasses, to: outClasses.name))
    }
    let writer = LabelWriter(classes: outClasses, encoding: encoding, labelIDs: labelIDs)
    let plan = try inferencePlan(
      checkpoint: checkpoint, size: size?.size, options: inference,
      architecture: saved.description.architecture)
    let references = try samples()
    do {
      try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
    } catch {
      throw SegmentationCommandError(description: "\(output): cannot create the folder")
    }
    var iterator = PredictionIterator(
      dataset: Dataset(classSetName: modelClasses.name, samples: references),
      workingSize: plan.inputSize)
    var written = 0
    let printer = ProgressPrinter(interval: 10)
    defer { printer.finish() }
    let start = Date()
    while let sample = try iterator.next() {
      let result = predictLabelsAtImageSize(
        model, sample: sample, flip: flip, window: plan.window)
      let labels = LabelImage(
        width: sample.originalSize.width, height: sample.originalSize.height,
        values: result.labels.map { toOutput[Int($0)] })
      try writer.write(labels, to: output + "/" + sample.id + ".png")
      if overlay {
        let image = try ImageFile.readRGB(at: sample.reference.imagePath)
        let colors = writer.colorImage(labels)
        var pixels = image.pixels
        for i in pixels.indices {
          pixels[i] = UInt8((Int(pixels[i]) + Int(colors.pixels[i])) / 2)
        }
        try ImageFile.writePNG(
          RGBImage(width: image.width, height: image.height, pixels: pixels),
          to: output + "/" + sample.id + "_overlay.png")
      }
      if confidence {
        try ImageFile.writePNG(
          LabelImage(
            width: labels.width, height: labels.height,
            values: result.confidence.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }),
          to: output + "/" + sample.id + "_confidence.png")
      }
      written += 1
      printer.items("predict", done: written, total: references.count, unit: "img", since: start)
    }
    printer.finish()
    print(
      "wrote \(written) label maps (\(outClasses.name), \(encoding.rawValue)) to \(output); "
        + plan.description
        + (plan.inputSize == nil ? "" : ", probabilities upsampled to each image's own size"))
  }
}

/// How `predict` and `evaluate --checkpoint` run the network over an image.
struct InferenceOptions: ParsableArguments {
  @Flag(
    help: """
      Run the network in Gaussian-weighted windows (as nnU-Net, half overlapping) of --window \
      instead of on the whole image.
      """)
  var slidingWindow = false

  @Option(
    help: """
      The sliding window HxW (implies --sliding-window; default: the training crop size from \
      training.json, else the network input size).
      """)
  var window: SizeArgument?

  @Flag(
    help: """
      Run at each image's own resolution instead of resizing it to the network input size \
      (with a sliding window: large images at full resolution, memory bounded by the window).
      """)
  var fullResolution = false

  /// Whether a sliding window is asked for.
  var isSliding: Bool { slidingWindow || window != nil }
}

/// How a checkpoint runs over images, resolved once from the flags and `training.json`.
struct InferencePlan {
  /// The size each image is resized to before the network (nil: its own size).
  var inputSize: ImageSize?
  /// The sliding window (nil: whole images).
  var window: SlidingWindow?
  /// Where the sizes came from, for the reports.
  var description: String
}

/// The network input of a checkpoint: `size` when given, else the training size from the
/// `training.json` beside the checkpoint (or each image's own size with `--full-resolution`),
/// and the sliding window (`--window`, else the training crop size, else the input size).
/// `predict` and `evaluate --checkpoint` share it. The network must accept the input size and
/// the window, and one image of that size (predict and evaluate run them one at a time) must
/// fit in memory.
func inferencePlan(
  checkpoint: String, size: ImageSize?, options: InferenceOptions,
  architecture: ModelArchitecture
) throws -> InferencePlan {
  func check(_ size: ImageSize, _ source: String) throws {
    let field = source.hasPrefix("--") ? source : "\(source):"
    try architecture.check(workingSize: size, field: field)
    try architecture.checkMemory(batch: 1, size: size, training: false, field: field)
  }
  let folder = URL(fileURLWithPath: checkpoint).deletingLastPathComponent().path
  let path = TrainingRunFiles.configuration(in: folder)
  let recipe =
    FileManager.default.fileExists(atPath: path)
    ? try readRunConfiguration(path).augmentation : nil
  func text(_ size: ImageSize) -> String { "\(size.height)x\(size.width)" }
  var input: (size: ImageSize, source: String)?
  if let size {
    input = (size, "--size")
  } else if let working = recipe?.workingSize {
    input = (working, "the training size, \(path)")
  }
  var parts: [String] = []
  if options.fullResolution {
    parts.append("network input: each image at its own resolution (--full-resolution)")
  } else if let input {
    try check(input.size, input.source)
    parts.append("network input \(text(input.size)) (HxW, \(input.source))")
  } else {
    throw SegmentationCommandError(
      description: "\(checkpoint): no training.json beside it to take the training size from; "
        + "give --size HxW (or --full-resolution)")
  }
  var window: SlidingWindow?
  if options.isSliding {
    let crop = recipe?.cropSize.flatMap { $0 == recipe?.workingSize ? nil : $0 }
    let chosen: (size: ImageSize, source: String)? =
      options.window.map { ($0.size, "--window") } ?? crop.map { ($0, "the training crop size") }
      ?? input.map { ($0.size, "the network input size") }
    guard let chosen else {
      throw SegmentationCommandError(
        description: "\(checkpoint): no training.json beside it to take the window from; "
          + "give --window HxW")
    }
    let (size, source) = chosen
    try check(size, source)
    window = SlidingWindow(size: size)
    parts.append(
      "sliding window \(text(size)) (\(source)), Gaussian-weighted, step half a window")
  }
  return InferencePlan(
    inputSize: options.fullResolution ? nil : input?.size, window: window,
    description: parts.joined(separator: ", "))
}

/// The arg-max labels of `model` on `sample` and their probabilities at the file's
/// resolution: the network runs at the sample's (working) size, in windows when `window` is
/// given, and its class probabilities are resized bilinearly to the image's own size (`flip`
/// averages with the mirrored image).
func predictLabelsAtImageSize(
  _ model: any SegmentationModel, sample: PredictionSample, flip: Bool,
  window: SlidingWindow? = nil
) -> (labels: [UInt8], confidence: [Float]) {
  let (_, probabilities) = predictSegmentation(
    model, images: sample.image, horizontalFlip: flip, window: window)
  let decisions = ClassDecisions(
    probabilities: probabilitiesAtImageSize(probabilities, size: sample.originalSize).scalars,
    classCount: probabilities.shape[3])
  return (decisions.labels, decisions.confidences)
}

/// Scoring a model on a labelled dataset (`evaluate --checkpoint`).
enum ModelEvaluation {
  /// The raw matrix of the dataset's label values (rows, in `dataset.labelClasses`) against
  /// the model's predictions (columns, in `classes`), at each image's own size (probabilities
  /// upsampled, ``predictLabelsAtImageSize(_:sample:flip:window:)``) or, with `atWorkingSize`,
  /// at the network input size against the labels resized (nearest).
  static func matrix(
    _ model: any SegmentationModel, classes: ClassSet, on dataset: Dataset,
    plan: InferencePlan, atWorkingSize: Bool
  ) throws -> ConfusionMatrix {
    guard let truthClasses = dataset.labelClasses else {
      throw SegmentationCommandError(description: "the ground truth's class set is not resolved")
    }
    var matrix = ConfusionMatrix(groundTruth: truthClasses, prediction: classes)
    var iterator = PredictionIterator(dataset: dataset, workingSize: plan.inputSize)
    var histogram = RawPairHistogram()
    let printer = ProgressPrinter(interval: 10)
    defer { printer.finish() }
    let start = Date()
    while let sample = try iterator.next() {
      defer {
        printer.items(
          "evaluate", done: iterator.position, total: dataset.count, unit: "img", since: start)
      }
      guard let label = sample.label else {
        throw SegmentationCommandError(
          description: "\(sample.reference.imagePath): the ground-truth sample has no label file")
      }
      histogram.removeAll()
      if atWorkingSize, let workingSize = plan.inputSize {
        histogram.add(
          groundTruth: ImageOps.resizeNearest(label, to: workingSize).values,
          prediction: predictSegmentation(model, images: sample.image, window: plan.window).labels)
      } else {
        histogram.add(
          groundTruth: label.values,
          prediction: predictLabelsAtImageSize(
            model, sample: sample, flip: false, window: plan.window
          ).labels)
      }
      matrix.accumulate(histogram)
    }
    return matrix
  }

}
