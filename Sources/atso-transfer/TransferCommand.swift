import ArgumentParser
import Foundation
import ImageTransfer
import Segmentation
import Transfer
import VolumeTransfer

/// Errors of the transfer commands that are not about flags.
struct TransferCommandError: Error, Equatable, CustomStringConvertible {
  var description: String
}

/// The backends a configuration may name, the default first: the only place that knows them
/// all (each declares its own typed options, see ``BackendOptions``).
enum BackendKinds {
  static let all: [any BackendOptions.Type] = [
    ImageBackendOptions.self, VolumeBackendOptions.self, SimulationOptions.self,
  ]

  /// Every backend's keys, for `--help`.
  static var help: String { all.map { $0.help }.joined(separator: "\n\n") }

  /// Writes the backend's progress lines to stderr (the ranks other than 0 of an MPI run).
  static let progress: @Sendable (String) -> Void = { line in ScaleOut.log("[backend] \(line)") }

  /// The options of `kind` decoded from a JSON object.
  static func decode(_ kind: any BackendOptions.Type, _ object: [String: ConfigurationValue], file: String)
    throws -> any BackendOptions
  {
    try kind.decoding(object, file: file)
  }

  /// The backend object with `key=value` pairs applied (a `kind` pair selects the backend; the
  /// object of another kind is left behind).
  static func applying(
    _ pairs: [String], to backend: (any BackendOptions)?, file: String
  ) throws -> (any BackendOptions)? {
    guard !pairs.isEmpty else { return backend }
    var parsed: [(key: String, value: String)] = []
    for pair in pairs {
      let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, !parts[0].isEmpty else {
        throw ValidationError("--backend-option '\(pair)': expected key=value")
      }
      parsed.append((parts[0], parts[1]))
    }
    var kindName = backend.map { type(of: $0).kind } ?? all[0].kind
    if let kind = parsed.last(where: { $0.key == "kind" })?.value { kindName = kind }
    guard let kind = all.first(where: { $0.kind == kindName }) else {
      throw ValidationError(
        "--backend-option kind=\(kindName): expected one of "
          + all.map { $0.kind }.joined(separator: ", "))
    }
    var object: [String: ConfigurationValue] = [:]
    if let backend, type(of: backend).kind == kind.kind { object = try backend.jsonObject() }
    for (key, value) in parsed where key != "kind" {
      try kind.set(key, to: value, in: &object, file: "--backend-option")
    }
    return try decode(kind, object, file: file)
  }
}

extension ScheduleKind: ExpressibleByArgument {}

