import Tensor

/// Procedural street scenes for the built-in demo and for tests: a labeled source domain and a
/// shifted target domain, generated from a seed.
///
/// A scene is first drawn as a map of ``SyntheticStreets/Element`` values (sky, road, car, ...),
/// then rendered into RGB pixels with the domain's appearance and encoded into the domain's native
/// label ids. The two domains differ the way real datasets do:
///
/// - **Source** (written like Cityscapes, labelIds): daylight, a fixed camera height, many
///   buildings, few trucks and bicycles, an ego-vehicle strip at the bottom.
/// - **Target** (written like Mapillary Vistas v1.2, 66 class ids): dusk lighting (darker, bluer,
///   lower contrast, sensor noise), another camera height and field of view, more vegetation and
///   terrain, curbs and lane markings as separate classes, rare classes (trucks, bicycles) more
///   frequent.
public enum SyntheticStreets {
  /// What a pixel shows, independent of any dataset's label ids.
  public enum Element: UInt8, CaseIterable, Sendable {
    case void, ego, road, laneMarking, sidewalk, curb, building, wall, fence, pole, trafficSign
    case vegetation, terrain, sky, person, rider, car, truck, bicycle
  }

  /// The two appearance and label conventions.
  public enum Domain: String, Sendable, CaseIterable {
    /// Daylight, Cityscapes labelIds.
    case source
    /// Dusk, another camera, Mapillary Vistas v1.2 ids.
    case target
  }

  /// One rendered scene.
  public struct Scene: Sendable {
    public var width: Int
    public var height: Int
    /// Packed RGB, row-major, `width * height * 3` bytes.
    public var rgb: [UInt8]
    /// Native label ids of the domain (Cityscapes labelIds or Mapillary v1.2 ids), one per pixel.
    public var labels: [UInt8]
    /// The semantic elements before encoding, one per pixel.
    public var elements: [Element]
  }

  /// The Cityscapes labelId of each element (`cityscapes-34` class set).
  public static func cityscapesLabelId(_ e: Element) -> UInt8 {
    switch e {
    case .void: 0
    case .ego: 1
    case .road, .laneMarking: 7
    case .sidewalk, .curb: 8
    case .building: 11
    case .wall: 12
    case .fence: 13
    case .pole: 17
    case .trafficSign: 20
    case .vegetation: 21
    case .terrain: 22
    case .sky: 23
    case .person: 24
    case .rider: 25
    case .car: 26
    case .truck: 27
    case .bicycle: 33
    }
  }

  /// The Mapillary Vistas v1.2 id of each element (`mapillary-vistas-v1.2` class set).
  public static func mapillaryId(_ e: Element) -> UInt8 {
    switch e {
    case .void: 65
    case .ego: 64
    case .road: 13
    case .laneMarking: 24
    case .sidewalk: 15
    case .curb: 2
    case .building: 17
    case .wall: 6
    case .fence: 3
    case .pole: 45
    case .trafficSign: 50
    case .vegetation: 30
    case .terrain: 29
    case .sky: 27
    case .person: 19
    case .rider: 20
    case .car: 55
    case .truck: 61
    case .bicycle: 52
    }
  }

  /// Generates scene number `index` of a domain. The same `(seed, domain, index)` always gives
  /// the same scene, whatever order scenes are generated in.
  ///
  /// - Precondition: `width >= 16` and `height >= 16`.
  public static func scene(
    domain: Domain, index: Int, seed: UInt64, width: Int, height: Int
  ) -> Scene {
    precondition(width >= 16 && height >= 16, "scenes are at least 16x16")
    let domainSalt: UInt64 = domain == .source ? 0x5EED_0001 : 0x5EED_0002
    var rng = SeededGenerator(seed: seed ^ domainSalt &+ UInt64(index) &* 0x9E37_79B9)
    var canvas = Canvas(width: width, height: height)
    let isTarget = domain == .target
    drawLayout(&canvas, isTarget: isTarget, rng: &rng)
    let rgb = render(canvas, isTarget: isTarget, rng: &rng)
    let labels = canvas.elements.map { isTarget ? mapillaryId($0) : cityscapesLabelId($0) }
    return Scene(width: width, height: height, rgb: rgb, labels: labels, elements: canvas.elements)
  }

