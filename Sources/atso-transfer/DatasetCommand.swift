import ArgumentParser
import Foundation
import Segmentation
import Taxonomy

/// `atso-transfer dataset ...`: list segmentation datasets and write synthetic ones.
struct DatasetCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dataset",
    abstract: "Inspect segmentation datasets and write synthetic street-scene datasets.",
    discussion: """
      Examples:
        atso-transfer dataset info 'camvid:data/camvid/train.txt?include=0001TP'
        atso-transfer dataset synthesize --output synthetic --count 16
      """,
    subcommands: [Info.self, Synthesize.self])
}

extension DatasetCommand {
  /// `atso-transfer dataset info SPEC`.
  struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "info",
      abstract: "List a dataset: sample count, class set, label files, label value histogram.",
      discussion: """
        SPEC is a dataset spec: cityscapes:ROOT[:SPLIT], cityscapes-trainids:ROOT[:SPLIT], \
        mapillary:ROOT[:SPLIT], camvid:LIST, list:LIST:CLASSSET, optionally followed by \
        ?include=PREFIX,...&exclude=PREFIX,...&unlabeled. The label values of the decoded \
        samples are listed with their class names; values that the class set lacks (other \
        than its ignore value) are listed under a warning with the files that hold them: every \
        other command refuses such files.

        Examples:
          atso-transfer dataset info 'camvid:data/camvid/train.txt?include=0001TP'
          atso-transfer dataset info cityscapes:data/cityscapes:val --decode 20
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Argument(help: "The dataset spec, e.g. camvid:data/camvid/train.txt?include=0001TP.")
    var spec: String

    @Option(help: "Decode this many samples (from the start) for the label histogram.")
    var decode = 3

    func validate() throws {
      do {
        _ = try DatasetSpec(parsing: spec)
      } catch {
        throw ValidationError(error.description)
      }
      if decode < 0 { throw ValidationError("--decode must be non-negative") }
    }

    /// Reads the dataset the spec names.
    func dataset() throws -> Dataset {
      try DatasetSpec(parsing: spec).open()
    }

    /// The text printed by `run()`.
    func report() throws -> String {
      let data = try dataset()
      let labeled = data.samples.filter { $0.labelPath != nil }.count
      var lines = [
        "\(data.count) samples, class set \(data.classSetName), \(labeled) labelled",
        "first: \(data.samples[0].id)  \(data.samples[0].imagePath)",
      ]
      if let label = data.samples[0].labelPath { lines.append("       \(label)") }
      // The class set, to name the values and to find those it lacks.
      var classes: ClassSet?
      do {
        classes = try mappings.library().classSet(named: data.classSetName)
      } catch {
        lines.append("warning: label values not checked: \(error)")
      }
      var histogram = [Int64](repeating: 0, count: 256)
      var sizes = Set<ImageSize>()
      var filesWithUnknown: [String: [String]] = [:]  // value -> files
      for i in 0..<min(decode, data.count) {
        let sample = try data.load(i)
        sizes.insert(ImageSize(height: sample.image.height, width: sample.image.width))
        guard let label = sample.label, let path = data.samples[i].labelPath else { continue }
        let counts = ClassSet.valueHistogram(label.values)
        for value in 0..<256 { histogram[value] += counts[value] }
        for unknown in classes?.unknownLabelValues(in: counts) ?? [] {
          filesWithUnknown["\(unknown.value)", default: []].append(path)
        }
      }
      guard decode > 0 else { return lines.joined(separator: "\n") }
      let sizeText = sizes.map { "\($0.height)x\($0.width)" }.sorted().joined(separator: ", ")
      lines.append("decoded \(min(decode, data.count)): sizes \(sizeText) (HxW)")
      let total = max(1, histogram.reduce(0, +))
      let present = histogram.indices.filter { histogram[$0] > 0 }
      if !present.isEmpty { lines.append("label values (value, class, share of pixels):") }
      for value in present {
        let share = String(format: "%5.1f %%", 100 * Double(histogram[value]) / Double(total))
        let name: String
        if let semanticClass = classes?.semanticClass(id: value) {
          name = semanticClass.name + (semanticClass.isEvaluated ? "" : " (not evaluated)")
        } else if let classes, value == classes.ignoreIndex {
          name = "(ignore)"
        } else {
          name = classes == nil ? "" : "NOT A CLASS of \(data.classSetName)"
        }
        lines.append("  \(String(format: "%3d", value))  \(share)  \(name)")
      }
      if let classes, !filesWithUnknown.isEmpty {
        let unknown = classes.unknownLabelValues(in: histogram)
        lines.append(
          "warning: label values that \(classes.name) lacks (train, evaluate, transfer and "
            + "mapping apply refuse these files): "
            + unknown.map { "\($0.value) (\($0.count) pixels)" }.joined(separator: ", "))
        for entry in unknown {
          let files = filesWithUnknown["\(entry.value)"] ?? []
          lines.append(
            "  \(entry.value) in \(files.count) file(s): "
              + files.prefix(5).joined(separator: ", ") + (files.count > 5 ? ", ..." : ""))
        }
      }
      return lines.joined(separator: "\n")
    }

    func run() throws { print(try report()) }
  }

  /// `atso-transfer dataset synthesize --output DIR`.
  struct Synthesize: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "synthesize",
      abstract: "Write synthetic street scenes: a daylight source and a dusk target domain.",
      discussion: """
        Source scenes go to OUTPUT/source in the Cityscapes layout (split train, labelIds); \
        target scenes to OUTPUT/target in the Mapillary Vistas v1.2 layout (split training, \
        palette labels with the 66 class ids). The same seed always writes the same files.

        Example:
          atso-transfer dataset synthesize --output synthetic --count 16 --seed 3 \\
            --width 256 --height 128
        """)

    @Option(help: "The output folder.")
    var output: String

    @Option(help: "Scenes per domain.")
    var count = 8

    @Option(help: "The random seed.")
    var seed: UInt64 = 1

    @Option(help: "Scene width in pixels (at least 16).")
    var width = 128

    @Option(help: "Scene height in pixels (at least 16).")
    var height = 64

    func validate() throws {
      if count < 1 { throw ValidationError("--count must be at least 1") }
      if width < 16 || height < 16 { throw ValidationError("scenes are at least 16x16 pixels") }
      if width * height > 1 << 24 { throw ValidationError("scenes are at most 2^24 pixels") }
    }

    /// Writes both domains and returns the summary printed by `run()`.
    func write() throws -> String {
      let source = try SyntheticStreets.writeDataset(
        domain: .source, root: output + "/source", split: "train", count: count, seed: seed,
        width: width, height: height)
      let target = try SyntheticStreets.writeDataset(
        domain: .target, root: output + "/target", split: "training", count: count, seed: seed,
        width: width, height: height)
      return """
        source: \(source.count) scenes (\(source.classSetName)) in \(output)/source
        target: \(target.count) scenes (\(target.classSetName)) in \(output)/target
        """
    }

    func run() throws { print(try write()) }
  }
}
