import ArgumentParser
import Foundation
import Segmentation
import Taxonomy
import Tensor

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An `HxW` size on the command line (`96x128`: 96 rows, 128 columns).
struct SizeArgument: ExpressibleByArgument, Equatable {
  var size: ImageSize

  init?(argument: String) {
    guard let size = ImageSize(heightByWidth: argument) else { return nil }
    self.size = size
  }
}

/// The network families of `--model`.
extension WeightInitialization: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}

enum ModelKind: String, ExpressibleByArgument, CaseIterable {
  case unet, deeplab
}

/// A non-flag error of the segmentation commands, with its context.
struct SegmentationCommandError: Error, Equatable, CustomStringConvertible {
  var description: String
}

/// Runs the setting checks of a `validate()`, reporting a refused value as a `ValidationError`
/// (printed with the command's usage).
func validating(_ checks: () throws -> Void) throws {
  do { try checks() } catch let error as ModelError { throw ValidationError(error.description) }
}

/// Opens dataset specs and resolves class sets and label mappings for the 2-D commands.
struct DatasetResolver {
  let library: MappingLibrary

  /// Opens `specs` (all in one class set) as one dataset whose label files are checked
  /// against that class set when read.
  func open(_ specs: [String], option: String) throws -> Dataset {
    var merged: Dataset?
    var ids = Set<String>()
    for text in specs {
      var dataset = try DatasetSpec(parsing: text).open()
      dataset.labelClasses = try library.classSet(named: dataset.classSetName)
      if let first = merged, first.classSetName != dataset.classSetName {
        throw SegmentationCommandError(
          description: "\(option) \(text): labels in \(dataset.classSetName), but the previous "
            + "datasets use \(first.classSetName); give datasets of one class set")
      }
      for sample in dataset.samples where !ids.insert(sample.id).inserted {
        throw SegmentationCommandError(
          description: "\(option) \(text): sample '\(sample.id)' is listed twice")
      }
      if merged == nil {
        merged = dataset
      } else {
        merged?.samples += dataset.samples
      }
    }
    guard let merged else {
      throw SegmentationCommandError(description: "\(option): no dataset given")
    }
    return merged
  }

  /// The mapping from `source` to `target`: the named one, else the library's shortest path.
  func mapping(from source: String, to target: String, named name: String?) throws
    -> LabelMapping
  {
    if let name {
      let mapping = try library.mapping(named: name)  // a name, file stem or path
      guard mapping.source.name == source, mapping.target.name == target else {
        throw SegmentationCommandError(
          description: "mapping '\(name)' maps \(mapping.source.name) -> \(mapping.target.name), "
            + "not \(source) -> \(target)")
      }
      return mapping
    }
    return try library.mapping(from: source, to: target)
  }
}

