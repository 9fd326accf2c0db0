import CPNG
import Taxonomy

/// PNG decoding and encoding through libpng's simplified API.
///
/// This is the only Swift file that imports `CPNG`. The simplified API
/// (`png_image_begin_read_from_memory`, `png_image_finish_read`, `png_image_write_to_memory`)
/// reports failure by returning 0 and filling `png_image.message`, so no `setjmp` is needed here.
/// Every decode checks `width * height` against a pixel limit after reading the header and before
/// allocating the pixel buffer.
///
/// Label maps are read without colour management: the colour-space chunks (`gAMA`, `cHRM`,
/// `sRGB`, `iCCP`) are dropped before libpng sees the bytes, so a gamma chunk can never rescale
/// class ids. Palette files keep their indices (read with a `PNG_FORMAT_FLAG_COLORMAP` format,
/// which returns one index per pixel plus the colour table).
public enum PNGCodec {
  /// The eight signature bytes every PNG file starts with.
  public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

  /// Whether `data` starts with the PNG signature.
  public static func hasSignature(_ data: [UInt8]) -> Bool {
    data.count >= 8 && Array(data[0..<8]) == signature
  }

  // MARK: Header

  /// Reads the `IHDR` header (size, bit depth, colour kind) and the palette size.
  ///
  /// - Parameters:
  ///   - data: the whole file.
  ///   - path: the file name used in errors.
  /// - Throws: `ImageError.decodeFailed` for a missing signature, a short or invalid header.
  public static func info(_ data: [UInt8], path: String) throws(ImageError) -> PNGInfo {
    guard hasSignature(data) else {
      throw .decodeFailed(path: path, format: "PNG", reason: "missing PNG signature")
    }
    guard data.count >= 33, data[12..<16].elementsEqual(Array("IHDR".utf8)) else {
      throw .decodeFailed(path: path, format: "PNG", reason: "missing IHDR header")
    }
    func be32(_ i: Int) -> Int {
      Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3])
    }
    let width = be32(16)
    let height = be32(20)
    let depth = Int(data[24])
    let kind: PNGColorKind
    switch data[25] {
    case 0: kind = .gray
    case 2: kind = .rgb
    case 3: kind = .palette
    case 4: kind = .grayAlpha
    case 6: kind = .rgba
    default:
      throw .decodeFailed(path: path, format: "PNG", reason: "invalid colour type \(data[25])")
    }
    guard width > 0, height > 0, [1, 2, 4, 8, 16].contains(depth) else {
      throw .decodeFailed(
        path: path, format: "PNG", reason: "invalid header: \(width)x\(height), depth \(depth)")
    }
    var paletteCount = 0
    if kind == .palette {
      // The PLTE chunk comes before IDAT; walk the chunks to find its length.
      var offset = 8
      while offset + 8 <= data.count {
        let length = be32(offset)
        let type = String(decoding: data[(offset + 4)..<(offset + 8)], as: UTF8.self)
        if type == "PLTE" {
          paletteCount = length / 3
          break
        }
        if type == "IDAT" || length < 0 { break }
        offset += 12 + length
      }
    }
    return PNGInfo(
      width: width, height: height, bitDepth: depth, colorKind: kind, paletteCount: paletteCount)
  }

  // MARK: Decoding

  /// Decodes any PNG (gray, gray+alpha, RGB, RGBA, palette; 8 or 16 bits) to 8-bit RGB.
  ///
  /// Alpha is composited onto black; 16-bit channels are rescaled to 8 bits (`v / 257`, rounded),
  /// as sRGB-encoded samples unless the file has a gAMA chunk.
  /// - Throws: `ImageError.decodeFailed` (corrupt, truncated) or `.tooLarge`.
  public static func decodeRGB(
    _ data: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) -> RGBImage {
    let raw = try rawDecode(data, path: path, maxPixels: maxPixels) { _ in
      .success(formatRGB)
    }.get()
    return RGBImage(width: raw.width, height: raw.height, pixels: raw.pixels)
  }

  /// Decodes a palette PNG to its indices and colour table, without expanding the palette.
  ///
  /// - Throws: `ImageError.unsupported` when the file has no palette; `.decodeFailed`, `.tooLarge`.
  public static func decodePalette(
    _ data: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) -> PaletteImage {
    let raw = try rawDecode(strippingColorChunks(data), path: path, maxPixels: maxPixels) {
      fileFormat in
      fileFormat & colormapFlag != 0
        ? .success(formatRGBAColormap)
        : .failure(.unsupported(path: path, reason: "PNG has no palette"))
    }.get()
    var palette: [LabelColor] = []
    for i in 0..<raw.colormapEntries {
      palette.append(
        LabelColor(raw.colormap[4 * i], raw.colormap[4 * i + 1], raw.colormap[4 * i + 2]))
    }
    let indices = LabelImage(width: raw.width, height: raw.height, values: raw.pixels)
    return PaletteImage(indices: indices, palette: palette)
  }

  /// Decodes a label map: the raw samples of a grayscale PNG, or the indices of a palette PNG.
  ///
  /// No gamma or colour conversion is applied. Gray files below 8 bits give their raw samples
  /// (a 1-bit file gives 0 and 1); 16-bit gray files are accepted when every value is at most 255.
  /// - Throws: `ImageError.unsupported` for RGB/RGBA files or 16-bit values above 255;
  ///   `.decodeFailed`, `.tooLarge`.
  public static func decodeLabel(
    _ data: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) -> LabelImage {
    var image = LabelImage(width: 0, height: 0, values: [])
    try decodeLabel(data, path: path, maxPixels: maxPixels, into: &image)
    return image
  }

  /// ``decodeLabel(_:path:maxPixels:)`` into `image`, reusing its storage for an 8-bit gray file
  /// of the same size (what evaluation reads frame after frame).
  public static func decodeLabel(
    _ data: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels,
    into image: inout LabelImage
  ) throws(ImageError) {
    let header = try info(data, path: path)
    if header.colorKind == .gray && header.bitDepth == 8 {
      var values = image.values
      image.values = []  // `values` is now the only reference: decoded in place
      let raw = try rawDecode(
        strippingColorChunks(data), path: path, maxPixels: maxPixels, into: &values
      ) { _ in .success(formatGray) }.get()
      image = LabelImage(width: raw.width, height: raw.height, values: raw.pixels)
      return
    }
    image = try decodeOtherLabel(data, header: header, path: path, maxPixels: maxPixels)
  }

  /// ``decodeLabel(_:path:maxPixels:)`` for palette, gray+alpha, low-depth and 16-bit files.
  private static func decodeOtherLabel(
    _ data: [UInt8], header: PNGInfo, path: String, maxPixels: Int
  ) throws(ImageError) -> LabelImage {
    switch header.colorKind {
    case .palette:
      return try decodePalette(data, path: path, maxPixels: maxPixels).indices
    case .rgb, .rgba:
      throw .unsupported(
        path: path, reason: "label PNG is \(header.colorKind.rawValue); expected gray or palette")
    case .gray, .grayAlpha:
      if header.bitDepth == 16 {
        let wide = try decodeGray16(data, path: path, maxPixels: maxPixels)
        var values = [UInt8](repeating: 0, count: wide.values.count)
        for (i, v) in wide.values.enumerated() {
          guard v <= 255 else {
            throw .unsupported(
              path: path,
              reason:
                "16-bit label value \(v) at pixel \(i % wide.width),\(i / wide.width) exceeds 255")
          }
          values[i] = UInt8(v)
        }
        return LabelImage(width: wide.width, height: wide.height, values: values)
      }
      let hasAlpha = header.colorKind == .grayAlpha
      let raw = try rawDecode(strippingColorChunks(data), path: path, maxPixels: maxPixels) { _ in
        .success(hasAlpha ? formatGrayAlpha : formatGray)
      }.get()
      var values = raw.pixels
      if hasAlpha {
        values = (0..<(raw.width * raw.height)).map { raw.pixels[2 * $0] }
      }
      if header.bitDepth < 8 {
        // libpng scales low-depth samples to 0...255; undo it to get the stored sample.
        let scale = 255 / ((1 << header.bitDepth) - 1)
        for i in values.indices { values[i] /= UInt8(scale) }
      }
      return LabelImage(width: raw.width, height: raw.height, values: values)
    }
  }

  /// Decodes a grayscale PNG to 16-bit values (8-bit files are widened, not rescaled).
  ///
  /// - Throws: `ImageError.unsupported` for colour files; `.decodeFailed`, `.tooLarge`.
  public static func decodeGray16(
    _ data: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) -> Gray16Image {
    let header = try info(data, path: path)
    guard header.colorKind == .gray || header.colorKind == .grayAlpha else {
      throw .unsupported(path: path, reason: "PNG is \(header.colorKind.rawValue), expected gray")
    }
    if header.bitDepth < 16 {
      let narrow = try decodeLabel(data, path: path, maxPixels: maxPixels)
      return Gray16Image(
        width: narrow.width, height: narrow.height, values: narrow.values.map { UInt16($0) })
    }
    let hasAlpha = header.colorKind == .grayAlpha
    let raw = try rawDecode(strippingColorChunks(data), path: path, maxPixels: maxPixels) { _ in
      .success(hasAlpha ? formatLinearGrayAlpha : formatLinearGray)
    }.get()
    let channels = hasAlpha ? 2 : 1
    let count = raw.width * raw.height
    var values = [UInt16](repeating: 0, count: count)
    raw.pixels.withUnsafeBytes { bytes in
      for i in 0..<count {
        values[i] = bytes.loadUnaligned(fromByteOffset: 2 * channels * i, as: UInt16.self)
      }
    }
    return Gray16Image(width: raw.width, height: raw.height, values: values)
  }

  // MARK: Encoding

  /// Encodes an 8-bit grayscale PNG (a label map or a gray picture).
  public static func encodeGray(_ image: LabelImage, path: String = "<memory>") throws(ImageError)
    -> [UInt8]
  {
    try rawEncode(
      image.values, width: image.width, height: image.height, format: formatGray,
      colormap: nil, colormapEntries: 0, path: path
    ).get()
  }

  /// Encodes an 8-bit RGB PNG.
  public static func encodeRGB(_ image: RGBImage, path: String = "<memory>") throws(ImageError)
    -> [UInt8]
  {
    try rawEncode(
      image.pixels, width: image.width, height: image.height, format: formatRGB,
      colormap: nil, colormapEntries: 0, path: path
    ).get()
  }

  /// Encodes a palette PNG: the indices as stored pixels and `palette` as the `PLTE` table.
  ///
  /// - Throws: `ImageError.encodeFailed` when the palette is empty or has more than 256 entries,
  ///   or an index is not below `palette.count` (the error names the first offending pixel).
  public static func encodePalette(_ image: PaletteImage, path: String = "<memory>")
    throws(ImageError) -> [UInt8]
  {
    let palette = image.palette
    guard (1...256).contains(palette.count) else {
      throw .encodeFailed(
        path: path, format: "PNG", reason: "palette has \(palette.count) entries, need 1...256")
    }
    let values = image.indices.values
    if let bad = values.firstIndex(where: { Int($0) >= palette.count }) {
      let w = max(image.indices.width, 1)
      throw .encodeFailed(
        path: path, format: "PNG",
        reason:
          "index \(values[bad]) at pixel \(bad % w),\(bad / w) is outside the "
          + "\(palette.count)-entry palette"
      )
    }
    var colormap: [UInt8] = []
    colormap.reserveCapacity(3 * palette.count)
    for c in palette { colormap += [c.red, c.green, c.blue] }
    return try rawEncode(
      values, width: image.indices.width, height: image.indices.height,
      format: formatRGBColormap, colormap: colormap,
      colormapEntries: palette.count, path: path
    ).get()
  }

  // MARK: libpng calls

  // The simplified API's format codes. The compound `PNG_FORMAT_*` macros are not imported into
  // Swift, so they are rebuilt here from the flag bits (png.h: PNG_FORMAT_FLAG_*).
  private static let alphaFlag = UInt32(PNG_FORMAT_FLAG_ALPHA)
  private static let colorFlag = UInt32(PNG_FORMAT_FLAG_COLOR)
  private static let linearFlag = UInt32(PNG_FORMAT_FLAG_LINEAR)
  private static let colormapFlag = UInt32(PNG_FORMAT_FLAG_COLORMAP)
  /// `PNG_FORMAT_GRAY`
  private static let formatGray: UInt32 = 0
  /// `PNG_FORMAT_GA`
  private static let formatGrayAlpha = alphaFlag
  /// `PNG_FORMAT_RGB`
  private static let formatRGB = colorFlag
  /// `PNG_FORMAT_LINEAR_Y`
  private static let formatLinearGray = linearFlag
  /// `PNG_FORMAT_LINEAR_Y_ALPHA`
  private static let formatLinearGrayAlpha = linearFlag | alphaFlag
  /// `PNG_FORMAT_RGB_COLORMAP`
  private static let formatRGBColormap = colorFlag | colormapFlag
  /// `PNG_FORMAT_RGBA_COLORMAP`
  private static let formatRGBAColormap = colorFlag | alphaFlag | colormapFlag

  private struct RawImage {
    var width: Int
    var height: Int
    var pixels: [UInt8]
    var colormap: [UInt8]
    var colormapEntries: Int
  }

  private static func message(of image: png_image) -> String {
    withUnsafeBytes(of: image.message) { bytes in
      let text = String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
      return text.isEmpty ? "libpng error" : text
    }
  }

  /// Reads the header, checks the pixel limit, then decodes into the format `chooseFormat` picks
  /// from the file's natural format.
  private static func rawDecode(
    _ data: [UInt8], path: String, maxPixels: Int,
    chooseFormat: (UInt32) -> Result<UInt32, ImageError>
  ) -> Result<RawImage, ImageError> {
    var pixels: [UInt8] = []
    return rawDecode(data, path: path, maxPixels: maxPixels, into: &pixels, chooseFormat: chooseFormat)
  }

  /// ``rawDecode(_:path:maxPixels:chooseFormat:)`` into `pixels`, whose storage is reused when it
  /// has the decoded size (one reader decoding many frames of one size allocates once).
  private static func rawDecode(
    _ data: [UInt8], path: String, maxPixels: Int, into pixels: inout [UInt8],
    chooseFormat: (UInt32) -> Result<UInt32, ImageError>
  ) -> Result<RawImage, ImageError> {
    guard hasSignature(data) else {
      return .failure(.decodeFailed(path: path, format: "PNG", reason: "missing PNG signature"))
    }
    if let reason = overlongChunk(data) {
      return .failure(.decodeFailed(path: path, format: "PNG", reason: reason))
    }
    return data.withUnsafeBytes { bytes -> Result<RawImage, ImageError> in
      var image = png_image()
      image.version = png_uint_32(PNG_IMAGE_VERSION)
      defer { png_image_free(&image) }
      guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
        return .failure(.decodeFailed(path: path, format: "PNG", reason: message(of: image)))
      }
      let width = Int(image.width)
      let height = Int(image.height)
      guard width > 0, height > 0,
        width.multipliedReportingOverflow(by: height).partialValue <= maxPixels
      else {
        return .failure(.tooLarge(path: path, width: width, height: height, limit: maxPixels))
      }
      let format: UInt32
      switch chooseFormat(image.format) {
      case .success(let f): format = f
      case .failure(let e): return .failure(e)
      }
      image.format = format
      if format & linearFlag == 0 {
        // 8-bit output: treat 16-bit samples without a gAMA chunk as sRGB-encoded, so they are
        // only rescaled (v / 257) instead of being converted from linear light to sRGB.
        image.flags |= png_uint_32(PNG_IMAGE_FLAG_16BIT_sRGB)
      }
      let isColormap = format & colormapFlag != 0
      let channels = Int(format & (colorFlag | alphaFlag)) + 1
      let componentBytes = format & linearFlag != 0 ? 2 : 1
      let pixelBytes = isColormap ? 1 : channels * componentBytes
      let size = width * height * pixelBytes
      if pixels.count != size {
        // libpng writes every byte: no need to zero them first.
        pixels = [UInt8](unsafeUninitializedCapacity: size) { _, count in count = size }
      }
      var colormap = [UInt8](repeating: 0, count: isColormap ? 4 * 256 : 0)
      var background = png_color(red: 0, green: 0, blue: 0)
      let ok = pixels.withUnsafeMutableBytes { out in
        colormap.withUnsafeMutableBytes { map in
          png_image_finish_read(
            &image, &background, out.baseAddress, 0, isColormap ? map.baseAddress : nil)
        }
      }
      guard ok != 0 else {
        return .failure(.decodeFailed(path: path, format: "PNG", reason: message(of: image)))
      }
      let entries = isColormap ? Int(image.colormap_entries) : 0
      if isColormap, let bad = pixels.firstIndex(where: { Int($0) >= entries }) {
        return .failure(
          .decodeFailed(
            path: path, format: "PNG",
            reason:
              "palette index \(pixels[bad]) at pixel \(bad % width),\(bad / width) exceeds the "
              + "\(entries)-entry palette"
          ))
      }
      return .success(
        RawImage(
          width: width, height: height, pixels: pixels, colormap: colormap,
          colormapEntries: entries))
    }
  }

  private static func rawEncode(
    _ pixels: [UInt8], width: Int, height: Int, format: UInt32, colormap: [UInt8]?,
    colormapEntries: Int, path: String
  ) -> Result<[UInt8], ImageError> {
    guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
      return .failure(
        .encodeFailed(path: path, format: "PNG", reason: "invalid size \(width)x\(height)"))
    }
    var image = png_image()
    image.version = png_uint_32(PNG_IMAGE_VERSION)
    image.width = png_uint_32(width)
    image.height = png_uint_32(height)
    image.format = format
    image.colormap_entries = png_uint_32(colormapEntries)
    defer { png_image_free(&image) }
    let map = colormap ?? []
    return pixels.withUnsafeBytes { input in
      map.withUnsafeBytes { mapBytes -> Result<[UInt8], ImageError> in
        let mapPointer = colormap == nil ? nil : mapBytes.baseAddress
        var size = 0
        guard
          png_image_write_to_memory(&image, nil, &size, 0, input.baseAddress, 0, mapPointer) != 0
        else {
          return .failure(.encodeFailed(path: path, format: "PNG", reason: message(of: image)))
        }
        var output = [UInt8](repeating: 0, count: size)
        let ok = output.withUnsafeMutableBytes { out in
          png_image_write_to_memory(
            &image, out.baseAddress, &size, 0, input.baseAddress, 0, mapPointer)
        }
        guard ok != 0 else {
          return .failure(.encodeFailed(path: path, format: "PNG", reason: message(of: image)))
        }
        return .success(Array(output.prefix(size)))
      }
    }
  }

  /// Returns the file without its colour-space chunks (`gAMA`, `cHRM`, `sRGB`, `iCCP`), so that
  /// libpng passes sample values through unchanged. A malformed chunk list is left as it is from
  /// that point on (libpng then reports the damage).
  /// A chunk before the image data announcing more bytes than the file has left, described, or
  /// nil. libpng allocates an ancillary chunk's announced length before reading it (1.3 GB for
  /// a 90-byte file with a `tEXt` length of 0x50000000, found by FuzzGrayPNG), then fails on the
  /// missing bytes.
  static func overlongChunk(_ data: [UInt8]) -> String? {
    var offset = 8
    while offset + 8 <= data.count {
      let length =
        Int(data[offset]) << 24 | Int(data[offset + 1]) << 16 | Int(data[offset + 2]) << 8
        | Int(data[offset + 3])
      let type = String(decoding: data[(offset + 4)..<(offset + 8)], as: UTF8.self)
      if type == "IDAT" || type == "IEND" { return nil }
      let left = data.count - offset - 12
      if length > left {
        return "chunk '\(type)' at byte \(offset) announces \(length) bytes, but the file has "
          + "\(max(left, 0)) left (truncated or corrupt; a chunk must fit in the file)"
      }
      offset += 12 + length
    }
    return nil
  }

  static func strippingColorChunks(_ data: [UInt8]) -> [UInt8] {
    guard hasSignature(data), hasColorChunk(data) else { return data }
    let dropped: Set<String> = ["gAMA", "cHRM", "sRGB", "iCCP"]
    var out = Array(data[0..<8])
    out.reserveCapacity(data.count)
    var offset = 8
    while offset + 12 <= data.count {
      let length =
        Int(data[offset]) << 24 | Int(data[offset + 1]) << 16 | Int(data[offset + 2]) << 8
        | Int(data[offset + 3])
      let end = offset + 12 + length
      guard end <= data.count else { break }
      let type = String(decoding: data[(offset + 4)..<(offset + 8)], as: UTF8.self)
      if !dropped.contains(type) { out += data[offset..<end] }
      offset = end
      if type == "IEND" { return out }
    }
    out += data[offset...]
    return out
  }

  /// Whether a colour-space chunk comes before the image data (they must: PNG puts them ahead
  /// of IDAT), so that files without one are passed to libpng without a copy.
  private static func hasColorChunk(_ data: [UInt8]) -> Bool {
    var offset = 8
    while offset + 12 <= data.count {
      let length =
        Int(data[offset]) << 24 | Int(data[offset + 1]) << 16 | Int(data[offset + 2]) << 8
        | Int(data[offset + 3])
      let (a, b, c, d) = (data[offset + 4], data[offset + 5], data[offset + 6], data[offset + 7])
      switch (a, b, c, d) {
      case (0x67, 0x41, 0x4D, 0x41), (0x63, 0x48, 0x52, 0x4D), (0x73, 0x52, 0x47, 0x42),
        (0x69, 0x43, 0x43, 0x50):
        return true  // gAMA, cHRM, sRGB, iCCP
      case (0x49, 0x44, 0x41, 0x54), (0x49, 0x45, 0x4E, 0x44):
        return false  // IDAT, IEND
      default:
        offset += 12 + length
      }
    }
    return true  // malformed: let the stripping pass see it
  }
}
