import Tensor

/// The three anatomical planes a volume is cut along.
///
/// Slices are taken in canonical RAS order (see ``Reorientation``), so "axial" means the same
/// anatomical plane whatever the file's storage order. Each slice is shown the radiological way:
/// - axial (constant S): rows from anterior to posterior, columns from patient right to left;
/// - coronal (constant A): rows from superior to inferior, columns from patient right to left;
/// - sagittal (constant R): rows from superior to inferior, columns from anterior to posterior.
public enum AnatomicalView: String, Sendable, Equatable, CaseIterable {
  case axial, coronal, sagittal

  /// The canonical axis that is constant on a slice (0 = R, 1 = A, 2 = S).
  public var sliceAxis: Int {
    switch self {
    case .axial: 2
    case .coronal: 1
    case .sagittal: 0
    }
  }

  /// The canonical axes along slice rows and columns (both traversed from their positive end).
  var planeAxes: (row: Int, column: Int) {
    switch self {
    case .axial: (1, 0)
    case .coronal: (2, 0)
    case .sagittal: (2, 1)
    }
  }
}

/// A batch of 2-D slices: what a 2-D segmentation network consumes.
public struct SliceBatch: Sendable, Equatable {
  /// NHWC `[n, h, w, 2 * neighbours + 1]`: channel `k` holds slice `index - neighbours + k`,
  /// clamped at the volume's ends.
  public var images: Tensor
  /// `n * h * w` class ids in the same order as the images (empty when there are no labels).
  public var labels: [UInt8]
  /// The slice indices along the view's slice axis.
  public var indices: [Int]
}

/// Cuts one case (an image and optionally its label map) into slices along the three views, and
/// stacks per-slice predictions back into a volume on the original grid and storage order.
///
/// With `sliceSpacing`, each view's slice axis is first resampled to that spacing (linear for the
/// image, nearest for labels); ``assemble(_:view:)`` undoes it with nearest-slice lookup.
public struct CaseSlicer: Sendable {
  /// The reorientation from the file's storage order to canonical RAS.
  public let reorientation: Reorientation
  /// The original geometry (predictions are returned on it).
  public let geometry: Geometry
  /// The canonical image per view (resampled along the view's slice axis if asked).
  let images: [Volume<Float>]
  let labels: [Volume<UInt8>]?
  /// The canonical spacing, before resampling.
  let canonicalSpacing: [Double]
  let canonicalShape: [Int]
  /// The slice spacing after resampling, or `nil`.
  public let sliceSpacing: Double?

  /// Prepares the slices of `image` (and `labels`, on the same grid).
  ///
  /// - Parameters:
  ///   - sliceSpacing: resample each view's slice axis to this many millimetres, or keep it.
  /// - Precondition: `labels` has the image's shape; `sliceSpacing` is positive.
  public init(image: Volume<Float>, labels: Volume<UInt8>? = nil, sliceSpacing: Double? = nil) {
    if let labels {
      precondition(labels.shape == image.shape, "labels \(labels.shape) vs image \(image.shape)")
    }
    precondition(sliceSpacing.map { $0 > 0 } ?? true, "slice spacing must be positive")
    let r = Reorientation(image.geometry)
    reorientation = r
    geometry = image.geometry
    self.sliceSpacing = sliceSpacing
    let canonicalImage = r.canonical(image)
    let canonicalLabels = labels.map {
      r.canonical(Volume(geometry: image.geometry, voxels: $0.voxels))
    }
    canonicalSpacing = canonicalImage.spacing
    canonicalShape = canonicalImage.shape
    if let spacing = sliceSpacing {
      images = AnatomicalView.allCases.map {
        Resampling.resample(canonicalImage, axis: $0.sliceAxis, spacing: spacing)
      }
      self.labels = canonicalLabels.map { l in
        AnatomicalView.allCases.map { Resampling.resample(l, axis: $0.sliceAxis, spacing: spacing) }
      }
    } else {
      images = [canonicalImage, canonicalImage, canonicalImage]
      self.labels = canonicalLabels.map { [$0, $0, $0] }
    }
  }

  private func index(_ view: AnatomicalView) -> Int {
    AnatomicalView.allCases.firstIndex(of: view) ?? 0
  }

  /// The number of slices along `view` (after resampling).
  public func sliceCount(_ view: AnatomicalView) -> Int {
    images[index(view)].shape[view.sliceAxis]
  }

  /// The height and width of a slice along `view`.
  public func sliceSize(_ view: AnatomicalView) -> (height: Int, width: Int) {
    let shape = images[index(view)].shape
    let (row, column) = view.planeAxes
    return (shape[row], shape[column])
  }

  /// Canonical (possibly resampled) voxel offset of slice pixel `(row, column)` of slice `s`.
  private func offsets(_ view: AnatomicalView) -> (Int, Int, Int, [Int]) {
    let shape = images[index(view)].shape
    let strides = [1, shape[0], shape[0] * shape[1]]
    let (row, column) = view.planeAxes
    return (strides[view.sliceAxis], strides[row], strides[column], shape)
  }

