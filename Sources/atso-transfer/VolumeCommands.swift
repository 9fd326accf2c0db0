import ArgumentParser
import Foundation
import Medical
import Segmentation

/// `atso-transfer predict-volume`: segments NIfTI images with a three-view model of a volume run.
struct PredictVolume: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict-volume",
    abstract: "Segment NIfTI volumes with a three-view model (axial, coronal, sagittal U-Nets).",
    discussion: """
      A volume model is a directory with axial.safetensors, coronal.safetensors and \
      sagittal.safetensors, e.g. RUN/models/<id>.ckpt of a run of `atso-transfer transfer \
      --backend-option kind=volume`. Each view's network labels every slice (with its neighbouring slices as channels); the \
      three label volumes are fused voxel by voxel by majority vote (all three disagree: highest \
      summed probability). Intensities are windowed as in training (--window). The output is a \
      uint8 label map on the image's grid. Given folders, every .nii/.nii.gz image is labeled \
      into the output folder under the same name (score them with `medical-dice`). \
      --sliding-window HxW runs each slice in Gaussian-weighted windows of that size, half \
      overlapping (as nnU-Net), one slice at a time: memory is bounded by the window, \
      whatever the volume.

      Examples:
        atso-transfer predict-volume --model runs/hippo/models/m0.ckpt \\
          --input Task04_Hippocampus/imagesTr --output pred
        atso-transfer predict-volume --model runs/ct/models/m0.ckpt \\
          --input ct.nii.gz --output ct-labels.nii.gz --window ct \\
          --sliding-window 128x128
        atso-transfer medical-dice --predictions pred \\
          --labels Task04_Hippocampus/labelsTr --classes 3
      """)

  @Option(help: "The model directory (three view checkpoints).")
  var model: String

  @Option(help: "A NIfTI image, or a folder of them.")
  var input: String

  @Option(help: "The output label map (.nii.gz), or a folder when --input is a folder.")
  var output: String

  @Option(help: "Intensity window: mri (0.5-99.5 percentiles) or ct (-100..240 HU).")
  var window: String = "mri"

  @Option(help: "Predict each slice in Gaussian-weighted windows of this size HxW.")
  var slidingWindow: SizeArgument?

  func validate() throws {
    guard ["mri", "ct"].contains(window) else {
      throw ValidationError("--window must be mri or ct, got '\(window)'")
    }
  }

  func run() throws {
    let networks = try ViewNetworks.read(from: model)
    let intensity: IntensityWindow = window == "ct" ? .ct : .mri
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
      throw MedicalError.unreadableFile(path: input, reason: "no such file or folder")
    }
    var jobs: [(String, String)] = [(input, output)]
    if isDirectory.boolValue {
      let files = try MedicalDataset.niftiFiles(in: input).values.sorted()
      guard !files.isEmpty else { throw MedicalError.noVolumes(folder: input) }
      if let reason = FileWrite.makeFolders(output) {
        throw MedicalError.unreadableFile(path: output, reason: reason)
      }
      jobs = files.map { (input + "/" + $0, output + "/" + $0) }
    }
    let printer = ProgressPrinter(interval: 10)
    defer { printer.finish() }
    let start = Date()
    for (index, (image, destination)) in jobs.enumerated() {
      let read = try NIfTI.readImage(image)
      try networks.check(volumeShape: read.shape, path: image)
      let volume = read.windowed(intensity)
      let labels = networks.predict(
        CaseSlicer(image: volume), window: slidingWindow.map { SlidingWindow(size: $0.size) }
      ).labels
      try NIfTI.write(Volume(geometry: volume.geometry, voxels: labels), to: destination)
      printer.finish()
      print(destination)
      printer.items(
        "predict-volume", done: index + 1, total: jobs.count, unit: "cases", since: start)
    }
  }
}
