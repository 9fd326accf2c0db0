import Segmentation

/// The JPEG decoder (CJPEGShim over libjpeg-turbo) on arbitrary bytes, with a 2^20-pixel limit.
/// A decoded image has 3 bytes a pixel; a truncated or corrupt file must throw.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  if let image = try? JPEGCodec.decodeRGB(bytes, path: "fuzz.jpg", maxPixels: 1 << 20) {
    precondition(image.width > 0 && image.height > 0)
    precondition(image.pixels.count == 3 * image.width * image.height)
  }
  return 0
}
