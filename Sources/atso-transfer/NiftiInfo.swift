import ArgumentParser
import Foundation
import Medical

/// `atso-transfer nifti-info FILE...`: what the Medical module reads from NIfTI files.
struct NiftiInfo: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "nifti-info",
    abstract: "Print the shape, datatype, spacing and orientation of NIfTI files.",
    discussion: """
      For each file: the shape, the datatype and byte order, the voxel spacing (mm), the \
      orientation codes of the voxel axes (e.g. RAS) with the sform and qform codes, the \
      intensity scaling, the affine, and the range of the values.

      Example:
        atso-transfer nifti-info Task04_Hippocampus/imagesTr/hippocampus_001.nii.gz \\
          Task04_Hippocampus/labelsTr/hippocampus_001.nii.gz
      """)

  @Argument(help: "NIfTI-1 files (.nii or .nii.gz).")
  var files: [String]

  /// One paragraph per file.
  func report() throws -> String {
    var lines: [String] = []
    for file in files {
      let header = try NIfTI.readHeader(file)
      let image = try NIfTI.readImage(file)
      let g = header.geometry
      let low = image.voxels.min() ?? 0
      let high = image.voxels.max() ?? 0
      let spacing = g.spacing.map { String(format: "%g", $0) }.joined(separator: " x ")
      lines.append("\(file)")
      lines.append(
        "  shape \(g.shape.map(String.init).joined(separator: " x ")), "
          + "\(header.datatype) \(header.isBigEndian ? "big" : "little")-endian, "
          + "spacing \(spacing) mm")
      lines.append(
        "  orientation \(g.axisCodes.code) (sform_code \(g.sformCode), "
          + "qform_code \(g.qformCode)), scaling "
          + (header.scaleSlope.map { "\($0) * v + \(header.scaleIntercept)" } ?? "none"))
      lines.append("  affine \(g.affine)")
      lines.append("  values \(low) ... \(high)")
    }
    return lines.joined(separator: "\n")
  }

  func run() throws { print(try report()) }
}
