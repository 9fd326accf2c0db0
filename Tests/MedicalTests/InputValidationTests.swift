import Foundation
import Segmentation
import Tensor
import Testing

@testable import Medical

/// A 4x3x2 float volume written to `DIR/name.nii` (or `.nii.gz`), then `edit`ed byte by byte.
private func volumeFile(
  _ name: String, gzip: Bool = false, shape: [Int] = [4, 3, 2], edit: (inout [UInt8]) -> Void = { _ in }
) throws -> String {
  let count = shape.reduce(1, *)
  let volume = Volume(
    geometry: Geometry(shape: shape, affine: .identity), voxels: (0..<count).map { Float($0 % 3) })
  let plain = temporaryDirectory("checks") + "/" + name + ".nii"
  try NIfTI.write(volume, to: plain)
  var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: plain)))
  edit(&bytes)
  guard gzip else {
    try Data(bytes).write(to: URL(fileURLWithPath: plain))
    return plain
  }
  let path = plain + ".gz"
  try Data(GZip.compress(bytes, path: path)).write(to: URL(fileURLWithPath: path))
  return path
}

private func putFloat(_ bytes: inout [UInt8], _ value: Float, at offset: Int) {
  let bits = value.bitPattern
  for b in 0..<4 { bytes[offset + b] = UInt8((bits >> (8 * UInt32(b))) & 0xff) }
}

