import CJSONC

/// A parsed JSON value: the Swift side of json-c's `json_object`.
///
/// This is the only file that imports `CJSONC`. Objects keep their key order (json-c keeps the
/// last value of a repeated key).
package indirect enum JSONValue: Sendable {
  case null
  case bool(Bool)
  case int(Int64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  case object([(key: String, value: JSONValue)])

  /// The value stored under `key` when `self` is an object.
  package subscript(key: String) -> JSONValue? {
    guard case .object(let members) = self else { return nil }
    return members.last(where: { $0.key == key })?.value
  }

  /// A short name of the value's JSON type, for error messages.
  package var typeName: String {
    switch self {
    case .null: "null"
    case .bool: "a boolean"
    case .int: "an integer"
    case .double: "a number"
    case .string: "a string"
    case .array: "an array"
    case .object: "an object"
    }
  }
}

/// Where a parse failed, as json-c reports it.
package struct JSONParseFailure: Error, Sendable, Equatable {
  /// 1-based line of the offending byte.
  package var line: Int
  /// 1-based column (in bytes) of the offending byte.
  package var column: Int
  /// json-c's description (`json_tokener_error_desc`).
  package var reason: String
}

extension JSONValue {
  /// Parses a complete JSON document with json-c in strict mode.
  ///
  /// Uses `json_tokener_parse_ex`; on failure the byte offset from
  /// `json_tokener_get_parse_end` is converted to a line and column.
  /// - Throws: ``JSONParseFailure`` for malformed or truncated input and trailing characters.
  package static func parse(_ text: String) throws(JSONParseFailure) -> JSONValue {
    let bytes = Array(text.utf8)
    guard let tokener = json_tokener_new() else {
      throw JSONParseFailure(line: 1, column: 1, reason: "cannot allocate a json-c tokener")
    }
    defer { json_tokener_free(tokener) }
    json_tokener_set_flags(tokener, Int32(JSON_TOKENER_STRICT))
    let object: OpaquePointer? = bytes.withUnsafeBufferPointer { buffer in
      buffer.withMemoryRebound(to: CChar.self) { chars in
        json_tokener_parse_ex(tokener, chars.baseAddress, Int32(chars.count))
      }
    }
    defer { if let object { json_object_put(object) } }
    let error = json_tokener_get_error(tokener)
    let end = Int(json_tokener_get_parse_end(tokener))
    if error == json_tokener_continue {
      let (line, column) = position(ofByte: bytes.count, in: bytes)
      throw JSONParseFailure(line: line, column: column, reason: "unexpected end of input")
    }
    if error != json_tokener_success {
      let (line, column) = position(ofByte: end, in: bytes)
      let reason = String(cString: json_tokener_error_desc(error))
      throw JSONParseFailure(line: line, column: column, reason: reason)
    }
    if let trailing = bytes[end...].firstIndex(where: { !isWhitespace($0) }) {
      let (line, column) = position(ofByte: trailing, in: bytes)
      throw JSONParseFailure(line: line, column: column, reason: "trailing characters")
    }
    return convert(object)
  }

  /// Serializes the value with json-c (`json_object_to_json_string_ext`), pretty-printed with
  /// two-space indentation, `/` not escaped.
  package func serialized() -> String {
    let object = makeObject()
    defer { if let object { json_object_put(object) } }
    let flags = Int32(
      JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)
    guard let text = json_object_to_json_string_ext(object, flags) else { return "null" }
    return String(cString: text)
  }

  private func makeObject() -> OpaquePointer? {
    switch self {
    case .null: return nil
    case .bool(let value): return json_object_new_boolean(value ? 1 : 0)
    case .int(let value): return json_object_new_int64(value)
    case .double(let value): return value.isFinite ? json_object_new_double(value) : nil
    case .string(let value):
      return value.withCString { json_object_new_string_len($0, Int32(value.utf8.count)) }
    case .array(let values):
      let array = json_object_new_array()
      for value in values { json_object_array_add(array, value.makeObject()) }
      return array
    case .object(let members):
      let object = json_object_new_object()
      for member in members {
        json_object_object_add(object, member.key, member.value.makeObject())
      }
      return object
    }
  }

  private static func convert(_ object: OpaquePointer?) -> JSONValue {
    guard let object else { return .null }
    switch json_object_get_type(object) {
    case json_type_boolean: return .bool(json_object_get_boolean(object) != 0)
    case json_type_int: return .int(json_object_get_int64(object))
    case json_type_double: return .double(json_object_get_double(object))
    case json_type_string:
      let count = Int(json_object_get_string_len(object))
      guard let chars = json_object_get_string(object) else { return .string("") }
      let bytes = UnsafeRawBufferPointer(start: chars, count: count)
      return .string(String(decoding: bytes, as: UTF8.self))
    case json_type_array:
      let count = json_object_array_length(object)
      return .array((0..<count).map { convert(json_object_array_get_idx(object, $0)) })
    case json_type_object:
      var members: [(key: String, value: JSONValue)] = []
      var iterator = json_object_iter_begin(object)
      var end = json_object_iter_end(object)
      while json_object_iter_equal(&iterator, &end) == 0 {
        let key = String(cString: json_object_iter_peek_name(&iterator))
        members.append((key, convert(json_object_iter_peek_value(&iterator))))
        json_object_iter_next(&iterator)
      }
      return .object(members)
    default: return .null
    }
  }

  private static func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
  }

  /// The 1-based line and column of byte `offset`.
  private static func position(ofByte offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
    var line = 1
    var lineStart = 0
    for index in 0..<min(offset, bytes.count) where bytes[index] == 0x0A {
      line += 1
      lineStart = index + 1
    }
    return (line, offset - lineStart + 1)
  }
}
