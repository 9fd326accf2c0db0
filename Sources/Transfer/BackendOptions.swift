import Foundation
import Segmentation

/// Which jobs of a run an option affects, and so which job identities it enters.
///
/// Every job's identity chains from the identity of the source model it descends from, so
/// ``model`` options reach every job; the others enter only the jobs they change, and two
/// configurations that differ only in what does not train M0 (student settings, R, E) share
/// their source model M0: its identity and its seed.
public enum OptionScope: String, Sendable, Codable {
  /// What trains a source model and shapes every network (S, classes, size, widths, the
  /// augmentation...): every source model's identity, trained or imported, and so every job's.
  case model
  /// Training a source model here (its steps, learning rate, initialisation): the identity of
  /// trained source models only.
  case sourceTraining
  /// Training the students (their steps, learning rate, augmentation): every student's identity.
  case studentTraining
  /// The reference set R (its data): the jobs that read R's images or labels (AdaBN, pseudo
  /// labels and their scores, students, evaluations), never a source model.
  case reference
  /// The test set E: evaluations only.
  case evaluation
  /// Only the speed (threads): no identity and no seed, so a run may be resumed with another
  /// value and gives the same bits.
  case speed
}

/// How the text of `--backend-option key=value` becomes the key's JSON value.
public enum OptionValueKind: String, Sendable, Codable {
  case string, integer, number, boolean
  /// Comma-separated integers: `8,16,32` is `[8, 16, 32]`.
  case integers
  /// Comma-separated numbers: `0.75,1.25` is `[0.75, 1.25]`.
  case numbers
  /// A JSON object (only in a configuration file).
  case object

  /// The JSON value of `text`, or nil when it does not parse as this kind.
  public func value(of text: String) -> ConfigurationValue? {
    func list(_ parse: (String) -> ConfigurationValue?) -> ConfigurationValue? {
      let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
        parse($0.trimmingCharacters(in: .whitespaces))
      }
      guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
      return .array(parts.compactMap { $0 })
    }
    func integer(_ text: String) -> ConfigurationValue? {
      if let value = Int64(text) { return .integer(value) }
      return UInt64(text).map { .unsigned($0) }
    }
    func number(_ text: String) -> ConfigurationValue? {
      integer(text) ?? Double(text).flatMap { $0.isFinite ? .number($0) : nil }
    }
    switch self {
    case .string: return .string(text)
    case .integer: return integer(text)
    case .number: return number(text)
    case .boolean: return Bool(text).map { .bool($0) }
    case .integers: return list(integer)
    case .numbers: return list(number)
    case .object: return nil
    }
  }
}

/// One key of a backend's options, documented where `--help` reads it.
public struct BackendOptionKey: Sendable {
  /// The JSON key (and the `--backend-option` key).
  public var name: String
  public var kind: OptionValueKind
  /// The default as it is written (`4`, `8,16,32`), or a phrase (`required`, `off`).
  public var defaultText: String
  /// One line of help.
  public var help: String
  public var scope: OptionScope
  /// Whether the value says where data lies (a dataset, a folder): such values enter job
  /// identities (a resumed run on other data recomputes) but not job seeds (the same data in
  /// another folder gives the same numbers).
  public var isLocation: Bool
  /// Names the key had in earlier versions, refused with a message naming the new one.
  public var formerNames: [String]

  public init(
    _ name: String, _ kind: OptionValueKind, default defaultText: String, _ help: String,
    scope: OptionScope = .model, isLocation: Bool = false, formerNames: [String] = []
  ) {
    self.name = name
    self.kind = kind
    self.defaultText = defaultText
    self.help = help
    self.scope = scope
    self.isLocation = isLocation
    self.formerNames = formerNames
  }
}

/// What a backend gets when it is created for a run.
public struct BackendContext: Sendable {
  /// Every level of the run's stages, to be resolved once (the fine level included).
  public var levels: [LabelLevel]
  /// The void label of pseudo labels, training and agreement.
  public var ignoreIndex: IgnoreIndex
  /// The checkpoint the run starts from instead of training its source model (see
  /// ``TransferConfiguration/sourceModel``).
  public var sourceModel: String?
  /// Receives one progress line per backend call (the CLI writes them to stderr).
  public var progress: (@Sendable (String) -> Void)?
  /// Receives the progress of long loops inside a call: every training step, cases predicted.
  public var jobProgress: (@Sendable (JobProgress) -> Void)?

