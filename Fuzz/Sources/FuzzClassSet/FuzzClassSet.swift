import Taxonomy

/// Class-set JSON (`*.classes.json`) on arbitrary text: parse and validate, then the derived
/// tables of an accepted class set.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClassSet(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  if let classes = try? ClassSet(jsonText: text, file: "fuzz.classes.json") {
    precondition(!classes.classes.isEmpty)
    _ = LabelMapping.identity(classes).lookupTable
  }
  return 0
}