/// `atso-transfer train`: supervised training of a 2-D segmentation network.
struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a U-Net or DeepLab segmentation network on labelled datasets.",
    discussion: """
      Datasets are spec strings (repeat --dataset; all must use one class set):
        cityscapes:ROOT[:SPLIT]   cityscapes-trainids:ROOT[:SPLIT]
        mapillary:ROOT[:SPLIT]    camvid:LIST    list:LIST:CLASSSET
      followed by ?include=PREFIX,...&exclude=PREFIX,... to keep samples by id prefix. \
      Labels are mapped from the dataset's class set to --classes through the shipped \
      mappings (cityscapes-34 -> cityscapes-19, camvid-11 -> camvid-11 identity, ...); classes \
      that are not evaluated become the void label.

      Every image is resized to --size, scaled by a random factor in --scale, padded or \
      cropped back to --size and flipped with probability --flip. SGD with momentum, weight \
      decay and the poly schedule lr = base * (1 - step / total)^0.9.

      OUTPUT/ holds training.json (the recipe), checkpoint.safetensors (+ .json, written every \
      --checkpoint-every steps and at the end), losses.csv (step, loss, learning rate, gradient \
      norm and labeled pixels of every step, for plotting) and validation.jsonl (scores as \
      fractions of 1). Progress goes to stderr: one line rewritten in place on a terminal, a \
      line every --log-every seconds in a log or a pipe. A run that was killed \
      continues exactly where its last checkpoint stopped with the same command plus --resume \
      (weights, optimizer, schedule, random state and data order are all restored).

      Example: the reference U-Net on CamVid daylight sequences (60 epochs = 3000 steps):
        atso-transfer train \\
          --dataset 'camvid:data/camvid/train.txt?include=0006R0,0016E5' \\
          --dataset 'camvid:data/camvid/val.txt?include=0006R0,0016E5' \\
          --classes camvid-11 --model unet --size 96x128 --batch 8 \\
          --epochs 60 --learning-rate 0.01 --weight-decay 5e-4 \\
          --initialization pytorch --seed 0 --threads 2 \\
          --validate 'camvid:data/camvid/train.txt?include=0001TP' \\
          --validate-every 500 --output runs/camvid-day
        atso-transfer train --dataset cityscapes:data/cityscapes:train \\
          --classes cityscapes-19 --model deeplab --size 256x512 --iterations 20000 \\
          --output runs/cityscapes-deeplab
      """)

  @OptionGroup var mappings: MappingsDirectoryOption

  @Option(help: "A training dataset spec (repeatable), e.g. 'camvid:train.txt?include=0006R0'.")
  var dataset: [String] = []

  @Option(help: "The class set the network predicts, e.g. cityscapes-19 or camvid-11.")
  var classes: String

  @Option(help: "A mapping name to use instead of the default path (e.g. a variant).")
  var mapping: String?

  @Option(help: "The network: unet or deeplab.")
  var model: ModelKind = .unet

  @Option(
    parsing: .unconditional,
    help: "Comma-separated encoder widths (U-Net: 2 or more, DeepLab: 4).")
  var widths = "16,32,64,128"

  @Option(parsing: .unconditional, help: "DeepLab: the width of the ASPP branches.")
  var asppChannels = 64

  @Option(
    parsing: .unconditional,
    help: "The working size HxW every image is resized to (e.g. 96x128).")
  var size: SizeArgument

  @Option(
    parsing: .unconditional,
    help: """
      Train on random crops HxW of the working size instead of the whole image (predict with \
      --sliding-window then; default: --size).
      """)
  var crop: SizeArgument?

  @Option(parsing: .unconditional, help: "The random scale range MIN,MAX (1,1 disables scaling).")
  var scale = "0.75,1.25"

  @Option(parsing: .unconditional, help: "The probability of a horizontal flip.")
  var flip: Float = 0.5

  @Option(parsing: .unconditional, help: "Images per step.")
  var batch = 8

  @Option(parsing: .unconditional, help: "The number of steps (or give --epochs).")
  var iterations: Int?

  @Option(
    parsing: .unconditional,
    help: "The number of passes over the data (incomplete last batches dropped).")
  var epochs: Int?

  @Option(parsing: .unconditional, help: "The base learning rate of the poly schedule.")
  var learningRate: Float = 0.01

  @Option(
    help: """
      The optimizer: sgd (PyTorch's torch.optim.SGD with --momentum) or adam \
      (torch.optim.Adam, betas 0.9 and 0.999, epsilon 1e-8; --momentum is not used).
      """)
  var optimizer: OptimizerKind = .sgd

  @Option(parsing: .unconditional, help: "SGD momentum.")
  var momentum: Float = 0.9

  @Option(parsing: .unconditional, help: "L2 weight decay (SGD and Adam).")
  var weightDecay: Float = 5e-4

  @Option(
    parsing: .unconditional,
    help: "The seed of the initialisation, data order and augmentation.")
  var seed: UInt64 = 0

  @Option(
    help: """
      Convolution initialisation: he (N(0, 2/fan_in), biases 0) or pytorch (PyTorch's \
      nn.Conv2d default, U(+-1/sqrt(fan_in)) for weights and biases, as the \
      shared/bench/torch_camvid_train.py recipe).
      """)
  var initialization: WeightInitialization = .he

  @Option(
    parsing: .unconditional,
    help: "Compute threads (OpenBLAS and the kernels); default: OpenBLAS's.")
  var threads: Int?

  @Option(parsing: .unconditional, help: "Background threads decoding images.")
  var loaderThreads = 1

  @Option(help: "The run folder.")
  var output: String

  @Option(parsing: .unconditional, help: "Steps between checkpoints.")
  var checkpointEvery = 100

  @Option(
    name: .customLong("validate"),
    help: "A labelled dataset spec scored (mIoU) during training and at the end.")
  var validationSpec: String?

  @Option(parsing: .unconditional, help: "Steps between validations (0: only at the end).")
  var validateEvery = 0

  @Flag(help: "Continue the run in --output from its checkpoint.")
  var resume = false

  @Option(
    parsing: .unconditional,
    help: "Seconds between progress lines when stderr is not a terminal.")
  var logEvery: Double = 10

  func validate() throws {
    if dataset.isEmpty { throw ValidationError("give at least one --dataset SPEC") }
    switch (iterations, epochs) {
    case (nil, nil): throw ValidationError("give --iterations N or --epochs N")
    case (.some, .some): throw ValidationError("give --iterations or --epochs, not both")
    default: break
    }
    if validateEvery > 0 && validationSpec == nil {
      throw ValidationError("--validate-every needs --validate SPEC")
    }
    let w = try widthList()
    if model == .unet && w.count < 2 {
      throw ValidationError("--widths: a U-Net needs at least 2 widths, got \(widths)")
    }
    if model == .deeplab && w.count != 4 {
      throw ValidationError("--widths: DeepLab needs 4 widths, got \(widths)")
    }
    let range = try scaleRange()
    try validating {
      if let iterations { try SettingChecks.steps(iterations, field: "--iterations") }
      if let epochs { try SettingChecks.steps(epochs, field: "--epochs") }
      try SettingChecks.batch(batch, field: "--batch")
      try SettingChecks.positive(learningRate, field: "--learning-rate")
      try SettingChecks.finite(momentum, in: 0..<1, field: "--momentum")
      try SettingChecks.finite(weightDecay, in: 0...1, field: "--weight-decay")
      try SettingChecks.finite(flip, in: 0...1, field: "--flip")
      try SettingChecks.finite(range.upperBound, in: 0...16, field: "--scale maximum")
      if let threads { try SettingChecks.threads(threads, field: "--threads") }
      try SettingChecks.count(loaderThreads, in: 1...256, field: "--loader-threads")
      try SettingChecks.count(checkpointEvery, in: 1...SettingChecks.maxSteps, field: "--checkpoint-every")
      try SettingChecks.count(validateEvery, in: 0...SettingChecks.maxSteps, field: "--validate-every")
      try SettingChecks.finite(logEvery, in: 0...86_400, field: "--log-every")
      try SettingChecks.count(asppChannels, in: 1...16_384, field: "--aspp-channels")
      // The network, the working size and the memory of a step, before any data is read
      // (the class count is not known yet: 256, the most a class set has, bounds it).
      let network = try architecture(classCount: 256)
      try network.validate { key in
        ["asppChannels": "--aspp-channels", "asppRates": "the ASPP rates"][key] ?? "--\(key)"
      }
      try network.check(workingSize: size.size, field: "--size")
      if let crop {
        guard crop.size.height <= size.size.height, crop.size.width <= size.size.width else {
          throw ValidationError(
            "--crop \(crop.size.heightByWidth): a crop of the working size --size "
              + "\(size.size.heightByWidth), at most that large on each side")
        }
        try network.check(workingSize: crop.size, field: "--crop")
      }
      try network.checkMemory(
        batch: batch, size: size.size, training: true, field: "--batch x --size")
    }
  }

  func widthList() throws -> [Int] { try positiveIntegers(widths, option: "--widths") }

  func scaleRange() throws -> ClosedRange<Float> {
    let values = scale.split(separator: ",").compactMap { Float(String($0)) }
    guard values.count == 2, values.allSatisfy(\.isFinite), values[0] > 0, values[0] <= values[1]
    else {
      throw ValidationError("--scale must be MIN,MAX with 0 < MIN <= MAX, got '\(scale)'")
    }
    return values[0]...values[1]
  }

  /// The architecture for `classCount` outputs.
  func architecture(classCount: Int) throws -> ModelArchitecture {
    switch model {
    case .unet:
      .unet(configuration: .init(widths: try widthList(), classCount: classCount))
    case .deeplab:
      .deepLab(configuration: .init(widths: try widthList(), asppChannels: asppChannels, classCount: classCount))
    }
  }

  func run() throws {
    if let threads { BLASThreads.set(threads) }
    let resolver = DatasetResolver(library: try mappings.library(including: [classes, mapping]))
    let modelClasses = try resolver.library.classSet(named: classes)
    let classes = modelClasses.name  // a file path names its class set
    let ignore = IgnoreIndex(modelClasses)
    let trainingSet = try resolver.open(dataset, option: "--dataset")
    guard trainingSet.isLabeled else {
      throw SegmentationCommandError(
        description: "--dataset: some samples have no label file (remove ?unlabeled)")
    }
    let table = trainingLabelTable(
      try resolver.mapping(from: trainingSet.classSetName, to: classes, named: mapping),
      modelClasses: modelClasses)
    var validation: LabeledSource?
    if let validationSpec {
      let set = try resolver.open([validationSpec], option: "--validate")
      validation = LabeledSource(
        dataset: set,
        labelTable: trainingLabelTable(
          try resolver.library.mapping(from: set.classSetName, to: classes),
          modelClasses: modelClasses))
    }
    // epochs <= 10^9 (validate()), so the product cannot overflow for any real dataset.
    let steps =
      iterations
      ?? TrainingRunConfiguration.steps(
        epochs: epochs ?? 1, sampleCount: trainingSet.count, batchSize: batch)
    if epochs != nil && steps > SettingChecks.maxSteps {
      throw SegmentationCommandError(
        description: "--epochs \(epochs ?? 0): \(steps) steps of \(batch) on \(trainingSet.count) "
          + "samples; at most \(SettingChecks.maxSteps) steps are accepted")
    }
    guard steps > 0 else {
      throw SegmentationCommandError(
        description: "--dataset: \(trainingSet.count) samples make no batch of \(batch)")
    }
    let network = try architecture(classCount: modelClasses.outputCount)
    try network.validate { $0 == "classCount" ? "--classes \(classes): the class count" : "--\($0)" }
    try network.checkMemory(
      batch: batch, size: size.size, training: true, field: "--batch x --size")
    let configuration = TrainingRunConfiguration(
      architecture: network,
      classSetName: classes, ignoreIndex: ignore,
      augmentation: AugmentationConfig(
        workingSize: size.size, scaleRange: try scaleRange(), cropSize: crop?.size ?? size.size,
        flipProbability: flip, ignoreIndex: ignore),
      batchSize: batch, totalSteps: steps, baseLearningRate: learningRate, optimizer: optimizer,
      momentum: momentum, weightDecay: weightDecay, seed: seed, checkpointInterval: checkpointEvery,
      validationInterval: validateEvery, loaderWorkers: loaderThreads,
      initialization: initialization)
    // Under mpirun: data-parallel over the ranks; rank 0 reports and writes the folder.
    let replicas = try ScaleOut.trainingReplicas()
    if let replicas, batch < replicas.count {
      throw ValidationError(
        "--batch \(batch) is smaller than the \(replicas.count) ranks of mpirun: every rank "
          + "computes at least one image of a step (give --batch \(replicas.count) or more)")
    }
    let printer = ProgressPrinter(interval: logEvery, quiet: (replicas?.index ?? 0) != 0)
    let reporter = TrainingReporter(printer: printer)
    let ranks = replicas.map { ", data-parallel over \($0.count) ranks" } ?? ""
    printer.line(
      "training \(configuration.architecture.summaryWithParameters) on \(trainingSet.count) samples "
        + "(\(trainingSet.classSetName) -> \(classes)), \(steps) steps of \(batch)"
        + (crop.map { " random \($0.size.heightByWidth) crops of \(size.size.heightByWidth)" } ?? "")
        + ranks)
    let result: TrainingRunResult
    do {
      result = try runTraining(
        configuration, in: output,
        training: LabeledSource(dataset: trainingSet, labelTable: table), validation: validation,
        modelClasses: modelClasses, resume: resume, replicas: replicas
      ) { event in reporter.report(event) }
      printer.finish()
    } catch {
      printer.finish()  // end the in-place line before the error is printed
      throw error
    }
    var summary = "done: \(result.steps) steps, checkpoint \(result.checkpointPath)"
    if let loss = result.lastLoss { summary += ", last loss \(format(loss, 4))" }
    if let report = result.validation {
      summary += ", validation mIoU \(format(Float(report.meanIoU * 100), 2)) %"
    }
    if (replicas?.index ?? 0) == 0 { print(printer.label + summary) }
  }
}

/// The comma-separated positive integers of `text`, the value of `option` (e.g. `8,16,32`).
func positiveIntegers(_ text: String, option: String) throws -> [Int] {
  let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
  guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
    throw ValidationError("\(option) must be positive integers separated by commas: '\(text)'")
  }
  return values.compactMap { $0 }
}

/// Formats a number with `digits` decimals.
func format(_ value: Float, _ digits: Int) -> String {
  String(format: "%.\(digits)f", Double(value))
}
