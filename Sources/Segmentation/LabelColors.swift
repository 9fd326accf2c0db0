import Taxonomy

/// ``LabelColor`` (Taxonomy's sRGB colour) is the package's one colour type: class colours,
/// palettes of label files, previews and plots.
extension LabelColor {
  /// The colour with these channel values.
  public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
    self.init(red: red, green: green, blue: blue)
  }
}

extension ClassSet {
  /// The colour of every pixel value (256 entries) for pictures of label maps: each class's own
  /// colour, a well-spread hue (golden angle) for classes without one, black for every other
  /// value (the ignore value, values that are no class).
  public var displayColors: [LabelColor] {
    var colors = [LabelColor](repeating: LabelColor(0, 0, 0), count: 256)
    for (index, semantic) in classes.enumerated() where (0..<256).contains(semantic.id) {
      if let c = semantic.color {
        colors[semantic.id] = c
      } else {
        let hue = (Double(index) * 137.508).truncatingRemainder(dividingBy: 360)
        colors[semantic.id] = LabelColor(hue: hue)
      }
    }
    return colors
  }
}

extension LabelColor {
  /// A saturated colour of `hue` degrees (HSV with s = 0.75, v = 0.9; never black).
  public init(hue: Double) {
    let (s, v) = (0.75, 0.9)
    let h = hue / 60
    let c = v * s
    let x = c * (1 - abs(h.truncatingRemainder(dividingBy: 2) - 1))
    let (r, g, b): (Double, Double, Double) =
      switch Int(h) {
      case 0: (c, x, 0)
      case 1: (x, c, 0)
      case 2: (0, c, x)
      case 3: (0, x, c)
      case 4: (x, 0, c)
      default: (c, 0, x)
      }
    let m = v - c
    self.init(UInt8((r + m) * 255), UInt8((g + m) * 255), UInt8((b + m) * 255))
  }
}

extension LabelImage {
  /// The label map painted with `colors` (indexed by pixel value, 256 entries).
  public func colorized(_ colors: [LabelColor]) -> RGBImage {
    precondition(colors.count == 256, "a colour for each of the 256 values")
    var pixels = [UInt8](repeating: 0, count: values.count * 3)
    for (i, v) in values.enumerated() {
      let c = colors[Int(v)]
      pixels[3 * i] = c.red
      pixels[3 * i + 1] = c.green
      pixels[3 * i + 2] = c.blue
    }
    return RGBImage(width: width, height: height, pixels: pixels)
  }
}
