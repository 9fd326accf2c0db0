/// A many-to-one mapping from the classes of one ``ClassSet`` to the classes of another.
///
/// Every source class maps to exactly one target class or to ignore. Loaded from a
/// `*.mapping.json` file (schema in `mappings/README.md`), built in memory with
/// ``init(name:from:to:targets:)``, or composed from two mappings with ``composed(with:)``.
public struct LabelMapping: Sendable, Equatable {
  /// The unique name (`mapillary-vistas-v1.2-to-cityscapes-19`).
  public var name: String
  /// A short variant tag (`A`, `S2`), if the file gives one.
  public var variant: String?
  /// Whether this is the default mapping between its two class sets (see ``MappingLibrary``).
  public var isDefault: Bool
  /// What the mapping is, and the choices it makes.
  public var summary: String
  /// Where the table comes from.
  public var citation: String
  /// The class set of the values being mapped.
  public let source: ClassSet
  /// The class set of the results.
  public let target: ClassSet
  /// Target class id for each source class, in the order of `source.classes`; `nil` = ignore.
  public let targetIDs: [Int?]

  /// Creates a mapping from a table of source id -> target id (`nil` = ignore).
  ///
  /// Source classes absent from `targets` map to ignore.
  /// - Throws: ``TaxonomyError/unknownClass(file:entry:value:)`` for an id that is not a class.
  public init(
    name: String, from source: ClassSet, to target: ClassSet, targets: [Int: Int?],
    variant: String? = nil, isDefault: Bool = true, summary: String = "", citation: String = ""
  ) throws(TaxonomyError) {
    for (sourceID, targetID) in targets.sorted(by: { $0.key < $1.key }) {
      guard source.position(ofID: sourceID) != nil else {
        throw .unknownClass(file: "<memory>", entry: "source", value: "\(sourceID)")
      }
      if let targetID, target.position(ofID: targetID) == nil {
        throw .unknownClass(file: "<memory>", entry: "target of \(sourceID)", value: "\(targetID)")
      }
    }
    self.init(
      name: name, variant: variant, isDefault: isDefault, summary: summary, citation: citation,
      source: source, target: target,
      targetIDs: source.classes.map { targets[$0.id] ?? nil })
  }

  init(
    name: String, variant: String?, isDefault: Bool, summary: String, citation: String,
    source: ClassSet, target: ClassSet, targetIDs: [Int?]
  ) {
    self.name = name
    self.variant = variant
    self.isDefault = isDefault
    self.summary = summary
    self.citation = citation
    self.source = source
    self.target = target
    self.targetIDs = targetIDs
  }

  /// The mapping of a class set onto itself.
  public static func identity(_ classes: ClassSet) -> LabelMapping {
    LabelMapping(
      name: "\(classes.name)-identity", variant: nil, isDefault: true, summary: "identity",
      citation: "", source: classes, target: classes, targetIDs: classes.classes.map(\.id))
  }

  /// The target class id of source class `id`; `nil` when it is ignored or not a source class.
  public func targetID(ofSourceID id: Int) -> Int? {
    source.position(ofID: id).flatMap { targetIDs[$0] }
  }

  /// The source class ids that map to target class `id`, in source order.
  public func children(ofTargetID id: Int) -> [Int] {
    zip(source.classes, targetIDs).compactMap { $1 == id ? $0.id : nil }
  }

  /// The source class ids that map to ignore.
  public var ignoredSourceIDs: [Int] {
    zip(source.classes, targetIDs).compactMap { $1 == nil ? $0.id : nil }
  }

  /// The 256-entry lookup table for label images: `table[sourcePixel]` is the target pixel.
  ///
  /// Apply it as one lookup on the original values (`out[i] = table[Int(in[i])]`), never as
  /// chained in-place replacements. Values that are not source classes (the source ignore value
  /// included) and ignored classes give `target.ignoreIndex`.
  public var lookupTable: [UInt8] {
    var table = [UInt8](repeating: UInt8(target.ignoreIndex), count: 256)
    for (semanticClass, targetID) in zip(source.classes, targetIDs) {
      if let targetID { table[semanticClass.id] = UInt8(targetID) }
    }
    return table
  }

