/// A 3-D volume: a ``Geometry`` and one value per voxel, x fastest (`(z * ny + y) * nx + x`).
///
/// Images use `Volume<Float>` (intensities after NIfTI scaling), label maps `Volume<UInt8>`
/// (class ids). The storage order is the file's: use ``Reorientation`` for an anatomical order.
public struct Volume<Voxel: Sendable & Equatable>: Sendable, Equatable {
  /// Shape, spacing and affine.
  public var geometry: Geometry
  /// The voxels, x fastest; `voxels.count == geometry.voxelCount`.
  public var voxels: [Voxel]

  /// Creates a volume.
  ///
  /// - Precondition: `voxels.count == geometry.voxelCount`.
  public init(geometry: Geometry, voxels: [Voxel]) {
    precondition(
      voxels.count == geometry.voxelCount,
      "\(voxels.count) voxels do not fill shape \(geometry.shape)")
    self.geometry = geometry
    self.voxels = voxels
  }

  /// Voxels along each storage axis `(x, y, z)`.
  public var shape: [Int] { geometry.shape }
  /// Voxel size in millimetres along each storage axis.
  public var spacing: [Double] { geometry.spacing }
  /// Voxel index to RAS+ millimetres.
  public var affine: Affine { geometry.affine }

  /// The voxel at storage index `(x, y, z)`.
  public subscript(x: Int, y: Int, z: Int) -> Voxel {
    get { voxels[(z * shape[1] + y) * shape[0] + x] }
    set { voxels[(z * shape[1] + y) * shape[0] + x] = newValue }
  }
}

/// An intensity volume.
public typealias ImageVolume = Volume<Float>
/// A label volume (class ids).
public typealias LabelVolume = Volume<UInt8>
