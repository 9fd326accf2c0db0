/// Reading and writing image files, picking the codec from the file's signature bytes.
public enum ImageFile {
  /// Reads a whole file, refusing missing files, folders and files over
  /// `ImageLimits.maxFileBytes`.
  ///
  /// - Throws: `ImageError.fileNotFound`, `.readFailed` (with the system's reason).
  public static func readBytes(at path: String) throws(ImageError) -> [UInt8] {
    var bytes: [UInt8] = []
    try readBytes(at: path, into: &bytes)
    return bytes
  }

  /// ``readBytes(at:)`` into `bytes`, reusing its storage (a reader of many files allocates
  /// only for a file larger than all before it).
  public static func readBytes(at path: String, into bytes: inout [UInt8]) throws(ImageError) {
    switch FileRead.read(at: path, limit: ImageLimits.maxFileBytes, into: &bytes) {
    case nil: return
    case .notFound: throw .fileNotFound(path: path)
    case let failure?: throw .readFailed(path: path, reason: failure.description)
    }
  }

  /// Writes bytes to a file atomically, creating missing parent folders.
  ///
  /// - Throws: `ImageError.writeFailed`.
  public static func writeBytes(_ bytes: [UInt8], to path: String) throws(ImageError) {
    if let reason = FileWrite.atomically(bytes, to: path, createFolders: true) {
      throw .writeFailed(path: path, reason: reason)
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
