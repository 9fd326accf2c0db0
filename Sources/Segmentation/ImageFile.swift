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
    try decode(bytes, path: path, into: &image, maxPixels: maxPixels)
  }

  /// Decodes the label map in `data` (the bytes of the file at `path`, which only names it in
  /// errors) into `image` as ``read(at:into:maxPixels:)`` does: the 8-bit gray fast path, else
  /// libpng (``PNGCodec/decodeLabel(_:path:maxPixels:into:)``).
  ///
  /// - Throws: `ImageError` as ``ImageFile/readLabel(at:maxPixels:)``.
  public func decode(
    _ data: [UInt8], path: String, into image: inout LabelImage,
    maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) {
    var values = image.values
    image.values = []  // `values` is now the only reference: decoded in place
    if let size = gray.decode(data, maxPixels: maxPixels, into: &values) {
      image = LabelImage(width: size.width, height: size.height, values: values)
      return
    }
    image.values = values
    try PNGCodec.decodeLabel(data, path: path, maxPixels: maxPixels, into: &image)
  }
}

/// Reads a ground-truth label map and its prediction together and hands over their rows in
/// pairs, top to bottom, each pair right after it is decoded: evaluation counts a row's pixel
/// pairs while the row is in the cache, and no whole image is written. 8-bit gray PNGs
/// (``LabelFileReader``'s fast path) are unfiltered row by row into a two-row buffer; every
/// other file is decoded whole by libpng and its rows handed over the same way. Buffers are
/// reused from pair to pair.
public struct LabelPairReader {
  private var truthBytes: [UInt8] = []
  private var predictionBytes: [UInt8] = []
  private let truthRows = GrayPNGDecoder()
  private let predictionRows = GrayPNGDecoder()
  /// Whole images of the files that are not on the fast path (empty otherwise).
  private var truthImage = LabelImage(width: 0, height: 0, values: [])
  private var predictionImage = LabelImage(width: 0, height: 0, values: [])
  private var streamed = (truth: false, prediction: false)
  private var sizes = (truth: (width: 0, height: 0), prediction: (width: 0, height: 0))

  /// A reader with empty buffers.
  public init() {}

  /// Reads the two files and returns their sizes; ``forEachRowPair(_:)`` then hands over their
  /// rows.
  ///
  /// - Throws: `ImageError` as ``ImageFile/readLabel(at:maxPixels:)``, for the ground truth
  ///   first.
  public mutating func read(
    truthAt truthPath: String, predictionAt predictionPath: String,
    maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) -> (
    truth: (width: Int, height: Int), prediction: (width: Int, height: Int)
  ) {
    // Nothing of the last pair is handed over if reading this one fails.
    sizes = ((0, 0), (0, 0))
    try ImageFile.readBytes(at: truthPath, into: &truthBytes)
    let truth = try Self.load(
      truthBytes, path: truthPath, rows: truthRows, into: &truthImage, maxPixels: maxPixels)
    try ImageFile.readBytes(at: predictionPath, into: &predictionBytes)
    let prediction = try Self.load(
      predictionBytes, path: predictionPath, rows: predictionRows, into: &predictionImage,
      maxPixels: maxPixels)
    streamed = (truth.streamed, prediction.streamed)
    sizes = (truth.size, prediction.size)
    return sizes
  }

  /// Prepares one file: its rows on the fast path, else the whole image in `image` (libpng,
  /// which accepts or names the error as ``LabelFileReader`` does after its fast path).
  private static func load(
    _ data: [UInt8], path: String, rows: GrayPNGDecoder, into image: inout LabelImage,
    maxPixels: Int
  ) throws(ImageError) -> (streamed: Bool, size: (width: Int, height: Int)) {
    if let size = rows.rows(of: data, maxPixels: maxPixels) { return (true, size) }
    try PNGCodec.decodeLabel(data, path: path, maxPixels: maxPixels, into: &image)
    return (false, (image.width, image.height))
  }

  /// Hands the rows of the pair last read to `body` (ground truth, prediction), top to bottom,
  /// once.
  /// - Precondition: the last ``read(truthAt:predictionAt:maxPixels:)`` succeeded and gave
  ///   both files one size.
  public mutating func forEachRowPair(
    _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Void
  ) {
    precondition(sizes.truth == sizes.prediction, "the two label maps differ in size")
    let height = sizes.truth.height
    sizes = ((0, 0), (0, 0))  // the streamed rows are unfiltered once
    Self.withCursor(streamed.truth, truthRows, truthImage) { truth in
      Self.withCursor(streamed.prediction, predictionRows, predictionImage) { prediction in
        for _ in 0..<height { body(truth.next(), prediction.next()) }
      }
    }
  }

  /// Calls `body` with a cursor over one side's rows: streamed from its decoder or read from
  /// its whole image.
  private static func withCursor(
    _ streamed: Bool, _ rows: GrayPNGDecoder, _ image: LabelImage,
    _ body: (inout GrayPNGDecoder.RowCursor) -> Void
  ) {
    if streamed { return rows.withRowCursor(body) }
    image.values.withUnsafeBufferPointer { values in
      var cursor = GrayPNGDecoder.RowCursor(
        values: values.baseAddress, width: image.width, height: image.height)
      body(&cursor)
    }
  }
}
