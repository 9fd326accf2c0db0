import ArgumentParser
import Foundation
import ImageTransfer
import Segmentation
import Taxonomy
import Transfer

/// `atso-transfer demo`: the built-in synthetic domain transfer, end to end.
struct DemoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "demo",
    abstract: "Run the built-in synthetic street-scene transfer (daylight -> dusk) with ATSO.",
    discussion: """
      Generates synthetic street scenes with SyntheticStreets: a daylight source domain written \
      in the Cityscapes layout (labelIds) into OUTPUT/data/source, and a shifted dusk target \
      domain written in the Mapillary Vistas v1.2 layout (66 class ids) into OUTPUT/data/target \
      (split training = the unlabeled reference set R, split validation = the test set E). Then \
      runs, through the same dataset readers and the same TransferRun as real data, the staged \
      super-class transfer into OUTPUT/run: (1) ATSO at the super-class level \
      super:cityscapes-19--super-5 (the network predicts cityscapes-19 and is trained through \
      the reduce-then-compute loss), (2) a target network trained on the final super-class \
      pseudo labels (reduce loss), (3) that network fine-tuned on fine-class pseudo labels; \
      and compares it with direct transfer (the source-only model evaluated on the target). \
      Target ground truth (Mapillary 66 classes) is mapped to cityscapes-19 with the default \
      mapping. Prints the Table-1-shaped results; progress goes to stderr. A second call with \
      the same OUTPUT resumes (or just reprints) the run.

      Examples:
        atso-transfer demo --output atso-demo
        atso-transfer demo --output demo-no-adabn --no-ada-bn --threads 2
      """)

  @Option(name: [.customShort("o"), .long], help: "The demo folder.")
  var output = "./atso-demo"

  @Option(help: "The seed of the scenes and of the run.")
  var seed: UInt64 = 1

  @Option(help: "Labeled source scenes.")
  var sourceCount = 48

  @Option(help: "Target scenes in R (unlabeled) and in E (labeled), each.")
  var targetCount = 24

  @Option(help: "The scene and working size HxW.")
  var size = "48x96"

  @Option(help: "U-Net channel widths, comma separated.")
  var widths = "8,16,32"

  @Option(help: "SGD steps for each source model.")
  var sourceIterations = 500

  @Option(help: "SGD steps for each fine-tuning.")
  var finetuneIterations = 200

  @Option(help: "ATSO generations of stage 1.")
  var generations = 2

  @Flag(
    inversion: .prefixedNo,
    help: "Re-estimate batch-norm statistics on the target images before labeling (AdaBN).")
  var adaBn = true

  @Option(help: "Kernel threads (default: all cores).")
  var threads: Int?

  @Option(help: "The mappings/ folder (default: found from the current or executable folder).")
  var mappings: String?

  func parsedSize() throws -> (height: Int, width: Int) {
    let parts = size.split(separator: "x").compactMap { Int($0) }
    guard parts.count == 2, parts[0] >= 16, parts[1] >= 16 else {
      throw ValidationError("--size '\(size)': expected HxW with both at least 16")
    }
    return (parts[0], parts[1])
  }

  func validate() throws {
    _ = try parsedSize()
    if sourceCount < 2 || targetCount < 2 {
      throw ValidationError("--source-count and --target-count must be at least 2")
    }
    if sourceIterations < 1 || finetuneIterations < 1 || generations < 1 {
      throw ValidationError("iterations and generations must be at least 1")
    }
  }

  static let superLevel = "super:cityscapes-19--super-5"

  /// The run configuration of the demo (data paths under `root`).
  func transferConfiguration(root: String, mappingsDirectory: String) throws
    -> TransferConfiguration
  {
    var options: [String: ConfigurationValue] = [
      "source": .string("cityscapes:\(root)/data/source:train"),
      "reference": .string("mapillary:\(root)/data/target:training?unlabeled"),
      "test": .string("mapillary:\(root)/data/target:validation"),
      "classes": "cityscapes-19", "model": "unet", "size": .string(size), "batch": 4,
      "sourceIterations": .integer(Int64(sourceIterations)),
      "finetuneIterations": .integer(Int64(finetuneIterations)), "learningRate": 0.02,
      "mappings": .string(mappingsDirectory),
    ]
    options["widths"] = OptionValueKind.integers.value(of: widths)
    if let threads { options["threads"] = .integer(Int64(threads)) }
    let level = LabelLevel(string: Self.superLevel) ?? .fine
    return TransferConfiguration(
      seed: seed, runDirectory: root + "/run", schedules: [.atso], folds: 2,
      generations: generations, pseudoLabels: PseudoLabelConfiguration(adaptBatchNorm: adaBn),
      stages: [
        StageConfiguration(name: "coarse", method: .schedules, level: level),
        StageConfiguration(
          name: "target-coarse", method: .train, level: level, network: "target",
          labels: .previousStageFinal),
        StageConfiguration(
          name: "target-fine", method: .train, level: .fine, initialization: .previousStage,
          labels: .relabel),
      ],
      backend: try ImageBackendOptions.decoding(options, file: "demo"))
  }

  func run() throws {
    let started = Date()
    let reporter = TransferReporter(printer: ProgressPrinter(interval: 10))
    let say: @Sendable (String) -> Void = { line in
      let seconds = String(format: "%6.1f", -started.timeIntervalSinceNow)
      reporter.printer.line("[demo \(seconds) s] \(line)")
    }
    let (height, width) = try parsedSize()
    let root = URL(fileURLWithPath: output).standardizedFileURL.path
    let mappingsDirectory = try MappingLibrary.searchPath(adding: mappings.map { [$0] } ?? [])
      .joined(separator: ":")
    let marker = root + "/data/target/validation/images"
    if !FileManager.default.fileExists(atPath: marker) {
      say("writing \(sourceCount) source scenes (Cityscapes layout) to \(root)/data/source")
      try SyntheticStreets.writeDataset(
        domain: .source, root: root + "/data/source", split: "train", count: sourceCount,
        seed: seed, width: width, height: height)
      say("writing 2 x \(targetCount) target scenes (Mapillary v1.2 layout) to \(root)/data/target")
      try SyntheticStreets.writeDataset(
        domain: .target, root: root + "/data/target", split: "training", count: targetCount,
        seed: seed, width: width, height: height)
      try SyntheticStreets.writeDataset(
        domain: .target, root: root + "/data/target", split: "validation", count: targetCount,
        seed: seed, width: width, height: height, firstIndex: 100_000)
    } else {
      say("reusing the scenes in \(root)/data")
    }
    let configuration = try transferConfiguration(
      root: root, mappingsDirectory: mappingsDirectory
    ).validated(file: "demo")
    let backend = try configuration.makeBackend(
      progress: reporter.line, jobProgress: reporter.handle)
    let directory = root + "/run"
    let transfer: TransferRun
    if FileManager.default.fileExists(atPath: directory + "/configuration.json") {
      say("resuming the run in \(directory)")
      transfer = try TransferRun(
        resuming: directory, configuration: configuration.withRunDirectory(directory),
        backend: backend)
    } else {
      transfer = try TransferRun.start(
        configuration: configuration, directory: directory, backend: backend)
    }
    say("running \(transfer.plan.jobs.count) jobs (ATSO K=2, \(generations) generations, 3 stages)")
    let records = try execute(transfer, reporter: reporter)
    // Direct transfer: the source-only model on the target, at the fine level too.
    let direct = try backend.evaluate(
      EvaluationRequest(checkpoint: directory + "/models/source.ckpt", set: .test, level: .fine))
    let directSuper = records.first { $0.stage == "coarse" && $0.generation == 0 }?.atE
    // Direct transfer with AdaBN alone (statistics of all of R, no pseudo label): separates
    // what self-training adds from what the re-estimated statistics add.
    let adapted = root + "/direct-adabn.ckpt"
    try backend.adaptBatchNorm(
      BatchNormAdaptationRequest(
        checkpoint: directory + "/models/source.ckpt", units: try backend.referenceUnits(),
        output: adapted, seed: seed))
    let adaptedFine = try backend.evaluate(
      EvaluationRequest(checkpoint: adapted, set: .test, level: .fine))
    let adaptedSuper = try backend.evaluate(
      EvaluationRequest(
        checkpoint: adapted, set: .test, level: LabelLevel(string: Self.superLevel) ?? .fine))
    let staged = records.first { $0.stage == "target-fine" }?.atE
    let coarseFinal = records.first { $0.stage == "target-coarse" }?.atE
    let table = (try? String(contentsOfFile: directory + "/table.md", encoding: .utf8)) ?? ""
    func percent(_ value: Double?) -> String {
      value.map { String(format: "%.2f", 100 * $0) } ?? "-"
    }
    print(table)
    print(
      """
      ## Direct transfer vs staged super-class ATSO (mean IoU on E, %)

      | model | super-5 | cityscapes-19 |
      |---|---:|---:|
      | direct transfer (source only) | \(percent(directSuper)) | \(percent(direct.score)) |
      | direct transfer + AdaBN on R | \(percent(adaptedSuper.score)) | \(percent(adaptedFine.score)) |
      | stage 2: target network, super labels | \(percent(coarseFinal)) | |
      | stage 3: fine-tuned on fine labels | | \(percent(staged)) |

      Target ground truth: Mapillary Vistas v1.2 -> cityscapes-19 (default mapping), \
      super level: \(Self.superLevel).
      Files: scenes in \(root)/data, run in \(directory) (table.md, table.json, \
      metrics.jsonl, curves-coarse.png, predictions.png, models/, labels/), AdaBN baseline \(adapted).
      Took \(String(format: "%.0f", -started.timeIntervalSinceNow)) s.
      """)
  }
}