  // MARK: - Layout

  struct Canvas {
    let width: Int
    let height: Int
    var elements: [Element]
    /// A per-pixel object shade in [-1, 1], so that instances differ in colour.
    var shade: [Float]

    init(width: Int, height: Int) {
      self.width = width
      self.height = height
      elements = Array(repeating: .sky, count: width * height)
      shade = Array(repeating: 0, count: width * height)
    }

    mutating func fill(
      x0: Int, y0: Int, x1: Int, y1: Int, _ e: Element, shade s: Float = 0,
      where keep: ((Element) -> Bool)? = nil
    ) {
      let xa = max(0, x0)
      let xb = min(width, x1)
      let ya = max(0, y0)
      let yb = min(height, y1)
      guard xa < xb, ya < yb else { return }
      for y in ya..<yb {
        for x in xa..<xb {
          let i = y * width + x
          if let keep, !keep(elements[i]) { continue }
          elements[i] = e
          shade[i] = s
        }
      }
    }

    mutating func ellipse(cx: Float, cy: Float, rx: Float, ry: Float, _ e: Element, shade s: Float)
    {
      let x0 = Int((cx - rx).rounded(.down))
      let x1 = Int((cx + rx).rounded(.up))
      let y0 = Int((cy - ry).rounded(.down))
      let y1 = Int((cy + ry).rounded(.up))
      let ya = max(0, y0)
      let yb = min(height, y1 + 1)
      let xa = max(0, x0)
      let xb = min(width, x1 + 1)
      guard ya < yb, xa < xb else { return }
      for y in ya..<yb {
        for x in xa..<xb {
          let dx = (Float(x) + 0.5 - cx) / max(rx, 0.5)
          let dy = (Float(y) + 0.5 - cy) / max(ry, 0.5)
          if dx * dx + dy * dy <= 1 {
            elements[y * width + x] = e
            shade[y * width + x] = s
          }
        }
      }
    }
  }

  static func uniform(_ a: Float, _ b: Float, _ rng: inout SeededGenerator) -> Float {
    a + (b - a) * rng.nextUniform()
  }

