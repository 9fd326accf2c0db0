import Segmentation

/// Dataset spec strings (`camvid:LIST?include=...`) on arbitrary text: a spec that parses prints
/// back (``DatasetSpec/description``) to a string that parses to the same spec.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDatasetSpec(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  if let spec = try? DatasetSpec(parsing: text) {
    let again = try? DatasetSpec(parsing: spec.description)
    precondition(again == spec, "'\(text)' -> '\(spec.description)' -> \(String(describing: again))")
  }
  return 0
}
