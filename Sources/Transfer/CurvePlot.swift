import Foundation
import Segmentation

/// An 8-bit RGB raster, row-major, 3 bytes per pixel (`pixels.count == width * height * 3`).
public struct PlotCanvas: Sendable, Equatable {
  public let width: Int
  public let height: Int
  public var pixels: [UInt8]

  /// A `width` x `height` image filled with `color`.
  public init(width: Int, height: Int, color: RGB = .white) {
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
  public func pixel(x: Int, y: Int) -> RGB {
    let i = 3 * (y * width + x)
    return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
  }

  /// Sets one pixel; points outside the image are ignored (clipping).
  public mutating func set(x: Int, y: Int, _ color: RGB) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    let i = 3 * (y * width + x)
    pixels[i] = color.red
    pixels[i + 1] = color.green
    pixels[i + 2] = color.blue
  }

  /// Fills the rectangle `[x, x + w) x [y, y + h)` (clipped).
  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: RGB) {
    for row in y..<(y + max(h, 0)) {
      for column in x..<(x + max(w, 0)) { set(x: column, y: row, color) }
    }
  }

  /// Draws a line with Bresenham's algorithm, `thickness` pixels wide, solid or dashed (gaps
  /// widened by the pen, so that `off` pixels stay blank); a dash pattern starts `phase` pixels in, and the phase at the end is returned, so that a polyline
  /// drawn segment by segment keeps one rhythm.
  @discardableResult
  public mutating func line(
    from start: (x: Int, y: Int), to end: (x: Int, y: Int), _ color: RGB,
    thickness: Int = 1, style: LinePlot.LineStyle = .solid, phase: Int = 0
  ) -> Int {
    var (x, y) = start
    let dx = abs(end.x - x)
    let dy = -abs(end.y - y)
    let sx = x < end.x ? 1 : -1
    let sy = y < end.y ? 1 : -1
    var error = dx + dy
    var step = phase
    let offset = (thickness - 1) / 2
    while true {
      var isDrawn = true
      if case .dashed(let on, let off) = style, on + off > 0 {
        // The round pen of a thick line reaches thickness - 1 pixels into a gap: widen it.
        isDrawn = step % (on + off + max(0, thickness - 2)) < on
      }
      if isDrawn {
        if thickness <= 2 {
          fill(x: x - offset, y: y - offset, width: thickness, height: thickness, color)
        } else {
          disc(x: x, y: y, diameter: thickness, color)
        }
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
    return step
  }

  /// Fills a disc of `diameter` pixels centred at (x, y) (the pen of thick lines).
  mutating func disc(x: Int, y: Int, diameter: Int, _ color: RGB) {
    let r = Double(diameter) / 2
    let extent = Int(r.rounded(.up))
    for dy in -extent...extent {
      for dx in -extent...extent where Double(dx * dx + dy * dy) <= r * r - 0.25 {
        set(x: x + dx, y: y + dy, color)
      }
    }
  }

  /// Draws `text` with the built-in font (``BitmapFont``), top-left corner of the first cell at
  /// (x, y), each font pixel a `scale` x `scale` square; at scale 2 and more, diagonal steps are
  /// smoothed (EPX / Scale2x). Characters the font lacks are drawn as a box. Returns the width
  /// drawn (``BitmapFont/width(of:scale:)``).
  @discardableResult
  public mutating func text(_ text: String, x: Int, y: Int, _ color: RGB, scale: Int = 1) -> Int {
    var cursor = x
    for character in text {
      let mask = BitmapFont.mask(character, scale: scale)
      for (r, row) in mask.enumerated() {
        for (c, isSet) in row.enumerated() where isSet { set(x: cursor + c, y: y + r, color) }
      }
      cursor += BitmapFont.advance * scale
    }
    return cursor - x
  }

  /// Draws `text` rotated a quarter turn counter-clockwise (reading bottom to top), the top-left
  /// corner of its bounding box at (x, y). Returns the height drawn.
  @discardableResult
  public mutating func verticalText(_ text: String, x: Int, y: Int, _ color: RGB, scale: Int = 1)
    -> Int
  {
    let length = BitmapFont.width(of: text, scale: scale)
    var cursor = 0
    for character in text {
      let mask = BitmapFont.mask(character, scale: scale)
      for (r, row) in mask.enumerated() {
        for (c, isSet) in row.enumerated() where isSet {
          // Horizontal (cursor + c, r) turns into (r, length - 1 - (cursor + c)).
          set(x: x + r, y: y + length - 1 - (cursor + c), color)
        }
      }
      cursor += BitmapFont.advance * scale
    }
    return length
  }

  /// Draws a marker of `size` pixels centred at (x, y): filled, or a 2-pixel outline with a
  /// white inside.
  public mutating func marker(
    _ shape: LinePlot.Marker, x: Int, y: Int, size: Int, _ color: RGB, isFilled: Bool = true
  ) {
    let r = Double(size) / 2
    func inside(_ dx: Double, _ dy: Double, shrink: Double) -> Bool {
      let q = r - shrink
      guard q > 0 else { return false }
      switch shape {
      case .none: return false
      case .circle: return dx * dx + dy * dy <= q * q
      case .square: return abs(dx) <= q * 0.85 && abs(dy) <= q * 0.85
      case .diamond: return abs(dx) + abs(dy) <= q
      case .triangle:
        // Apex up at -q, base at +0.75 q.
        let top = -q
        let base = q * 0.75
        guard dy >= top, dy <= base else { return false }
        return abs(dx) <= (dy - top) / (base - top) * q
      }
    }
    let extent = Int(r.rounded(.up)) + 1
    for dy in -extent...extent {
      for dx in -extent...extent {
        let (fx, fy) = (Double(dx), Double(dy))
        guard inside(fx, fy, shrink: 0) else { continue }
        let isRim = !isFilled && !inside(fx, fy, shrink: 2)
        set(x: x + dx, y: y + dy, isFilled || isRim ? color : .white)
      }
    }
  }
}

/// An RGB color.
public struct RGB: Sendable, Equatable, Hashable {
  public var red: UInt8
  public var green: UInt8
  public var blue: UInt8
  public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
    self.red = red
    self.green = green
    self.blue = blue
  }
  public static let white = RGB(255, 255, 255)
  public static let black = RGB(0, 0, 0)
  public static let gray = RGB(200, 200, 200)
}

