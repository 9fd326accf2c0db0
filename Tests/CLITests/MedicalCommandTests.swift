import ArgumentParser
import Foundation
import Medical
import Testing

@testable import atso_transfer

@Suite("Medical commands")
struct MedicalCommandTests {
  func folder(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "cli-medical-\(name)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  @Test("nifti-info reports shape, datatype, spacing and orientation")
  func niftiInfo() throws {
    let dir = try folder("info")
    let affine = Affine(rows: [[-2, 0, 0, 1], [0, -2, 0, 2], [0, 0, 3, 3]])
    try NIfTI.write(
      Volume(geometry: Geometry(shape: [2, 1, 1], affine: affine), voxels: [Float(-1), 4]),
      to: dir + "/a.nii.gz")
    let command = try #require(
      try AtsoTransfer.parseAsRoot(["nifti-info", dir + "/a.nii.gz"]) as? NiftiInfo)
    let text = try command.report()
    #expect(text.contains("shape 2 x 1 x 1, float32 little-endian, spacing 2 x 2 x 3 mm"))
    #expect(text.contains("orientation LPS"))
    #expect(text.contains("values -1.0 ... 4.0"))
  }

  @Test("medical-dice pairs folders and reports per-case and global Dice")
  func medicalDice() throws {
    let root = try folder("dice")
    for sub in ["pred", "gt"] {
      try FileManager.default.createDirectory(
        atPath: root + "/" + sub, withIntermediateDirectories: true)
    }
    let g = Geometry(shape: [4, 1, 1], affine: .identity)
    try NIfTI.write(Volume(geometry: g, voxels: [UInt8(0), 1, 2, 2]), to: root + "/pred/c1.nii.gz")
    try NIfTI.write(Volume(geometry: g, voxels: [UInt8(0), 1, 1, 2]), to: root + "/gt/c1.nii.gz")
    let fine = try #require(
      try AtsoTransfer.parseAsRoot([
        "medical-dice", "--predictions", root + "/pred", "--labels", root + "/gt", "--classes", "3",
      ]) as? MedicalDice)
    let text = try fine.report()
    #expect(text.contains("c1: mean 66.67 % [66.67 66.67]"))
    let coarse = try #require(
      try AtsoTransfer.parseAsRoot([
        "medical-dice", "--predictions", root + "/pred", "--labels", root + "/gt", "--classes", "2",
        "--table", "0,1,1",
      ]) as? MedicalDice)
    #expect(
      try coarse.report().contains("global Dice per class (1...), %: [100.00], mean 100.00 %"))
    #expect(!text.contains("warning"))
    // Predictions of the background only: a warning names the one class.
    try NIfTI.write(Volume(geometry: g, voxels: [UInt8](repeating: 0, count: 4)), to: root + "/pred/c1.nii.gz")
    #expect(
      try fine.report().hasSuffix(
        "warning: every prediction on the one case is 'class 0': the model predicts a single class "
          + "(its scores say little; check the training and the labels)"))
    #expect(throws: (any Error).self) {
      try AtsoTransfer.parseAsRoot([
        "medical-dice", "--predictions", "p", "--labels", "l", "--classes", "2", "--table", "0,2",
      ])
    }
  }
}
