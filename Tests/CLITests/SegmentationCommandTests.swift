import ArgumentParser
import Foundation
import Segmentation
import Taxonomy
import Tensor
import TestSupport
import Testing

@testable import atso_transfer

/// The package's shipped mappings directory (Tests/CLITests/ -> package root).
private let mappingsDirectory: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path + "/mappings"
}()

/// A temporary folder with a tiny synthetic Cityscapes-layout dataset in `ROOT/city`.
private struct Workspace {
  let root: String
  var city: String { root + "/city" }
  var spec: String { "cityscapes:\(city):train" }
  var labels: String { city + "/gtFine/train/synth" }

  init(_ tag: String, count: Int = 3) throws {
    root = try makeTemporaryDirectory("cli-seg-\(tag)")
    try SyntheticStreets.writeDataset(
      domain: .source, root: city, split: "train", count: count, seed: 11, width: 32, height: 16)
  }

  func remove() { try? FileManager.default.removeItem(atPath: root) }

  /// Trains the tiny U-Net for `steps` steps into `ROOT/<name>`.
  func train(_ name: String, steps: Int = 2, extra: [String] = []) throws -> String {
    var command = try AtsoTransfer.parseAsRoot(
      [
        "train", "--mappings", mappingsDirectory, "--dataset", spec, "--classes",
        "cityscapes-19", "--widths", "4,8", "--size", "16x32", "--batch", "2", "--iterations",
        "\(steps)", "--output", root + "/" + name, "--threads", "1",
      ] + extra)
    try command.run()
    return root + "/" + name + "/checkpoint.safetensors"
  }

  /// Runs `evaluate` with `arguments` and returns its report.
  func evaluate(_ arguments: [String]) throws -> EvaluationReport {
    let command = try #require(
      try AtsoTransfer.parseAsRoot(["evaluate", "--mappings", mappingsDirectory] + arguments)
        as? EvaluateCommand)
    return try command.report()
  }
}

/// The error text a command run throws.
private func errorText(_ body: () throws -> Void) -> String {
  do {
    try body()
    return ""
  } catch {
    return "\(error)"
  }
}

@Suite("segmentation commands")
struct SegmentationCommandTests {
  @Test func adaptBNChangesOnlyTheRunningStatistics() throws {
    let w = try Workspace("adabn")
    defer { w.remove() }
    let checkpoint = try w.train("run")
    // Other images: the target domain (other lighting), unlabeled.
    let target = w.root + "/target"
    try SyntheticStreets.writeDataset(
      domain: .target, root: target, split: "training", count: 3, seed: 5, width: 32, height: 16)
    let output = w.root + "/adapted.safetensors"
    var command = try AtsoTransfer.parseAsRoot([
      "adapt-bn", "--checkpoint", checkpoint, "--dataset", "mapillary:\(target):training?unlabeled",
      "--size", "16x32", "--output", output, "--batch", "2", "--threads", "1",
    ])
    try command.run()
    let before = try Checkpoint.read(from: checkpoint)
    let after = try Checkpoint.read(from: output)
    #expect(after.description.classSetName == before.description.classSetName)
    #expect(after.description.architecture == before.description.architecture)
    var changed = 0
    for name in before.names {
      let a = try #require(before.tensors[name])
      let b = try #require(after.tensors[name], "\(name) missing")
      if name.hasSuffix("running_mean") || name.hasSuffix("running_variance") {
        if a != b { changed += 1 }
      } else {
        #expect(a == b, "\(name) changed")
      }
    }
    #expect(changed > 0)
    // The statistics are the package's one AdaBN over the same pre-processed images.
    let model = try before.makeModel()
    let images = try DatasetSpec(parsing: "mapillary:\(target):training?unlabeled").open().samples
      .map { reference in
        var generator = SeededGenerator(seed: 0)
        return Augmenter(.evaluation(workingSize: ImageSize(height: 16, width: 32)))
          .apply(try Dataset.load(reference), using: &generator).image
      }
    let expected = adaptedBatchNorm(model, images: images, batch: 2).parameters
    for name in before.names { #expect(after.tensors[name] == expected[name], "\(name)") }
    do {
      _ = try AtsoTransfer.parseAsRoot([
        "adapt-bn", "--checkpoint", checkpoint, "--dataset", w.spec, "--size", "16x32",
        "--output", checkpoint,
      ])
      Issue.record("--output equal to --checkpoint was accepted")
    } catch {
      #expect(AtsoTransfer.message(for: error) == "--output must differ from --checkpoint")
    }
  }

  @Test func trainValidatesOptions() throws {
    let base = ["train", "--dataset", "camvid:x.txt", "--classes", "camvid-11", "--size", "8x8",
                "--output", "/tmp/x"]
    for (extra, message) in [
      ([], "give --iterations N or --epochs N"),
      (["--iterations", "2", "--epochs", "1"], "give --iterations or --epochs, not both"),
      (["--iterations", "2", "--validate-every", "5"], "--validate-every needs --validate SPEC"),
      (
        ["--iterations", "2", "--model", "deeplab", "--widths", "8,16"],
        "--widths: DeepLab needs 4 widths, got 8,16"
      ),
      (
        ["--iterations", "2", "--optimizer", "rmsprop"],
        "The value 'rmsprop' is invalid for '--optimizer <optimizer>'. Please provide one of 'sgd' and 'adam'."
      ),
    ] {
      do {
        _ = try AtsoTransfer.parseAsRoot(base + extra)
        Issue.record("\(extra) accepted")
      } catch {
        #expect(AtsoTransfer.message(for: error) == message, "\(extra)")
      }
    }
    let train = try #require(
      try AtsoTransfer.parseAsRoot(base + ["--epochs", "3", "--scale", "0.5,2"]) as? TrainCommand)
    #expect(train.size.size == ImageSize(height: 8, width: 8))
    #expect(try train.scaleRange() == 0.5...2)
  }

