import Foundation
import Testing
@testable import Taxonomy

/// A temporary directory holding class sets `a` (x, y, z) and `b` (p, q).
struct Fixture {
  let directory: String

  init() throws {
    directory = try makeTemporaryDirectory()
    try write(
      Self.classSet(name: "a", classes: ["x", "y", "z"]), to: directory, named: "a.classes.json")
    try write(
      Self.classSet(name: "b", classes: ["p", "q"]), to: directory, named: "b.classes.json")
  }

  static func classSet(name: String, classes: [String], ignoreIndex: Int = 255) -> String {
    let entries = classes.enumerated().map { "{\"id\": \($0.offset), \"name\": \"\($0.element)\"}" }
    return """
      {"kind": "class-set", "version": 1, "name": "\(name)", "ignoreIndex": \(ignoreIndex),
       "classes": [\(entries.joined(separator: ", "))]}
      """
  }

  /// Writes a mapping a -> b with the given `entries` and extra keys, and returns its path.
  @discardableResult
  func mapping(_ entries: String, extra: String = "", file: String = "m.mapping.json") throws
    -> String
  {
    try write(
      """
      {"kind": "mapping", "version": 1, "name": "m", "from": "a", "to": "b",
       "entries": \(entries)\(extra)}
      """, to: directory, named: file)
  }

  func loadMapping(_ entries: String, extra: String = "") throws -> LabelMapping {
    try LabelMapping(contentsOfFile: mapping(entries, extra: extra))
  }

  func classSetFile(_ text: String) throws -> String {
    try write(text, to: directory, named: "c.classes.json")
  }
}

