import Foundation

/// The configuration of a transfer run, saved resolved as `configuration.json` in the run
/// directory.
///
/// A minimal file is `{"schedules": ["atso"], "generations": 3}`; every other key has a
/// default. Unknown keys are errors, so that typos do not pass silently. The `backend` object is
/// decoded into the typed options of its `kind` (``BackendOptions``), one of the kinds the
/// caller registers; the core knows none of them.
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
  /// The backend and its typed options (nil: none given, e.g. a test backend passed directly).
  public var backend: (any BackendOptions)?
  /// A checkpoint of the default network to start from instead of training the source model M0
  /// (a `train` checkpoint, a model of another run...). The backend checks its class set and
  /// working size against the run. It is identified by its content, so the same file in
  /// another folder gives the same results; networks of stages with their own `network` are
  /// still trained.
  public var sourceModel: String?
  /// How many test images (or cases) `predictions.png` shows at the end of the run (0: none).
  public var previews: Int

  public static let defaultStages = [StageConfiguration(name: "fine", method: .schedules)]

  public init(
    seed: UInt64 = 0, runDirectory: String? = nil,
    schedules: [ScheduleKind] = ScheduleKind.allCases, folds: Int = 2, generations: Int = 3,
    pseudoLabels: PseudoLabelConfiguration = PseudoLabelConfiguration(),
    stages: [StageConfiguration] = TransferConfiguration.defaultStages,
    backend: (any BackendOptions)? = nil, sourceModel: String? = nil, previews: Int = 4
  ) {
    self.seed = seed
    self.runDirectory = runDirectory
    self.schedules = schedules
    self.folds = folds
    self.generations = generations
    self.pseudoLabels = pseudoLabels
    self.stages = stages
    self.backend = backend
    self.sourceModel = sourceModel
    self.previews = previews
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case seed, runDirectory, schedules, folds, generations, pseudoLabels, stages, backend
    case sourceModel, previews
  }

  /// Decodes a configuration; the backend kinds come from the decoder's user info
  /// (``decode(_:file:kinds:)``).
  public init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    seed = try c.decodeInteger(UInt64.self, forKey: .seed) ?? 0
    runDirectory = try c.decodeIfPresent(String.self, forKey: .runDirectory)
    schedules =
      try c.decodeIfPresent([ScheduleKind].self, forKey: .schedules) ?? ScheduleKind.allCases
    folds = try c.decodeInteger(Int.self, forKey: .folds) ?? 2
    generations = try c.decodeInteger(Int.self, forKey: .generations) ?? 3
    pseudoLabels =
      try c.decodeIfPresent(PseudoLabelConfiguration.self, forKey: .pseudoLabels)
      ?? PseudoLabelConfiguration()
    stages =
      try c.decodeIfPresent([StageConfiguration].self, forKey: .stages)
      ?? TransferConfiguration.defaultStages
    sourceModel = try c.decodeIfPresent(String.self, forKey: .sourceModel)
    previews = try c.decodeInteger(Int.self, forKey: .previews) ?? 4
    backend = nil
    if c.contains(.backend) {
      let kinds = decoder.userInfo[.backendKinds] as? [any BackendOptions.Type] ?? []
      backend = try Self.decodeBackend(try c.superDecoder(forKey: .backend), kinds: kinds)
    }
  }

  /// Decodes the backend object into the options of its kind; an object of the earlier shape
  /// is refused with its replacement.
  static func decodeBackend(_ decoder: any Decoder, kinds: [any BackendOptions.Type]) throws
    -> any BackendOptions
  {
    let object = try ConfigurationValue(from: decoder).objectValue ?? [:]
    let path = keyPath(decoder.codingPath)
    if let (upgraded, changes) = BackendUpgrade.upgrade(object, kinds: kinds) {
      throw TransferError.outdatedConfiguration(
        file: "", key: path, changes: changes, replacement: ConfigurationValue.object(upgraded).prettyText)
    }
    var kind: String? = kinds.isEmpty ? nil : kinds[0].kind
    if let value = object["kind"] {
      guard case .string(let name) = value else {
        throw TransferError.invalidConfiguration(
          file: "", key: path + ".kind", reason: "expected a string")
      }
      kind = name
    }
    guard let options = kinds.first(where: { $0.kind == kind }) else {
      let known = kinds.map { $0.kind }.joined(separator: ", ")
      throw TransferError.invalidConfiguration(
        file: "", key: path + ".kind",
        reason: "unknown backend kind '\(kind ?? "")' (expected \(known.isEmpty ? "none" : known))")
    }
    return try options.decodeOptions(from: decoder)
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(seed, forKey: .seed)
    try c.encodeIfPresent(runDirectory, forKey: .runDirectory)
    try c.encode(schedules, forKey: .schedules)
    try c.encode(folds, forKey: .folds)
    try c.encode(generations, forKey: .generations)
    try c.encode(pseudoLabels, forKey: .pseudoLabels)
    try c.encode(stages, forKey: .stages)
    if let backend { try c.encode(ConfigurationValue.object(try backend.jsonObject()), forKey: .backend) }
    try c.encodeIfPresent(sourceModel, forKey: .sourceModel)
    try c.encode(previews, forKey: .previews)
  }

  public static func == (a: TransferConfiguration, b: TransferConfiguration) -> Bool {
    (try? a.encoded()) == (try? b.encoded())
  }

  /// Every level of the stages, in stage order, the fine level first.
  public var levels: [LabelLevel] {
    var levels: [LabelLevel] = [.fine]
    for stage in stages where !levels.contains(stage.level) { levels.append(stage.level) }
    return levels
  }

  /// The most generations a configuration may ask for (each is at least K + 2 trainings).
  public static let maxGenerations = 1_000
  /// The most folds (each fold is a student per generation).
  public static let maxFolds = 1_024

  /// Checks ranges, the consistency of the stages and the backend's options.
  ///
  /// - Parameter file: the file named in errors.
  /// - Returns: the configuration as a ``ValidatedConfiguration``, what plans and runs take.
  /// - Throws: `TransferError.invalidConfiguration` naming the key and the offending value.
  @discardableResult
  public func validated(file: String = "configuration") throws -> ValidatedConfiguration {
    let fail = { (key: String, reason: String) in TransferError.invalid(key, reason, file: file) }
    if schedules.isEmpty { throw fail("schedules", "at least one schedule is needed") }
    if Set(schedules).count != schedules.count {
      throw fail("schedules", "duplicate schedule in \(schedules.map(\.rawValue))")
    }
    if generations < 1 { throw fail("generations", "must be at least 1, got \(generations)") }
    if generations > Self.maxGenerations {
      throw fail("generations", "must be at most \(Self.maxGenerations), got \(generations)")
    }
    if folds < 2 { throw fail("folds", "ATSO needs K >= 2 folds, got \(folds)") }
    if folds > Self.maxFolds { throw fail("folds", "must be at most \(Self.maxFolds), got \(folds)") }
    if !(0...32).contains(previews) { throw fail("previews", "must be in 0...32, got \(previews)") }
    if let sourceModel, sourceModel.isEmpty { throw fail("sourceModel", "is empty") }
    try pseudoLabels.validate(fail)
    try StageConfiguration.validate(stages, fail)
    try backend?.validate(file: file)
    return ValidatedConfiguration(configuration: self, file: file)
  }

  /// Loads and validates a configuration file.
  ///
  /// - Parameter kinds: the backend option types the file may name (the first is the default).
  /// - Throws: `TransferError` naming the file and the key.
  public static func load(from path: String, kinds: [any BackendOptions.Type]) throws
    -> ValidatedConfiguration
  {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TransferError.fileOperation(path: path, reason: "cannot read the configuration")
    }
    return try decode(data, file: path, kinds: kinds).validated(file: path)
  }

  /// Decodes a configuration (without validating it), mapping decoding errors to
  /// `TransferError` with the JSON path of the offending entry. `//` comments (to the end of
  /// the line, outside strings) are allowed, as in the files of `examples/`.
  public static func decode(_ data: Data, file: String, kinds: [any BackendOptions.Type] = [])
    throws -> TransferConfiguration
  {
    let decoder = JSONDecoder()
    decoder.userInfo[.backendKinds] = kinds
    do {
      return try decoder.decode(TransferConfiguration.self, from: withoutComments(data))
    } catch {
      throw TransferError.describing(error, file: file)
    }
  }

  /// The configuration as `--dry-run` prints it: ``encoded()`` with every key, the backend's
  /// derived defaults filled in (``BackendOptions/resolvingDefaults(sourceModel:)``, each with a
  /// `//` comment saying where its value comes from) and every key that is off as `null`. It
  /// reads back as the same configuration (leave the commented keys out to keep deriving them:
  /// given explicitly, they enter the job identities).
  public func encodedWithDefaults() throws -> Data {
    var copy = self
    let resolved = backend?.resolvingDefaults(sourceModel: sourceModel)
    copy.backend = resolved?.options
    guard case .object(var root) = try ConfigurationValue(encoding: copy) else {
      return try copy.encoded()
    }
    for key in CodingKeys.allCases.map(\.rawValue) where root[key] == nil { root[key] = .null }
    if case .object(var pseudo)? = root["pseudoLabels"] {
      for key in PseudoLabelConfiguration.CodingKeys.allCases.map(\.rawValue)
      where pseudo[key] == nil {
        pseudo[key] = .null
      }
      root["pseudoLabels"] = .object(pseudo)
    }
    if let options = copy.backend, case .object(var object)? = root["backend"] {
      for key in type(of: options).keys.map(\.name) where object[key] == nil {
        object[key] = .null
      }
      root["backend"] = .object(object)
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let text = String(decoding: try encoder.encode(ConfigurationValue.object(root)), as: UTF8.self)
    let derived = resolved?.derived ?? [:]
    var inBackend = false
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      let content = line.drop { $0 == " " }
      let indent = line.count - content.count
      if indent == 2 { inBackend = content.hasPrefix("\"backend\"") && content.hasSuffix("{") }
      guard inBackend, indent == 4, content.hasPrefix("\""),
        let end = content.dropFirst().firstIndex(of: "\""),
        let note = derived[String(content[content.index(after: content.startIndex)..<end])]
      else { return String(line) }
      return line + "  // " + note
    }
    return Data(lines.joined(separator: "\n").utf8)
  }

  /// The configuration as pretty-printed JSON with sorted keys (stable bytes).
  public func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return try encoder.encode(self)
  }

  /// Writes the configuration atomically (temporary file + rename).
  public func save(to path: String) throws {
    try writeAtomically(try encoded(), to: path)
  }
}

