import Foundation
import Transfer

/// The run configuration (`configuration.json`, `transfer --config`) on arbitrary bytes: decode,
/// validate, and for an accepted configuration build the plan over a small fold split (every
/// accepted configuration must plan without trapping) and round-trip it through JSON.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Data(UnsafeBufferPointer(start: data, count: size))
  guard let configuration = try? TransferConfiguration.decode(bytes, file: "fuzz.json"),
    (try? configuration.validate(file: "fuzz.json")) != nil
  else { return 0 }
  if let encoded = try? configuration.encoded() {
    precondition((try? TransferConfiguration.decode(encoded, file: "round-trip")) == configuration)
  }
  // Plans stay small: a few units, folds and generations bounded by the input's own values.
  guard configuration.folds <= 8, configuration.generations <= 8,
    let split = try? FoldSplit(
      units: (0..<16).map { "unit\($0)" }, count: configuration.folds, runSeed: configuration.seed)
  else { return 0 }
  _ = try? TransferPlan(configuration: configuration, split: split)
  return 0
}
