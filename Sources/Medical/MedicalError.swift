/// Everything that can go wrong while reading or writing medical volumes and datasets.
///
/// Every case names the file (or dataset entry) and the offending value, so that a message printed
/// by the CLI is enough to find the problem.
public enum MedicalError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The file could not be read or written (`reason` comes from the system).
  case unreadableFile(path: String, reason: String)
  /// zlib refused the gzip stream, or compression failed.
  case compression(path: String, reason: String)
  /// `sizeof_hdr` is neither 348 little- nor big-endian (or the file is shorter than a header).
  case badHeaderSize(path: String, value: Int)
  /// The file (or its inflated gzip stream) ends before the 348 bytes of a NIfTI-1 header.
  case truncatedHeader(path: String, size: Int)
  /// The magic string is not `n+1` (single-file NIfTI-1).
  case badMagic(path: String, magic: String)
  /// `dim[0]` is outside `1...7`.
  case badDimensionCount(path: String, value: Int)
  /// A dimension is not positive, the volume is absurdly large, or it is not 3-D
  /// (dimensions past the third must be 1).
  case badDimensions(path: String, dimensions: [Int])
  /// The NIfTI `datatype` code is not one that this reader supports.
  case unsupportedDatatype(path: String, code: Int)
  /// `vox_offset` is before the end of the header or beyond the end of the file.
  case badVoxelOffset(path: String, offset: Double, fileSize: Int)
  /// `pixdim[axis]` (a voxel spacing) is zero or not finite.
  case badSpacing(path: String, axis: Int, value: Double)
  /// A voxel of an image is NaN or infinite (after scaling).
  case nonFiniteVoxel(path: String, voxel: [Int], value: String)
  /// The file ends before all voxels were read.
  case truncatedData(path: String, expectedBytes: Int, availableBytes: Int)
  /// A voxel of a label volume is not an integer in `0...255`.
  case notALabelVolume(path: String, value: Double)
  /// A label value is not one of the classes being scored (`0..<classCount`, or the entries
  /// of a lookup table).
  case labelOutsideClasses(path: String, value: Int, voxel: [Int], accepted: String)
  /// A folder that should hold volumes holds no `.nii`/`.nii.gz` file.
  case noVolumes(folder: String)
  /// A volume is thinner along some axis than the networks accept.
  case volumeTooSmall(path: String, shape: [Int], minimum: Int, networks: String)
  /// `dataset.json` (or another descriptor) could not be decoded.
  case badDatasetDescription(path: String, reason: String)
  /// A file named by a dataset is missing.
  case missingFile(path: String, referencedBy: String)
  /// An image has no label with the same file name (or the reverse).
  case unmatchedPair(name: String, folder: String)
  /// An image and its label map do not have the same shape.
  case shapeMismatch(image: String, label: String, imageShape: [Int], labelShape: [Int])

  public var description: String {
    switch self {
    case .unreadableFile(let path, let reason): "\(path): cannot access file (\(reason))"
    case .compression(let path, let reason): "\(path): gzip error (\(reason))"
    case .badHeaderSize(let path, let value):
      "\(path): not a NIfTI-1 file (sizeof_hdr is \(value), expected 348)"
    case .truncatedHeader(let path, let size):
      "\(path): truncated NIfTI-1 file: \(size) bytes"
        + (size == 0 ? " (empty)" : "") + ", shorter than the 348-byte header"
    case .badMagic(let path, let magic):
      "\(path): unsupported NIfTI magic '\(magic)' (expected 'n+1', single-file NIfTI-1)"
    case .badDimensionCount(let path, let value): "\(path): dim[0] is \(value), expected 1...7"
    case .badDimensions(let path, let dimensions):
      "\(path): unsupported dimensions \(dimensions) (need a 3-D volume of positive size, "
        + "at most \(NIfTI.maxVoxels) voxels)"
    case .unsupportedDatatype(let path, let code): "\(path): unsupported NIfTI datatype \(code)"
    case .badVoxelOffset(let path, let offset, let fileSize):
      "\(path): vox_offset \(offset) is outside the file (\(fileSize) bytes; expected 348 or more "
        + "and at most the file size: a truncated file?)"
    case .badSpacing(let path, let axis, let value):
      "\(path): pixdim[\(axis)] (voxel spacing) is \(value); expected a finite number other than 0"
    case .nonFiniteVoxel(let path, let voxel, let value):
      "\(path): voxel \(voxel) is \(value); images must have finite values"
    case .truncatedData(let path, let expected, let available):
      "\(path): truncated voxel data (\(expected) bytes expected, \(available) available)"
    case .notALabelVolume(let path, let value):
      "\(path): label voxel \(value) is not an integer in 0...255"
    case .labelOutsideClasses(let path, let value, let voxel, let accepted):
      "\(path): label value \(value) at voxel \(voxel) is not a class being scored "
        + "(accepted: \(accepted))"
    case .noVolumes(let folder): "\(folder): no .nii or .nii.gz volumes in the folder"
    case .volumeTooSmall(let path, let shape, let minimum, let networks):
      "\(path): volume of shape \(shape) is too thin for \(networks), which need at least "
        + "\(minimum) voxels along every axis"
    case .badDatasetDescription(let path, let reason):
      "\(path): bad dataset description (\(reason))"
    case .missingFile(let path, let referencedBy): "\(referencedBy): file \(path) does not exist"
    case .unmatchedPair(let name, let folder): "\(folder): no file named \(name) to pair with"
    case .shapeMismatch(let image, let label, let imageShape, let labelShape):
      "\(label): label shape \(labelShape) differs from image \(image) shape \(imageShape)"
    }
  }
}
