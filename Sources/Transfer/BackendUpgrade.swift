import Foundation

/// Backend objects written for atso-transfer before typed options: dashed key names
/// (`source-iterations`, `batch-size`), numbers and lists as strings (`"4"`, `"8,16,32"`), and
/// `kind: segmentation`. They are refused with the object to write instead (``upgrade(_:kinds:)``),
/// never reinterpreted silently.
enum BackendUpgrade {
  /// Backend kinds that were renamed.
  static let renamedKinds = ["segmentation": "image"]

  /// The upgraded object and what changed, or nil when `object` is not of the earlier shape.
  static func upgrade(_ object: [String: ConfigurationValue], kinds: [any BackendOptions.Type])
    -> (object: [String: ConfigurationValue], changes: [String])?
  {
    var kindName = kinds.isEmpty ? "" : kinds[0].kind
    var changes: [String] = []
    var upgraded = object
    if case .string(let kind) = object["kind"] {
      kindName = kind
      if let renamed = renamedKinds[kind] {
        kindName = renamed
        upgraded["kind"] = .string(renamed)
        changes.append("\"kind\": \"\(kind)\" -> \"\(renamed)\"")
      }
    }
    guard let options = kinds.first(where: { $0.kind == kindName }) else { return nil }
    changes += options.upgradeSpecialKeys(&upgraded)
    for (key, value) in object.sorted(by: { $0.key < $1.key }) where key != "kind" {
      guard upgraded[key] != nil else { continue }  // moved by upgradeSpecialKeys
      var name = key
      if !options.keys.contains(where: { $0.name == key }),
        let entry = options.keys.first(where: { $0.formerNames.contains(key) || $0.name.kebabCased == key })
      {
        name = entry.name
        upgraded[key] = nil
        upgraded[name] = value
        changes.append("\"\(key)\" -> \"\(name)\"")
      }
      if case .string(let text) = value, let entry = options.keys.first(where: { $0.name == name }),
        entry.kind != .string, let typed = entry.kind.value(of: text)
      {
        upgraded[name] = typed
        changes.append("\"\(name)\": \"\(text)\" -> \(typed.text)")
      }
    }
    if changes.isEmpty { return nil }
    upgraded["kind"] = .string(kindName)  // said out loud in the replacement
    return (upgraded, changes)
  }
}

extension BackendOptions {
  /// Moves keys of the earlier shape that are not a plain rename (e.g. per-network overrides)
  /// and describes each change; the default moves nothing.
  public static func upgradeSpecialKeys(_ object: inout [String: ConfigurationValue]) -> [String] { [] }
}
