import Foundation
import Segmentation
import Taxonomy

/// An 8-bit RGB raster, row-major, 3 bytes per pixel (`pixels.count == width * height * 3`).
public struct PlotCanvas: Sendable, Equatable {
  public let width: Int
  public let height: Int
  public var pixels: [UInt8]

  /// A `width` x `height` image filled with `color`.
  public init(width: Int, height: Int, color: LabelColor = .white) {
    precondition(width > 0 && height > 0, "empty image \(width)x\(height)")
    self.width = width
    self.height = height
    pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      pixels[3 * i] = color.red
      pixels[3 * i + 1] = color.green
      pixels[3 * i + 2] = color.blue
    }
  }

  /// The canvas as an image for Segmentation's codecs.
  public var image: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

  /// The color at (x, y); `x` is the column, `y` the row from the top.
  public func pixel(x: Int, y: Int) -> LabelColor {
    let i = 3 * (y * width + x)
    return LabelColor(pixels[i], pixels[i + 1], pixels[i + 2])
  }

  /// Sets one pixel; points outside the image are ignored (clipping).
  public mutating func set(x: Int, y: Int, _ color: LabelColor) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    let i = 3 * (y * width + x)
    pixels[i] = color.red
    pixels[i + 1] = color.green
    pixels[i + 2] = color.blue
  }

  /// Fills the rectangle `[x, x + w) x [y, y + h)` (clipped).
  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: LabelColor) {
    for row in y..<(y + max(h, 0)) {
      for column in x..<(x + max(w, 0)) { set(x: column, y: row, color) }
    }
  }

  /// Draws a line with Bresenham's algorithm, `thickness` pixels wide; with `dash > 0`, draws
  /// `dash` pixels, skips `dash` pixels, and so on.
  public mutating func line(
    from start: (x: Int, y: Int), to end: (x: Int, y: Int), _ color: LabelColor,
    thickness: Int = 1, dash: Int = 0
  ) {
    var (x, y) = start
    let dx = abs(end.x - x)
    let dy = -abs(end.y - y)
    let sx = x < end.x ? 1 : -1
    let sy = y < end.y ? 1 : -1
    var error = dx + dy
    var step = 0
    let offset = (thickness - 1) / 2
    while true {
      if dash == 0 || (step / dash) % 2 == 0 {
        fill(x: x - offset, y: y - offset, width: thickness, height: thickness, color)
      }
      if x == end.x && y == end.y { break }
      let e2 = 2 * error
      if e2 >= dy {
        error += dy
        x += sx
      }
      if e2 <= dx {
        error += dx
        y += sy
      }
      step += 1
    }
  }

  /// Draws `text` with the built-in 5x7 font, top-left corner at (x, y), each font pixel a
  /// `scale` x `scale` square; lowercase letters are drawn as uppercase, unknown characters as
  /// a box. Returns the width drawn.
  @discardableResult
  public mutating func text(_ text: String, x: Int, y: Int, _ color: LabelColor, scale: Int = 1) -> Int {
    var cursor = x
    for character in text.uppercased() {
      let rows = BitmapFont.glyph(character)
      for (r, row) in rows.enumerated() {
        for (c, bit) in row.enumerated() where bit == "#" {
          fill(x: cursor + c * scale, y: y + r * scale, width: scale, height: scale, color)
        }
      }
      cursor += BitmapFont.advance * scale
    }
    return cursor - x
  }
}

extension LabelColor {
  public static let white = LabelColor(255, 255, 255)
  public static let black = LabelColor(0, 0, 0)
  public static let gray = LabelColor(200, 200, 200)
}

/// A tiny 5x7 bitmap font: digits, uppercase letters and a few symbols.
enum BitmapFont {
  /// Horizontal distance between characters, in font pixels.
  static let advance = 6
  static let height = 7

  static func glyph(_ character: Character) -> [String] {
    glyphs[character] ?? ["#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####"]
  }

  static func width(of text: String, scale: Int = 1) -> Int { text.count * advance * scale }

  static let glyphs: [Character: [String]] = [
    " ": [".....", ".....", ".....", ".....", ".....", ".....", "....."],
    "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
    "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
    "B": ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],
    "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
    "D": ["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."],
    "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
    "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
    "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"],
    "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
    "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "J": ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
    "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
    "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
    "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
    "N": ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],
    "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
    "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
    "Q": [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],
    "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
    "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
    "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
    "U": ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
    "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
    "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
    "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
    "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
    "Z": ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],
    ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
    ",": [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."],
    ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
    "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
    "_": [".....", ".....", ".....", ".....", ".....", ".....", "#####"],
    "/": [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."],
    "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
    "@": [".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."],
    "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
    ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
    "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
    "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
  ]
}