  /// Slices `indices` along `view`, each with `neighbours` slices on either side as channels.
  ///
  /// - Returns: images `[indices.count, h, w, 2 * neighbours + 1]` and their labels (empty
  ///   without a label map).
  /// - Precondition: every index is in `0..<sliceCount(view)`; `neighbours >= 0`.
  public func batch(_ view: AnatomicalView, indices: [Int]? = nil, neighbours: Int = 1)
    -> SliceBatch
  {
    precondition(neighbours >= 0, "neighbours must be non-negative")
    let count = sliceCount(view)
    let chosen = indices ?? Array(0..<count)
    precondition(chosen.allSatisfy { $0 >= 0 && $0 < count }, "slice index out of range")
    let (h, w) = sliceSize(view)
    let channels = 2 * neighbours + 1
    let (sliceStride, rowStride, columnStride, shape) = offsets(view)
    let (rowAxis, columnAxis) = view.planeAxes
    // Rows and columns run from the positive end: start at the last index along each axis.
    let origin = (shape[rowAxis] - 1) * rowStride + (shape[columnAxis] - 1) * columnStride
    let volume = images[index(view)].voxels
    let labelVolume = labels?[index(view)].voxels
    var scalars = [Float](repeating: 0, count: chosen.count * h * w * channels)
    var labelOut: [UInt8] = []
    labelOut.reserveCapacity(labelVolume == nil ? 0 : chosen.count * h * w)
    for (n, s) in chosen.enumerated() {
      for k in 0..<channels {
        let neighbour = min(max(s - neighbours + k, 0), count - 1)
        let plane = origin + neighbour * sliceStride
        for y in 0..<h {
          let rowBase = plane - y * rowStride
          let outBase = ((n * h + y) * w) * channels + k
          for x in 0..<w { scalars[outBase + x * channels] = volume[rowBase - x * columnStride] }
        }
      }
      if let labelVolume {
        let plane = origin + s * sliceStride
        for y in 0..<h {
          for x in 0..<w { labelOut.append(labelVolume[plane - y * rowStride - x * columnStride]) }
        }
      }
    }
    return SliceBatch(
      images: Tensor(shape: [chosen.count, h, w, channels], scalars: scalars), labels: labelOut,
      indices: chosen)
  }

  /// Stacks per-slice values of every slice along `view` back into a volume in the original
  /// storage order and grid: `channels` values per pixel, slice-major like
  /// ``batch(_:indices:neighbours:)``.
  ///
  /// - Precondition: `values.count == sliceCount(view) * h * w * channels`.
  public func assemble<T>(_ values: [T], view: AnatomicalView, channels: Int = 1) -> [T] {
    let (h, w) = sliceSize(view)
    let count = sliceCount(view)
    precondition(values.count == count * h * w * channels, "need \(count) slices of \(h)x\(w)")
    let (sliceStride, rowStride, columnStride, shape) = offsets(view)
    let (rowAxis, columnAxis) = view.planeAxes
    let origin = (shape[rowAxis] - 1) * rowStride + (shape[columnAxis] - 1) * columnStride
    var canonical = values
    var i = 0
    for s in 0..<count {
      for y in 0..<h {
        for x in 0..<w {
          let v = origin + s * sliceStride - y * rowStride - x * columnStride
          for c in 0..<channels { canonical[v * channels + c] = values[i * channels + c] }
          i += 1
        }
      }
    }
    if let spacing = sliceSpacing {
      let axis = view.sliceAxis
      canonical = Resampling.restoreAxis(
        canonical, shape: shape, channels: channels, axis: axis, count: canonicalShape[axis],
        spacing: canonicalSpacing[axis], resampledSpacing: spacing)
    }
    return reorientation.fromCanonical(canonical, channels: channels)
  }

  /// Per-slice predicted labels of every slice along `view`, as a label volume on the original
  /// grid and geometry (ready for ``NIfTI/write(_:to:)-(Volume<UInt8>,_)``).
  public func assemble(_ labels: [UInt8], view: AnatomicalView) -> Volume<UInt8> {
    Volume(geometry: geometry, voxels: assemble(labels, view: view, channels: 1))
  }
}

/// Fusing the label volumes predicted along the three views.
public enum ViewFusion {
  /// The per-voxel majority of three views.
  ///
  /// Tie rule: when all three views disagree, the axial view's label wins.
  /// - Precondition: the three arrays have the same count.
  public static func majorityVote(axial: [UInt8], coronal: [UInt8], sagittal: [UInt8]) -> [UInt8] {
    precondition(axial.count == coronal.count && axial.count == sagittal.count, "counts differ")
    var out = axial
    for i in axial.indices where axial[i] != coronal[i] && coronal[i] == sagittal[i] {
      out[i] = coronal[i]
    }
    return out
  }

  /// The per-voxel majority of three views, breaking ties with probabilities.
  ///
  /// Tie rule: when all three views disagree, the class with the highest probability summed over
  /// the three views wins (over all `classCount` classes; the lowest class id on equal sums).
  /// - Parameters:
  ///   - probabilities: per view (axial, coronal, sagittal), voxel-major
  ///     `[voxel * classCount + c]`.
  /// - Precondition: counts agree.
  public static func majorityVote(
    axial: [UInt8], coronal: [UInt8], sagittal: [UInt8], probabilities: [[Float]], classCount: Int
  ) -> [UInt8] {
    precondition(probabilities.count == 3, "one probability array per view")
    precondition(probabilities.allSatisfy { $0.count == axial.count * classCount }, "counts differ")
    var out = majorityVote(axial: axial, coronal: coronal, sagittal: sagittal)
    for i in axial.indices
    where axial[i] != coronal[i] && coronal[i] != sagittal[i]
      && axial[i] != sagittal[i]
    {
      var best = 0
      var bestSum = -Float.infinity
      for c in 0..<classCount {
        let sum =
          probabilities[0][i * classCount + c] + probabilities[1][i * classCount + c]
          + probabilities[2][i * classCount + c]
        if sum > bestSum {
          best = c
          bestSum = sum
        }
      }
      out[i] = UInt8(best)
    }
    return out
  }
}
