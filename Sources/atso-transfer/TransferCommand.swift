import ArgumentParser
import Foundation
import Medical
import Transfer

/// Errors of the transfer commands that are not about flags.
struct TransferCommandError: Error, Equatable, CustomStringConvertible {
  var description: String
}

/// Creates the backend (models, training, prediction, datasets) of a run.
///
/// The configuration's `backend` entries (`--backend-option key=value`) name the datasets and
/// training settings. `kind=segmentation` (the default) selects ``SegmentationBackend`` (keys:
/// ``SegmentationBackendOptions``); `kind=simulation` selects ``SimulationBackend`` (options
/// `units=<count>`, `delay-us=<microseconds>`).
enum TransferBackendFactory {
  static func make(for configuration: TransferConfiguration) throws -> any TransferBackend {
    switch configuration.backend["kind"] {
    case "simulation":
      return try SimulationBackend(options: configuration.backend)
    case nil, "segmentation":
      let backend = try SegmentationBackend(configuration: configuration)
      backend.progress = { line in ScaleOut.log("[segmentation] \(line)") }
      return backend
    case "volume":
      return try VolumeBackend(options: configuration.backend)
    case let kind?:
      throw TransferCommandError(
        description: "unknown backend kind '\(kind)' (expected segmentation, volume or simulation)")
    }
  }
}

extension ScheduleKind: ExpressibleByArgument {}

/// `atso-transfer transfer`: runs the schedules (and stages) of a configuration.
struct TransferCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "transfer",
    abstract: "Run self-learning, STSO and/or ATSO self-training into a new run directory.",
    discussion: """
      The configuration comes from --config (JSON, see TransferConfiguration); every flag given \
      overrides the file. The resolved configuration is saved as RUN/configuration.json with the \
      fold split (folds.json); checkpoints go to RUN/models, pseudo labels to RUN/labels, one \
      completion record per step to RUN/steps, evaluations to RUN/metrics.jsonl, and at the end \
      RUN/table.md, RUN/table.json, RUN/curves-<stage>.png and RUN/predictions.png (a few test \
      images: image, ground truth, and the predictions of the source model and of each \
      schedule's last model, in the class colours). A run killed at any moment is continued \
      with `atso-transfer resume RUN`.

      A stage (--stage, repeatable) is comma-separated key=value pairs: name, method \
      (schedules or train), level (fine or super:<mapping>), initialization (source or \
      previous-stage), network, labels (previous-stage-final or relabel). For example, ATSO at \
      a super-class level, then the fine level starting from its final model:
        --stage name=coarse,method=schedules,level=super:m7
        --stage name=fine,method=train,initialization=previous-stage,labels=relabel

      Examples (CamVid day -> dusk with self-learning, STSO and ATSO, run in the CamVid folder; \
      then the resolved configuration of a JSON file, without running it):
        atso-transfer transfer -o runs/day-dusk --schedules self-learning,stso,atso \\
          --backend-option 'source=camvid:train.txt?include=0006R0,0016E5' \\
          --backend-option 'reference=camvid:train.txt?include=0001TP&unlabeled' \\
          --backend-option 'test=camvid:train.txt?include=0001TP' \\
          --backend-option size=96x128 --backend-option source-iterations=400
        atso-transfer transfer --config run.json -o runs/r1 --dry-run
      """)

  @Option(name: .long, help: "A JSON configuration file.")
  var config: String?

  @Option(name: [.customShort("o"), .long], help: "The run directory to create.")
  var runDirectory: String?

  @Option(help: "The run seed (job seeds and the fold split derive from it).")
  var seed: UInt64?

  @Option(
    parsing: .upToNextOption,
    help: "Schedules to compare: self-learning, stso, atso (space or comma separated).")
  var schedules: [String] = []

  @Option(help: "The number of ATSO folds K (>= 2).")
  var folds: Int?

  @Option(help: "The number of generations T (>= 1).")
  var generations: Int?

  @Option(help: "Keep pseudo labels with confidence >= this value (0...1).")
  var confidenceThreshold: Double?

  @Option(help: "Class-balanced thresholds: keep this portion of each class (0 < p <= 1).")
  var classBalancedPortion: Double?

  @Flag(
    inversion: .prefixedNo,
    help: "Re-estimate batch-norm statistics on the images before labeling them (AdaBN).")
  var adaBn: Bool?

  @Option(help: "The void label of filtered pixels (0...255).")
  var ignoreIndex: Int?

  @Option(help: "Test images (or cases) drawn in RUN/predictions.png (0...32, 0: none; 4).")
  var previews: Int?

  @Option(help: "A stage as key=value pairs (repeatable; replaces the stages of --config).")
  var stage: [String] = []

  @Option(
    help: ArgumentHelp(
      "A backend option key=value (repeatable), e.g. source=camvid:train.txt.",
      discussion: SegmentationBackendOptions.help))
  var backendOption: [String] = []

  @Flag(help: "Print the resolved configuration and stop (needs no backend).")
  var dryRun = false

  @OptionGroup var ranks: RankOptions

  /// The configuration file (or the defaults) with the flags applied, validated.
  func resolvedConfiguration() throws -> TransferConfiguration {
    var resolved = try config.map(TransferConfiguration.load(from:)) ?? TransferConfiguration()
    let file = config ?? "command line"
    if let runDirectory { resolved.runDirectory = runDirectory }
    if let seed { resolved.seed = seed }
    if !schedules.isEmpty {
      resolved.schedules = try schedules.flatMap { $0.split(separator: ",") }.map { name in
        guard let kind = ScheduleKind(rawValue: String(name)) else {
          throw TransferError.unknownSchedule(String(name), file: "--schedules")
        }
        return kind
      }
    }
    if let folds { resolved.folds = folds }
    if let generations { resolved.generations = generations }
    if let confidenceThreshold { resolved.pseudoLabels.confidenceThreshold = confidenceThreshold }
    if let classBalancedPortion {
      resolved.pseudoLabels.classBalancedPortion = classBalancedPortion
    }
    if let adaBn { resolved.pseudoLabels.adaptBatchNorm = adaBn }
    if let ignoreIndex { resolved.pseudoLabels.ignoreIndex = ignoreIndex }
    if let previews { resolved.previews = previews }
    if !stage.isEmpty { resolved.stages = try stage.map(Self.parseStage) }
    for option in backendOption {
      let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, !parts[0].isEmpty else {
        throw ValidationError("--backend-option '\(option)': expected key=value")
      }
      resolved.backend[parts[0]] = parts[1]
    }
    try resolved.validate(file: file)
    guard resolved.runDirectory != nil else {
      throw ValidationError("no run directory: give --run-directory or runDirectory in --config")
    }
    return resolved
  }

  /// Parses `name=...,method=...,level=...[,initialization=...][,network=...][,labels=...]`.
  static func parseStage(_ text: String) throws -> StageConfiguration {
    var fields: [String: String] = [:]
    for pair in text.split(separator: ",") {
      let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else {
        throw ValidationError("--stage '\(text)': '\(pair)' is not key=value")
      }
      fields[parts[0]] = parts[1]
    }
    let known: Set = ["name", "method", "level", "initialization", "network", "labels"]
    if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
      let expected = known.sorted().joined(separator: ", ")
      throw ValidationError("--stage '\(text)': unknown key '\(unknown)' (expected \(expected))")
    }
    guard let name = fields["name"], let methodName = fields["method"] else {
      throw ValidationError("--stage '\(text)': name and method are required")
    }
    guard let method = StageConfiguration.Method(rawValue: methodName) else {
      throw ValidationError("--stage '\(text)': method '\(methodName)' is not schedules or train")
    }
    var stage = StageConfiguration(name: name, method: method, network: fields["network"])
    if let levelName = fields["level"] {
      guard let level = LabelLevel(string: levelName) else {
        throw TransferError.unknownLabelLevel(levelName, file: "--stage")
      }
      stage.level = level
    }
    if let value = fields["initialization"] {
      guard let initialization = StageConfiguration.Initialization(rawValue: value) else {
        throw ValidationError(
          "--stage '\(text)': initialization '\(value)' is not source or previous-stage")
      }
      stage.initialization = initialization
    }
    if let value = fields["labels"] {
      guard let labels = StageConfiguration.LabelSource(rawValue: value) else {
        throw ValidationError(
          "--stage '\(text)': labels '\(value)' is not previous-stage-final or relabel")
      }
      stage.labels = labels
    }
    return stage
  }

  func validate() throws {
    do {
      _ = try resolvedConfiguration()
    } catch let error as TransferError {
      throw ValidationError(error.description)
    }
  }

  func run() throws {
    let configuration = try resolvedConfiguration()
    if dryRun {
      print(String(decoding: try configuration.encoded(), as: UTF8.self))
      return
    }
    guard let directory = configuration.runDirectory else { return }
    let ranked = try ScaleOut.execute(options: ranks) {
      try TransferRun.start(
        configuration: configuration, directory: directory,
        backend: try TransferBackendFactory.make(for: configuration))
    }
    if ranked == false { return }  // a worker rank: rank 0 prints the results
    if ranked == nil {
      let backend = try TransferBackendFactory.make(for: configuration)
      let run = try TransferRun.start(
        configuration: configuration, directory: directory, backend: backend)
      try run.execute()
    }
    let table = (try? String(contentsOfFile: directory + "/table.md", encoding: .utf8)) ?? ""
    print(table)
    printResultFiles(directory)
  }
}

