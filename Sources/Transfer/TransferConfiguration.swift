import Foundation

/// A self-training schedule (Huo et al., CVPR 2021, Table 1).
public enum ScheduleKind: String, Codable, Sendable, CaseIterable, Comparable {
  /// Continual self-learning: each student starts from its teacher; pseudo labels on all of R.
  case selfLearning = "self-learning"
  /// Sequential teacher-student optimization: each student restarts from M0; labels on all of R.
  case stso
  /// Asynchronous teacher-student optimization: restart from M0 and cross-fold pseudo labels.
  case atso

  public init(from decoder: any Decoder) throws {
    let name = try decoder.singleValueContainer().decode(String.self)
    guard let kind = ScheduleKind(rawValue: name) else {
      throw TransferError.unknownSchedule(name, file: "")
    }
    self = kind
  }

  public static func < (a: ScheduleKind, b: ScheduleKind) -> Bool {
    allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
  }
}

/// The class set at which pseudo labels are produced and the loss is computed.
///
/// Coded as a string: `"fine"`, or `"super:<mapping>"` where `<mapping>` names a super-class
/// mapping (a file under `mappings/`, interpreted by the backend). At a super-class level the
/// network still predicts fine classes; the backend trains it through the reduce-then-compute
/// loss (fine probabilities summed per super class).
public enum LabelLevel: Sendable, Hashable, Codable, CustomStringConvertible {
  case fine
  case superClass(mapping: String)

  /// Parses `"fine"` or `"super:<mapping>"`; returns nil for anything else.
  public init?(string: String) {
    if string == "fine" {
      self = .fine
    } else if string.hasPrefix("super:"), string.count > "super:".count {
      self = .superClass(mapping: String(string.dropFirst("super:".count)))
    } else {
      return nil
    }
  }

  public var description: String {
    switch self {
    case .fine: "fine"
    case .superClass(let mapping): "super:\(mapping)"
    }
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let level = LabelLevel(string: text) else {
      throw TransferError.unknownLabelLevel(text, file: "")
    }
    self = level
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}

/// How pseudo labels are filtered and produced.
public struct PseudoLabelConfiguration: Codable, Sendable, Equatable {
  /// Pixels whose confidence is below this value become `ignoreIndex` (nil: keep all).
  public var confidenceThreshold: Double?
  /// Class-balanced self-training (CBST): per class, this portion of the most confident pixels
  /// is kept and the rest become `ignoreIndex` (nil: off). Exclusive with `confidenceThreshold`.
  public var classBalancedPortion: Double?
  /// Re-estimate batch-norm statistics on the images to be labeled before labeling (AdaBN).
  public var adaptBatchNorm: Bool
  /// The void label written for filtered pixels.
  public var ignoreIndex: Int

  public init(
    confidenceThreshold: Double? = nil, classBalancedPortion: Double? = nil,
    adaptBatchNorm: Bool = false, ignoreIndex: Int = 255
  ) {
    self.confidenceThreshold = confidenceThreshold
    self.classBalancedPortion = classBalancedPortion
    self.adaptBatchNorm = adaptBatchNorm
    self.ignoreIndex = ignoreIndex
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case confidenceThreshold, classBalancedPortion, adaptBatchNorm, ignoreIndex
  }

  public init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    confidenceThreshold = try c.decodeIfPresent(Double.self, forKey: .confidenceThreshold)
    classBalancedPortion = try c.decodeIfPresent(Double.self, forKey: .classBalancedPortion)
    adaptBatchNorm = try c.decodeIfPresent(Bool.self, forKey: .adaptBatchNorm) ?? false
    ignoreIndex = try c.decodeIfPresent(Int.self, forKey: .ignoreIndex) ?? 255
  }
}

