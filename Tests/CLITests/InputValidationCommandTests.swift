import ArgumentParser
import Foundation
import Medical
import Segmentation
import Tensor
import Testing

@testable import atso_transfer

/// Tests/CLITests/ -> the package root.
private let packageRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path
}()

/// The message `atso-transfer` prints for these arguments, or "" when they parse and run.
private func message(_ arguments: [String], run: Bool = false) -> String {
  do {
    var command = try AtsoTransfer.parseAsRoot(arguments)
    if run { try command.run() }
    return ""
  } catch {
    return AtsoTransfer.message(for: error)
  }
}

/// A folder with a tiny synthetic dataset and a U-Net [4, 8] trained for one step on it.
private struct TinyRun {
  let root = NSTemporaryDirectory() + "cli-inputs-" + UUID().uuidString
  var spec: String { "cityscapes:\(root)/data:train" }
  var checkpoint: String { root + "/run/checkpoint.safetensors" }

  init() throws {
    try SyntheticStreets.writeDataset(
      domain: .source, root: root + "/data", split: "train", count: 2, seed: 3, width: 32,
      height: 16)
    var train = try AtsoTransfer.parseAsRoot([
      "train", "--mappings", packageRoot + "/mappings", "--dataset", spec, "--classes",
      "cityscapes-19", "--widths", "4,8", "--size", "16x32", "--batch", "2", "--iterations", "1",
      "--output", root + "/run", "--threads", "1",
    ])
    try train.run()
  }

  func remove() { try? FileManager.default.removeItem(atPath: root) }
}

@Suite("input validation of the commands")
struct InputValidationCommandTests {
  static let train = [
    "train", "--dataset", "camvid:x.txt", "--classes", "camvid-11", "--output", "o",
    "--widths", "4,8",
  ]

  @Test(
    "train: absurd, negative and NaN flags are refused in validate(), naming the flag",
    arguments: [
      (["--size", "1x1", "--iterations", "1"],
       "--size 1x1 is not accepted: expected at least 2x2: a U-Net of widths 4,8 halves the image 1 time"),
      (["--size", "100000x100000", "--iterations", "1"], "--size 100000x100000 is not accepted"),
      (["--size", "16x32", "--iterations", "1", "--learning-rate", "-1"],
       "--learning-rate -1 is not accepted: expected a finite number > 0"),
      (["--size", "16x32", "--iterations", "1", "--learning-rate", "nan"],
       "--learning-rate nan is not accepted"),
      (["--size", "16x32", "--iterations", "1", "--momentum", "nan"], "--momentum nan"),
      (["--size", "16x32", "--iterations", "1", "--weight-decay", "-0.1"], "--weight-decay -0.1"),
      (["--size", "16x32", "--iterations", "1", "--flip", "inf"], "--flip inf"),
      (["--size", "16x32", "--iterations", "1", "--batch", "100000000"],
       "--batch 100000000 is not accepted: expected an integer in 1...65536"),
      (["--size", "16x32", "--iterations", "1", "--batch", "-3"], "--batch -3"),
      (["--size", "16x32", "--iterations", "1", "--threads", "100000"], "--threads 100000"),
      (["--size", "16x32", "--iterations", "9223372036854775807"], "--iterations 9223372036854775807"),
      (["--size", "16x32", "--epochs", "4611686018427387904"], "--epochs 4611686018427387904"),
      (["--size", "16x32", "--iterations", "1", "--widths", "100000,100000"], "--widths [100000, 100000]"),
      (["--size", "16x32", "--iterations", "1", "--widths", "2,2,2,2,2,2,2,2"], "expected at least 128x128"),
      (["--size", "4x4", "--iterations", "1", "--model", "deeplab", "--widths", "4,4,8,8"],
       "expected at least 8x8: a DeepLab of widths 4,4,8,8 works"),
      (["--size", "96x128", "--iterations", "1", "--batch", "65536", "--widths", "64,128,256,512"],
       "is not accepted: expected a batch that fits in memory"),
    ])
  func trainFlags(extra: [String], expected: String) {
    let text = message(Self.train + extra)
    #expect(text.contains(expected), "\(text)")
  }

  @Test("negative numbers are values, not missing values, in every command")
  func negativeNumbers() {
    for arguments in [
      ["predict", "--checkpoint", "c", "--images", "i", "--output", "o", "--threads", "-1"],
      ["evaluate", "--checkpoint", "c", "--truth", "camvid:x", "--threads", "-2"],
      ["adapt-bn", "--checkpoint", "c", "--dataset", "d", "--size", "8x8", "--output", "o",
       "--batch", "-1"],
      ["medical-dice", "--predictions", "p", "--labels", "l", "--classes", "-3"],
    ] {
      let text = message(arguments)
      #expect(!text.contains("Missing value"), "\(arguments): \(text)")
      #expect(text.contains("-1") || text.contains("-2") || text.contains("-3"), "\(text)")
    }
  }