  public init(
    levels: [LabelLevel], ignoreIndex: IgnoreIndex, sourceModel: String? = nil,
    progress: (@Sendable (String) -> Void)? = nil,
    jobProgress: (@Sendable (JobProgress) -> Void)? = nil
  ) {
    self.levels = levels
    self.ignoreIndex = ignoreIndex
    self.sourceModel = sourceModel
    self.progress = progress
    self.jobProgress = jobProgress
  }
}

/// The typed options of a backend (the `backend` object of a configuration), declared by the
/// backend's module: the transfer core knows no backend.
///
/// Conformers decode strictly (``decodeBackendKeys(_:_:)``: unknown keys are errors, numbers are
/// JSON numbers), document every key in ``keys`` (what `--help` prints and what decides each
/// key's identity scope), and check ranges in ``validate(file:)``.
public protocol BackendOptions: Codable, Sendable {
  /// The `kind` of the backend object (`image`, `volume`, `simulation`).
  static var kind: String { get }
  /// One line on the backend, for `--help`.
  static var summary: String { get }
  /// Every key but `kind`, in help order.
  static var keys: [BackendOptionKey] { get }
  /// Checks ranges and combinations.
  /// - Throws: `TransferError.invalidConfiguration` naming `file` and `backend.<key>`.
  func validate(file: String) throws
  /// Creates the backend for a run: reads the data, resolves `context.levels` once.
  func makeBackend(_ context: BackendContext) throws -> any TransferBackend
  /// Moves keys of the shape written before typed options that are not a plain rename (see
  /// ``BackendUpgrade``) and describes each change; the default moves nothing.
  static func upgradeSpecialKeys(_ object: inout [String: ConfigurationValue]) -> [String]
  /// The options as a run will use them, for `--dry-run`: the keys whose default depends on
  /// other keys, the source model or the data (listed, not decoded) filled in, each with where
  /// its value comes from. The default fills nothing. Never used for job identities.
  func resolvingDefaults(sourceModel: String?) -> ResolvedDefaults
}

/// Options with their derived defaults filled in (``BackendOptions/resolvingDefaults(sourceModel:)``).
public struct ResolvedDefaults {
  public var options: any BackendOptions
  /// The keys filled in, each with where its value comes from.
  public var derived: [String: String]

  public init(options: any BackendOptions, derived: [String: String] = [:]) {
    self.options = options
    self.derived = derived
  }
}

extension BackendOptions {
  public func resolvingDefaults(sourceModel: String?) -> ResolvedDefaults {
    ResolvedDefaults(options: self)
  }

  /// Decodes options of this type (what a configuration's `backend` object decodes into).
  static func decodeOptions(from decoder: any Decoder) throws -> any BackendOptions {
    try Self(from: decoder)
  }

  /// The options as a JSON object, `kind` included.
  public func jsonObject() throws -> [String: ConfigurationValue] {
    var object = try ConfigurationValue(encoding: self).objectValue ?? [:]
    object["kind"] = .string(Self.kind)
    return object
  }

  /// Decodes options from a JSON object (`kind` may be left out).
  public static func decoding(_ object: [String: ConfigurationValue], file: String = "configuration")
    throws -> Self
  {
    do {
      return try ConfigurationValue.object(object).decoded(as: Self.self)
    } catch {
      throw TransferError.describing(error, file: file, prefix: ["backend"])
    }
  }

  /// These options with `key` set from command-line text (`batch=4`, `widths=8,16,32`).
  ///
  /// - Throws: `TransferError.invalidConfiguration` for an unknown key or a value that does not
  ///   parse as the key's kind.
  public func setting(_ key: String, to text: String, file: String = "command line") throws
    -> Self
  {
    var object = try jsonObject()
    try Self.set(key, to: text, in: &object, file: file)
    return try Self.decoding(object, file: file)
  }

  /// Sets `key` of a backend object from command-line text, checked against ``keys``.
  public static func set(
    _ key: String, to text: String, in object: inout [String: ConfigurationValue], file: String
  )
    throws
  {
    guard let entry = keys.first(where: { $0.name == key }) else {
      throw TransferError.invalidConfiguration(
        file: file, key: "backend.\(key)", reason: unknownKeyReason(key))
    }
    guard let value = entry.kind.value(of: text) else {
      throw TransferError.invalidConfiguration(
        file: file, key: "backend.\(key)",
        reason: "'\(text)' is not \(entry.kind.phrase) (\(entry.help))")
    }
    object[key] = value
  }

