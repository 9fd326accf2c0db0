/// Everything that can be wrong with a class set file, a mapping file or a request for a mapping.
///
/// `file` is the path as given; `entry` locates the offending JSON value inside the file, in the
/// form `classes[3].name` or `entries[2].from[0]`; `value` is the offending value as written.
public enum TaxonomyError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The file cannot be read.
  case unreadable(file: String, reason: String)
  /// The file cannot be written.
  case unwritable(file: String, reason: String)
  /// The file is not valid JSON; `line` and `column` (1-based, bytes) come from json-c.
  case malformedJSON(file: String, line: Int, column: Int, reason: String)
  /// A required key is absent.
  case missingKey(file: String, entry: String, key: String)
  /// A value has the wrong JSON type.
  case wrongType(file: String, entry: String, expected: String)
  /// A value has the right type but is not allowed (an unknown `kind`, a colour component 300).
  case invalidValue(file: String, entry: String, value: String, reason: String)
  /// A class id or ignore value outside `0...254` (`0...255` for `ignoreIndex`).
  case idOutOfRange(file: String, entry: String, value: Int)
  /// Two classes of a class set share an id.
  case duplicateID(file: String, entry: String, value: Int)
  /// Two classes of a class set share a name.
  case duplicateName(file: String, entry: String, value: String)
  /// A mapping names a class (by id or name) that its class set does not have.
  case unknownClass(file: String, entry: String, value: String)
  /// A source class appears twice in a mapping (two entries, or an entry and `ignore`).
  case mappedTwice(file: String, entry: String, value: String)
  /// Source classes that a mapping neither maps nor ignores (and `unlisted` is not `"ignore"`).
  case notCovered(file: String, classes: [String])
  /// A mapping refers to a class set that cannot be found.
  case classSetNotFound(file: String, entry: String, value: String)
  /// Two things that should use the same class set do not (composition, reduction, merging).
  case classSetMismatch(expected: String, found: String, context: String)
  /// No shipped mapping, direct or composed, leads from one class set to another.
  case noMapping(from: String, to: String)
  /// Several default mappings lead from one class set to another.
  case ambiguousMapping(from: String, to: String, candidates: [String])
  /// No class set or mapping of this name is loaded; `searched` lists the folders, `known` the
  /// names that exist.
  case unknownName(String, searched: [String], known: [String])
  /// Two files of a mapping directory define the same name.
  case duplicateDefinition(name: String, files: [String])
  /// The `mappings/` directory could not be located; `searched` lists the places tried.
  case mappingsDirectoryNotFound(searched: [String])
  /// Ground truth and predictions share no class set from which the scoring level is reached.
  case noCommonLevel(groundTruth: String, prediction: String, level: String?)
  /// A mapping asked for (`--mapping`) is not a step of the scoring path.
  case mappingNotOnPath(mapping: String, path: String)
  /// A label file holds values that are neither classes of its class set nor its ignore value.
  case labelValuesNotInClassSet(file: String, classSet: String, values: [LabelValueCount])

  public var description: String {
    switch self {
    case .unreadable(let file, let reason): "\(file): \(reason)"
    case .unwritable(let file, let reason): "\(file): cannot write: \(reason)"
    case .malformedJSON(let file, let line, let column, let reason):
      "\(file):\(line):\(column): malformed JSON: \(reason)"
    case .missingKey(let file, let entry, let key): "\(file): \(entry): missing key '\(key)'"
    case .wrongType(let file, let entry, let expected): "\(file): \(entry): expected \(expected)"
    case .invalidValue(let file, let entry, let value, let reason):
      "\(file): \(entry): invalid value \(value): \(reason)"
    case .idOutOfRange(let file, let entry, let value):
      "\(file): \(entry): id \(value) is out of range"
    case .duplicateID(let file, let entry, let value):
      "\(file): \(entry): id \(value) is used twice"
    case .duplicateName(let file, let entry, let value):
      "\(file): \(entry): name '\(value)' is used twice"
    case .unknownClass(let file, let entry, let value):
      "\(file): \(entry): unknown class \(value)"
    case .mappedTwice(let file, let entry, let value):
      "\(file): \(entry): source class '\(value)' is mapped twice"
    case .notCovered(let file, let classes):
      "\(file): source classes not covered (map them, list them in 'ignore', or set "
        + "\"unlisted\": \"ignore\"): \(classes.map { "'\($0)'" }.joined(separator: ", "))"
    case .classSetNotFound(let file, let entry, let value):
      "\(file): \(entry): class set '\(value)' not found (looked for \(value).classes.json)"
    case .classSetMismatch(let expected, let found, let context):
      "\(context): expected class set '\(expected)', found '\(found)'"
    case .noMapping(let from, let to): "no mapping from '\(from)' to '\(to)'"
    case .ambiguousMapping(let from, let to, let candidates):
      "several default mappings from '\(from)' to '\(to)': \(candidates.joined(separator: ", "))"
    case .unknownName(let name, let searched, let known):
      "no class set or mapping '\(name)' in \(searched.joined(separator: ", ")) (known: "
        + known.joined(separator: ", ")
        + "); give a file path, or add a folder of your own with --mappings DIR)"
    case .duplicateDefinition(let name, let files):
      "'\(name)' is defined in several files: \(files.joined(separator: ", "))"
    case .mappingsDirectoryNotFound(let searched):
      "cannot find the mappings directory (a folder 'mappings' holding README.md); pass "
        + "--mappings DIR or set ATSO_TRANSFER_MAPPINGS. Searched: "
        + searched.joined(separator: ", ")
    case .noCommonLevel(let groundTruth, let prediction, let level):
      "ground truth in '\(groundTruth)' and predictions in '\(prediction)' share no class set"
        + (level.map { " from which '\($0)' is reached" } ?? "")
        + " (no chain of default mappings leads from both to one class set)"
    case .mappingNotOnPath(let mapping, let path):
      "mapping '\(mapping)' is not a step of the scoring path (\(path)); ground truth and "
        + "predictions meet at the finest class set both map to, then both go to the level "
        + "through the same mappings"
    case .labelValuesNotInClassSet(let file, let classSet, let values):
      "\(file): label values that are not classes of \(classSet) (nor its ignore value): "
        + values.map { "\($0.value) (\($0.count) pixels)" }.joined(separator: ", ")
    }
  }
}

