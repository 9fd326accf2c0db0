import Foundation

/// An sRGB colour of a class in label visualisations.
public struct LabelColor: Sendable, Equatable, Hashable {
  public var red: UInt8
  public var green: UInt8
  public var blue: UInt8

  public init(red: UInt8, green: UInt8, blue: UInt8) {
    self.red = red
    self.green = green
    self.blue = blue
  }
}

/// One class of a ``ClassSet``: a pixel value in label images and its description.
public struct SemanticClass: Sendable, Equatable {
  /// The pixel value in label images, `0...254`.
  public var id: Int
  /// The unique machine name (`road`, `construction--flat--road`).
  public var name: String
  /// A human-readable name (`Road`).
  public var readableName: String
  /// The visualisation colour, if the class set defines one.
  public var color: LabelColor?
  /// Whether the class counts in metrics. Ground-truth pixels of a class that is not evaluated
  /// are excluded from every score, as cityscapesScripts does with `ignoreInEval`.
  public var isEvaluated: Bool
  /// An optional group name (Cityscapes' `flat`, `vehicle`, ...).
  public var category: String?

  public init(
    id: Int, name: String, readableName: String? = nil, color: LabelColor? = nil,
    isEvaluated: Bool = true, category: String? = nil
  ) {
    self.id = id
    self.name = name
    self.readableName = readableName ?? name
    self.color = color
    self.isEvaluated = isEvaluated
    self.category = category
  }
}

/// A set of classes with their pixel values, and the value that marks ignored pixels.
///
/// Loaded from a `*.classes.json` file (see `mappings/README.md`). Class ids are unique and lie in
/// `0...254`; names are unique. The ignore value (``ignoreIndex``) is usually 255, but datasets
/// with a native void class use that class's id (Mapillary Vistas 65, CamVid-11 11); such a class
/// must have `isEvaluated == false`.
public struct ClassSet: Sendable, Equatable {
  /// The unique name that mapping files refer to (`cityscapes-19`).
  public let name: String
  /// What the set is, in a sentence or two.
  public let summary: String
  /// Where the table comes from.
  public let citation: String
  /// The pixel value of ignored pixels (`0...255`).
  public let ignoreIndex: Int
  /// The classes, in file order.
  public let classes: [SemanticClass]
  /// Position in ``classes`` of each pixel value, `nil` for values that are not a class.
  private let positionOfID: [Int?]

  /// Creates a validated class set.
  /// - Parameter file: the file name used in error messages.
  /// - Throws: ``TaxonomyError`` for ids out of range, duplicate ids or names, or a class with
  ///   the ignore value that is evaluated.
  public init(
    name: String, summary: String = "", citation: String = "", ignoreIndex: Int = 255,
    classes: [SemanticClass], file: String = "<memory>"
  ) throws(TaxonomyError) {
    guard (0...255).contains(ignoreIndex) else {
      throw .idOutOfRange(file: file, entry: "ignoreIndex", value: ignoreIndex)
    }
    var positions = [Int?](repeating: nil, count: 256)
    var names: Set<String> = []
    for (position, semanticClass) in classes.enumerated() {
      let entry = "classes[\(position)]"
      guard (0...254).contains(semanticClass.id) else {
        throw .idOutOfRange(file: file, entry: "\(entry).id", value: semanticClass.id)
      }
      guard positions[semanticClass.id] == nil else {
        throw .duplicateID(file: file, entry: "\(entry).id", value: semanticClass.id)
      }
      guard names.insert(semanticClass.name).inserted else {
        throw .duplicateName(file: file, entry: "\(entry).name", value: semanticClass.name)
      }
      if semanticClass.id == ignoreIndex && semanticClass.isEvaluated {
        throw .invalidValue(
          file: file, entry: "\(entry).evaluate", value: "true",
          reason: "the class with the ignore value \(ignoreIndex) must have \"evaluate\": false")
      }
      positions[semanticClass.id] = position
    }
    self.name = name
    self.summary = summary
    self.citation = citation
    self.ignoreIndex = ignoreIndex
    self.classes = classes
    self.positionOfID = positions
  }

  /// The class with pixel value `id`, if any.
  public func semanticClass(id: Int) -> SemanticClass? {
    position(ofID: id).map { classes[$0] }
  }

  /// The position in ``classes`` of the class with pixel value `id`.
  public func position(ofID id: Int) -> Int? {
    guard (0..<positionOfID.count).contains(id) else { return nil }
    return positionOfID[id]
  }

  /// The class named `name`; failing that, the only class whose readable name is `name`.
  public func semanticClass(named name: String) -> SemanticClass? {
    if let match = classes.first(where: { $0.name == name }) { return match }
    let readable = classes.filter { $0.readableName == name }
    return readable.count == 1 ? readable[0] : nil
  }

  /// The largest class id, or -1 for an empty set.
  public var maximumID: Int { classes.map(\.id).max() ?? -1 }

  /// The number of outputs (logits) a model needs for this set: the largest class id, the class
  /// at the ignore value excluded, plus one. Mapillary Vistas v1.2 (void 65) gives 65,
  /// CamVid-11 (void 11) gives 11, Cityscapes trainIds give 19.
  public var outputCount: Int {
    (classes.filter { $0.id != ignoreIndex }.map(\.id).max() ?? -1) + 1
  }