@Suite struct RejectionTests {
  @Test func validMappingLoads() throws {
    let fixture = try Fixture()
    let mapping = try fixture.loadMapping(
      #"[{"to": "p", "from": ["x", 1]}, {"to": 1, "from": "z"}]"#)
    #expect(mapping.targetIDs == [0, 0, 1])
    #expect(mapping.children(ofTargetID: 0) == [0, 1])
    #expect(Array(mapping.lookupTable[0...3]) == [0, 0, 1, 255])
  }

  @Test func unknownClassByName() throws {
    let fixture = try Fixture()
    let path = try fixture.mapping(#"[{"to": "p", "from": ["x", "w"]}]"#)
    #expect(
      throws: TaxonomyError.unknownClass(file: path, entry: "entries[0].from[1]", value: "'w'")
    ) {
      try LabelMapping(contentsOfFile: path)
    }
  }

  @Test func unknownClassByIDAndUnknownTarget() throws {
    let fixture = try Fixture()
    let path = try fixture.mapping(#"[{"to": "p", "from": [7]}]"#)
    #expect(throws: TaxonomyError.unknownClass(file: path, entry: "entries[0].from[0]", value: "7"))
    {
      try LabelMapping(contentsOfFile: path)
    }
    let target = try fixture.mapping(#"[{"to": "r", "from": ["x", "y", "z"]}]"#)
    #expect(throws: TaxonomyError.unknownClass(file: target, entry: "entries[0].to", value: "'r'"))
    {
      try LabelMapping(contentsOfFile: target)
    }
  }

  @Test(arguments: [300, -1, 255])
  func idOutOfRangeInMapping(_ id: Int) throws {
    let fixture = try Fixture()
    let path = try fixture.mapping("[{\"to\": \"p\", \"from\": [\"x\", \(id)]}]")
    #expect(throws: TaxonomyError.idOutOfRange(file: path, entry: "entries[0].from[1]", value: id))
    {
      try LabelMapping(contentsOfFile: path)
    }
  }

  @Test func sourceClassMappedTwice() throws {
    let fixture = try Fixture()
    let path = try fixture.mapping(
      #"[{"to": "p", "from": ["x", "y"]}, {"to": "q", "from": [1, "z"]}]"#)
    #expect(throws: TaxonomyError.mappedTwice(file: path, entry: "entries[1].from[0]", value: "y"))
    {
      try LabelMapping(contentsOfFile: path)
    }
    let ignored = try fixture.mapping(
      #"[{"to": "p", "from": ["x", "y", "z"]}]"#, extra: #", "ignore": ["z"]"#)
    #expect(throws: TaxonomyError.mappedTwice(file: ignored, entry: "ignore[0]", value: "z")) {
      try LabelMapping(contentsOfFile: ignored)
    }
  }

  @Test func sourceClassNotCovered() throws {
    let fixture = try Fixture()
    let path = try fixture.mapping(#"[{"to": "p", "from": ["x"]}]"#)
    #expect(throws: TaxonomyError.notCovered(file: path, classes: ["y", "z"])) {
      try LabelMapping(contentsOfFile: path)
    }
    // The file may say that the rest goes to ignore.
    let rest = try fixture.loadMapping(
      #"[{"to": "p", "from": ["x"]}]"#, extra: #", "unlisted": "ignore""#)
    #expect(rest.targetIDs == [0, nil, nil])
    let explicit = try fixture.loadMapping(
      #"[{"to": "p", "from": ["x"]}]"#, extra: #", "ignore": ["y", 2]"#)
    #expect(explicit.targetIDs == [0, nil, nil])
    let badMode = try fixture.mapping(
      #"[{"to": "p", "from": ["x"]}]"#, extra: #", "unlisted": "drop""#)
    #expect(
      throws: TaxonomyError.invalidValue(
        file: badMode, entry: "unlisted", value: "'drop'", reason: "expected 'ignore' or 'error'")
    ) { try LabelMapping(contentsOfFile: badMode) }
  }

  @Test func classSetNotFound() throws {
    let fixture = try Fixture()
    let path = try write(
      #"{"kind": "mapping", "version": 1, "name": "m", "from": "a", "to": "nope", "entries": []}"#,
      to: fixture.directory, named: "n.mapping.json")
    #expect(throws: TaxonomyError.classSetNotFound(file: path, entry: "to", value: "nope")) {
      try LabelMapping(contentsOfFile: path)
    }
  }

  @Test func duplicateIDsAndNames() throws {
    let fixture = try Fixture()
    let ids = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "classes": [{"id": 0, "name": "u"}, {"id": 1, "name": "v"}, {"id": 1, "name": "w"}]}"#
    )
    #expect(throws: TaxonomyError.duplicateID(file: ids, entry: "classes[2].id", value: 1)) {
      try ClassSet(contentsOfFile: ids)
    }
    let names = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "classes": [{"id": 0, "name": "u"}, {"id": 1, "name": "u"}]}"#
    )
    #expect(throws: TaxonomyError.duplicateName(file: names, entry: "classes[1].name", value: "u"))
    {
      try ClassSet(contentsOfFile: names)
    }
  }

