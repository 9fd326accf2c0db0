import ArgumentParser
import Foundation
import Segmentation
import Taxonomy

extension MappingCommand {
  /// `atso-transfer mapping apply MAPPING --input DIR --output DIR`.
  struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "apply",
      abstract: "Map a folder of label PNGs to another class set.",
      discussion: """
        Every *.png of --input (8-bit gray, or palette PNGs whose indices are the class ids, \
        as Mapillary Vistas writes them) is read, checked against the mapping's source class \
        set, mapped with one table lookup and written to --output under the same name in \
        --encoding: trainid (gray class ids), labelid (gray ids of --label-classes through the \
        inverse mapping), palette or color. Values that are no source class (other than the \
        ignore value) are an error naming the file and the value.

        MAPPING is a mapping file or name, or SOURCE:TARGET for the default path between two \
        class sets.

        Examples:
          atso-transfer mapping apply cityscapes-34:cityscapes-19 \\
            --input gtFine/val/frankfurt --output trainids
          atso-transfer mapping apply mapillary-vistas-v1.2:cityscapes-19 \\
            --input labels --output cs19 --encoding palette
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Argument(help: "A mapping file or name, or SOURCE:TARGET class set names.")
    var mapping: String

    @Option(help: "The folder of label PNGs to map.")
    var input: String

    @Option(help: "The folder to write (created if needed).")
    var output: String

    @Option(help: "The encoding: trainid, labelid, palette or color.")
    var encoding: LabelEncoding = .trainid

    @Option(help: "With --encoding labelid: the label class set (default cityscapes-34).")
    var labelClasses = "cityscapes-34"

    func validate() throws {
      if URL(fileURLWithPath: input).standardized == URL(fileURLWithPath: output).standardized {
        throw ValidationError("--output must differ from --input (files would be overwritten)")
      }
    }

    /// The mapping the argument names.
    func resolvedMapping() throws -> LabelMapping {
      let library = try mappings.library(including: [mapping, labelClasses])
      if !FileManager.default.fileExists(atPath: mapping), mapping.contains(":") {
        let parts = mapping.split(separator: ":", maxSplits: 1).map(String.init)
        return try library.mapping(from: parts[0], to: parts[1])
      }
      guard case .mapping(let m) = try library.document(named: mapping) else {
        throw ValidationError("'\(mapping)' is a class set, not a mapping")
      }
      return m
    }

    func run() throws {
      let mapping = try resolvedMapping()
      let table = mapping.lookupTable
      var labelIDs: [UInt8]?
      if encoding == .labelid {
        let library = try mappings.library(including: [labelClasses])
        labelIDs = try LabelWriter.inverseTable(
          library.mapping(from: labelClasses, to: mapping.target.name))
      }
      let writer = LabelWriter(classes: mapping.target, encoding: encoding, labelIDs: labelIDs)
      let names: [String]
      do {
        names = try FileManager.default.contentsOfDirectory(atPath: input)
          .filter { $0.lowercased().hasSuffix(".png") }.sorted()
      } catch {
        throw SegmentationCommandError(description: "\(input): cannot list the folder")
      }
      guard !names.isEmpty else {
        throw SegmentationCommandError(description: "\(input): no .png files")
      }
      do {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
      } catch {
        throw SegmentationCommandError(description: "\(output): cannot create the folder")
      }
      var refused: [String] = []
      for name in names {
        let label: LabelImage
        do {
          label = try LabelEvaluation.readChecked(input + "/" + name, classes: mapping.source)
        } catch let error as TaxonomyError {
          refused.append(error.description)
          continue
        }
        try writer.write(label.mapped(through: table), to: output + "/" + name)
      }
      if !refused.isEmpty {
        throw SegmentationCommandError(
          description: "refused \(refused.count) of \(names.count) files (not written; are they "
            + "labels in \(mapping.source.name)?):\n  "
            + refused.prefix(20).joined(separator: "\n  ")
            + (refused.count > 20 ? "\n  ... and \(refused.count - 20) more" : ""))
      }
      print(
        "mapped \(names.count) files \(mapping.source.name) -> \(mapping.target.name) "
          + "(\(encoding.rawValue), mapping \(mapping.name)"
          + (mapping.variant.map { ", variant \($0)" } ?? "") + ") into \(output)")
    }
  }
}
