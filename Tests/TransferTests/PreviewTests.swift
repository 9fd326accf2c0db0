import Foundation
import Segmentation
import Taxonomy
import Testing
@testable import Transfer

@Test("evenly spaced picks cover the set without repeats")
func evenlySpacedPicks() {
  #expect(evenlySpacedIndices(count: 4, total: 10) == [0, 2, 5, 7])
  #expect(evenlySpacedIndices(count: 5, total: 3) == [0, 1, 2])
  #expect(evenlySpacedIndices(count: 0, total: 3) == [])
  #expect(evenlySpacedIndices(count: 2, total: 0) == [])
}

@Test("class colours: the class set's own, distinct fallbacks, black for ignored ids")
func previewClassColors() throws {
  let classes = try ClassSet(
    name: "t",
    classes: [
      SemanticClass(id: 0, name: "road", color: LabelColor(red: 128, green: 64, blue: 128)),
      SemanticClass(id: 1, name: "a"), SemanticClass(id: 2, name: "b"),
    ])
  let colors = classes.displayColors
  #expect(colors[0] == LabelColor(128, 64, 128))
  #expect(colors[1] != .black && colors[2] != .black && colors[1] != colors[2])
  #expect(colors[3] == .black && colors[255] == .black)
}

@Test("contact sheet: panels at the layout's origins, scaled, with a legend of shown classes")
func contactSheetLayout() throws {
  let classes = try ClassSet(
    name: "t",
    classes: [
      SemanticClass(id: 0, name: "sky", color: LabelColor(red: 70, green: 130, blue: 180)),
      SemanticClass(id: 1, name: "car", color: LabelColor(red: 0, green: 0, blue: 142)),
      SemanticClass(id: 2, name: "unused", color: LabelColor(red: 1, green: 2, blue: 3)),
    ])
  let palette = classes.displayColors
  let colors = palette
  // 4x3 label maps: left half sky, right half car (row 0), all car (row 1).
  let a: [UInt8] = [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]
  let b = [UInt8](repeating: 1, count: 12)
  let photo = RGBImage(width: 4, height: 3, pixels: [UInt8](repeating: 200, count: 36))
  var sheet = ContactSheet(columns: ["IMAGE", "TRUTH", "MODEL"])
  sheet.addRow(
    caption: "first",
    panels: [photo] + [a, b].map { LabelImage(width: 4, height: 3, values: $0).colorized(palette) })
  sheet.addRow(
    caption: "second",
    panels: [photo] + [b, a].map { LabelImage(width: 4, height: 3, values: $0).colorized(palette) })
  sheet.legend = ContactSheet.legend(for: [a, b], classes: classes, colors: palette)
  #expect(sheet.legend.map(\.name) == ["sky", "car"])
  let canvas = sheet.render()
  let layout = sheet.layout
  #expect(layout.up == 4 && layout.panelWidth == 16 && layout.panelHeight == 12)
  #expect(canvas.width == layout.width && canvas.height == layout.height)
  let truth = layout.panelOrigin(row: 0, column: 1)
  #expect(canvas.pixel(x: truth.x, y: truth.y) == colors[0])
  #expect(canvas.pixel(x: truth.x + 7, y: truth.y + 11) == colors[0])  // source column 1
  #expect(canvas.pixel(x: truth.x + 8, y: truth.y) == colors[1])  // source column 2
  let model = layout.panelOrigin(row: 1, column: 2)
  #expect(canvas.pixel(x: model.x, y: model.y) == colors[0])
  #expect(canvas.pixel(x: model.x + 15, y: model.y + 11) == colors[1])
  let image = layout.panelOrigin(row: 1, column: 0)
  #expect(canvas.pixel(x: image.x + 1, y: image.y + 1) == LabelColor(200, 200, 200))
  // The legend swatches are drawn below the last row.
  let pixels = (0..<canvas.height).flatMap { y in (0..<canvas.width).map { canvas.pixel(x: $0, y: y) } }
  let legendTop = layout.panelOrigin(row: 2, column: 0).y - 13
  let below = (legendTop..<canvas.height).flatMap { y in
    (0..<canvas.width).map { canvas.pixel(x: $0, y: y) }
  }
  #expect(below.contains(colors[0]) && below.contains(colors[1]))
  #expect(!pixels.contains(LabelColor(1, 2, 3)))
}
