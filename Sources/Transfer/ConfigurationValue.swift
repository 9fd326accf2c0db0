import Foundation

/// A JSON value of a configuration file as parsed, for the parts of a configuration that are checked before they are
/// decoded into their types (a backend's options) and for canonical encodings.
///
/// Integers stay integers (`Int64`, or `UInt64` beyond it) so that seeds survive a round trip.
public enum ConfigurationValue: Sendable, Hashable, Codable, ExpressibleByStringLiteral,
  ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
  ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
  case null
  case bool(Bool)
  case integer(Int64)
  case unsigned(UInt64)
  case number(Double)
  case string(String)
  case array([ConfigurationValue])
  case object([String: ConfigurationValue])

  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int64) { self = .integer(value) }
  public init(floatLiteral value: Double) { self = .number(value) }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(arrayLiteral elements: ConfigurationValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, ConfigurationValue)...) {
    self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Int64.self) {
      self = .integer(value)
    } else if let value = try? container.decode(UInt64.self) {
      self = .unsigned(value)
    } else if let value = try? container.decode(Double.self) {
      self = .number(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([ConfigurationValue].self) {
      self = .array(value)
    } else {
      do {
        self = .object(try container.decode([String: ConfigurationValue].self))
      } catch DecodingError.typeMismatch(_, let context)
        where context.codingPath.count == decoder.codingPath.count
      {
        // Every JSON value but a number beyond a 64-bit float's range decodes above.
        throw DecodingError.dataCorrupted(
          .init(
            codingPath: decoder.codingPath,
            debugDescription: "a number beyond the range of a 64-bit float (about 1.8e308)"))
      }
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let value): try container.encode(value)
    case .integer(let value): try container.encode(value)
    case .unsigned(let value): try container.encode(value)
    case .number(let value): try container.encode(value)
    case .string(let value): try container.encode(value)
    case .array(let value): try container.encode(value)
    case .object(let value): try container.encode(value)
    }
  }

  /// The members of an object (nil for other values).
  public var objectValue: [String: ConfigurationValue]? {
    if case .object(let members) = self { return members }
    return nil
  }

  /// The value of any encodable (through JSON).
  public init(encoding value: some Encodable) throws {
    let data = try JSONEncoder().encode(value)
    self = try JSONDecoder().decode(ConfigurationValue.self, from: data)
  }

  /// Decodes a value of `type` from this JSON value.
  public func decoded<T: Decodable>(as type: T.Type, userInfo: [CodingUserInfoKey: any Sendable] = [:])
    throws -> T
  {
    let decoder = JSONDecoder()
    decoder.userInfo = userInfo
    return try decoder.decode(type, from: try JSONEncoder().encode(self))
  }

  /// Sorted-keys compact JSON: the canonical text of the value (job identities hash it).
  public var canonicalText: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
  }

  /// The value as it is written in a configuration file (for messages).
  public var text: String { canonicalText }
}
