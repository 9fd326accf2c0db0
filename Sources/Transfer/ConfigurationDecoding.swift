import Foundation
import Segmentation

/// A coding key for any string.
struct AnyCodingKey: CodingKey {
  var stringValue: String
  var intValue: Int?
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) {
    self.stringValue = "\(intValue)"
    self.intValue = intValue
  }
}

/// Renders a coding path as `stages[1].level`.
func keyPath(_ path: [any CodingKey]) -> String {
  var text = ""
  for key in path {
    if let index = key.intValue {
      text += "[\(index)]"
    } else {
      text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
    }
  }
  return text.isEmpty ? "(top level)" : text
}

/// Throws `invalidConfiguration` for a key of the current object that is not in `known`.
func rejectUnknownKeys(_ decoder: any Decoder, known: [String]) throws {
  let container = try decoder.container(keyedBy: AnyCodingKey.self)
  for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue })
  where !known.contains(key.stringValue) {
    throw TransferError.invalidConfiguration(
      file: "", key: keyPath(decoder.codingPath + [key]),
      reason: "unknown key (expected one of \(known.joined(separator: ", ")))")
  }
}

extension CodingUserInfoKey {
  /// The backend option types a configuration may name (`[any BackendOptions.Type]`); the
  /// first is the default kind.
  static let backendKinds = CodingUserInfoKey(rawValue: "atso.backendKinds")!
}

extension TransferError {
  /// The same error with an empty file name replaced by `file`.
  func naming(file: String) -> TransferError {
    switch self {
    case .unknownSchedule(let name, ""): .unknownSchedule(name, file: file)
    case .unknownLabelLevel(let name, ""): .unknownLabelLevel(name, file: file)
    case .invalidConfiguration("", let key, let reason):
      .invalidConfiguration(file: file, key: key, reason: reason)
    case .outdatedConfiguration("", let key, let changes, let replacement):
      .outdatedConfiguration(file: file, key: key, changes: changes, replacement: replacement)
    default: self
    }
  }

  /// A decoding error as a `TransferError` naming `file` and the JSON path of the offending
  /// entry (below `prefix`).
  static func describing(_ error: any Error, file: String, prefix: [String] = []) -> TransferError {
    func path(_ codingPath: [any CodingKey]) -> String {
      keyPath(prefix.map { AnyCodingKey(stringValue: $0) } + codingPath)
    }
    switch error {
    case let error as TransferError:
      if prefix.isEmpty { return error.naming(file: file) }
      if case .invalidConfiguration(_, let key, let reason) = error {
        return .invalidConfiguration(
          file: file, key: ([prefix.joined(separator: ".")] + [key]).joined(separator: "."),
          reason: reason)
      }
      return error.naming(file: file)
    case DecodingError.typeMismatch(let type, let context):
      return .invalidConfiguration(
        file: file, key: path(context.codingPath), reason: "expected \(typeName(type))")
    case DecodingError.valueNotFound(let type, let context):
      return .invalidConfiguration(
        file: file, key: path(context.codingPath), reason: "expected \(typeName(type)), found null")
    case DecodingError.keyNotFound(let key, let context):
      return .invalidConfiguration(
        file: file, key: path(context.codingPath + [key]), reason: "missing")
    case DecodingError.dataCorrupted(let context):
      if context.codingPath.isEmpty && prefix.isEmpty {
        return .malformedConfiguration(file: file, reason: "not valid JSON")
      }
      return .invalidConfiguration(
        file: file, key: path(context.codingPath), reason: context.debugDescription)
    default:
      return .malformedConfiguration(file: file, reason: "\(error)")
    }
  }
}

/// The name of a decoded type in messages: `Int`, `a number`...
func typeName(_ type: Any.Type) -> String {
  switch type {
  case is Int.Type, is Int64.Type, is UInt64.Type, is UInt8.Type: "an integer (a JSON number)"
  case is Double.Type, is Float.Type: "a number"
  case is String.Type: "a string"
  case is [Int].Type: "a list of integers"
  case is Bool.Type: "true or false"
  default: "\(type)"
  }
}

extension KeyedDecodingContainer {
  /// An integer, or nil when the key is absent or null.
  ///
  /// A fractional number is a type error naming the key: Foundation's decoder reports it as
  /// "not valid JSON" without a path, which would hide the offending entry.
  public func decodeInteger<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key)
    throws -> T?
  {
    guard contains(key), try !decodeNil(forKey: key) else { return nil }
    if let value = try? decode(T.self, forKey: key) { return value }
    if let number = try? decode(Double.self, forKey: key) {
      throw DecodingError.typeMismatch(
        T.self, .init(codingPath: codingPath + [key], debugDescription: "\(number)"))
    }
    return try decode(T.self, forKey: key)
  }

  /// A list of integers, or nil when the key is absent or null (see ``decodeInteger(_:forKey:)``).
  public func decodeIntegers(forKey key: Key) throws -> [Int]? {
    guard contains(key), try !decodeNil(forKey: key) else { return nil }
    if let value = try? decode([Int].self, forKey: key) { return value }
    if (try? decode([Double].self, forKey: key)) != nil {
      throw DecodingError.typeMismatch(
        [Int].self, .init(codingPath: codingPath + [key], debugDescription: "not integers"))
    }
    return try decode([Int].self, forKey: key)
  }

  /// A size written `HxW` (`example` shows one in the error), or nil when the key is absent or
  /// null.
  public func decodeSize(forKey key: Key, example: String) throws -> ImageSize? {
    guard let text = try decodeIfPresent(String.self, forKey: key) else { return nil }
    guard let size = ImageSize(heightByWidth: text) else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: codingPath + [key], debugDescription: "'\(text)' is not HxW, e.g. \(example)"))
    }
    return size
  }
}
