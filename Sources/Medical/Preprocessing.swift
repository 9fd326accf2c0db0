/// How raw intensities are mapped to `[0, 1]` before slicing.
public enum IntensityWindow: Sendable, Equatable {
  /// Clip to `lower...upper` and scale linearly to `[0, 1]` (for CT in Hounsfield units).
  case fixed(lower: Float, upper: Float)
  /// Clip to the `lower` and `upper` percentiles of the volume (in percent, e.g. 0.5 and 99.5,
  /// linear interpolation between order statistics as numpy's default) and scale to `[0, 1]`
  /// (for MRI, whose intensities have no absolute scale).
  case percentiles(lower: Double, upper: Double)

  /// The abdominal CT window of RSTN (Yu et al., CVPR 2018): −100 to 240 HU.
  public static let ct = IntensityWindow.fixed(lower: -100, upper: 240)
  /// MRI: the 0.5th to 99.5th percentile of each volume.
  public static let mri = IntensityWindow.percentiles(lower: 0.5, upper: 99.5)

  /// The intensity bounds this window maps to 0 and 1 for `values`.
  public func bounds(for values: [Float]) -> (lower: Float, upper: Float) {
    switch self {
    case .fixed(let lower, let upper): return (lower, upper)
    case .percentiles(let lower, let upper):
      precondition(0 <= lower && lower <= upper && upper <= 100, "percentiles out of 0...100")
      let sorted = values.filter { !$0.isNaN }.sorted()
      return (percentile(sorted, lower), percentile(sorted, upper))
    }
  }

  /// `values` clipped to the window and scaled to `[0, 1]`; NaN becomes 0, and a window of zero
  /// width (a constant volume) maps everything to 0.
  public func apply(to values: [Float]) -> [Float] {
    let (lower, upper) = bounds(for: values)
    let width = upper - lower
    guard width > 0 else { return [Float](repeating: 0, count: values.count) }
    return values.map { v in v.isNaN ? 0 : (min(max(v, lower), upper) - lower) / width }
  }
}

/// The `q`-th percentile (0...100) of sorted values, interpolating linearly between order
/// statistics (numpy's default "linear" method); 0 for an empty array.
func percentile(_ sorted: [Float], _ q: Double) -> Float {
  guard !sorted.isEmpty else { return 0 }
  let position = q / 100 * Double(sorted.count - 1)
  let below = Int(position.rounded(.down))
  let above = min(below + 1, sorted.count - 1)
  let t = position - Double(below)
  return Float((1 - t) * Double(sorted[below]) + t * Double(sorted[above]))
}

extension Volume where Voxel == Float {
  /// The volume with ``IntensityWindow`` applied: intensities in `[0, 1]`.
  public func windowed(_ window: IntensityWindow) -> Volume<Float> {
    Volume(geometry: geometry, voxels: window.apply(to: voxels))
  }
}
