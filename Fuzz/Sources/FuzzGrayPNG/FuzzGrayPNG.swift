import Segmentation

/// The 8-bit gray fast path of label reading (``LabelFileReader``, libdeflate and an unfilter
/// loop) against libpng (``PNGCodec/decodeLabel(_:path:maxPixels:)``) on arbitrary bytes: both
/// accept with the same width, height and values, or both refuse with the same error (the
/// reader decodes what its fast path leaves through libpng, so a difference is the fast path's).
/// One reader and one image serve every input, as in evaluation, so the reused buffers are
/// fuzzed too (frames of another size, a decode that fails half-way into them).
nonisolated(unsafe) private var reader = LabelFileReader()
nonisolated(unsafe) private var image = LabelImage(width: 0, height: 0, values: [])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGrayPNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  let limit = 1 << 20
  let expected = Result { () throws(ImageError) in
    try PNGCodec.decodeLabel(bytes, path: "fuzz.png", maxPixels: limit)
  }
  let got = Result { () throws(ImageError) in
    try reader.decode(bytes, path: "fuzz.png", into: &image, maxPixels: limit)
    return image
  }
  switch (expected, got) {
  case (.success(let want), .success(let have)):
    precondition(
      want.width == have.width && want.height == have.height && want.values == have.values,
      "libpng \(want.width)x\(want.height), fast path \(have.width)x\(have.height)"
        + (want.values == have.values ? "" : ", values differ"))
  case (.failure(let want), .failure(let have)):
    precondition(want == have, "libpng: \(want); reader: \(have)")
  case (.success(let want), .failure(let have)):
    preconditionFailure("libpng decodes \(want.width)x\(want.height), the reader throws \(have)")
  case (.failure(let want), .success(let have)):
    preconditionFailure("libpng throws \(want), the fast path decodes \(have.width)x\(have.height)")
  }
  return 0
}
