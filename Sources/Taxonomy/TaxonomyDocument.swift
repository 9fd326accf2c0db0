/// The content of a taxonomy file: a class set or a mapping, told apart by its `kind` key.
public enum TaxonomyDocument: Sendable, Equatable {
  case classSet(ClassSet)
  case mapping(LabelMapping)

  /// Loads and validates a class set or mapping file.
  ///
  /// Mappings find their class sets as in ``LabelMapping/init(contentsOfFile:searchDirectories:)``.
  /// - Throws: ``TaxonomyError`` naming the file, the entry and the offending value.
  public init(contentsOfFile path: String, searchDirectories: [String] = []) throws(TaxonomyError) {
    let reader = JSONReader(file: path)
    let root = try reader.object(reader.parse(readTextFile(path)), at: "(root)")
    let kind = try reader.string(reader.required("kind", in: root, at: "(root)"), at: "kind")
    switch kind {
    case "class-set": self = .classSet(try ClassSet(contentsOfFile: path))
    case "mapping":
      self = .mapping(try LabelMapping(contentsOfFile: path, searchDirectories: searchDirectories))
    default:
      throw .invalidValue(
        file: path, entry: "kind", value: "'\(kind)'", reason: "expected 'class-set' or 'mapping'")
    }
  }

  /// The name of the class set or mapping.
  public var name: String {
    switch self {
    case .classSet(let classSet): classSet.name
    case .mapping(let mapping): mapping.name
    }
  }
}
