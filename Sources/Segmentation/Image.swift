import Taxonomy

/// An 8-bit RGB image, packed row-major: the red, green and blue bytes of pixel `(x, y)` sit at
/// `3 * (y * width + x) + 0...2`.
public struct RGBImage: Sendable, Equatable {
  /// The width in pixels.
  public var width: Int
  /// The height in pixels.
  public var height: Int
  /// `3 * width * height` bytes, RGB interleaved, rows top to bottom.
  public var pixels: [UInt8]

  /// Creates an image from packed RGB bytes.
  ///
  /// - Precondition: `pixels.count == 3 * width * height`.
  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(width >= 0 && height >= 0, "negative image size \(width)x\(height)")
    precondition(
      pixels.count == 3 * width * height, "\(pixels.count) bytes for \(width)x\(height) RGB")
    self.width = width
    self.height = height
    self.pixels = pixels
  }

  /// Creates an image filled with one colour.
  public init(width: Int, height: Int, red: UInt8, green: UInt8, blue: UInt8) {
    var pixels = [UInt8](repeating: 0, count: 3 * width * height)
    for i in 0..<(width * height) {
      pixels[3 * i] = red
      pixels[3 * i + 1] = green
      pixels[3 * i + 2] = blue
    }
    self.init(width: width, height: height, pixels: pixels)
  }
}

/// A single-channel 8-bit image: a label map (class ids, palette indices) or a grayscale picture.
public struct LabelImage: Sendable, Equatable {
  /// The width in pixels.
  public var width: Int
  /// The height in pixels.
  public var height: Int
  /// `width * height` values, row-major.
  public var values: [UInt8]

  /// Creates a label image from row-major values.
  ///
  /// - Precondition: `values.count == width * height`.
  public init(width: Int, height: Int, values: [UInt8]) {
    precondition(width >= 0 && height >= 0, "negative image size \(width)x\(height)")
    precondition(values.count == width * height, "\(values.count) values for \(width)x\(height)")
    self.width = width
    self.height = height
    self.values = values
  }

  /// Returns the values passed through a 256-entry lookup table (`table[value]`).
  ///
  /// - Precondition: `table.count == 256`.
  public func mapped(through table: [UInt8]) -> LabelImage {
    precondition(table.count == 256, "a label lookup table has 256 entries, not \(table.count)")
    return LabelImage(width: width, height: height, values: values.map { table[Int($0)] })
  }
}

/// A single-channel 16-bit image (e.g. Cityscapes `*_instanceIds.png`).
public struct Gray16Image: Sendable, Equatable {
  /// The width in pixels.
  public var width: Int
  /// The height in pixels.
  public var height: Int
  /// `width * height` values, row-major.
  public var values: [UInt16]

  /// Creates an image from row-major values.
  ///
  /// - Precondition: `values.count == width * height`.
  public init(width: Int, height: Int, values: [UInt16]) {
    precondition(values.count == width * height, "\(values.count) values for \(width)x\(height)")
    self.width = width
    self.height = height
    self.values = values
  }
}

/// A palette (colour-mapped) image: one index per pixel and the colour table it refers to.
///
/// For Mapillary Vistas and CamVid-style label files the indices are the class ids.
public struct PaletteImage: Sendable, Equatable {
  /// The indices, one per pixel.
  public var indices: LabelImage
  /// The colour table; every index is below `palette.count`.
  public var palette: [LabelColor]

  public init(indices: LabelImage, palette: [LabelColor]) {
    self.indices = indices
    self.palette = palette
  }
}

/// How a PNG file stores its pixels, as read from its header.
public enum PNGColorKind: String, Sendable, Equatable {
  case gray, grayAlpha, rgb, rgba, palette
}

/// What the header of a PNG says, read before any pixel buffer is allocated.
public struct PNGInfo: Sendable, Equatable {
  public var width: Int
  public var height: Int
  /// The bit depth of one channel in the file (1, 2, 4, 8 or 16).
  public var bitDepth: Int
  public var colorKind: PNGColorKind
  /// The number of palette entries (0 unless `colorKind == .palette`).
  public var paletteCount: Int
}

/// The error of the Segmentation image codecs and dataset readers. Every case names the file.
public enum ImageError: Error, Equatable, CustomStringConvertible {
  /// The file does not exist.
  case fileNotFound(path: String)
  /// The file exists but could not be read (permissions, I/O, a directory).
  case readFailed(path: String, reason: String)
  /// The bytes are not a valid image of `format` (truncated, corrupt, wrong signature).
  case decodeFailed(path: String, format: String, reason: String)
  /// The image (or file) is larger than the configured limit; refused before allocating.
  case tooLarge(path: String, width: Int, height: Int, limit: Int)
  /// A valid image whose kind is not usable here (e.g. an RGB PNG read as a label map).
  case unsupported(path: String, reason: String)
  /// Encoding failed (bad palette index, libpng refusal).
  case encodeFailed(path: String, format: String, reason: String)
  /// Writing the file failed.
  case writeFailed(path: String, reason: String)

  public var description: String {
    switch self {
    case .fileNotFound(let path): "\(path): no such file"
    case .readFailed(let path, let reason): "\(path): cannot read: \(reason)"
    case .decodeFailed(let path, let format, let reason): "\(path): invalid \(format): \(reason)"
    case .tooLarge(let path, let width, let height, let limit):
      "\(path): image of \(width)x\(height) pixels exceeds the limit of \(limit) pixels"
    case .unsupported(let path, let reason): "\(path): \(reason)"
    case .encodeFailed(let path, let format, let reason):
      "\(path): cannot encode \(format): \(reason)"
    case .writeFailed(let path, let reason): "\(path): cannot write: \(reason)"
    }
  }
}

/// Limits applied to every decode.
public enum ImageLimits {
  /// The default largest accepted image, in pixels (2^28, e.g. 16384 x 16384).
  public static let defaultMaxPixels = 1 << 28
  /// The largest accepted file, in bytes (1 GiB).
  public static let maxFileBytes = 1 << 30
}
