/// Resampling along one storage axis (e.g. the slice axis of thick CT slices).
///
/// The new grid starts at the first slice and steps by `spacing` millimetres, with
/// `m = floor((n - 1) * old / new) + 1` slices, so it never extrapolates. Images are interpolated
/// linearly, labels take the nearest slice. ``restoreAxis(_:axis:count:spacing:)`` brings
/// predictions back to the original grid (nearest resampled slice of each original slice).
public enum Resampling {
  /// The number of slices after resampling `count` slices from `from` to `to` millimetres.
  public static func resampledCount(_ count: Int, from: Double, to: Double) -> Int {
    precondition(from > 0 && to > 0 && count > 0, "spacings and counts must be positive")
    return Int(((Double(count - 1) * from / to) + 1e-9).rounded(.down)) + 1
  }

  /// Calls `body(out, a, b, weight)` for every new slice: new = (1-weight)*a + weight*b.
  static func plan(count: Int, from: Double, to: Double) -> [(Int, Int, Double)] {
    let m = resampledCount(count, from: from, to: to)
    return (0..<m).map { j in
      let p = Double(j) * to / from
      let a = min(Int(p.rounded(.down)), count - 1)
      let b = min(a + 1, count - 1)
      return (a, b, p - Double(a))
    }
  }

  /// Copies whole slices along `axis`: `out slice j = source slice pick[j]` or a blend.
  static func gather<T>(
    _ values: [T], shape: [Int], axis: Int, newCount: Int, _ body: (Int, Int, Int) -> T
  ) -> [T] {
    // Index = (outer * n + i) * inner + rest, with `inner` the product of faster axes.
    let inner = shape[..<axis].reduce(1, *)
    let outer = shape[(axis + 1)...].reduce(1, *)
    let n = shape[axis]
    var out: [T] = []
    out.reserveCapacity(inner * outer * newCount)
    for o in 0..<outer {
      for j in 0..<newCount {
        for r in 0..<inner { out.append(body(j, (o * n) * inner + r, inner)) }
      }
    }
    return out
  }

  static func resampledGeometry(_ g: Geometry, axis: Int, spacing: Double, count: Int) -> Geometry {
    var affine = g.affine
    let factor = spacing / g.spacing[axis]
    for r in 0..<3 { affine[r, axis] *= factor }
    var shape = g.shape
    shape[axis] = count
    var out = g.derived(shape: shape, affine: affine)
    out.spacing = g.spacing
    out.spacing[axis] = spacing
    return out
  }

  /// An image resampled linearly along `axis` to `spacing` millimetres.
  public static func resample(_ volume: Volume<Float>, axis: Int, spacing: Double) -> Volume<Float>
  {
    resampled(volume, axis: axis, spacing: spacing) { a, b, w in
      Float((1 - w) * Double(a) + w * Double(b))
    }
  }

  /// A label map resampled along `axis` to `spacing` millimetres by nearest slice.
  public static func resample(_ volume: Volume<UInt8>, axis: Int, spacing: Double) -> Volume<UInt8>
  {
    resampled(volume, axis: axis, spacing: spacing) { a, b, w in w < 0.5 ? a : b }
  }

  /// `volume` resampled along `axis` to `spacing` millimetres: each new value from the two
  /// nearest original slices, `interpolate(a, b, w)` with `w` the weight of `b`.
  static func resampled<T>(
    _ volume: Volume<T>, axis: Int, spacing: Double, interpolate: (T, T, Double) -> T
  ) -> Volume<T> {
    let plan = plan(count: volume.shape[axis], from: volume.spacing[axis], to: spacing)
    let v = volume.voxels
    let values = gather(v, shape: volume.shape, axis: axis, newCount: plan.count) {
      j, base, inner in
      let (a, b, w) = plan[j]
      return interpolate(v[base + a * inner], v[base + b * inner], w)
    }
    return Volume(
      geometry: resampledGeometry(volume.geometry, axis: axis, spacing: spacing, count: plan.count),
      voxels: values)
  }

  /// Values on a resampled grid (`channels` per voxel, x fastest) brought back to the original
  /// `count` slices of `spacing` mm: original slice i takes resampled slice
  /// `round(i * spacing / resampledSpacing)`.
  public static func restoreAxis<T>(
    _ values: [T], shape: [Int], channels: Int = 1, axis: Int, count: Int, spacing: Double,
    resampledSpacing: Double
  ) -> [T] {
    let inner = shape[..<axis].reduce(1, *) * channels
    let outer = shape[(axis + 1)...].reduce(1, *)
    let m = shape[axis]
    precondition(values.count == inner * outer * m, "wrong value count")
    var out: [T] = []
    out.reserveCapacity(inner * outer * count)
    for o in 0..<outer {
      for i in 0..<count {
        let j = min(Int((Double(i) * spacing / resampledSpacing).rounded()), m - 1)
        let base = (o * m + j) * inner
        out.append(contentsOf: values[base..<(base + inner)])
      }
    }
    return out
  }
}