/// A simple line plot: axes with ticks, a title, axis labels and a legend.
public struct LinePlot: Sendable {
  public struct Series: Sendable {
    public var label: String
    public var color: LabelColor
    public var isDashed: Bool
    public var points: [(x: Double, y: Double)]
    public init(label: String, color: LabelColor, isDashed: Bool, points: [(x: Double, y: Double)]) {
      self.label = label
      self.color = color
      self.isDashed = isDashed
      self.points = points
    }
  }

  /// Colors for up to three schedules (red, blue, green).
  public static let palette = [LabelColor(214, 39, 40), LabelColor(31, 119, 180), LabelColor(44, 160, 44)]

  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var series: [Series]

  public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
    self.title = title
    self.xLabel = xLabel
    self.yLabel = yLabel
    self.series = series
  }

  /// Renders the plot. The x axis has a tick at every integer; the y axis spans the data,
  /// rounded out to multiples of a "nice" step (1, 2 or 5 times a power of ten).
  public func render(width: Int, height: Int) -> PlotCanvas {
    var image = PlotCanvas(width: width, height: height)
    let left = 60
    let right = 150
    let top = 30
    let bottom = 45
    let plotWidth = max(width - left - right, 10)
    let plotHeight = max(height - top - bottom, 10)
    let points = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
    let xMin = points.map(\.x).min() ?? 0
    var xMax = points.map(\.x).max() ?? 1
    if xMax <= xMin { xMax = xMin + 1 }
    var yMin = points.map(\.y).min() ?? 0
    var yMax = points.map(\.y).max() ?? 1
    if yMax - yMin < 1e-9 {
      yMin -= 1
      yMax += 1
    }
    let step = Self.niceStep((yMax - yMin) / 5)
    yMin = (yMin / step).rounded(.down) * step
    yMax = (yMax / step).rounded(.up) * step
    func px(_ x: Double) -> Int {
      left + Int(((x - xMin) / (xMax - xMin) * Double(plotWidth)).rounded())
    }
    func py(_ y: Double) -> Int {
      top + plotHeight - Int(((y - yMin) / (yMax - yMin) * Double(plotHeight)).rounded())
    }
    // Grid and ticks.
    var y = yMin
    while y <= yMax + step / 2 {
      let row = py(y)
      image.line(from: (left, row), to: (left + plotWidth, row), .gray)
      image.line(from: (left - 4, row), to: (left, row), .black)
      let label = Self.format(y, step: step)
      image.text(label, x: left - 6 - BitmapFont.width(of: label), y: row - 3, .black)
      y += step
    }
    var tick = xMin.rounded(.up)
    while tick <= xMax {
      let column = px(tick)
      image.line(from: (column, top + plotHeight), to: (column, top + plotHeight + 4), .black)
      let label = Self.format(tick, step: 1)
      image.text(
        label, x: column - BitmapFont.width(of: label) / 2, y: top + plotHeight + 7, .black)
      tick += 1
    }
    // Axes.
    image.line(from: (left, top), to: (left, top + plotHeight), .black)
    image.line(from: (left, top + plotHeight), to: (left + plotWidth, top + plotHeight), .black)
    // Curves.
    for s in series {
      let sorted = s.points.filter { $0.x.isFinite && $0.y.isFinite }.sorted { $0.x < $1.x }
      for (a, b) in zip(sorted, sorted.dropFirst()) {
        image.line(
          from: (px(a.x), py(a.y)), to: (px(b.x), py(b.y)), s.color, thickness: 2,
          dash: s.isDashed ? 5 : 0)
      }
      for p in sorted { image.fill(x: px(p.x) - 2, y: py(p.y) - 2, width: 5, height: 5, s.color) }
    }
    // Labels and legend.
    image.text(title, x: left, y: 10, .black)
    image.text(
      xLabel, x: left + plotWidth / 2 - BitmapFont.width(of: xLabel) / 2,
      y: top + plotHeight + 22, .black)
    image.text(yLabel, x: 4, y: top - 12, .black)
    for (i, s) in series.enumerated() {
      let row = top + 8 + i * 14
      let x0 = left + plotWidth + 12
      image.line(
        from: (x0, row + 3), to: (x0 + 20, row + 3), s.color, thickness: 2,
        dash: s.isDashed ? 4 : 0)
      image.text(s.label, x: x0 + 26, y: row, .black)
    }
    return image
  }

  static func niceStep(_ raw: Double) -> Double {
    guard raw > 0, raw.isFinite else { return 1 }
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let fraction = raw / magnitude
    let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
    return nice * magnitude
  }

  static func format(_ value: Double, step: Double) -> String {
    let decimals = step >= 1 ? 0 : Int((-log10(step)).rounded(.up))
    return String(format: "%.\(decimals)f", value)
  }
}
