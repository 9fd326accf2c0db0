import Segmentation
import Taxonomy

/// A model drawn in the end-of-run previews.
public struct PreviewModel: Sendable, Equatable {
  /// The column title, e.g. `source only` or `ATSO final`.
  public var title: String
  public var checkpoint: String

  public init(title: String, checkpoint: String) {
    self.title = title
    self.checkpoint = checkpoint
  }
}

/// Draws the predictions of `models` on `count` units of E, with the units' images and ground
/// truth, colourised with the class colours of `level`, into one PNG at `output`.
public struct PreviewRequest: Sendable, Equatable {
  public var models: [PreviewModel]
  public var level: LabelLevel
  /// How many units of E (spread evenly over E in its order).
  public var count: Int
  /// The PNG to write (a temporary path of the run).
  public var output: String

  public init(models: [PreviewModel], level: LabelLevel, count: Int, output: String) {
    self.models = models
    self.level = level
    self.count = count
    self.output = output
  }
}

/// `count` indices spread evenly over `0..<total` (all of them when `count >= total`).
public func evenlySpacedIndices(count: Int, total: Int) -> [Int] {
  guard count > 0, total > 0 else { return [] }
  if count >= total { return Array(0..<total) }
  return (0..<count).map { $0 * total / count }
}

/// A contact sheet: a grid of equally sized panels (one row per unit, one column per kind of
/// picture) with column titles, a caption per row, and a legend of the classes shown.
///
/// Panels narrower than 160 pixels are enlarged by an integer factor (2 to 4), wider than 512
/// reduced by one (nearest neighbour: label colours stay exact).
public struct ContactSheet: Sendable {
  public var columns: [String]
  public private(set) var rows: [(caption: String, panels: [RGBImage])] = []
  /// Classes whose colours appear in the panels, with their names (legend order).
  public var legend: [(name: String, color: LabelColor)] = []

  public init(columns: [String]) { self.columns = columns }

  /// The sheet of a run's `predictions.png`: the image, its ground truth, then one column per
  /// model (titled by `models`).
  public init(predictionsOf models: [PreviewModel]) {
    self.init(columns: ["image", "ground truth"] + models.map(\.title))
  }

  /// Adds a row. - Precondition: one panel per column, all of one size.
  public mutating func addRow(caption: String, panels: [RGBImage]) {
    precondition(panels.count == columns.count, "\(panels.count) panels for \(columns.count) columns")
    if let first = rows.first?.panels.first ?? panels.first {
      precondition(
        panels.allSatisfy { $0.width == first.width && $0.height == first.height },
        "panels of different sizes")
    }
    rows.append((caption, panels))
  }

  /// The legend entries of the ids present in `labels` (ids of `classes` only, the class set's
  /// void value left out), in id order.
  public static func legend(for labels: [[UInt8]], classes: ClassSet, colors: [LabelColor])
    -> [(name: String, color: LabelColor)]
  {
    var present = [Bool](repeating: false, count: 256)
    for map in labels { for value in map { present[Int(value)] = true } }
    return classes.classes.filter {
      (0..<256).contains($0.id) && $0.id != classes.ignoreIndex && present[$0.id]
    }
      .sorted { $0.id < $1.id }
      .map { ($0.name, colors[$0.id]) }
  }

  /// Where things go: the panel scale and the origin of every panel.
  public struct Layout: Sendable, Equatable {
    /// Panels are drawn `up / down` times their size.
    public var up: Int
    public var down: Int
    public var panelWidth: Int
    public var panelHeight: Int
    public var columnWidth: Int
    public var width: Int
    public var height: Int
    static let margin = 8
    static let gap = 6
    static let line = BitmapFont.height + 6

    /// The top-left canvas pixel of a panel.
    public func panelOrigin(row: Int, column: Int) -> (x: Int, y: Int) {
      (
        Self.margin + column * (columnWidth + Self.gap),
        Self.margin + Self.line + row * (Self.line + panelHeight + Self.gap) + Self.line
      )
    }
  }

