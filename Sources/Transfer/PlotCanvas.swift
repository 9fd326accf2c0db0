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

  /// Draws a line with Bresenham's algorithm, `thickness` pixels wide, solid or dashed (gaps
  /// widened by the pen, so that `off` pixels stay blank); a dash pattern starts `phase` pixels in, and the phase at the end is returned, so that a polyline
  /// drawn segment by segment keeps one rhythm.
  @discardableResult
  public mutating func line(
    from start: (x: Int, y: Int), to end: (x: Int, y: Int), _ color: LabelColor,
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
  mutating func disc(x: Int, y: Int, diameter: Int, _ color: LabelColor) {
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
  public mutating func text(_ text: String, x: Int, y: Int, _ color: LabelColor, scale: Int = 1) -> Int {
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
  public mutating func verticalText(_ text: String, x: Int, y: Int, _ color: LabelColor, scale: Int = 1)
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
    _ shape: LinePlot.Marker, x: Int, y: Int, size: Int, _ color: LabelColor, isFilled: Bool = true
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

extension LabelColor {
  public static let white = LabelColor(255, 255, 255)
  public static let black = LabelColor(0, 0, 0)
  public static let gray = LabelColor(200, 200, 200)
  /// Captions: grey, but readable on white.
  public static let darkGray = LabelColor(96, 96, 96)
}