/// `atso-transfer resume RUN`: continues a transfer run where it stopped.
struct ResumeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume",
    abstract: "Continue a transfer run that was interrupted (even by kill -9).",
    discussion: """
      Reads RUN/configuration.json and RUN/folds.json, discards half-written files (*.partial, \
      outputs without a completion record), skips every completed step and runs the rest; the \
      result is the same as that of an uninterrupted run.

      Example:
        atso-transfer resume runs/day-dusk
      """)

  @Argument(help: "The run directory created by `atso-transfer transfer`.")
  var runDirectory: String

  func validate() throws {
    guard FileManager.default.fileExists(atPath: runDirectory + "/configuration.json") else {
      throw ValidationError("'\(runDirectory)' is not a run directory (no configuration.json)")
    }
  }

  @OptionGroup var ranks: RankOptions

  func run() throws {
    let open = {
      let configuration = try TransferConfiguration.load(
        from: runDirectory + "/configuration.json")
      let backend = try TransferBackendFactory.make(for: configuration)
      return try TransferRun(resuming: runDirectory, backend: backend)
    }
    switch try ScaleOut.execute(options: ranks, rankZero: open) {
    case false?: return  // a worker rank: rank 0 prints the results
    case true?: break
    case nil: try open().execute()
    }
    print((try? String(contentsOfFile: runDirectory + "/table.md", encoding: .utf8)) ?? "")
    printResultFiles(runDirectory)
  }
}

/// Prints the result files of a finished run that exist.
func printResultFiles(_ directory: String) {
  let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
  let results = names.filter {
    ($0.hasPrefix("table.") || $0.hasPrefix("curves-") || $0 == "predictions.png"
      || $0 == "metrics.jsonl") && !$0.hasSuffix(".partial")
  }
  guard !results.isEmpty else { return }
  print("Results in \(directory): " + results.joined(separator: ", "))
}