  /// The layout of ``render()``.
  public var layout: Layout {
    let first = rows.first?.panels.first ?? RGBImage(width: 64, height: 48, pixels: [])
    let (up, down) =
      first.width < 160
      ? (min(4, max(2, 160 / max(1, first.width))), 1) : (1, max(1, (first.width + 511) / 512))
    let panelWidth = first.width * up / down
    let panelHeight = first.height * up / down
    // A title wider than the panels widens its column: titles stay apart by three gaps.
    let columnWidth = max(
      panelWidth, (columns.map { BitmapFont.width(of: $0) }.max() ?? 0) + 2 * Layout.gap)
    let width = max(
      2 * Layout.margin + columns.count * columnWidth + max(0, columns.count - 1) * Layout.gap,
      2 * Layout.margin + legendWidth)
    let legendLines = legendRows(width: width - 2 * Layout.margin).count
    let height =
      Layout.margin + Layout.line + rows.count * (Layout.line + panelHeight + Layout.gap)
      + legendLines * Layout.line + Layout.margin
    return Layout(
      up: up, down: down, panelWidth: panelWidth, panelHeight: panelHeight,
      columnWidth: columnWidth, width: width, height: height)
  }

  /// Renders the sheet.
  public func render() -> PlotCanvas {
    let layout = layout
    var canvas = PlotCanvas(width: layout.width, height: layout.height)
    for (c, title) in columns.enumerated() {
      _ = canvas.text(title, x: layout.panelOrigin(row: 0, column: c).x, y: Layout.margin, .black)
    }
    for (r, row) in rows.enumerated() {
      let top = layout.panelOrigin(row: r, column: 0)
      _ = canvas.text(row.caption, x: top.x, y: top.y - Layout.line + 2, .darkGray)
      for (c, panel) in row.panels.enumerated() {
        let origin = layout.panelOrigin(row: r, column: c)
        for py in 0..<layout.panelHeight {
          let sy = py * layout.down / layout.up
          for px in 0..<layout.panelWidth {
            let i = 3 * (sy * panel.width + px * layout.down / layout.up)
            canvas.set(
              x: origin.x + px, y: origin.y + py,
              LabelColor(panel.pixels[i], panel.pixels[i + 1], panel.pixels[i + 2]))
          }
        }
      }
    }
    var y = layout.panelOrigin(row: rows.count, column: 0).y - Layout.line
    for entries in legendRows(width: layout.width - 2 * Layout.margin) {
      var x = Layout.margin
      for entry in entries {
        canvas.fill(x: x, y: y, width: BitmapFont.height, height: BitmapFont.height, .black)
        canvas.fill(
          x: x + 1, y: y + 1, width: BitmapFont.height - 2, height: BitmapFont.height - 2,
          entry.color)
        x += BitmapFont.height + 4
        x += canvas.text(entry.name, x: x, y: y, .black) + 12
      }
      y += Layout.line
    }
    return canvas
  }

  func entryWidth(_ name: String) -> Int { BitmapFont.height + 4 + BitmapFont.width(of: name) + 12 }

  /// The legend's width on one line, at most 640 pixels (longer legends wrap).
  var legendWidth: Int { min(legend.map { entryWidth($0.name) }.reduce(0, +), 640) }

  /// The legend entries broken into lines of at most `width` pixels.
  func legendRows(width: Int) -> [[(name: String, color: LabelColor)]] {
    var lines: [[(name: String, color: LabelColor)]] = []
    var current: [(name: String, color: LabelColor)] = []
    var used = 0
    for entry in legend {
      let w = entryWidth(entry.name)
      if used + w > width, !current.isEmpty {
        lines.append(current)
        current = []
        used = 0
      }
      current.append(entry)
      used += w
    }
    if !current.isEmpty { lines.append(current) }
    return lines
  }
}