/// One stage of a staged transfer, as data.
///
/// A `schedules` stage runs every configured schedule for `generations` generations at its
/// level; a `train` stage fine-tunes one model once. Stages are chained per schedule: stage i of
/// the self-learning branch continues from stage i - 1 of the self-learning branch, and so on.
/// The brief's coarse-to-fine example is three stages:
/// ```
/// {"name": "coarse", "method": "schedules", "level": "super:cityscapes-7"},
/// {"name": "target-coarse", "method": "train", "level": "super:cityscapes-7",
///  "network": "target", "labels": "previous-stage-final"},
/// {"name": "target-fine", "method": "train", "level": "fine",
///  "initialization": "previous-stage", "labels": "relabel"}
/// ```
public struct StageConfiguration: Codable, Sendable, Equatable {
  public enum Method: String, Codable, Sendable {
    case schedules, train
  }
  public enum Initialization: String, Codable, Sendable {
    /// The source model M0 of the stage's network (trained on S only).
    case source
    /// The final model of the previous stage of the same branch.
    case previousStage = "previous-stage"
  }
  public enum LabelSource: String, Codable, Sendable {
    /// The pseudo labels the previous stage's final model was trained on, reused as they are.
    case previousStageFinal = "previous-stage-final"
    /// New pseudo labels on all of R, produced by the previous stage's final model at this level.
    case relabel
  }

  /// A file-safe name (letters, digits, `-`, `_`), unique in the run.
  public var name: String
  public var method: Method
  public var level: LabelLevel
  public var initialization: Initialization
  /// The network to train, interpreted by the backend (nil: the default network).
  public var network: String?
  /// Where a `train` stage gets its pseudo labels (ignored by `schedules` stages).
  public var labels: LabelSource?

  public init(
    name: String, method: Method, level: LabelLevel = .fine,
    initialization: Initialization = .source, network: String? = nil,
    labels: LabelSource? = nil
  ) {
    self.name = name
    self.method = method
    self.level = level
    self.initialization = initialization
    self.network = network
    self.labels = labels
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case name, method, level, initialization, network, labels
  }

  public init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    method = try c.decode(Method.self, forKey: .method)
    level = try c.decodeIfPresent(LabelLevel.self, forKey: .level) ?? .fine
    initialization =
      try c.decodeIfPresent(Initialization.self, forKey: .initialization) ?? .source
    network = try c.decodeIfPresent(String.self, forKey: .network)
    labels = try c.decodeIfPresent(LabelSource.self, forKey: .labels)
  }
}

/// The configuration of a transfer run, saved resolved as `configuration.json` in the run
/// directory.
///
/// A minimal file is `{"schedules": ["atso"], "generations": 3}`; every other key has a
/// default. Unknown keys are errors, so that typos do not pass silently.
public struct TransferConfiguration: Codable, Sendable, Equatable {
  /// The run seed; every job seed and the fold split derive from it.
  public var seed: UInt64
  /// Where the run writes (may be given on the command line instead).
  public var runDirectory: String?
  /// The schedules to compare, each run as its own branch of the stages.
  public var schedules: [ScheduleKind]
  /// The number of folds K of ATSO (at least 2).
  public var folds: Int
  /// The number of generations T of every `schedules` stage (at least 1).
  public var generations: Int
  public var pseudoLabels: PseudoLabelConfiguration
  /// The stages; default: one `schedules` stage at the fine level.
  public var stages: [StageConfiguration]
  /// Options passed through to the backend (datasets, network, epochs...), uninterpreted here.
  public var backend: [String: String]
  /// How many test images (or cases) `predictions.png` shows at the end of the run (0: none).
  public var previews: Int

  public static let defaultStages = [StageConfiguration(name: "fine", method: .schedules)]

  /// Backend options that say where the data lies (dataset specifications, folders). They are
  /// part of job identities (a resumed run on other data recomputes) but not of job seeds, so a
  /// run gives the same results wherever its data is.
  public static let locationKeys: Set<String> = [
    "source", "reference", "test", "dataset", "target", "mappings",
  ]

  /// Backend options that change the speed, not the results (`threads`): in neither identities
  /// nor seeds, so a run can be resumed with another value.
  public static let speedKeys: Set<String> = ["threads"]