  /// Applies ``lookupTable`` to a label array.
  public func apply(to labels: [UInt8]) -> [UInt8] {
    let table = lookupTable
    return labels.map { table[Int($0)] }
  }

  /// The super-class of every fine class id, for the reduce-then-compute loss.
  ///
  /// `table[fineID]` is the target class id, or `nil` when the fine id is not a class, maps to
  /// ignore, or maps to a target class that is not evaluated (a void class such as CamVid's
  /// `Unlabelled`). The count is `source.maximumID + 1`.
  public var superClassTable: [Int?] {
    var table = [Int?](repeating: nil, count: source.maximumID + 1)
    for (semanticClass, targetID) in zip(source.classes, targetIDs) {
      guard let targetID, target.semanticClass(id: targetID)?.isEvaluated == true else { continue }
      table[semanticClass.id] = targetID
    }
    return table
  }

  /// The mapping that applies `self`, then `next`: A -> B then B -> C gives A -> C.
  ///
  /// A source class ignored by either step is ignored.
  /// - Throws: ``TaxonomyError/classSetMismatch(expected:found:context:)`` when `next.source`
  ///   is not `self.target`.
  public func composed(with next: LabelMapping, name: String? = nil) throws(TaxonomyError)
    -> LabelMapping
  {
    guard next.source == target else {
      throw .classSetMismatch(
        expected: target.name, found: next.source.name,
        context: "composing '\(self.name)' with '\(next.name)'")
    }
    return LabelMapping(
      name: name ?? "\(source.name)-to-\(next.target.name)", variant: nil, isDefault: true,
      summary: "Composition of \(self.name) and \(next.name).",
      citation: [citation, next.citation].filter { !$0.isEmpty }.joined(separator: "; "),
      source: source, target: next.target,
      targetIDs: targetIDs.map { $0.flatMap { next.targetID(ofSourceID: $0) } })
  }
}

extension LabelMapping {
  /// Loads and validates a `*.mapping.json` file.
  ///
  /// The class sets named by `from` and `to` are looked up as `<name>.classes.json` in the
  /// mapping file's directory, then in `searchDirectories`.
  /// - Throws: ``TaxonomyError`` naming the file, the entry and the offending value.
  public init(contentsOfFile path: String, searchDirectories: [String] = []) throws(TaxonomyError) {
    let text = try readTextFile(path)
    let directories = [directoryName(of: path)] + searchDirectories
    try self.init(jsonText: text, file: path) { name throws(TaxonomyError) in
      for directory in directories {
        let candidate = joinPath(directory, "\(name).classes.json")
        if fileExists(candidate) { return try ClassSet(contentsOfFile: candidate) }
      }
      return nil
    }
  }