  @Test("predict, evaluate and adapt-bn check the working size against the checkpoint's network")
  func sizesAgainstCheckpoints() throws {
    let run = try TinyRun()
    defer { run.remove() }
    let m = packageRoot + "/mappings"
    for arguments in [
      ["predict", "--mappings", m, "--checkpoint", run.checkpoint, "--dataset", run.spec,
       "--size", "1x1", "--output", run.root + "/p"],
      ["evaluate", "--mappings", m, "--checkpoint", run.checkpoint, "--truth", run.spec,
       "--size", "1x1"],
      ["adapt-bn", "--checkpoint", run.checkpoint, "--dataset", run.spec, "--size", "1x1",
       "--output", run.root + "/a.safetensors"],
    ] {
      let text = message(arguments, run: true)
      #expect(text.contains("--size 1x1 is not accepted: expected at least 2x2"), "\(text)")
    }
  }

  @Test("predict: a truncated JPEG and an empty folder are errors naming the file or folder")
  func truncatedAndEmpty() throws {
    let run = try TinyRun()
    defer { run.remove() }
    let m = packageRoot + "/mappings"
    let images = run.root + "/images"
    try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    var text = message(
      ["predict", "--mappings", m, "--checkpoint", run.checkpoint, "--images", images,
       "--size", "16x32", "--output", run.root + "/p"], run: true)
    #expect(text.contains(images + ": no .png, .jpg or .jpeg file in the folder"), "\(text)")
    let jpeg = try ImageFile.readBytes(
      at: packageRoot + "/Tests/SegmentationTests/Fixtures/rgb8.jpg")
    try ImageFile.writeBytes(Array(jpeg.prefix(jpeg.count - 40)), to: images + "/cut.jpg")
    text = message(
      ["predict", "--mappings", m, "--checkpoint", run.checkpoint, "--images", images,
       "--size", "16x32", "--output", run.root + "/p"], run: true)
    #expect(text.contains(images + "/cut.jpg: invalid JPEG: Premature end of JPEG file"), "\(text)")
  }

  @Test("predict-volume and medical-dice: empty folders, thin volumes, labels outside the classes")
  func volumes() throws {
    let root = NSTemporaryDirectory() + "cli-volumes-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: root) }
    for folder in ["empty", "pred", "truth", "one"] {
      try FileManager.default.createDirectory(
        atPath: root + "/" + folder, withIntermediateDirectories: true)
    }
    var generator = SeededGenerator(seed: 1)
    try ViewNetworks(widths: [2, 4], classCount: 3, neighbours: 1, using: &generator)
      .write(to: root + "/model", classSetName: "msd-hippocampus")
    let predict = ["predict-volume", "--model", root + "/model", "--output", root + "/out"]
    var text = message(predict + ["--input", root + "/empty"], run: true)
    #expect(text.contains(root + "/empty: no .nii or .nii.gz volumes in the folder"), "\(text)")
    let thin = Geometry(shape: [6, 6, 1], affine: .identity)
    try NIfTI.write(
      Volume(geometry: thin, voxels: [Float](repeating: 1, count: 36)), to: root + "/one/a.nii")
    text = message(predict + ["--input", root + "/one"], run: true)
    #expect(text.contains("a.nii: volume of shape [6, 6, 1] is too thin"), "\(text)")

    let g = Geometry(shape: [4, 1, 1], affine: .identity)
    try NIfTI.write(Volume(geometry: g, voxels: [UInt8(0), 1, 2, 2]), to: root + "/pred/c.nii")
    try NIfTI.write(Volume(geometry: g, voxels: [UInt8(0), 1, 200, 2]), to: root + "/truth/c.nii")
    let dice = ["medical-dice", "--predictions", root + "/pred", "--labels", root + "/truth"]
    text = message(dice + ["--classes", "3"], run: true)
    #expect(
      text.contains(root + "/truth/c.nii: label value 200 at voxel [2, 0, 0] is not a class"),
      "\(text)")
    text = message(
      ["medical-dice", "--predictions", root + "/pred", "--labels", root + "/empty", "--classes", "3"],
      run: true)
    #expect(text.contains("no .nii or .nii.gz volumes"), "\(text)")
  }
}