  public init(
    seed: UInt64 = 0, runDirectory: String? = nil,
    schedules: [ScheduleKind] = ScheduleKind.allCases, folds: Int = 2, generations: Int = 3,
    pseudoLabels: PseudoLabelConfiguration = PseudoLabelConfiguration(),
    stages: [StageConfiguration] = TransferConfiguration.defaultStages,
    backend: [String: String] = [:], previews: Int = 4
  ) {
    self.seed = seed
    self.runDirectory = runDirectory
    self.schedules = schedules
    self.folds = folds
    self.generations = generations
    self.pseudoLabels = pseudoLabels
    self.stages = stages
    self.backend = backend
    self.previews = previews
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case seed, runDirectory, schedules, folds, generations, pseudoLabels, stages, backend
    case previews
  }

  public init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
    runDirectory = try c.decodeIfPresent(String.self, forKey: .runDirectory)
    schedules =
      try c.decodeIfPresent([ScheduleKind].self, forKey: .schedules) ?? ScheduleKind.allCases
    folds = try c.decodeIfPresent(Int.self, forKey: .folds) ?? 2
    generations = try c.decodeIfPresent(Int.self, forKey: .generations) ?? 3
    pseudoLabels =
      try c.decodeIfPresent(PseudoLabelConfiguration.self, forKey: .pseudoLabels)
      ?? PseudoLabelConfiguration()
    stages =
      try c.decodeIfPresent([StageConfiguration].self, forKey: .stages)
      ?? TransferConfiguration.defaultStages
    backend = try c.decodeIfPresent([String: String].self, forKey: .backend) ?? [:]
    previews = try c.decodeIfPresent(Int.self, forKey: .previews) ?? 4
  }

  /// Checks ranges and the consistency of the stages.
  ///
  /// - Parameter file: the file named in errors.
  /// - Throws: `TransferError.invalidConfiguration` naming the key and the offending value.
  public func validate(file: String = "configuration") throws {
    func fail(_ key: String, _ reason: String) -> TransferError {
      .invalidConfiguration(file: file, key: key, reason: reason)
    }
    if schedules.isEmpty { throw fail("schedules", "at least one schedule is needed") }
    if Set(schedules).count != schedules.count {
      throw fail("schedules", "duplicate schedule in \(schedules.map(\.rawValue))")
    }
    if generations < 1 { throw fail("generations", "must be at least 1, got \(generations)") }
    if folds < 2 { throw fail("folds", "ATSO needs K >= 2 folds, got \(folds)") }
    if !(0...32).contains(previews) { throw fail("previews", "must be in 0...32, got \(previews)") }
    let p = pseudoLabels
    if let t = p.confidenceThreshold, !(0...1).contains(t) {
      throw fail("pseudoLabels.confidenceThreshold", "must be in [0, 1], got \(t)")
    }
    if let q = p.classBalancedPortion, !(q > 0 && q <= 1) {
      throw fail("pseudoLabels.classBalancedPortion", "must be in (0, 1], got \(q)")
    }
    if p.confidenceThreshold != nil, p.classBalancedPortion != nil {
      throw fail(
        "pseudoLabels", "confidenceThreshold and classBalancedPortion are mutually exclusive")
    }
    if !(0...255).contains(p.ignoreIndex) {
      throw fail("pseudoLabels.ignoreIndex", "must be in 0...255, got \(p.ignoreIndex)")
    }
    if stages.isEmpty { throw fail("stages", "at least one stage is needed") }
    var names: Set<String> = []
    for (i, stage) in stages.enumerated() {
      let key = "stages[\(i)]"
      let allowed = stage.name.unicodeScalars.allSatisfy {
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
          || $0 == "-" || $0 == "_"
      }
      if stage.name.isEmpty || !allowed {
        throw fail("\(key).name", "'\(stage.name)' must be non-empty letters, digits, - or _")
      }
      if !names.insert(stage.name).inserted {
        throw fail("\(key).name", "duplicate stage name '\(stage.name)'")
      }
      switch stage.method {
      case .schedules:
        if stage.initialization != .source {
          throw fail(
            "\(key).initialization",
            "a schedules stage restarts from the source model M0; 'previous-stage' would let "
              + "ATSO label folds with a model already fine-tuned on them")
        }
        if stage.labels != nil {
          throw fail("\(key).labels", "only train stages take a label source")
        }
      case .train:
        guard let labels = stage.labels else {
          throw fail("\(key).labels", "a train stage needs 'previous-stage-final' or 'relabel'")
        }
        if i == 0 {
          throw fail("\(key).method", "the first stage must be a schedules stage")
        }
        if labels == .previousStageFinal, stages[i - 1].level != stage.level {
          throw fail(
            "\(key).level",
            "'previous-stage-final' reuses labels at level \(stages[i - 1].level), "
              + "but this stage is at \(stage.level)")
        }
      }
    }
  }

  /// Loads and validates a configuration file.
  ///
  /// - Throws: `TransferError` naming the file and the key.
  public static func load(from path: String) throws -> TransferConfiguration {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TransferError.fileOperation(path: path, reason: "cannot read the configuration")
    }
    let configuration = try decode(data, file: path)
    try configuration.validate(file: path)
    return configuration
  }

  /// Decodes a configuration (without validating it), mapping decoding errors to
  /// `TransferError` with the JSON path of the offending entry.
  public static func decode(_ data: Data, file: String) throws -> TransferConfiguration {
    do {
      return try JSONDecoder().decode(TransferConfiguration.self, from: data)
    } catch let error as TransferError {
      throw error.naming(file: file)
    } catch let DecodingError.typeMismatch(type, context) {
      throw TransferError.invalidConfiguration(
        file: file, key: keyPath(context.codingPath), reason: "expected \(type)")
    } catch let DecodingError.valueNotFound(type, context) {
      throw TransferError.invalidConfiguration(
        file: file, key: keyPath(context.codingPath), reason: "expected \(type), found null")
    } catch let DecodingError.keyNotFound(key, context) {
      throw TransferError.invalidConfiguration(
        file: file, key: keyPath(context.codingPath + [key]), reason: "missing")
    } catch let DecodingError.dataCorrupted(context) {
      throw TransferError.malformedConfiguration(
        file: file,
        reason: context.codingPath.isEmpty
          ? "not valid JSON" : "\(keyPath(context.codingPath)): \(context.debugDescription)")
    } catch {
      throw TransferError.malformedConfiguration(file: file, reason: "\(error)")
    }
  }

  /// The configuration as pretty-printed JSON with sorted keys (stable bytes).
  public func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(self)
  }

  /// Writes the configuration atomically (temporary file + rename).
  public func save(to path: String) throws {
    try writeAtomically(try encoded(), to: path)
  }
}

