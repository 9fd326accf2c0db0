import Foundation
import Segmentation

/// safetensors decoding and checkpoint descriptions on arbitrary bytes. A decoded file's tensors
/// hold as many scalars as their shapes; a checkpoint that decodes has an architecture that
/// passes its own validation, so building the network is safe.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Data(UnsafeBufferPointer(start: data, count: size))
  if let decoded = try? SafeTensors.decode(bytes, path: "fuzz.safetensors") {
    for (_, tensor) in decoded.tensors {
      precondition(tensor.scalars.count == tensor.shape.reduce(1, *))
    }
  }
  if let checkpoint = try? Checkpoint.decode(bytes, path: "fuzz.safetensors") {
    let architecture = checkpoint.description.architecture
    precondition((try? architecture.validate { $0 }) != nil)
    // Small enough to build (the file held every parameter): restoring must not trap.
    if let count = architecture.parameterScalarCount, count <= 1 << 16 {
      _ = try? checkpoint.makeModel(path: "fuzz.safetensors")
    }
  }
  return 0
}