/// A configuration that passed ``TransferConfiguration/validated(file:)``: the only input of a
/// plan and a run, so that nothing downstream validates (or parses) it again. Its fields read
/// as those of the configuration (`validated.seed`).
@dynamicMemberLookup
public struct ValidatedConfiguration: Sendable, Equatable {
  public let configuration: TransferConfiguration
  /// The file it came from (named in errors).
  public let file: String

  public subscript<Value>(dynamicMember keyPath: KeyPath<TransferConfiguration, Value>) -> Value {
    configuration[keyPath: keyPath]
  }

  fileprivate init(configuration: TransferConfiguration, file: String) {
    self.configuration = configuration
    self.file = file
  }

  /// The same configuration bound to a run directory.
  public func withRunDirectory(_ directory: String) -> ValidatedConfiguration {
    var configuration = configuration
    configuration.runDirectory = directory
    return ValidatedConfiguration(configuration: configuration, file: file)
  }

  /// Creates the configured backend for this run (its levels resolved once).
  ///
  /// - Throws: `TransferError.invalidConfiguration` when the configuration has no backend, and
  ///   what the backend's creation throws (unreadable data, unknown class sets...).
  public func makeBackend(
    progress: (@Sendable (String) -> Void)? = nil,
    jobProgress: (@Sendable (JobProgress) -> Void)? = nil
  ) throws -> any TransferBackend {
    guard let options = configuration.backend else {
      throw TransferError.invalidConfiguration(
        file: file, key: "backend",
        reason: "missing: give the backend's kind and data (e.g. --backend-option kind=image "
          + "--backend-option source=SPEC ...; `atso-transfer transfer --help` lists the keys)")
    }
    return try options.makeBackend(
      BackendContext(
        levels: configuration.levels, ignoreIndex: configuration.pseudoLabels.ignoreIndex,
        sourceModel: configuration.sourceModel, progress: progress, jobProgress: jobProgress))
  }
}

extension ConfigurationValue {
  /// Pretty-printed sorted-keys JSON (for messages that show what to write).
  var prettyText: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
  }
}

/// `data` with every `//` comment (to the end of its line, outside strings) blanked out with
/// spaces, so that the positions of decoding errors stay those of the file.
func withoutComments(_ data: Data) -> Data {
  var bytes = [UInt8](data)
  var inString = false
  var escaped = false
  var i = 0
  while i < bytes.count {
    let byte = bytes[i]
    if inString {
      if escaped {
        escaped = false
      } else if byte == UInt8(ascii: "\\") {
        escaped = true
      } else if byte == UInt8(ascii: "\"") {
        inString = false
      }
    } else if byte == UInt8(ascii: "\"") {
      inString = true
    } else if byte == UInt8(ascii: "/"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "/") {
      while i < bytes.count, bytes[i] != UInt8(ascii: "\n") {
        bytes[i] = UInt8(ascii: " ")
        i += 1
      }
      continue
    }
    i += 1
  }
  return Data(bytes)
}
