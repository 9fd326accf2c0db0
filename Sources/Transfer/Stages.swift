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

/// One stage of a staged transfer, as data.
///
/// A `schedules` stage runs every configured schedule for `generations` generations at its
/// level; a `train` stage fine-tunes one model once. Stages are chained per schedule: stage i of
/// the self-learning branch continues from stage i - 1 of the self-learning branch, and so on.
/// A `schedules` stage after the first may start from the previous stage's final model
/// (`"initialization": "previous-stage"`): its schedules then run from that model instead of
/// M0 (e.g. ATSO at the fine level after ATSO at a super level), and the units the previous
/// stages trained on count as seen (``ModelProvenance/stageTrainedOn``). `generations`
/// overrides the run's number of generations for one `schedules` stage.
///
/// The brief's coarse-to-fine example is three stages:
/// ```
/// {"name": "coarse", "method": "schedules", "level": "super:cityscapes-7"},
/// {"name": "target-coarse", "method": "train", "level": "super:cityscapes-7",
///  "network": "target", "labels": "previous-stage-final"},
/// {"name": "target-fine", "method": "train", "level": "fine",
///  "initialization": "previous-stage", "labels": "relabel"}
/// ```
public struct StageConfiguration: Codable, Sendable, Equatable {
  public enum Method: String, Codable, Sendable, CaseIterable, ConfigurationChoice {
    case schedules, train
  }
  public enum Initialization: String, Codable, Sendable, CaseIterable, ConfigurationChoice {
    /// The source model M0 of the stage's network (trained on S only).
    case source
    /// The final model of the previous stage of the same branch.
    case previousStage = "previous-stage"
  }
  public enum LabelSource: String, Codable, Sendable, CaseIterable, ConfigurationChoice {
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
  /// The generations of a `schedules` stage (nil: the run's `generations`).
  public var generations: Int?

  public init(
    name: String, method: Method, level: LabelLevel = .fine,
    initialization: Initialization = .source, network: String? = nil,
    labels: LabelSource? = nil, generations: Int? = nil
  ) {
    self.name = name
    self.method = method
    self.level = level
    self.initialization = initialization
    self.network = network
    self.labels = labels
    self.generations = generations
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case name, method, level, initialization, network, labels, generations
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
    generations = try c.decodeInteger(Int.self, forKey: .generations)
  }
}

extension StageConfiguration {
  /// Checks names, methods, initialisations and label sources of a run's stages.
  static func validate(_ stages: [StageConfiguration], _ fail: (String, String) -> TransferError)
    throws
  {
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
      if stage.name == ResultsTable.baselineStage {
        throw fail("\(key).name", "'\(stage.name)' is reserved for the baselines of the results")
      }
      if let generations = stage.generations {
        if stage.method != .schedules {
          throw fail("\(key).generations", "only schedules stages have generations")
        }
        if generations < 1 {
          throw fail("\(key).generations", "must be at least 1, got \(generations)")
        }
      }
      switch stage.method {
      case .schedules:
        if stage.initialization == .previousStage && i == 0 {
          throw fail(
            "\(key).initialization",
            "the first stage has no previous stage; it starts from the source model M0")
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
}

/// A string choice of a configuration: decoding any other string names the accepted ones.
public protocol ConfigurationChoice: RawRepresentable<String>, CaseIterable, Decodable {}

extension ConfigurationChoice {
  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let value = Self(rawValue: text) else {
      let expected = Self.allCases.map(\.rawValue).joined(separator: " or ")
      throw TransferError.invalidConfiguration(
        file: "", key: keyPath(decoder.codingPath), reason: "'\(text)' is not \(expected)")
    }
    self = value
  }
}

extension StageConfiguration {
  /// A stage from `--stage` text, `name=...,method=...[,level=...][,initialization=...]`
  /// `[,network=...][,labels=...][,generations=N]`: the same keys and the same decoding as a
  /// stage object of a configuration file.
  ///
  /// - Throws: `TransferError` naming `--stage '<text>'` and the key.
  public init(pairs text: String) throws {
    let file = "--stage '\(text)'"
    var object: [String: ConfigurationValue] = [:]
    for pair in text.split(separator: ",") {
      let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else {
        throw TransferError.malformedConfiguration(file: file, reason: "'\(pair)' is not key=value")
      }
      object[parts[0]] =
        parts[0] == CodingKeys.generations.rawValue
        ? OptionValueKind.integer.value(of: parts[1]) ?? .string(parts[1]) : .string(parts[1])
    }
    do {
      self = try ConfigurationValue.object(object).decoded(as: StageConfiguration.self)
    } catch {
      throw TransferError.describing(error, file: file)
    }
  }
}