  @Test func trainWritesARunThatResumes() throws {
    let w = try Workspace("train")
    defer { w.remove() }
    let path = try w.train("run", steps: 2, extra: ["--validate", w.spec])
    let saved = try Checkpoint.read(from: path)
    #expect(saved.trainingState?.step == 2)
    #expect(saved.description.classSetName == "cityscapes-19")
    #expect(FileManager.default.fileExists(atPath: w.root + "/run/validation.jsonl"))
    // Resuming a finished run changes nothing; another recipe is refused.
    _ = try w.train("run", steps: 2, extra: ["--validate", w.spec, "--resume"])
    #expect(try Checkpoint.read(from: path).tensors == saved.tensors)
    let text = errorText { _ = try w.train("run", steps: 2, extra: ["--resume", "--seed", "4"]) }
    #expect(text.contains("seed 0"))
    #expect(errorText { _ = try w.train("none", extra: ["--resume"]) }.contains("training.json"))
  }

  @Test func trainWithAdamResumesWithAdamOnly() throws {
    let w = try Workspace("adam")
    defer { w.remove() }
    let path = try w.train("run", steps: 2, extra: ["--optimizer", "adam"])
    let saved = try Checkpoint.read(from: path)
    guard case .adam(let adam) = saved.trainingState?.optimizer else {
      Issue.record("the checkpoint holds \(String(describing: saved.trainingState?.optimizer))")
      return
    }
    #expect(adam.step == 2)
    #expect(saved.tensors.keys.contains { $0.hasPrefix("optimizer.adam.first.") })
    let text = errorText { _ = try w.train("run", steps: 2, extra: ["--resume"]) }
    #expect(text.contains("optimizer adam"), "\(text)")
  }

  @Test func divergenceStopsAndKeepsTheLastGoodCheckpoint() throws {
    let w = try Workspace("diverge")
    defer { w.remove() }
    let text = errorText {
      _ = try w.train("run", steps: 20, extra: ["--learning-rate", "1e30", "--checkpoint-every", "1"])
    }
    #expect(text.contains("training diverged at step"))
    #expect(text.contains("last good checkpoint: " + w.root + "/run/checkpoint.safetensors"))
    let saved = try Checkpoint.read(from: w.root + "/run/checkpoint.safetensors")
    let step = try #require(saved.trainingState?.step)
    #expect(text.contains("training diverged at step \(step):"))
  }