  /// Parses and validates the text of a mapping file.
  /// - Parameters:
  ///   - file: names the file in errors.
  ///   - classSet: returns the class set of a given name, or `nil` if there is none.
  public init(
    jsonText text: String, file: String,
    classSet: (String) throws(TaxonomyError) -> ClassSet?
  ) throws(TaxonomyError) {
    let reader = JSONReader(file: file)
    let root = try reader.object(reader.parse(text), at: "(root)")
    try reader.checkHeader(root, kind: "mapping")
    let name = try reader.string(reader.required("name", in: root, at: "(root)"), at: "name")
    let variant = try reader.optionalString("variant", in: root, at: "(root)")
    var isDefault = true
    if let value = root["default"] { isDefault = try reader.bool(value, at: "default") }
    let summary = try reader.optionalString("description", in: root, at: "(root)") ?? ""
    let citation = try reader.optionalString("citation", in: root, at: "(root)") ?? ""
    let sourceName = try reader.string(reader.required("from", in: root, at: "(root)"), at: "from")
    let targetName = try reader.string(reader.required("to", in: root, at: "(root)"), at: "to")
    guard let source = try classSet(sourceName) else {
      throw .classSetNotFound(file: file, entry: "from", value: sourceName)
    }
    guard let target = try classSet(targetName) else {
      throw .classSetNotFound(file: file, entry: "to", value: targetName)
    }
    var unlistedIgnored = false
    if let value = root["unlisted"] {
      let mode = try reader.string(value, at: "unlisted")
      switch mode {
      case "ignore": unlistedIgnored = true
      case "error": unlistedIgnored = false
      default:
        throw .invalidValue(
          file: file, entry: "unlisted", value: "'\(mode)'", reason: "expected 'ignore' or 'error'")
      }
    }

    var assigned = [Int??](repeating: nil, count: source.classes.count)
    func resolve(_ value: JSONValue, in classes: ClassSet, at entry: String) throws(TaxonomyError)
      -> SemanticClass
    {
      switch value {
      case .int(let number):
        guard let id = Int(exactly: number), (0...254).contains(id) else {
          throw .idOutOfRange(file: file, entry: entry, value: Int(clamping: number))
        }
        guard let match = classes.semanticClass(id: id) else {
          throw .unknownClass(file: file, entry: entry, value: "\(id)")
        }
        return match
      case .string(let className):
        guard let match = classes.semanticClass(named: className) else {
          throw .unknownClass(file: file, entry: entry, value: "'\(className)'")
        }
        return match
      default:
        throw .wrongType(
          file: file, entry: entry, expected: "a class id or name, found \(value.typeName)")
      }
    }
    func assign(_ value: JSONValue, to targetID: Int?, at entry: String) throws(TaxonomyError) {
      let sourceClass = try resolve(value, in: source, at: entry)
      guard let position = source.position(ofID: sourceClass.id) else { return }
      guard assigned[position] == nil else {
        throw .mappedTwice(file: file, entry: entry, value: sourceClass.name)
      }
      assigned[position] = .some(targetID)
    }

    let entries = try reader.array(
      reader.required("entries", in: root, at: "(root)"), at: "entries")
    for (index, element) in entries.enumerated() {
      let entry = "entries[\(index)]"
      let object = try reader.object(element, at: entry)
      let targetClass = try resolve(
        reader.required("to", in: object, at: entry), in: target, at: "\(entry).to")
      let sources = try reader.required("from", in: object, at: entry)
      if case .array(let values) = sources {
        for (sourceIndex, value) in values.enumerated() {
          try assign(value, to: targetClass.id, at: "\(entry).from[\(sourceIndex)]")
        }
      } else {
        try assign(sources, to: targetClass.id, at: "\(entry).from")
      }
    }
    if let ignored = root["ignore"] {
      for (index, value) in try reader.array(ignored, at: "ignore").enumerated() {
        try assign(value, to: nil, at: "ignore[\(index)]")
      }
    }
    // The source's own void class (id == ignoreIndex) goes to ignore unless listed.
    if let position = source.position(ofID: source.ignoreIndex), assigned[position] == nil {
      assigned[position] = .some(nil)
    }
    let uncovered = zip(source.classes, assigned).compactMap { $1 == nil ? $0.name : nil }
    if !uncovered.isEmpty && !unlistedIgnored {
      throw .notCovered(file: file, classes: uncovered)
    }
    self.init(
      name: name, variant: variant, isDefault: isDefault, summary: summary, citation: citation,
      source: source, target: target, targetIDs: assigned.map { $0 ?? nil })
  }

  /// The mapping as a JSON document in the `mappings/` schema (classes by name), serialized by
  /// json-c. Entries are grouped by target class, in target order.
  public func jsonText() -> String {
    var members: [(key: String, value: JSONValue)] = [
      ("kind", .string("mapping")), ("version", .int(1)), ("name", .string(name)),
    ]
    if let variant { members.append(("variant", .string(variant))) }
    members += [
      ("default", .bool(isDefault)), ("description", .string(summary)),
      ("citation", .string(citation)), ("from", .string(source.name)),
      ("to", .string(target.name)),
    ]
    var entries: [JSONValue] = []
    for targetClass in target.classes {
      let children = children(ofTargetID: targetClass.id)
      guard !children.isEmpty else { continue }
      let names = children.compactMap { source.semanticClass(id: $0)?.name }
      entries.append(
        .object([("to", .string(targetClass.name)), ("from", .array(names.map { .string($0) }))]))
    }
    members.append(("entries", .array(entries)))
    let ignored = ignoredSourceIDs.compactMap { source.semanticClass(id: $0)?.name }
    members.append(("ignore", .array(ignored.map { .string($0) })))
    return JSONValue.object(members).serialized() + "\n"
  }
}