extension TransferError {
  /// The same error with an empty file name replaced by `file`.
  func naming(file: String) -> TransferError {
    switch self {
    case .unknownSchedule(let name, ""): .unknownSchedule(name, file: file)
    case .unknownLabelLevel(let name, ""): .unknownLabelLevel(name, file: file)
    case .invalidConfiguration("", let key, let reason):
      .invalidConfiguration(file: file, key: key, reason: reason)
    default: self
    }
  }
}

/// A coding key for any string.
struct AnyCodingKey: CodingKey {
  var stringValue: String
  var intValue: Int?
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) {
    self.stringValue = "\(intValue)"
    self.intValue = intValue
  }
}

/// Renders a coding path as `stages[1].level`.
func keyPath(_ path: [any CodingKey]) -> String {
  var text = ""
  for key in path {
    if let index = key.intValue {
      text += "[\(index)]"
    } else {
      text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
    }
  }
  return text.isEmpty ? "(top level)" : text
}

/// Throws `invalidConfiguration` for a key of the current object that is not in `known`.
func rejectUnknownKeys(_ decoder: any Decoder, known: [String]) throws {
  let container = try decoder.container(keyedBy: AnyCodingKey.self)
  for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue })
  where !known.contains(key.stringValue) {
    throw TransferError.invalidConfiguration(
      file: "", key: keyPath(decoder.codingPath + [key]),
      reason: "unknown key (expected one of \(known.joined(separator: ", ")))")
  }
}
