import Foundation
import Segmentation
import Taxonomy

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
    public var color: LabelColor
    public var lineWidth: Int
    public var marker: Marker
    public var markerSize: Int
    public init(color: LabelColor, lineWidth: Int, marker: Marker, markerSize: Int) {
      self.color = color
      self.lineWidth = lineWidth
      self.marker = marker
      self.markerSize = markerSize
    }
  }

  public struct Series: Sendable {
    public var label: String
    public var color: LabelColor
    public var lineStyle: LineStyle
    public var lineWidth: Int
    public var marker: Marker
    public var markerSize: Int
    /// Hollow markers (a colored rim around white) when false.
    public var isMarkerFilled: Bool
    public var points: [(x: Double, y: Double)]

    public init(
      label: String, color: LabelColor, lineStyle: LineStyle = .solid, lineWidth: Int = 2,
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
  public static let palette = [LabelColor(214, 39, 40), LabelColor(31, 119, 180), LabelColor(44, 160, 44)]

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
