extension ClassSet {
  /// A plain-text table of the classes: id, name, readable name, colour, evaluated, category.
  public func table() -> String {
    var rows = [["id", "name", "readable", "colour", "eval", "category"]]
    for semanticClass in classes {
      let color = semanticClass.color.map { "\($0.red),\($0.green),\($0.blue)" } ?? "-"
      rows.append([
        "\(semanticClass.id)", semanticClass.name, semanticClass.readableName, color,
        semanticClass.isEvaluated ? "yes" : "no", semanticClass.category ?? "",
      ])
    }
    var text = "class set \(name): \(classes.count) classes, ignore value \(ignoreIndex)\n"
    if !summary.isEmpty { text += summary + "\n" }
    if !citation.isEmpty { text += "source: \(citation)\n" }
    return text + "\n" + renderTable(rows)
  }
}

extension LabelMapping {
  /// A plain-text table: every target class with the source classes that map to it, then the
  /// ignored source classes.
  public func table() -> String {
    var rows = [["target", "", "sources"]]
    for targetClass in target.classes {
      let children = children(ofTargetID: targetClass.id).compactMap {
        source.semanticClass(id: $0).map { "\($0.id) \($0.name)" }
      }
      rows.append([
        "\(targetClass.id)", targetClass.name,
        children.isEmpty ? "(none)" : children.joined(separator: ", "),
      ])
    }
    let ignored = ignoredSourceIDs.compactMap {
      source.semanticClass(id: $0).map { "\($0.id) \($0.name)" }
    }
    rows.append([
      "\(target.ignoreIndex)", "(ignore)",
      ignored.isEmpty ? "(none)" : ignored.joined(separator: ", "),
    ])
    var text =
      "mapping \(name): \(source.name) (\(source.classes.count) classes) -> "
      + "\(target.name) (\(target.classes.count) classes)"
    if let variant { text += ", variant \(variant)" }
    text += isDefault ? ", default\n" : ", not the default\n"
    if !summary.isEmpty { text += summary + "\n" }
    if !citation.isEmpty { text += "source: \(citation)\n" }
    return text + "\n" + renderTable(rows)
  }
}

/// Left-aligned columns separated by two spaces; the first row is a header, underlined.
func renderTable(_ rows: [[String]]) -> String {
  guard let header = rows.first else { return "" }
  var widths = [Int](repeating: 0, count: header.count)
  for row in rows {
    for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
  }
  func line(_ row: [String]) -> String {
    var text = ""
    for (column, cell) in row.enumerated() {
      let isLast = column == row.count - 1
      text += isLast ? cell : cell + String(repeating: " ", count: widths[column] - cell.count + 2)
    }
    while text.hasSuffix(" ") { text.removeLast() }
    return text
  }
  var lines = [line(header), line(widths.map { String(repeating: "-", count: $0) })]
  lines += rows.dropFirst().map(line)
  return lines.joined(separator: "\n") + "\n"
}