  /// Why `key` is not one of ``keys``: a renamed key names its new name.
  static func unknownKeyReason(_ key: String) -> String {
    if let renamed = keys.first(where: { $0.formerNames.contains(key) || $0.name.kebabCased == key })
    {
      return "renamed to '\(renamed.name)' (this configuration was written for an earlier "
        + "version; see `atso-transfer transfer --help`)"
    }
    return "unknown key of the \(kind) backend (expected one of kind, "
      + keys.map(\.name).joined(separator: ", ") + ")"
  }

  /// The help of every key as `--help` prints it: `key=VALUE`, then its meaning, default and
  /// notes indented below, in lines shorter than 80 columns.
  public static var help: String {
    var lines = ["\(kind) backend, kind=\(kind): \(summary)"]
    for key in keys {
      var notes = ["default \(key.defaultText)"]
      if key.scope == .speed { notes.append("speed only") }
      if key.isLocation { notes.append("a data location") }
      lines.append("  \(key.name)=\(key.kind.placeholder)")
      lines += wrapped(key.help + " (" + notes.joined(separator: "; ") + ")", indent: 6)
    }
    return lines.joined(separator: "\n")
  }

  /// `text` in lines of at most 78 columns, each indented by `indent` spaces.
  /// (Widths are counted in Unicode scalars, the line's as it grows: every command's
  /// configuration, and so this text, is built at each start of the tool.)
  static func wrapped(_ text: String, indent: Int) -> [String] {
    let pad = String(repeating: " ", count: indent)
    var lines: [String] = []
    var line = ""
    var width = 0
    for word in text.split(separator: " ") {
      let wordWidth = word.unicodeScalars.count
      if width > 0, indent + width + 1 + wordWidth > 78 {
        lines.append(pad + line)
        (line, width) = ("", 0)
      }
      if width > 0 {
        line += " "
        width += 1
      }
      line += word
      width += wordWidth
    }
    if width > 0 { lines.append(pad + line) }
    return lines
  }
}

/// Checks the keys of a backend object while it is decoded: every key must be `kind` (with the
/// value `Options.kind`) or one of `Options.keys`.
///
/// Call it first in `init(from:)`.
/// - Throws: `TransferError.invalidConfiguration` naming the key (a renamed key with its new
///   name).
public func decodeBackendKeys<Options: BackendOptions>(
  _ decoder: any Decoder, _ options: Options.Type
) throws {
  let container = try decoder.container(keyedBy: AnyCodingKey.self)
  for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
    let name = key.stringValue
    if name == "kind" {
      let kind = try container.decode(String.self, forKey: key)
      if kind != Options.kind {
        throw TransferError.invalidConfiguration(
          file: "", key: keyPath(decoder.codingPath + [key]),
          reason: "'\(kind)' is not \(Options.kind)")
      }
    } else if !Options.keys.contains(where: { $0.name == name }) {
      throw TransferError.invalidConfiguration(
        file: "", key: keyPath(decoder.codingPath + [key]),
        reason: Options.unknownKeyReason(name))
    }
  }
}

extension OptionValueKind {
  /// The placeholder in help lines.
  var placeholder: String {
    switch self {
    case .string: "TEXT"
    case .integer: "N"
    case .number: "X"
    case .boolean: "true|false"
    case .integers: "N,N,..."
    case .numbers: "X,X"
    case .object: "{...}"
    }
  }

  /// A phrase for messages.
  var phrase: String {
    switch self {
    case .string: "text"
    case .integer: "an integer"
    case .number: "a number"
    case .boolean: "true or false"
    case .integers: "comma-separated integers"
    case .numbers: "comma-separated numbers"
    case .object: "an object (give it in the configuration file)"
    }
  }
}

extension String {
  /// `sourceIterations` as `source-iterations`: the spelling of earlier versions' keys.
  var kebabCased: String {
    var out = ""
    for character in self {
      if character.isUppercase {
        out += "-" + character.lowercased()
      } else {
        out.append(character)
      }
    }
    return out
  }
}
