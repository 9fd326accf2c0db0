import Segmentation

/// Every PNG entry point on arbitrary bytes: the header reader and the four decoders (with a
/// 2^20-pixel limit, so that a valid header cannot ask for more memory than libFuzzer allows).
/// Any outcome but a crash, a leak or a sanitizer report is a pass; a decoded image must have
/// the size its header announced.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  let header = try? PNGCodec.info(bytes, path: "fuzz.png")
  let limit = 1 << 20
  if let rgb = try? PNGCodec.decodeRGB(bytes, path: "fuzz.png", maxPixels: limit) {
    precondition(rgb.pixels.count == 3 * rgb.width * rgb.height)
    precondition(header.map { $0.width == rgb.width && $0.height == rgb.height } ?? true)
  }
  if let label = try? PNGCodec.decodeLabel(bytes, path: "fuzz.png", maxPixels: limit) {
    precondition(label.values.count == label.width * label.height)
  }
  if let palette = try? PNGCodec.decodePalette(bytes, path: "fuzz.png", maxPixels: limit) {
    precondition(palette.indices.values.allSatisfy { Int($0) < palette.palette.count })
  }
  _ = try? PNGCodec.decodeGray16(bytes, path: "fuzz.png", maxPixels: limit)
  return 0
}