/// A small monospaced bitmap font: ASCII 32-126 in cells of 6 x 9 font pixels (5 x 7 glyphs with
/// a 1-pixel gap, capitals and digits 7 rows high, lower case with 2 rows of descenders), drawn
/// by ``PlotCanvas/text(_:x:y:_:scale:)``. Designed for this package (no third-party glyphs).
enum BitmapFont {
  /// Horizontal distance between characters, in font pixels.
  static let advance = 6
  /// The cell height in font pixels: 7 rows above the baseline and 2 for descenders.
  static let height = 9

  /// The 9 rows of `character` (7-row glyphs get two empty descender rows); a box for a
  /// character the font lacks.
  static func glyph(_ character: Character) -> [String] {
    let rows =
      glyphs[character] ?? ["#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####"]
    return rows + Array(repeating: ".....", count: height - rows.count)
  }

  /// The pixels of `character` at `scale`: `height * scale` rows of `advance * scale` columns.
  /// Scale 2 or more is smoothed with EPX (Scale2x) before the remaining integer enlargement.
  static func mask(_ character: Character, scale: Int) -> [[Bool]] {
    var bits = glyph(character).map { row in row.map { $0 == "#" } + [false] }
    var factor = max(1, scale)
    if factor >= 2 && factor % 2 == 0 {
      bits = scale2x(bits)
      factor /= 2
    }
    guard factor > 1 else { return bits }
    return bits.flatMap { row in
      Array(repeating: row.flatMap { Array(repeating: $0, count: factor) }, count: factor)
    }
  }

  /// EPX / Scale2x (Andrea Mazzoleni): doubles a bitmap, rounding diagonal steps.
  static func scale2x(_ bits: [[Bool]]) -> [[Bool]] {
    let h = bits.count
    let w = bits.first?.count ?? 0
    func at(_ r: Int, _ c: Int) -> Bool { r >= 0 && c >= 0 && r < h && c < w && bits[r][c] }
    var out = [[Bool]](repeating: [Bool](repeating: false, count: 2 * w), count: 2 * h)
    for r in 0..<h {
      for c in 0..<w {
        let p = bits[r][c]
        let (a, b, cc, d) = (at(r - 1, c), at(r, c + 1), at(r, c - 1), at(r + 1, c))
        out[2 * r][2 * c] = cc == a && cc != d && a != b ? a : p
        out[2 * r][2 * c + 1] = a == b && a != cc && b != d ? b : p
        out[2 * r + 1][2 * c] = d == cc && d != b && cc != a ? cc : p
        out[2 * r + 1][2 * c + 1] = b == d && b != a && d != cc ? d : p
      }
    }
    return out
  }

