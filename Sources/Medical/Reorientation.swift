/// The permutation and flips that bring a volume to the canonical RAS storage order and back.
///
/// Canonical axis 0 runs towards the patient's Right, axis 1 towards Anterior, axis 2 towards
/// Superior (nibabel's `as_closest_canonical`). The storage axes are matched to world axes with
/// ``Affine/orientation``, so an LPS volume and a RAS volume of the same body give the same
/// canonical voxel order, up to their different fields of view.
public struct Reorientation: Sendable, Equatable {
  /// The storage shape of the original volume.
  public let sourceShape: [Int]
  /// For each canonical axis (R, A, S), the storage axis of the original volume.
  public let sourceAxis: [Int]
  /// For each canonical axis, whether it runs against the original storage axis.
  public let isFlipped: [Bool]

  /// Computes the reorientation of a geometry from its affine.
  public init(_ geometry: Geometry) {
    sourceShape = geometry.shape
    var axis = [0, 1, 2]
    var flipped = [false, false, false]
    for (storage, o) in geometry.affine.orientation.enumerated() {
      axis[o.worldAxis] = storage
      flipped[o.worldAxis] = !o.isPositive
    }
    sourceAxis = axis
    isFlipped = flipped
  }

  /// The shape in canonical order.
  public var canonicalShape: [Int] { sourceAxis.map { sourceShape[$0] } }

  /// Whether the volume is already in canonical order (nothing to do).
  public var isIdentity: Bool { sourceAxis == [0, 1, 2] && isFlipped == [false, false, false] }

  /// The geometry of the canonical volume: the affine composed with the canonical-to-source map.
  public func canonicalGeometry(of geometry: Geometry) -> Geometry {
    if isIdentity { return geometry }
    // t maps a canonical index to a source index: s[sourceAxis[j]] = flip ? n_j - 1 - c_j : c_j.
    var t = Affine(matrix: [Double](repeating: 0, count: 16))
    t[3, 3] = 1
    for j in 0..<3 {
      let s = sourceAxis[j]
      t[s, j] = isFlipped[j] ? -1 : 1
      t[s, 3] = isFlipped[j] ? Double(sourceShape[s] - 1) : 0
    }
    var g = geometry.derived(shape: canonicalShape, affine: geometry.affine.multiplied(by: t))
    g.spacing = sourceAxis.map { geometry.spacing[$0] }
    return g
  }

  /// For each canonical axis, the step in source memory and the source offset of canonical (0,0,0).
  private func walk() -> (start: Int, steps: [Int]) {
    let strides = [1, sourceShape[0], sourceShape[0] * sourceShape[1]]
    var start = 0
    var steps = [0, 0, 0]
    for j in 0..<3 {
      let s = sourceAxis[j]
      steps[j] = isFlipped[j] ? -strides[s] : strides[s]
      if isFlipped[j] { start += (sourceShape[s] - 1) * strides[s] }
    }
    return (start, steps)
  }

  /// Source voxels (storage order) rearranged in canonical order, `channels` values per voxel.
  ///
  /// - Precondition: `values.count == channels * sourceShape.reduce(1, *)`.
  public func toCanonical<T>(_ values: [T], channels: Int = 1) -> [T] {
    precondition(values.count == channels * sourceShape.reduce(1, *), "wrong voxel count")
    if isIdentity { return values }
    let (start, steps) = walk()
    let n = canonicalShape
    var out: [T] = []
    out.reserveCapacity(values.count)
    for z in 0..<n[2] {
      for y in 0..<n[1] {
        var s = start + z * steps[2] + y * steps[1]
        for _ in 0..<n[0] {
          for c in 0..<channels { out.append(values[s * channels + c]) }
          s += steps[0]
        }
      }
    }
    return out
  }

  /// Canonical voxels put back in the original storage order (the inverse of
  /// ``toCanonical(_:channels:)``).
  ///
  /// - Precondition: `values.count == channels * sourceShape.reduce(1, *)`.
  public func fromCanonical<T>(_ values: [T], channels: Int = 1) -> [T] {
    precondition(values.count == channels * sourceShape.reduce(1, *), "wrong voxel count")
    if isIdentity { return values }
    let (start, steps) = walk()
    let n = canonicalShape
    var out = values
    var i = 0
    for z in 0..<n[2] {
      for y in 0..<n[1] {
        var s = start + z * steps[2] + y * steps[1]
        for _ in 0..<n[0] {
          for c in 0..<channels { out[s * channels + c] = values[i * channels + c] }
          i += 1
          s += steps[0]
        }
      }
    }
    return out
  }

  /// The volume in canonical (RAS) order with its canonical geometry.
  ///
  /// - Precondition: `volume.shape == sourceShape`.
  public func canonical<T>(_ volume: Volume<T>) -> Volume<T> {
    precondition(volume.shape == sourceShape, "volume shape differs from the reorientation's")
    return Volume(
      geometry: canonicalGeometry(of: volume.geometry), voxels: toCanonical(volume.voxels))
  }
}

extension Volume {
  /// The volume in canonical RAS storage order (see ``Reorientation``).
  public func canonical() -> Volume<Voxel> { Reorientation(geometry).canonical(self) }
}