/// Reads typed values out of a parsed JSON document, throwing ``TaxonomyError`` with the file
/// name and the entry path.
struct JSONReader {
  let file: String

  func object(_ value: JSONValue, at entry: String) throws(TaxonomyError) -> JSONValue {
    guard case .object = value else {
      throw .wrongType(file: file, entry: entry, expected: "an object, found \(value.typeName)")
    }
    return value
  }

  func required(_ key: String, in value: JSONValue, at entry: String) throws(TaxonomyError)
    -> JSONValue
  {
    guard let member = value[key] else { throw .missingKey(file: file, entry: entry, key: key) }
    return member
  }

  func string(_ value: JSONValue, at entry: String) throws(TaxonomyError) -> String {
    guard case .string(let text) = value else {
      throw .wrongType(file: file, entry: entry, expected: "a string, found \(value.typeName)")
    }
    return text
  }

  func int(_ value: JSONValue, at entry: String) throws(TaxonomyError) -> Int {
    guard case .int(let number) = value, let int = Int(exactly: number) else {
      throw .wrongType(file: file, entry: entry, expected: "an integer, found \(value.typeName)")
    }
    return int
  }

  func bool(_ value: JSONValue, at entry: String) throws(TaxonomyError) -> Bool {
    guard case .bool(let flag) = value else {
      throw .wrongType(file: file, entry: entry, expected: "a boolean, found \(value.typeName)")
    }
    return flag
  }

  func array(_ value: JSONValue, at entry: String) throws(TaxonomyError) -> [JSONValue] {
    guard case .array(let values) = value else {
      throw .wrongType(file: file, entry: entry, expected: "an array, found \(value.typeName)")
    }
    return values
  }

  func optionalString(_ key: String, in value: JSONValue, at entry: String)
    throws(TaxonomyError) -> String?
  {
    guard let member = value[key], !member.isNull else { return nil }
    return try string(member, at: "\(entry).\(key)")
  }

  /// Checks the `kind` and `version` keys common to every file.
  func checkHeader(_ root: JSONValue, kind expected: String) throws(TaxonomyError) {
    let kind = try string(required("kind", in: root, at: "(root)"), at: "kind")
    guard kind == expected else {
      throw .invalidValue(
        file: file, entry: "kind", value: "'\(kind)'", reason: "expected '\(expected)'")
    }
    let version = try int(required("version", in: root, at: "(root)"), at: "version")
    guard version == 1 else {
      throw .invalidValue(
        file: file, entry: "version", value: "\(version)", reason: "only version 1 is known")
    }
  }

  /// Parses `text`, converting json-c failures to
  /// ``TaxonomyError/malformedJSON(file:line:column:reason:)``.
  func parse(_ text: String) throws(TaxonomyError) -> JSONValue {
    do {
      return try JSONValue.parse(text)
    } catch {
      throw .malformedJSON(file: file, line: error.line, column: error.column, reason: error.reason)
    }
  }
}

extension JSONValue {
  var isNull: Bool {
    if case .null = self { return true }
    return false
  }
}