  /// The width `text` takes at `scale`, in pixels.
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
    ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
    "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
    "/": [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."],
    "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
    "@": [".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."],
    "(": ["...#.", "..#..", "..#..", "..#..", "..#..", "..#..", "...#."],
    ")": [".#...", "..#..", "..#..", "..#..", "..#..", "..#..", ".#..."],
    "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
    "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
    "!": ["..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."],
    "?": [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."],
    "'": ["..#..", "..#..", ".#...", ".....", ".....", ".....", "....."],
    "\"": [".#.#.", ".#.#.", ".#.#.", ".....", ".....", ".....", "....."],
    "#": [".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."],
    "$": ["..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."],
    "&": [".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"],
    "*": [".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."],
    "<": ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."],
    ">": [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."],
    "[": [".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."],
    "]": [".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."],
    "\\": [".....", "#....", ".#...", "..#..", "...#.", "....#", "....."],
    "^": ["..#..", ".#.#.", "#...#", ".....", ".....", ".....", "....."],
    "`": [".#...", "..#..", "...#.", ".....", ".....", ".....", "....."],
    "{": ["...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."],
    "}": [".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."],
    "|": ["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
    "~": [".....", ".....", ".#...", "#.#.#", "...#.", ".....", "....."],
    "a": [".....", ".....", ".###.", "....#", ".####", "#...#", ".####", ".....", "....."],
    "b": ["#....", "#....", "####.", "#...#", "#...#", "#...#", "####.", ".....", "....."],
    "c": [".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", ".....", "....."],
    "d": ["....#", "....#", ".####", "#...#", "#...#", "#...#", ".####", ".....", "....."],
    "e": [".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", ".....", "....."],
    "f": ["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", ".....", "....."],
    "g": [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
    "h": ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", ".....", "....."],
    "i": ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
    "j": ["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
    "k": ["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", ".....", "....."],
    "l": [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
    "m": [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", ".....", "....."],
    "n": [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", ".....", "....."],
    "o": [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", ".....", "....."],
    "p": [".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."],
    "q": [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"],
    "r": [".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", ".....", "....."],
    "s": [".....", ".....", ".####", "#....", ".###.", "....#", "####.", ".....", "....."],
    "t": [".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", ".....", "....."],
    "u": [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", ".....", "....."],
    "v": [".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", ".....", "....."],
    "w": [".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", ".....", "....."],
    "x": [".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", ".....", "....."],
    "y": [".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
    "z": [".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", ".....", "....."],
    ",": [".....", ".....", ".....", ".....", ".....", ".##..", "..#..", ".#...", "....."],
    ";": [".....", ".##..", ".##..", ".....", ".....", ".##..", "..#..", ".#...", "....."],
    "_": [".....", ".....", ".....", ".....", ".....", ".....", ".....", "#####", "....."],
  ]
}

/// A line plot: axes with ticks and a grid, a title and subtitle, axis labels and a legend.
///
/// Series that coincide stay visible: each has its own line width, dash pattern and marker
/// shape and size, and series are drawn in order, so a thin line with a small marker drawn
/// over a wide one with a large marker shows both (``scheduleStyles`` gives such a set).
public struct LinePlot: Sendable {
  /// How a line is stroked.
  public enum LineStyle: Sendable, Equatable {
    case solid
    /// `on` pixels drawn, `off` pixels skipped, along the line.
    case dashed(on: Int, off: Int)
  }

  /// The shape drawn at each data point.
  public enum Marker: Sendable, Equatable, CaseIterable {
    case none, circle, square, triangle, diamond
  }

  /// The look of one series, apart from its label and color.
  public struct Style: Sendable, Equatable {
    public var color: RGB
    public var lineWidth: Int
    public var marker: Marker
    public var markerSize: Int
    public init(color: RGB, lineWidth: Int, marker: Marker, markerSize: Int) {
      self.color = color
      self.lineWidth = lineWidth
      self.marker = marker
      self.markerSize = markerSize
    }
  }

  public struct Series: Sendable {
    public var label: String
    public var color: RGB
    public var lineStyle: LineStyle
    public var lineWidth: Int
    public var marker: Marker
    public var markerSize: Int
    /// Hollow markers (a colored rim around white) when false.
    public var isMarkerFilled: Bool
    public var points: [(x: Double, y: Double)]

    public init(
      label: String, color: RGB, lineStyle: LineStyle = .solid, lineWidth: Int = 2,
      marker: Marker = .square, markerSize: Int = 7, isMarkerFilled: Bool = true,
      points: [(x: Double, y: Double)]
    ) {
      self.label = label
      self.color = color
      self.lineStyle = lineStyle
      self.lineWidth = lineWidth
      self.marker = marker
      self.markerSize = markerSize
      self.isMarkerFilled = isMarkerFilled
      self.points = points
    }

    /// A series in `style`.
    public init(
      label: String, style: Style, lineStyle: LineStyle = .solid, isMarkerFilled: Bool = true,
      points: [(x: Double, y: Double)]
    ) {
      self.init(
        label: label, color: style.color, lineStyle: lineStyle, lineWidth: style.lineWidth,
        marker: style.marker, markerSize: style.markerSize, isMarkerFilled: isMarkerFilled,
        points: points)
    }
  }

  /// Colors for up to three schedules (red, blue, green).
  public static let palette = [RGB(214, 39, 40), RGB(31, 119, 180), RGB(44, 160, 44)]

  /// One style per schedule (self-learning, STSO, ATSO), widest first: drawn in this order, a
  /// later line over an earlier one leaves the earlier one's color on both sides and its larger
  /// marker around the later one's (self-learning and STSO coincide at generation 1).
  public static let scheduleStyles = [
    Style(color: palette[0], lineWidth: 9, marker: .circle, markerSize: 17),
    Style(color: palette[1], lineWidth: 5, marker: .square, markerSize: 11),
    Style(color: palette[2], lineWidth: 2, marker: .diamond, markerSize: 7),
  ]

  /// The dash pattern of the second series of a group (@R beside @E).
  public static let dashed = LineStyle.dashed(on: 8, off: 5)

  public var title: String
  /// Text under the title (e.g. the stage and the data sets), smaller and wrapped to the
  /// width; empty for none.
  public var subtitle: String
  public var xLabel: String
  public var yLabel: String
  public var series: [Series]

  public init(
    title: String, subtitle: String = "", xLabel: String, yLabel: String, series: [Series]
  ) {
    self.title = title
    self.subtitle = subtitle
    self.xLabel = xLabel
    self.yLabel = yLabel
    self.series = series
  }

  /// Renders the plot. The x axis has a tick at every integer; the y axis spans the data,
  /// rounded out to multiples of a "nice" step (1, 2 or 5 times a power of ten).
  public func render(width: Int, height: Int) -> PlotCanvas {
    var image = PlotCanvas(width: width, height: height)
    let lineHeight = BitmapFont.height + 5
    let legendWidth =
      44 + (series.map { BitmapFont.width(of: $0.label) }.max() ?? 0) + 12
    let left = 62
    let right = min(max(legendWidth + 16, 60), width / 2)
    let subtitleLines = Self.wrapped(subtitle, width: width - left - 8)
    let top = 38 + subtitleLines.count * lineHeight
    let bottom = 48
    let plotWidth = max(width - left - right, 10)
    let plotHeight = max(height - top - bottom, 10)
    let points = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
    var xMin = points.map(\.x).min() ?? 0
    var xMax = points.map(\.x).max() ?? 1
    if xMax <= xMin { xMax = xMin + 1 }
    // Half a marker of room at both ends, so that end points are not cut by the axes.
    let pad = (xMax - xMin) * 0.04
    xMin -= pad
    xMax += pad
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
    let half = BitmapFont.height / 2 - 1  // centres a digit (7 rows) on a tick
    // Grid and ticks.
    var y = yMin
    while y <= yMax + step / 2 {
      let row = py(y)
      image.line(from: (left, row), to: (left + plotWidth, row), .gray)
      image.line(from: (left - 4, row), to: (left, row), .black)
      let label = Self.format(y, step: step)
      image.text(label, x: left - 7 - BitmapFont.width(of: label), y: row - half, .black)
      y += step
    }
    var tick = xMin.rounded(.up)
    while tick <= xMax {
      let column = px(tick)
      image.line(from: (column, top), to: (column, top + plotHeight), .gray)
      image.line(from: (column, top + plotHeight), to: (column, top + plotHeight + 4), .black)
      let label = Self.format(tick + 0, step: 1)  // + 0: no "-0"
      image.text(
        label, x: column - BitmapFont.width(of: label) / 2, y: top + plotHeight + 8, .black)
      tick += 1
    }
    // Axes.
    image.line(from: (left, top), to: (left, top + plotHeight), .black)
    image.line(from: (left, top + plotHeight), to: (left + plotWidth, top + plotHeight), .black)
    // Curves, then every marker on top of every line.
    for s in series {
      let sorted = s.points.filter { $0.x.isFinite && $0.y.isFinite }.sorted { $0.x < $1.x }
      var phase = 0
      for (a, b) in zip(sorted, sorted.dropFirst()) {
        phase = image.line(
          from: (px(a.x), py(a.y)), to: (px(b.x), py(b.y)), s.color, thickness: s.lineWidth,
          style: s.lineStyle, phase: phase)
      }
    }
    for s in series {
      for p in s.points where p.x.isFinite && p.y.isFinite {
        image.marker(
          s.marker, x: px(p.x), y: py(p.y), size: s.markerSize, s.color,
          isFilled: s.isMarkerFilled)
      }
    }
    // Labels and legend.
    image.text(title, x: left, y: 8, .black, scale: 2)
    for (i, line) in subtitleLines.enumerated() {
      image.text(line, x: left, y: 10 + 2 * BitmapFont.height + i * lineHeight, .black)
    }
    image.text(
      xLabel, x: left + plotWidth / 2 - BitmapFont.width(of: xLabel) / 2,
      y: top + plotHeight + 8 + lineHeight, .black)
    let yLabelLength = BitmapFont.width(of: yLabel)
    image.verticalText(
      yLabel, x: 6, y: top + max(0, (plotHeight - yLabelLength) / 2), .black)
    let x0 = left + plotWidth + 16
    for (i, s) in series.enumerated() {
      let row = top + 10 + i * (lineHeight + 8)
      let middle = row + BitmapFont.height / 2 - 1
      image.line(
        from: (x0, middle), to: (x0 + 36, middle), s.color, thickness: s.lineWidth,
        style: s.lineStyle)
      image.marker(
        s.marker, x: x0 + 18, y: middle, size: s.markerSize, s.color, isFilled: s.isMarkerFilled)
      image.text(s.label, x: x0 + 44, y: row, .black)
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

extension LinePlot {
  /// The data sets of a run in one line for a plot's subtitle, from its backend options: S, R
  /// and E (`source`, `reference`, `test`) of the image backend, the MSD folders (`dataset`,
  /// `target`) of the volume backend. Folders are shortened to their last component.
  public static func datasetLine(_ backend: [String: String]) -> String {
    let roles = [
      ("source", "S"), ("reference", "R"), ("test", "E"), ("dataset", "data"),
      ("target", "target"),
    ]
    return roles.compactMap { key, role in
      backend[key].map { "\(role) \(shortSpec($0))" }
    }.joined(separator: ", ")
  }

  /// A dataset spec or folder with every path cut to its last component:
  /// `camvid:/data/camvid/train.txt?include=0001TP` -> `camvid:train.txt?include=0001TP`.
  static func shortSpec(_ spec: String) -> String {
    let (body, query) =
      spec.firstIndex(of: "?").map { (spec[..<$0], spec[$0...]) } ?? (spec[...], "")
    let parts = body.split(separator: ":", omittingEmptySubsequences: false).map { part in
      part.contains("/")
        ? String(part.split(separator: "/").last ?? Substring(part)) : String(part)
    }
    return parts.joined(separator: ":") + query
  }

  /// `text` cut into lines of at most `width` pixels at spaces (a longer word stays whole).
  static func wrapped(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var current = ""
    for word in text.split(separator: " ") {
      let candidate = current.isEmpty ? String(word) : current + " " + word
      if BitmapFont.width(of: candidate) > width && !current.isEmpty {
        lines.append(current)
        current = String(word)
      } else {
        current = candidate
      }
    }
    if !current.isEmpty { lines.append(current) }
    return lines
  }
}