/// `atso-transfer transfer`: runs the schedules (and stages) of a configuration.
struct TransferCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "transfer",
    abstract: "Run self-learning, STSO and/or ATSO self-training into a new run directory.",
    discussion: """
      The configuration comes from --config, a JSON file (`//` comments allowed); the folder \
      examples/ of the package holds one, commented, for each story of the README \
      (examples/camvid-day-dusk.jsonc, examples/camvid-staged-super-class.jsonc, \
      examples/camvid-semi-supervised-10pct.jsonc, examples/hippocampus-10pct.jsonc). Every \
      flag given overrides the file; --dry-run prints the result with every default. The \
      resolved configuration is saved as RUN/configuration.json with the fold split \
      (folds.json) and the units of S, R and E (sets.json); checkpoints go to RUN/models, \
      pseudo labels to RUN/labels, the loss of every training step to RUN/losses/<job>.csv, \
      one completion record per step to RUN/steps, evaluations to RUN/metrics.jsonl (scores \
      as fractions of 1, class names beside per-class scores), and at the end RUN/table.md \
      (percent, with a legend: what @R and @E are, the data, levels, seeds), RUN/table.json, \
      RUN/curves-<stage>.png, RUN/agreement-<stage>.png and RUN/predictions.png (a few test \
      images: image, ground truth, and the predictions of the source model and of each \
      schedule's last model, in the class colours). Every model is scored on R and E as \
      trained and with batch-norm statistics of R (AdaBN), at each image's own size (and at \
      the working size); the tables start with the baselines source only and AdaBN alone, and \
      give each generation's pseudo labels' score against R (@R) and its agreement with its \
      teacher and with M0. Progress goes to stderr: a line when each job starts and ends (job \
      k of n, elapsed, time left) and the step, loss, speed and time left of the running job, \
      in place on a terminal, every --log-every seconds in a log. A run killed at any moment \
      is continued with `atso-transfer resume RUN`.

      The backend (--backend-option kind=image|volume|simulation, image by default) reads the \
      data and trains the networks; its keys are listed under --backend-option. Keys that are \
      data locations enter the job identities but not the seeds (the same data in another \
      folder gives the same numbers); speed keys (threads) enter neither.

      A stage (--stage, repeatable) is comma-separated key=value pairs: name, method \
      (schedules or train), level (fine or super:<mapping>), initialization (source or \
      previous-stage), network, labels (previous-stage-final or relabel), generations (of a \
      schedules stage). For example, ATSO at a super-class level, then the fine level starting \
      from its final model, relabeling R once:
        --stage name=coarse,method=schedules,level=super:m7
        --stage name=fine,method=train,initialization=previous-stage,labels=relabel
      or running the schedules again at the fine level from it:
        --stage name=fine,method=schedules,initialization=previous-stage

      Examples (CamVid day -> dusk with self-learning, STSO and ATSO, run in the CamVid folder; \
      then the resolved configuration of a JSON file, without running it):
        atso-transfer transfer -o runs/day-dusk --schedules self-learning,stso,atso \\
          --backend-option 'source=camvid:train.txt?include=0006R0,0016E5' \\
          --backend-option 'reference=camvid:train.txt?include=0001TP&unlabeled' \\
          --backend-option 'test=camvid:train.txt?include=0001TP' \\
          --backend-option size=96x128 --backend-option sourceIterations=400
        atso-transfer transfer --config examples/camvid-day-dusk.jsonc \\
          -o runs/r1 --dry-run
        atso-transfer transfer --config examples/camvid-day-dusk.jsonc -o runs/r2 \\
          --source-model runs/camvid-day/checkpoint.safetensors

      BACKEND KEYS (--backend-option key=value, or the "backend" object of --config, where \
      numbers are JSON numbers), with their defaults:

      \(BackendKinds.help)
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

  @Option(help: "The void label of pseudo labels, training and scores (0...255; 255).")
  var ignoreIndex: Int?

  @Option(help: "Test images (or cases) drawn in RUN/predictions.png (0...32, 0: none; 4).")
  var previews: Int?

  @Option(help: "A stage as key=value pairs (repeatable; replaces the stages of --config).")
  var stage: [String] = []

  @Option(
    help: "A backend option key=value (repeatable; the keys are listed below), e.g. batch=8.")
  var backendOption: [String] = []

  @Option(
    help: """
      Start from this checkpoint (a `train` checkpoint, a model of another run) instead of \
      training the source model M0; its class set and working size are read from it and \
      checked against the run.
      """)
  var sourceModel: String?

  @Flag(
    help: "Print the resolved configuration, defaults included, and stop (reads no data).")
  var dryRun = false

  @Option(help: "Seconds between progress lines when stderr is not a terminal.")
  var logEvery: Double = 10

  @OptionGroup var ranks: RankOptions

  /// The configuration resolved by ``validate()``: the file read and decoded once, the flags
  /// applied, validated once.
  var resolved: ValidatedConfiguration?

  enum CodingKeys: String, CodingKey {
    case config, runDirectory, seed, schedules, folds, generations, confidenceThreshold
    case classBalancedPortion, adaBn, ignoreIndex, previews, stage, backendOption, sourceModel
    case dryRun, logEvery, ranks
  }

  /// The configuration file (or the defaults) with the flags applied, validated.
  func resolvedConfiguration() throws -> ValidatedConfiguration {
    var resolved = TransferConfiguration()
    if let config {
      guard let data = FileManager.default.contents(atPath: config) else {
        throw TransferError.fileOperation(path: config, reason: "cannot read the configuration")
      }
      resolved = try TransferConfiguration.decode(data, file: config, kinds: BackendKinds.all)
    }
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
    if let ignoreIndex {
      guard let value = UInt8(exactly: ignoreIndex) else {
        throw ValidationError("--ignore-index must be in 0...255, got \(ignoreIndex)")
      }
      resolved.pseudoLabels.ignoreIndex = IgnoreIndex(value)
    }
    if let previews { resolved.previews = previews }
    if let sourceModel {
      resolved.sourceModel = URL(fileURLWithPath: sourceModel).standardizedFileURL.path
    }
    if !stage.isEmpty { resolved.stages = try stage.map(StageConfiguration.init(pairs:)) }
    resolved.backend = try BackendKinds.applying(backendOption, to: resolved.backend, file: file)
    let validated = try resolved.validated(file: file)
    guard validated.configuration.runDirectory != nil || dryRun else {
      throw ValidationError("no run directory: give --run-directory or runDirectory in --config")
    }
    return validated
  }

  mutating func validate() throws {
    do {
      resolved = try resolvedConfiguration()
    } catch let error as TransferError {
      throw ValidationError(error.description)
    }
  }

  func run() throws {
    let configuration = try resolved ?? resolvedConfiguration()
    if dryRun {
      print(String(decoding: try configuration.configuration.encodedWithDefaults(), as: UTF8.self))
      return
    }
    guard let directory = configuration.configuration.runDirectory else { return }
    let reporter = TransferReporter(printer: ProgressPrinter(interval: logEvery))
    let start = {
      try TransferRun.start(
        configuration: configuration, directory: directory,
        backend: try configuration.makeBackend(
          progress: reporter.line, jobProgress: reporter.handle))
    }
    switch try ScaleOut.execute(options: ranks, rankZero: start) {
    case false?: return  // a worker rank: rank 0 prints the results
    case true?: break
    case nil: try execute(start(), reporter: reporter)
    }
    print((try? String(contentsOfFile: directory + "/table.md", encoding: .utf8)) ?? "")
    printResultFiles(directory)
  }
}

/// Executes a run, its progress drawn by `reporter`; an error of one of its jobs names the job.
@discardableResult
func execute(_ run: TransferRun, reporter: TransferReporter? = nil) throws -> [MetricsRecord] {
  run.events = reporter.map { reporter in { reporter.handle($0) } }
  defer { reporter?.printer.finish() }
  do {
    return try run.execute()
  } catch {
    guard let job = run.currentJob else { throw error }
    throw TransferCommandError(description: "job \(job): \(error)")
  }
}

/// `atso-transfer resume RUN`: continues a transfer run where it stopped.
struct ResumeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume",
    abstract: "Continue a transfer run that was interrupted (even by kill -9).",
    discussion: """
      Reads RUN/configuration.json and RUN/folds.json, discards half-written files (*.partial, \
      *.tmp-<pid>, outputs without a completion record), skips every completed step whose \
      outputs still have their recorded checksums and runs the rest; the result is the same as \
      that of an uninterrupted run. One process writes a run at a time (RUN/run.lock): a \
      second `resume` (or a `transfer` into the same folder) is refused at once, naming the \
      process that holds it. A configuration.json edited since the run started is refused, \
      listing the keys that differ, unless --accept-changes is given.

      Example:
        atso-transfer resume runs/day-dusk
      """)

  @Argument(help: "The run directory created by `atso-transfer transfer`.")
  var runDirectory: String

  @Option(
    parsing: .unconditional,
    help: "Seconds between progress lines when stderr is not a terminal.")
  var logEvery: Double = 10

  @Flag(
    help: """
      Continue with a configuration.json edited since the run started (refused otherwise, \
      listing the keys that differ); the jobs whose inputs change are recomputed.
      """)
  var acceptChanges = false

  func validate() throws {
    guard FileManager.default.fileExists(atPath: runDirectory + "/configuration.json") else {
      throw ValidationError("'\(runDirectory)' is not a run directory (no configuration.json)")
    }
  }

  @OptionGroup var ranks: RankOptions

  func run() throws {
    let reporter = TransferReporter(printer: ProgressPrinter(interval: logEvery))
    let open = {
      // Refused at once when another process writes the run, before the backend reads its
      // data (minutes for a large reference set); `execute()` takes the lock again to run the
      // jobs. (Only here: the other ranks of an MPI run open the run while rank 0 holds it.)
      try RunLock.holding(runDirectory) {}
      return try TransferRun.open(
        runDirectory, acceptingChanges: acceptChanges, reporter: reporter)
    }
    switch try ScaleOut.execute(options: ranks, rankZero: open) {
    case false?: return  // a worker rank: rank 0 prints the results
    case true?: break
    case nil: try execute(open(), reporter: reporter)
    }
    print((try? String(contentsOfFile: runDirectory + "/table.md", encoding: .utf8)) ?? "")
    printResultFiles(runDirectory)
  }
}

extension TransferRun {
  /// Opens the run in `directory` with its saved configuration, to resume it
  /// (`acceptingChanges`: ``TransferRun/init(resuming:configuration:backend:acceptingChanges:)``).
  /// `quiet`: without progress lines (a rank whose group leader reports).
  static func open(
    _ directory: String, acceptingChanges: Bool = false, reporter: TransferReporter? = nil,
    quiet: Bool = false
  ) throws -> TransferRun {
    let configuration = try TransferConfiguration.load(
      from: directory + "/configuration.json", kinds: BackendKinds.all)
    let backend =
      try reporter.map { try configuration.makeBackend(progress: $0.line, jobProgress: $0.handle) }
      ?? configuration.makeBackend(progress: quiet ? { _ in } : BackendKinds.progress)
    return try TransferRun(
      resuming: directory, configuration: configuration, backend: backend,
      acceptingChanges: acceptingChanges)
  }
}

/// Prints the result files of a finished run that exist.
func printResultFiles(_ directory: String) {
  let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
  let results = names.filter {
    ($0.hasPrefix("table.") || $0.hasPrefix("curves-") || $0.hasPrefix("agreement-")
      || $0 == "predictions.png"
      || $0 == "metrics.jsonl") && !$0.hasSuffix(".partial")
  }
  guard !results.isEmpty else { return }
  print("Results in \(directory): " + results.joined(separator: ", "))
}