  @Test func classSetValueChecks() throws {
    let fixture = try Fixture()
    let range = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "classes": [{"id": 255, "name": "u"}]}"#)
    #expect(throws: TaxonomyError.idOutOfRange(file: range, entry: "classes[0].id", value: 255)) {
      try ClassSet(contentsOfFile: range)
    }
    let ignore = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "ignoreIndex": 256, "classes": []}"#)
    #expect(throws: TaxonomyError.idOutOfRange(file: ignore, entry: "ignoreIndex", value: 256)) {
      try ClassSet(contentsOfFile: ignore)
    }
    let type = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "classes": [{"id": 0, "name": "u", "evaluate": "yes"}]}"#
    )
    #expect(
      throws: TaxonomyError.wrongType(
        file: type, entry: "classes[0].evaluate", expected: "a boolean, found a string")
    ) { try ClassSet(contentsOfFile: type) }
    let missing = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "classes": [{"name": "u"}]}"#)
    #expect(throws: TaxonomyError.missingKey(file: missing, entry: "classes[0]", key: "id")) {
      try ClassSet(contentsOfFile: missing)
    }
    let color = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "classes": [{"id": 0, "name": "u", "color": [0, 300, 0]}]}"#
    )
    #expect(
      throws: TaxonomyError.invalidValue(
        file: color, entry: "classes[0].color[1]", value: "300",
        reason: "colour components lie in 0...255")
    ) { try ClassSet(contentsOfFile: color) }
    let void = try fixture.classSetFile(
      #"{"kind": "class-set", "version": 1, "name": "c", "ignoreIndex": 0, "classes": [{"id": 0, "name": "u"}]}"#
    )
    #expect(
      throws: TaxonomyError.invalidValue(
        file: void, entry: "classes[0].evaluate", value: "true",
        reason: "the class with the ignore value 0 must have \"evaluate\": false")
    ) { try ClassSet(contentsOfFile: void) }
    let kind = try fixture.classSetFile(#"{"kind": "mapping", "version": 1}"#)
    #expect(
      throws: TaxonomyError.invalidValue(
        file: kind, entry: "kind", value: "'mapping'", reason: "expected 'class-set'")
    ) { try ClassSet(contentsOfFile: kind) }
  }

  @Test func malformedJSONReportsLineAndColumn() throws {
    let fixture = try Fixture()
    // json-c stops at the o of `oops` (line 4, column 11); strict mode rejects trailing text.
    let bad = try fixture.classSetFile(
      "{\n  \"kind\": \"class-set\",\n  \"version\": 1,\n  \"name\": oops\n}\n")
    #expect(
      throws: TaxonomyError.malformedJSON(
        file: bad, line: 4, column: 11, reason: "unexpected character")
    ) { try ClassSet(contentsOfFile: bad) }
    let truncated = try fixture.classSetFile("{\n  \"kind\": \"class-set\",\n  \"classes\": [")
    #expect(
      throws: TaxonomyError.malformedJSON(
        file: truncated, line: 3, column: 15, reason: "unexpected end of input")
    ) { try ClassSet(contentsOfFile: truncated) }
    let trailing = try fixture.classSetFile("{}\n}")
    #expect(
      throws: TaxonomyError.malformedJSON(
        file: trailing, line: 2, column: 1, reason: "unexpected character")
    ) { try ClassSet(contentsOfFile: trailing) }
    let missing = fixture.directory + "/absent.classes.json"
    #expect(throws: TaxonomyError.unreadable(file: missing, reason: "no such file")) {
      try ClassSet(contentsOfFile: missing)
    }
  }

  @Test func composeChecksTheMiddleClassSet() throws {
    let fixture = try Fixture()
    let ab = try fixture.loadMapping(
      #"[{"to": "p", "from": ["x", "y"]}]"#, extra: #", "ignore": ["z"]"#)
    let a = try ClassSet(contentsOfFile: fixture.directory + "/a.classes.json")
    let b = try ClassSet(contentsOfFile: fixture.directory + "/b.classes.json")
    #expect(
      throws: TaxonomyError.classSetMismatch(
        expected: "b", found: "a", context: "composing 'm' with 'a-identity'")
    ) { try ab.composed(with: .identity(a)) }
    let bToA = try LabelMapping(name: "ba", from: b, to: a, targets: [0: 2, 1: nil])
    let aToA = try ab.composed(with: bToA)
    #expect(aToA.targetIDs == [2, 2, nil])
    #expect(try ab.composed(with: .identity(b)).targetIDs == ab.targetIDs)
  }

  @Test func libraryRejectsTwoDefaults() throws {
    let fixture = try Fixture()
    try fixture.mapping(#"[{"to": "p", "from": ["x", "y", "z"]}]"#, file: "m1.mapping.json")
    try write(
      #"{"kind": "mapping", "version": 1, "name": "m2", "from": "a", "to": "b", "entries": [{"to": "q", "from": ["x", "y", "z"]}]}"#,
      to: fixture.directory, named: "m2.mapping.json")
    #expect(
      throws: TaxonomyError.ambiguousMapping(
        from: "a", to: "b",
        candidates: [
          "m (\(fixture.directory)/m1.mapping.json)", "m2 (\(fixture.directory)/m2.mapping.json)",
        ])
    ) {
      try MappingLibrary(directory: fixture.directory)
    }
  }
}