  static func drawLayout(_ c: inout Canvas, isTarget: Bool, rng: inout SeededGenerator) {
    let w = Float(c.width)
    let h = Float(c.height)
    // Camera: the target camera sits higher (horizon lower in the frame) and sees wider.
    let horizon = Int(h * (isTarget ? uniform(0.40, 0.52, &rng) : uniform(0.34, 0.42, &rng)))
    let vanishX = w * uniform(0.4, 0.6, &rng)
    let roadHalfBottom = w * (isTarget ? uniform(0.45, 0.6, &rng) : uniform(0.3, 0.42, &rng))
    let sidewalkExtra = w * uniform(0.12, 0.22, &rng)

    // Ground plane: terrain by default, then sidewalk and road trapezoids.
    c.fill(x0: 0, y0: horizon, x1: c.width, y1: c.height, isTarget ? .terrain : .sidewalk)
    for y in horizon..<c.height {
      let t = Float(y - horizon + 1) / Float(c.height - horizon)
      let half = roadHalfBottom * t
      let side = half + sidewalkExtra * t
      let ri0 = Int(vanishX - half)
      let ri1 = Int(vanishX + half)
      c.fill(x0: Int(vanishX - side), y0: y, x1: Int(vanishX + side), y1: y + 1, .sidewalk)
      if isTarget {
        let curb = max(1, Int(2 * t))
        c.fill(x0: ri0 - curb, y0: y, x1: ri0, y1: y + 1, .curb)
        c.fill(x0: ri1, y0: y, x1: ri1 + curb, y1: y + 1, .curb)
      }
      c.fill(x0: ri0, y0: y, x1: ri1, y1: y + 1, .road)
      // Dashed centre line.
      if (y / 3) % 2 == 0 {
        let lw = max(1, Int(1.5 * t))
        c.fill(x0: Int(vanishX) - lw / 2, y0: y, x1: Int(vanishX) - lw / 2 + lw, y1: y + 1, .laneMarking)
      }
    }

    // Skyline: buildings (fewer in the target), walls and trees behind the sidewalks.
    var x = 0
    while x < c.width {
      let bw = Int(w * uniform(0.08, 0.22, &rng))
      let roll = rng.nextUniform()
      let top = horizon - Int(h * uniform(0.08, isTarget ? 0.3 : 0.38, &rng))
      let s = uniform(-1, 1, &rng)
      if roll < (isTarget ? 0.35 : 0.7) {
        c.fill(x0: x, y0: top, x1: x + bw, y1: horizon + 2, .building, shade: s, where: { $0 == .sky })
      } else if roll < (isTarget ? 0.85 : 0.9) {
        let r = Float(bw) * 0.6
        c.ellipse(cx: Float(x + bw / 2), cy: Float(horizon) - r * 0.5, rx: r, ry: r * 1.1, .vegetation, shade: s)
        c.fill(x0: x, y0: horizon - 2, x1: x + bw, y1: horizon + 1, .vegetation, shade: s, where: { $0 == .sky })
      } else if roll < 0.95 {
        c.fill(x0: x, y0: horizon - Int(h * 0.06), x1: x + bw, y1: horizon + 1, .wall, shade: s, where: { $0 == .sky })
      } else {
        c.fill(x0: x, y0: horizon - Int(h * 0.04), x1: x + bw, y1: horizon + 1, .fence, shade: s, where: { $0 == .sky })
      }
      x += bw
    }

    // Poles with signs on the sidewalks.
    let poleCount = Int(uniform(1, 4, &rng))
    for _ in 0..<poleCount {
      let left = rng.nextUniform() < 0.5
      let base = Int(uniform(Float(horizon) + (h - Float(horizon)) * 0.2, h * 0.95, &rng))
      let t = Float(base - horizon) / Float(c.height - horizon)
      let px = Int(vanishX + (left ? -1 : 1) * (roadHalfBottom * t + sidewalkExtra * t * 0.5))
      let ph = Int(h * 0.5 * t + 4)
      let pw = max(1, Int(2 * t))
      c.fill(x0: px, y0: base - ph, x1: px + pw, y1: base, .pole)
      if rng.nextUniform() < 0.7 {
        let sz = max(2, Int(6 * t))
        c.fill(x0: px - sz / 2, y0: base - ph - sz, x1: px - sz / 2 + sz + pw, y1: base - ph + 1, .trafficSign)
      }
    }

    // Vehicles on the road, sorted far to near so that nearer ones overdraw.
    let vehicleCount = Int(uniform(1, isTarget ? 4 : 5, &rng))
    var vehicles: [(y: Int, kind: Element, offset: Float, shade: Float)] = []
    for _ in 0..<vehicleCount {
      let r = rng.nextUniform()
      let kind: Element = r < (isTarget ? 0.3 : 0.08) ? .truck : .car
      let y = Int(uniform(Float(horizon) + 3, h * 0.98, &rng))
      vehicles.append((y, kind, uniform(-0.8, 0.8, &rng), uniform(-1, 1, &rng)))
    }
    for v in vehicles.sorted(by: { $0.y < $1.y }) {
      let t = Float(v.y - horizon) / Float(c.height - horizon)
      let cx = vanishX + v.offset * roadHalfBottom * t
      let vw = (v.kind == .truck ? 0.42 : 0.36) * roadHalfBottom * t + 3
      let vh = vw * (v.kind == .truck ? 0.9 : 0.55)
      c.fill(x0: Int(cx - vw / 2), y0: Int(Float(v.y) - vh), x1: Int(cx + vw / 2), y1: v.y, v.kind, shade: v.shade)
    }

    // People (and bicycles with riders, more often in the target) on the sidewalks.
    let personCount = Int(uniform(0, 4, &rng))
    for _ in 0..<personCount {
      let left = rng.nextUniform() < 0.5
      let y = Int(uniform(Float(horizon) + 4, h * 0.97, &rng))
      let t = Float(y - horizon) / Float(c.height - horizon)
      let cx = vanishX + (left ? -1 : 1) * (roadHalfBottom * t + sidewalkExtra * t * 0.5)
      let ph = h * 0.35 * t + 3
      let s = uniform(-1, 1, &rng)
      if rng.nextUniform() < (isTarget ? 0.4 : 0.1) {
        c.ellipse(cx: cx, cy: Float(y) - ph * 0.2, rx: ph * 0.35, ry: ph * 0.2, .bicycle, shade: s)
        c.ellipse(cx: cx, cy: Float(y) - ph * 0.65, rx: ph * 0.12, ry: ph * 0.3, .rider, shade: s)
      } else {
        c.ellipse(cx: cx, cy: Float(y) - ph / 2, rx: ph * 0.14, ry: ph / 2, .person, shade: s)
      }
    }

    // The ego vehicle's bonnet at the bottom of source frames; unlabeled border in target frames.
    if !isTarget {
      let eh = max(2, c.height / 16)
      c.fill(x0: 0, y0: c.height - eh, x1: c.width, y1: c.height, .ego)
    } else {
      c.fill(x0: 0, y0: 0, x1: c.width, y1: 1, .void)
    }
  }