@Suite("input validation: NIfTI geometry, truncation, label values, empty folders")
struct MedicalInputValidationTests {
  @Test("a file shorter than a header says it is truncated, not that 348 is not 348")
  func truncatedHeader() throws {
    for size in [0, 3, 100, 347] {
      let path = try volumeFile("cut\(size)") { $0.removeSubrange(size...) }
      #expect(throws: MedicalError.truncatedHeader(path: path, size: size)) {
        try NIfTI.readImage(path)
      }
      let message = MedicalError.truncatedHeader(path: path, size: size).description
      #expect(message.contains("truncated NIfTI-1 file: \(size) bytes"))
      #expect(!message.contains("expected 348)"))
    }
    // A gzip stream that inflates to less than a header.
    let path = try volumeFile("cutgz", gzip: true) { $0.removeSubrange(100...) }
    #expect(throws: MedicalError.truncatedHeader(path: path, size: 100)) {
      try NIfTI.readImage(path)
    }
  }

  @Test(
    "zero, NaN and infinite voxel spacings are refused, naming pixdim and its value",
    arguments: [(1, Float(0)), (2, Float.nan), (3, Float.infinity)])
  func spacing(axis: Int, value: Float) throws {
    let path = try volumeFile("pixdim\(axis)") { putFloat(&$0, value, at: 76 + 4 * axis) }
    do {
      _ = try NIfTI.readHeader(path)
      Issue.record("pixdim[\(axis)] = \(value) accepted")
    } catch {
      guard case .badSpacing(path, axis, let read) = error else {
        Issue.record("\(error)")
        return
      }
      #expect(read.isNaN ? value.isNaN : read == Double(value))
      #expect(error.description.contains("pixdim[\(axis)] (voxel spacing) is"))
    }
    // A negative spacing is a flip (its magnitude is used), as before.
    let flipped = try volumeFile("negative\(axis)") { putFloat(&$0, -2, at: 76 + 4 * axis) }
    #expect(try NIfTI.readHeader(flipped).geometry.spacing[axis - 1] == 2)
  }

  @Test("NaN and infinite voxels are refused with the voxel and the value")
  func nonFiniteVoxels() throws {
    for (index, value) in [(0, Float.nan), (13, Float.infinity), (23, -Float.infinity)] {
      let path = try volumeFile("nan\(index)") { putFloat(&$0, value, at: 352 + 4 * index) }
      #expect(
        throws: MedicalError.nonFiniteVoxel(
          path: path, voxel: [index % 4, index / 4 % 3, index / 12], value: "\(value)")
      ) { try NIfTI.readImage(path) }
      #expect(throws: MedicalError.self) { try NIfTI.readLabels(path) }
    }
  }

  @Test("a gzip file is inflated only as far as the header's data goes")
  func boundedInflation() throws {
    // 24 voxels and then 64 MiB of zeros that nothing needs.
    let path = try volumeFile("bomb", gzip: true) { $0 += [UInt8](repeating: 0, count: 64 << 20) }
    let onDisk = try #require(try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    #expect(onDisk < 1 << 20)
    let bytes = try NIfTI.loadBytes(path)
    #expect(bytes.count == 352 + 24 * 4)
    #expect(try NIfTI.readImage(path).voxels == (0..<24).map { Float($0 % 3) })
    #expect(try NIfTI.loadBytes(path, headerOnly: true).count == 352)
    // A stream cut inside the voxels is still an error.
    let compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    let cut = temporaryDirectory("cut") + "/cut.nii.gz"
    try Data(compressed.prefix(30)).write(to: URL(fileURLWithPath: cut))
    #expect(throws: MedicalError.self) { try NIfTI.readImage(cut) }
  }

  @Test("medical-dice: label values outside the classes or the table are errors, not 'no class'")
  func labelValues() throws {
    let evaluation = DiceEvaluation(classCount: 3)
    try evaluation.checkLabels([0, 1, 2, 2], shape: [2, 2, 1], path: "a.nii")
    #expect(
      throws: MedicalError.labelOutsideClasses(
        path: "a.nii", value: 200, voxel: [1, 1, 0], accepted: "0...2 for 3 classes")
    ) { try evaluation.checkLabels([0, 1, 2, 200], shape: [2, 2, 1], path: "a.nii") }
    let table = DiceEvaluation(classCount: 2, table: [0, 1, 1])
    try table.checkLabels([0, 1, 2], shape: [3, 1, 1], path: "t.nii")
    #expect(throws: MedicalError.self) {
      try table.checkLabels([0, 3], shape: [2, 1, 1], path: "t.nii")
    }
    // 256 classes accept every byte.
    try DiceEvaluation(classCount: 256).checkLabels([255], shape: [1, 1, 1], path: "x.nii")
  }

  @Test("empty or missing folders are errors naming the folder")
  func emptyFolders() throws {
    let empty = temporaryDirectory("empty")
    let other = temporaryDirectory("other")
    try Data("not a volume".utf8).write(to: URL(fileURLWithPath: other + "/readme.txt"))
    #expect(throws: MedicalError.noVolumes(folder: empty)) {
      try MedicalDataset.folderPairs(images: empty, labels: other)
    }
    let withVolume = temporaryDirectory("one")
    try NIfTI.write(
      Volume(geometry: Geometry(shape: [1, 1, 1], affine: .identity), voxels: [UInt8(0)]),
      to: withVolume + "/a.nii")
    #expect(throws: MedicalError.noVolumes(folder: other)) {
      try MedicalDataset.folderPairs(images: withVolume, labels: other)
    }
    #expect(throws: MedicalError.unreadableFile(path: empty + "/none", reason: "no such folder")) {
      try MedicalDataset.folderPairs(images: empty + "/none", labels: other)
    }
  }

  @Test("a volume thinner than the networks' down-sampling is refused before slicing")
  func thinVolumes() throws {
    var generator = SeededGenerator(seed: 2)
    let networks = ViewNetworks(widths: [2, 4, 8], classCount: 3, neighbours: 1, using: &generator)
    #expect(networks.minimumVolumeSide == 4)
    try networks.check(volumeShape: [4, 5, 6], path: "ok.nii")
    for shape in [[8, 8, 1], [3, 9, 9], [9, 2, 9]] {
      #expect(throws: MedicalError.self) { try networks.check(volumeShape: shape, path: "t.nii") }
    }
    // The smallest accepted volume really goes through the three views.
    let volume = Volume(
      geometry: Geometry(shape: [4, 4, 4], affine: .identity),
      voxels: (0..<64).map { Float($0) / 64 })
    let labels = networks.predict(CaseSlicer(image: volume)).labels
    #expect(labels.count == 64)
  }
}
