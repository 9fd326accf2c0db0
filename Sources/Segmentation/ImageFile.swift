import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Reading and writing image files, picking the codec from the file's signature bytes.
public enum ImageFile {
  /// Reads a whole file, refusing missing files, directories and files over
  /// `ImageLimits.maxFileBytes`.
  ///
  /// - Throws: `ImageError.fileNotFound`, `.readFailed`, `.tooLarge`.
  public static func readBytes(at path: String) throws(ImageError) -> [UInt8] {
    var bytes: [UInt8] = []
    try readBytes(at: path, into: &bytes)
    return bytes
  }

  /// ``readBytes(at:)`` into `bytes`, reusing its storage (a reader of many files allocates
  /// only for a file larger than all before it). Reads with `open`/`read` (no Foundation).
  public static func readBytes(at path: String, into bytes: inout [UInt8]) throws(ImageError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      let code = errno
      if code == ENOENT || code == ENOTDIR { throw .fileNotFound(path: path) }
      throw .readFailed(path: path, reason: String(cString: strerror(code)))
    }
    defer { close(fd) }
    var info = Glibc.stat()
    guard fstat(fd, &info) == 0 else {
      throw .readFailed(path: path, reason: String(cString: strerror(errno)))
    }
    guard info.st_mode & S_IFMT != S_IFDIR else {
      throw .readFailed(path: path, reason: "is a directory")
    }
    let expected = Int(info.st_size)
    if expected > ImageLimits.maxFileBytes {
      throw .readFailed(
        path: path,
        reason: "file of \(expected) bytes exceeds the \(ImageLimits.maxFileBytes)-byte limit")
    }
    // Read to the end (a file may not have the size stat gave: pipes say 0).
    var count = 0
    resize(&bytes, to: max(expected + 1, 1 << 16))  // + 1: the read that sees the end fits
    while true {
      if count == bytes.count {
        guard count < ImageLimits.maxFileBytes else {
          throw .readFailed(
            path: path, reason: "file exceeds the \(ImageLimits.maxFileBytes)-byte limit")
        }
        resize(&bytes, to: min(ImageLimits.maxFileBytes, 2 * count))
      }
      let n = bytes.withUnsafeMutableBytes { buffer in
        read(fd, buffer.baseAddress.map { $0 + count }, buffer.count - count)
      }
      if n > 0 {
        count += n
      } else if n == 0 {
        break
      } else if errno != EINTR {
        throw .readFailed(path: path, reason: String(cString: strerror(errno)))
      }
    }
    resize(&bytes, to: count)
  }

  /// Sets `bytes.count` to `count`, keeping the storage (new bytes are 0).
  private static func resize(_ bytes: inout [UInt8], to count: Int) {
    if bytes.count > count {
      bytes.removeLast(bytes.count - count)
    } else if bytes.count < count {
      bytes.append(contentsOf: repeatElement(0, count: count - bytes.count))
    }
  }

  /// Writes bytes to a file atomically, creating missing parent folders.
  ///
  /// - Throws: `ImageError.writeFailed`.
  public static func writeBytes(_ bytes: [UInt8], to path: String) throws(ImageError) {
    do {
      let url = URL(fileURLWithPath: path)
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data(bytes).write(to: url, options: .atomic)
    } catch {
      throw .writeFailed(path: path, reason: "\(error)")
    }
  }

  /// Reads a PNG or JPEG picture as 8-bit RGB.
  ///
  /// - Throws: `ImageError`; a file that is neither PNG nor JPEG is `.decodeFailed`.
  public static func readRGB(at path: String, maxPixels: Int = ImageLimits.defaultMaxPixels)
    throws(ImageError) -> RGBImage
  {
    let data = try readBytes(at: path)
    if PNGCodec.hasSignature(data) {
      return try PNGCodec.decodeRGB(data, path: path, maxPixels: maxPixels)
    }
    if JPEGCodec.hasSignature(data) {
      return try JPEGCodec.decodeRGB(data, path: path, maxPixels: maxPixels)
    }
    throw .decodeFailed(path: path, format: "image", reason: "neither a PNG nor a JPEG signature")
  }

  /// Reads a label map from a grayscale or palette PNG (palette files give their indices).
  ///
  /// - Throws: `ImageError` (see ``PNGCodec/decodeLabel(_:path:maxPixels:)``).
  public static func readLabel(at path: String, maxPixels: Int = ImageLimits.defaultMaxPixels)
    throws(ImageError) -> LabelImage
  {
    var reader = LabelFileReader()
    var image = LabelImage(width: 0, height: 0, values: [])
    try reader.read(at: path, into: &image, maxPixels: maxPixels)
    return image
  }

  /// Reads a palette PNG: indices and colour table.
  public static func readPalette(at path: String, maxPixels: Int = ImageLimits.defaultMaxPixels)
    throws(ImageError) -> PaletteImage
  {
    try PNGCodec.decodePalette(readBytes(at: path), path: path, maxPixels: maxPixels)
  }

  /// Reads a grayscale PNG as 16-bit values (e.g. Cityscapes instance ids).
  public static func readGray16(at path: String, maxPixels: Int = ImageLimits.defaultMaxPixels)
    throws(ImageError) -> Gray16Image
  {
    try PNGCodec.decodeGray16(readBytes(at: path), path: path, maxPixels: maxPixels)
  }

  /// Writes an RGB PNG.
  public static func writePNG(_ image: RGBImage, to path: String) throws(ImageError) {
    try writeBytes(PNGCodec.encodeRGB(image, path: path), to: path)
  }

  /// Writes an 8-bit grayscale PNG.
  public static func writePNG(_ image: LabelImage, to path: String) throws(ImageError) {
    try writeBytes(PNGCodec.encodeGray(image, path: path), to: path)
  }

  /// Writes a palette PNG.
  public static func writePNG(_ image: PaletteImage, to path: String) throws(ImageError) {
    try writeBytes(PNGCodec.encodePalette(image, path: path), to: path)
  }
}

/// Reads label maps one after another, reusing its buffers: the file's bytes, and the decoded
/// values of the image it fills (evaluation reads thousands of frames of one size).
public struct LabelFileReader {
  private var bytes: [UInt8] = []
  /// The 8-bit gray fast path (libdeflate), with its own reused buffers.
  private let gray = GrayPNGDecoder()

  /// A reader with empty buffers.
  public init() {}

  /// Reads the label map at `path` (``ImageFile/readLabel(at:maxPixels:)``) into `image`, whose
  /// storage is reused when it has the file's size and no other reference.
  ///
  /// - Throws: `ImageError` as ``ImageFile/readLabel(at:maxPixels:)``.
  public mutating func read(
    at path: String, into image: inout LabelImage, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) {
    try ImageFile.readBytes(at: path, into: &bytes)
    var values = image.values
    image.values = []  // `values` is now the only reference: decoded in place
    if let size = gray.decode(bytes, maxPixels: maxPixels, into: &values) {
      image = LabelImage(width: size.width, height: size.height, values: values)
      return
    }
    image.values = values
    try PNGCodec.decodeLabel(bytes, path: path, maxPixels: maxPixels, into: &image)
  }
}