  @Test func predictWritesLabelsAtOriginalSizeAndEvaluateMatchesTheAPI() throws {
    let w = try Workspace("predict")
    defer { w.remove() }
    let checkpoint = try w.train("run")
    var predict = try AtsoTransfer.parseAsRoot([
      "predict", "--mappings", mappingsDirectory, "--checkpoint", checkpoint, "--dataset", w.spec,
      "--output", w.root + "/pred", "--confidence", "--overlay", "--flip",
    ])
    try predict.run()
    let dataset = try DatasetSpec(parsing: w.spec).open()
    for sample in dataset.samples {
      let label = try ImageFile.readLabel(at: w.root + "/pred/\(sample.id).png")
      #expect(label.width == 32 && label.height == 16)
      #expect(label.values.allSatisfy { $0 < 19 })
      let confidence = try ImageFile.readLabel(at: w.root + "/pred/\(sample.id)_confidence.png")
      #expect(confidence.values.allSatisfy { $0 >= 255 / 19 })
      #expect(FileManager.default.fileExists(atPath: w.root + "/pred/\(sample.id)_overlay.png"))
    }

    let arguments = [
      "--truth", w.spec, "--predictions", w.root + "/pred", "--prediction-classes",
      "cityscapes-19", "--json", w.root + "/r.json", "--csv", w.root + "/r.csv",
    ]
    let report = try w.evaluate(arguments)
    var evaluate = try AtsoTransfer.parseAsRoot(
      ["evaluate", "--mappings", mappingsDirectory] + arguments)
    try evaluate.run()
    let library = try MappingLibrary(directory: mappingsDirectory)
    var matrix = ConfusionMatrix(
      groundTruth: try library.classSet(named: "cityscapes-34"),
      prediction: try library.classSet(named: "cityscapes-19"))
    for sample in dataset.samples {
      matrix.accumulate(
        groundTruth: try ImageFile.readLabel(at: try #require(sample.labelPath)).values,
        prediction: try ImageFile.readLabel(at: w.root + "/pred/\(sample.id).png").values)
    }
    let expected = try matrix.reduced(to: "cityscapes-19", using: library).report()
    #expect(report.meanIoU == expected.meanIoU || (report.meanIoU.isNaN && expected.meanIoU.isNaN))
    #expect(report.pixelAccuracy == expected.pixelAccuracy)
    #expect(report.matrix == expected.matrix)
    #expect(FileManager.default.fileExists(atPath: w.root + "/r.json"))
    #expect(try String(contentsOfFile: w.root + "/r.csv", encoding: .utf8).hasPrefix("id,name"))

    // Scored in the Cityscapes categories through the mappings.
    let categories = try w.evaluate([
      "--truth", w.spec, "--predictions", w.root + "/pred", "--prediction-classes",
      "cityscapes-19", "--at", "cityscapes-categories",
    ])
    #expect(categories.classes.name == "cityscapes-categories")

    // The checkpoint mode runs the network itself.
    let direct = try w.evaluate(["--checkpoint", checkpoint, "--truth", w.spec, "--size", "16x32"])
    #expect(direct.evaluatedPixels > 0)

    // Labels in Cityscapes labelIds through the inverse mapping.
    var labelIDs = try AtsoTransfer.parseAsRoot([
      "predict", "--mappings", mappingsDirectory, "--checkpoint", checkpoint, "--images",
      w.city + "/leftImg8bit/train/synth", "--output", w.root + "/ids", "--encoding", "labelid",
    ])
    try labelIDs.run()
    let trainIDs = try ImageFile.readLabel(at: w.root + "/pred/\(dataset.samples[0].id).png")
    let ids = try ImageFile.readLabel(
      at: w.root + "/ids/\(dataset.samples[0].id)_leftImg8bit.png")
    let inverse = try LabelWriter.inverseTable(
      library.mapping(from: "cityscapes-34", to: "cityscapes-19"))
    #expect(inverse[0] == 7 && inverse[18] == 33)
    #expect(ids.values.count == trainIDs.values.count)
  }

  @Test func trainCropsAndSlidingWindowInferenceTakesTheCrop() throws {
    let w = try Workspace("crop", count: 2)
    defer { w.remove() }
    let checkpoint = try w.train("run", extra: ["--crop", "8x16"])
    let recipe = try readRunConfiguration(w.root + "/run/training.json")
    #expect(recipe.augmentation.cropSize == ImageSize(height: 8, width: 16))
    let windowed = try w.evaluate(["--checkpoint", checkpoint, "--truth", w.spec, "--sliding-window"])
    #expect(windowed.notes.contains { $0.contains("sliding window 8x16 (the training crop size)") })
    let full = try w.evaluate([
      "--checkpoint", checkpoint, "--truth", w.spec, "--full-resolution", "--window", "16x16",
    ])
    #expect(full.notes.contains { $0.contains("each image at its own resolution") })
    #expect(full.notes.contains { $0.contains("sliding window 16x16 (--window)") })
    #expect(full.evaluatedPixels == windowed.evaluatedPixels)
    // A crop larger than the working size is refused, naming both.
    #expect(errorText { _ = try w.train("big", extra: ["--crop", "32x64"]) }.contains("--crop 32x64"))
  }

  @Test func evaluateWarnsWhenThePredictionsHoldASingleClass() throws {
    let w = try Workspace("single-class", count: 2)
    defer { w.remove() }
    func write(_ folder: String, _ value: (Int) -> UInt8) throws {
      try FileManager.default.createDirectory(
        atPath: w.root + "/" + folder, withIntermediateDirectories: true)
      for sample in try DatasetSpec(parsing: w.spec).open().samples {
        try ImageFile.writePNG(
          LabelImage(width: 32, height: 16, values: (0..<(32 * 16)).map(value)),
          to: w.root + "/\(folder)/\(sample.id).png")
      }
    }
    func evaluate(_ folder: String) throws -> EvaluationReport {
      try w.evaluate([
        "--truth", w.spec, "--predictions", w.root + "/" + folder, "--prediction-classes",
        "cityscapes-19",
      ])
    }
    try write("road") { _ in 0 }
    let report = try evaluate("road")
    let warning = try #require(report.notes.last)
    #expect(warning.hasPrefix("warning: every prediction on the evaluated images is 'road'"))
    #expect(report.table().contains(warning))
    // Two classes: no warning.
    try write("two") { UInt8($0 % 2) }
    #expect(!(try evaluate("two")).notes.contains { $0.hasPrefix("warning:") })
  }

  @Test func evaluateReportsBadInput() throws {
    let w = try Workspace("errors", count: 2)
    defer { w.remove() }
    let dataset = try DatasetSpec(parsing: w.spec).open()
    let pred = w.root + "/pred"
    try FileManager.default.createDirectory(atPath: pred, withIntermediateDirectories: true)
    let first = dataset.samples[0].id
    let second = dataset.samples[1].id
    try ImageFile.writePNG(
      LabelImage(width: 32, height: 16, values: [UInt8](repeating: 0, count: 512)),
      to: pred + "/\(first).png")
    let arguments = [
      "--truth", w.spec, "--predictions", pred, "--prediction-classes", "cityscapes-19",
    ]
    #expect(errorText { _ = try w.evaluate(arguments) }.contains("missing prediction"))
    #expect(errorText { _ = try w.evaluate(arguments) }.contains(second))

    try ImageFile.writePNG(
      LabelImage(width: 32, height: 16, values: [UInt8](repeating: 100, count: 512)),
      to: pred + "/\(second).png")
    let unknown = errorText { _ = try w.evaluate(arguments) }
    #expect(
      unknown.contains("\(second).png: label values that are not classes of cityscapes-19")
        && unknown.contains("100 (512 pixels)"))

    try ImageFile.writePNG(
      LabelImage(width: 8, height: 4, values: [UInt8](repeating: 1, count: 32)),
      to: pred + "/\(second).png")
    let size = errorText { _ = try w.evaluate(arguments) }
    #expect(size.contains("8x4") && size.contains("32x16"))

    try Data("not a png".utf8).write(to: URL(fileURLWithPath: pred + "/\(second).png"))
    #expect(errorText { _ = try w.evaluate(arguments) }.contains("\(second).png"))

    #expect(throws: (any Error).self) {
      try AtsoTransfer.parseAsRoot(["evaluate", "--truth", w.spec, "--predictions", pred])
    }
  }

  @Test func mappingApplyRoundTrips() throws {
    let w = try Workspace("apply", count: 2)
    defer { w.remove() }
    for (folder, encoding) in [("train", "trainid"), ("ids", "labelid"), ("pal", "palette")] {
      var apply = try AtsoTransfer.parseAsRoot([
        "mapping", "apply", "cityscapes-34:cityscapes-19", "--mappings", mappingsDirectory,
        "--input", w.labels, "--output", w.root + "/" + folder, "--encoding", encoding,
      ])
      try apply.run()
    }
    let library = try MappingLibrary(directory: mappingsDirectory)
    let cs34 = try library.classSet(named: "cityscapes-34")
    let table = try library.mapping(from: "cityscapes-34", to: "cityscapes-19").lookupTable
    for name in try FileManager.default.contentsOfDirectory(atPath: w.labels) {
      let original = try ImageFile.readLabel(at: w.labels + "/" + name)
      let trainIDs = try ImageFile.readLabel(at: w.root + "/train/" + name)
      let labelIDs = try ImageFile.readLabel(at: w.root + "/ids/" + name)
      let palette = try ImageFile.readPalette(at: w.root + "/pal/" + name)
      #expect(trainIDs.values == original.values.map { table[Int($0)] })
      #expect(palette.indices == trainIDs)
      for (a, b) in zip(original.values, labelIDs.values)
      where cs34.semanticClass(id: Int(a))?.isEvaluated == true {
        #expect(a == b)
      }
    }
    let text = errorText {
      var apply = try AtsoTransfer.parseAsRoot([
        "mapping", "apply", "cityscapes-19:cityscapes-categories", "--mappings",
        mappingsDirectory, "--input", w.labels, "--output", w.root + "/bad",
      ])
      try apply.run()
    }
    #expect(text.contains("refused 2 of 2 files") && text.contains("not classes of cityscapes-19"))
    for name in try FileManager.default.contentsOfDirectory(atPath: w.labels) {
      #expect(!FileManager.default.fileExists(atPath: w.root + "/bad/" + name), "\(name) written")
    }
  }
}
