import Foundation
import ImageTransfer
import Transfer
import VolumeTransfer

/// The backend option types a configuration may name (the default first), as the CLI has them.
let kinds: [any BackendOptions.Type] = [
  ImageBackendOptions.self, VolumeBackendOptions.self, SimulationOptions.self,
]

/// The run configuration (`configuration.json`, `transfer --config`) on arbitrary bytes: decode
/// with every backend's typed options and validate; an accepted configuration round-trips
/// through JSON and plans over a small fold split without trapping.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Data(UnsafeBufferPointer(start: data, count: size))
  guard let configuration = try? TransferConfiguration.decode(bytes, file: "fuzz.json", kinds: kinds),
    let validated = try? configuration.validated(file: "fuzz.json")
  else { return 0 }
  if let encoded = try? configuration.encoded() {
    let again = try? TransferConfiguration.decode(encoded, file: "round-trip", kinds: kinds)
    precondition(again == configuration, "the configuration does not round-trip")
  }
  // Plans stay small: a few units, folds and generations bounded by the input's own values.
  guard configuration.folds <= 8, configuration.generations <= 8,
    let split = try? FoldSplit(
      units: (0..<16).map { "unit\($0)" }, count: configuration.folds, runSeed: configuration.seed)
  else { return 0 }
  _ = try? TransferPlan(configuration: validated, split: split)
  return 0
}