  /// The classes that count in metrics.
  public var evaluatedClasses: [SemanticClass] { classes.filter(\.isEvaluated) }
}

extension ClassSet {
  /// Loads and validates a `*.classes.json` file.
  /// - Throws: ``TaxonomyError`` naming the file, the entry and the offending value.
  public init(contentsOfFile path: String) throws(TaxonomyError) {
    try self.init(jsonText: readTextFile(path), file: path)
  }

  /// Parses and validates the text of a class set file; `file` names it in errors.
  public init(jsonText text: String, file: String) throws(TaxonomyError) {
    let reader = JSONReader(file: file)
    let root = try reader.object(reader.parse(text), at: "(root)")
    try reader.checkHeader(root, kind: "class-set")
    let name = try reader.string(reader.required("name", in: root, at: "(root)"), at: "name")
    let summary = try reader.optionalString("description", in: root, at: "(root)") ?? ""
    let citation = try reader.optionalString("citation", in: root, at: "(root)") ?? ""
    var ignoreIndex = 255
    if let value = root["ignoreIndex"] {
      ignoreIndex = try reader.int(value, at: "ignoreIndex")
    }
    let entries = try reader.array(
      reader.required("classes", in: root, at: "(root)"), at: "classes")
    var classes: [SemanticClass] = []
    for (position, element) in entries.enumerated() {
      let entry = "classes[\(position)]"
      let object = try reader.object(element, at: entry)
      let id = try reader.int(reader.required("id", in: object, at: entry), at: "\(entry).id")
      let className = try reader.string(
        reader.required("name", in: object, at: entry), at: "\(entry).name")
      guard !className.isEmpty else {
        throw .invalidValue(
          file: file, entry: "\(entry).name", value: "''", reason: "names cannot be empty")
      }
      let readable = try reader.optionalString("readable", in: object, at: entry)
      var color: LabelColor?
      if let value = object["color"], !value.isNull {
        let components = try reader.array(value, at: "\(entry).color")
        guard components.count == 3 else {
          throw .invalidValue(
            file: file, entry: "\(entry).color", value: "\(components.count) components",
            reason: "expected [red, green, blue]")
        }
        var rgb: [UInt8] = []
        for (index, component) in components.enumerated() {
          let number = try reader.int(component, at: "\(entry).color[\(index)]")
          guard let byte = UInt8(exactly: number) else {
            throw .invalidValue(
              file: file, entry: "\(entry).color[\(index)]", value: "\(number)",
              reason: "colour components lie in 0...255")
          }
          rgb.append(byte)
        }
        color = LabelColor(red: rgb[0], green: rgb[1], blue: rgb[2])
      }
      var evaluate = true
      if let value = object["evaluate"] {
        evaluate = try reader.bool(value, at: "\(entry).evaluate")
      }
      let category = try reader.optionalString("category", in: object, at: entry)
      classes.append(
        SemanticClass(
          id: id, name: className, readableName: readable, color: color, isEvaluated: evaluate,
          category: category))
    }
    try self.init(
      name: name, summary: summary, citation: citation, ignoreIndex: ignoreIndex,
      classes: classes, file: file)
    guard !classes.isEmpty else {  // found by Fuzz/FuzzClassSet: a network needs a class
      throw .invalidValue(
        file: file, entry: "classes", value: "[]", reason: "a class set needs at least one class")
    }
  }

  /// The class set as a JSON document in the `mappings/` schema, serialized by json-c.
  public func jsonText() -> String {
    var members: [(key: String, value: JSONValue)] = [
      ("kind", .string("class-set")), ("version", .int(1)), ("name", .string(name)),
      ("description", .string(summary)), ("citation", .string(citation)),
      ("ignoreIndex", .int(Int64(ignoreIndex))),
    ]
    let entries: [JSONValue] = classes.map { semanticClass in
      var fields: [(key: String, value: JSONValue)] = [
        ("id", .int(Int64(semanticClass.id))), ("name", .string(semanticClass.name)),
        ("readable", .string(semanticClass.readableName)),
      ]
      if let color = semanticClass.color {
        fields.append(
          ("color", .array([color.red, color.green, color.blue].map { .int(Int64($0)) })))
      }
      fields.append(("evaluate", .bool(semanticClass.isEvaluated)))
      if let category = semanticClass.category { fields.append(("category", .string(category))) }
      return .object(fields)
    }
    members.append(("classes", .array(entries)))
    return JSONValue.object(members).serialized() + "\n"
  }
}

/// Reads a UTF-8 text file, turning failures into ``TaxonomyError/unreadable(file:reason:)``.
func readTextFile(_ path: String) throws(TaxonomyError) -> String {
  guard let data = FileManager.default.contents(atPath: path) else {
    var isDirectory: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
    let reason =
      !exists ? "no such file" : isDirectory.boolValue ? "is a directory" : "cannot read the file"
    throw .unreadable(file: path, reason: reason)
  }
  guard let text = String(data: data, encoding: .utf8) else {
    throw .unreadable(file: path, reason: "not UTF-8 text")
  }
  return text
}
