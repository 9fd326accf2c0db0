import Medical

/// NIfTI-1 decoding (plain and gzip) on arbitrary bytes. Volumes are limited by the header checks
/// alone (at most 2^29 voxels, no more bytes than the file holds), so inputs are kept small by
/// libFuzzer's -max_len. A decoded volume has finite voxels, positive finite spacings and as many
/// voxels as its shape.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNIfTI(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  if let volume = try? NIfTI.image(fromFile: bytes, path: "fuzz.nii") {
    precondition(volume.voxels.count == volume.shape.reduce(1, *))
    precondition(volume.voxels.allSatisfy(\.isFinite))
    precondition(volume.spacing.allSatisfy { $0.isFinite && $0 > 0 })
  }
  return 0
}
