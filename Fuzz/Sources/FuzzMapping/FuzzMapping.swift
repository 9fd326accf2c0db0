import Foundation
import Taxonomy

/// The shipped class sets (../mappings beside the package), read once.
let shippedClassSets: [String: ClassSet] = {
  let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    + "/mappings"
  var sets: [String: ClassSet] = [:]
  for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
  where name.hasSuffix(".classes.json") {
    if let set = try? ClassSet(contentsOfFile: directory + "/" + name) { sets[set.name] = set }
  }
  precondition(!sets.isEmpty, "no class sets in \(directory)")
  return sets
}()

/// Mapping JSON (`*.mapping.json`) on arbitrary text, against the shipped class sets: parse and
/// validate, then the lookup table of an accepted mapping (256 entries, each a target class or
/// the target's ignore value).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMapping(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  let sets = shippedClassSets
  if let mapping = try? LabelMapping(jsonText: text, file: "fuzz.mapping.json", classSet: { sets[$0] })
  {
    let table = mapping.lookupTable
    precondition(table.count == 256)
  }
  return 0
}
