import CJPEGShim

/// JPEG decoding through the `CJPEGShim` C target (`cjpeg_decode`, `cjpeg_free`).
///
/// The shim owns libjpeg's `setjmp`/`longjmp`; this wrapper only copies the pixels out, frees the
/// C buffer in a `defer`, and turns the C message into an ``ImageError``.
public enum JPEGCodec {
  /// Whether `data` starts with the JPEG start-of-image marker `FF D8 FF`.
  public static func hasSignature(_ data: [UInt8]) -> Bool {
    data.count >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF
  }

  /// Decodes a baseline or progressive JPEG to 8-bit RGB (grayscale files are replicated).
  ///
  /// - Parameters:
  ///   - data: the whole file.
  ///   - path: the file name used in errors.
  ///   - maxPixels: images larger than this are refused from the header, before allocation.
  /// - Throws: `ImageError.decodeFailed` (corrupt, truncated, not a JPEG) or `.tooLarge`.
  public static func decodeRGB(
    _ data: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(ImageError) -> RGBImage {
    guard hasSignature(data) else {
      throw .decodeFailed(path: path, format: "JPEG", reason: "missing JPEG start-of-image marker")
    }
    var pixels: UnsafeMutablePointer<UInt8>? = nil
    var width: Int32 = 0
    var height: Int32 = 0
    var components: Int32 = 0
    var message = [CChar](repeating: 0, count: 256)
    let status = data.withUnsafeBufferPointer { input in
      message.withUnsafeMutableBufferPointer { error in
        cjpeg_decode(
          input.baseAddress, input.count, maxPixels, &pixels, &width, &height, &components,
          error.baseAddress, error.count)
      }
    }
    defer { cjpeg_free(pixels) }
    guard status == 0, let base = pixels else {
      let reason = String(
        decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) },
        as: UTF8.self)
      if reason.contains("exceeds the limit") {
        // The shim refuses oversize images from the header; parse "WxH" back for the error case.
        let size =
          reason.split(separator: " ").first(where: { $0.contains("x") })?
          .split(separator: "x").compactMap { Int($0) } ?? []
        if size.count == 2 {
          throw .tooLarge(path: path, width: size[0], height: size[1], limit: maxPixels)
        }
      }
      throw .decodeFailed(
        path: path, format: "JPEG", reason: reason.isEmpty ? "libjpeg error" : reason)
    }
    let w = Int(width)
    let h = Int(height)
    let count = w * h
    var rgb = [UInt8](repeating: 0, count: 3 * count)
    if components == 3 {
      rgb.withUnsafeMutableBufferPointer { out in
        guard let dst = out.baseAddress else { return }
        dst.update(from: base, count: 3 * count)
      }
    } else if components == 1 {
      for i in 0..<count {
        let v = base[i]
        rgb[3 * i] = v
        rgb[3 * i + 1] = v
        rgb[3 * i + 2] = v
      }
    } else {
      throw .decodeFailed(path: path, format: "JPEG", reason: "\(components) colour components")
    }
    return RGBImage(width: w, height: h, pixels: rgb)
  }
}