  // MARK: - Rendering

  /// Base colour of an element in daylight.
  static func baseColor(_ e: Element) -> (Float, Float, Float) {
    switch e {
    case .void: (0.05, 0.05, 0.05)
    case .ego: (0.15, 0.15, 0.18)
    case .road: (0.42, 0.40, 0.42)
    case .laneMarking: (0.92, 0.92, 0.88)
    case .sidewalk: (0.66, 0.60, 0.62)
    case .curb: (0.75, 0.75, 0.72)
    case .building: (0.55, 0.45, 0.38)
    case .wall: (0.62, 0.58, 0.50)
    case .fence: (0.55, 0.50, 0.42)
    case .pole: (0.30, 0.30, 0.32)
    case .trafficSign: (0.90, 0.80, 0.10)
    case .vegetation: (0.25, 0.50, 0.15)
    case .terrain: (0.50, 0.62, 0.30)
    case .sky: (0.55, 0.72, 0.92)
    case .person: (0.75, 0.20, 0.25)
    case .rider: (0.85, 0.35, 0.15)
    case .car: (0.15, 0.20, 0.60)
    case .truck: (0.20, 0.40, 0.45)
    case .bicycle: (0.55, 0.10, 0.20)
    }
  }

  static func render(_ c: Canvas, isTarget: Bool, rng: inout SeededGenerator) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: c.width * c.height * 3)
    // Per-image lighting: the target is dusk (darker, bluish, lower contrast), the source varies
    // only a little.
    let gain = isTarget ? uniform(0.35, 0.6, &rng) : uniform(0.85, 1.1, &rng)
    let tint: (Float, Float, Float) = isTarget ? (0.85, 0.9, 1.25) : (1.0, 1.0, 0.97)
    let noise: Float = isTarget ? 0.06 : 0.03
    let lift: Float = isTarget ? 0.05 : 0
    for y in 0..<c.height {
      for x in 0..<c.width {
        let i = y * c.width + x
        let e = c.elements[i]
        var (r, g, b) = baseColor(e)
        let s = c.shade[i] * 0.12
        r += s
        g += s
        b += s
        if e == .sky {
          // A vertical gradient, brighter at the horizon.
          let v = Float(y) / Float(c.height)
          r += 0.2 * v
          g += 0.1 * v
        }
        if e == .building, (x / 3 + y / 4) % 3 == 0 {
          // Windows.
          r *= 0.6
          g *= 0.65
          b *= 0.8
        }
        let n = noise * rng.nextNormal()
        let channels = [(r * tint.0 + n) * gain + lift, (g * tint.1 + n) * gain + lift,
                        (b * tint.2 + n) * gain + lift]
        for k in 0..<3 {
          out[i * 3 + k] = UInt8(max(0, min(255, (channels[k] * 255).rounded())))
        }
      }
    }
    return out
  }
}
