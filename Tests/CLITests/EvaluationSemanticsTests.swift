import ArgumentParser
import Foundation
import ImageTransfer
import Segmentation
import Taxonomy
import Tensor
import Testing
import Transfer

@testable import atso_transfer

/// The package's shipped mappings directory (Tests/CLITests/ -> package root).
private let shippedMappings: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path + "/mappings"
}()

private let sharedData: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path + "/../shared/data"
}()

/// Mapillary Vistas v1.2 ground truth holding every one of the 66 classes, in the Mapillary
/// layout (`ROOT/validation/images`, `ROOT/validation/v1.2/labels`, palette PNGs), and the
/// predictions that are exactly its default 66 -> 19 mapping (`ROOT/pred`, trainIds).
///
/// Each image pixel encodes its class: R = G = B = 3 x the Mapillary id, so that
/// ``OracleModel`` can predict exactly through the whole checkpoint pipeline.
private struct MapillaryOracle {
  let root: String
  let size = ImageSize(height: 8, width: 12)
  var spec: String { "mapillary:\(root):validation" }
  var predictions: String { root + "/pred" }

  init(library: MappingLibrary) throws {
    root = NSTemporaryDirectory() + "cli-oracle-" + UUID().uuidString
    let table = try library.mapping(named: "mapillary-vistas-v1.2-to-cityscapes-19").lookupTable
    let palette = try library.classSet(named: "mapillary-vistas-v1.2").displayColors
    for folder in ["validation/images", "validation/v1.2/labels", "pred"] {
      try FileManager.default.createDirectory(
        atPath: root + "/" + folder, withIntermediateDirectories: true)
    }
    for index in 0..<2 {
      // All 66 classes, then 30 road pixels; the second image in reverse order.
      var values = (0..<66).map(UInt8.init) + [UInt8](repeating: 13, count: 30)
      if index == 1 { values.reverse() }
      let id = "scene\(index)"
      let labels = LabelImage(width: size.width, height: size.height, values: values)
      try ImageFile.writePNG(
        PaletteImage(indices: labels, palette: Array(palette.prefix(66))),
        to: root + "/validation/v1.2/labels/\(id).png")
      try ImageFile.writePNG(
        RGBImage(
          width: size.width, height: size.height,
          pixels: values.flatMap { [3 * $0, 3 * $0, 3 * $0] }),
        to: root + "/validation/images/\(id).png")
      try ImageFile.writePNG(labels.mapped(through: table), to: predictions + "/\(id).png")
    }
  }

  func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// A stand-in network for the checkpoint path: it reads each pixel's Mapillary id back from
/// the normalised image and predicts its default cityscapes-19 class (class 0 where the
/// mapping ignores it, which counts nowhere). Everything after the network (input size,
/// upsampling of the probabilities, arg-max, counting, mapping) is the real pipeline.
private struct OracleModel: SegmentationModel {
  typealias Cache = Int
  let table: [UInt8]

  var architecture: ModelArchitecture {
    .unet(configuration: UNet.Configuration(widths: [1, 1], classCount: 19))
  }

  func callAsFunction(_ images: Tensor) -> Tensor {
    let pixels = images.count / 3
    var logits = Tensor(repeating: 0, shape: Array(images.shape.dropLast()) + [19])
    let normalization = Normalization.imageNet
    for i in 0..<pixels {
      let red = (images.scalars[3 * i] * normalization.standardDeviation[0]
        + normalization.mean[0]) * 255
      let mapillary = Int((red / 3).rounded())
      let target = table[max(0, min(255, mapillary))]
      logits.scalars[19 * i + (target == 255 ? 0 : Int(target))] = 10
    }
    return logits
  }

  mutating func trainingForward(_ images: Tensor) -> (logits: Tensor, cache: Int) {
    (self(images), 0)
  }

  func backward(_ cache: Int, logitsGradient: Tensor) -> [String: Tensor] { [:] }

  mutating func visitParameters(
    prefix: String, _ body: (_ name: String, _ tensor: inout Tensor, _ role: ParameterRole) -> Void
  ) {}
}

/// The text of the error `body` throws ("" and a recorded issue when it throws none).
private func failure(_ body: () throws -> Void) -> String {
  do {
    try body()
    Issue.record("no error thrown")
    return ""
  } catch {
    return "\(error)"
  }
}

private func evaluateCommand(_ arguments: [String]) throws -> EvaluateCommand {
  try #require(
    try AtsoTransfer.parseAsRoot(["evaluate", "--mappings", shippedMappings] + arguments)
      as? EvaluateCommand)
}

@Suite("evaluation semantics (issue 13)")
struct EvaluationSemanticsTests {
  let library: MappingLibrary

  init() throws { library = try MappingLibrary(directory: shippedMappings) }

  @Test("Mapillary truth, exact 19-class predictions: 100 % at 19 and categories (label files)")
  func pairsPath() throws {
    let data = try MapillaryOracle(library: library)
    defer { data.remove() }
    let arguments = [
      "--truth", data.spec, "--predictions", data.predictions, "--prediction-classes",
      "cityscapes-19",
    ]
    let nineteen = try evaluateCommand(arguments).report()
    #expect(nineteen.classes.name == "cityscapes-19")
    #expect(nineteen.meanIoU == 1 && nineteen.pixelAccuracy == 1)
    let categories = try evaluateCommand(arguments + ["--at", "cityscapes-categories"]).report()
    #expect(categories.classes.name == "cityscapes-categories")
    #expect(categories.meanIoU == 1 && categories.pixelAccuracy == 1)
    // The report names the mappings and says which direct table it did not use.
    #expect(
      categories.mappings == [
        "mapillary-vistas-v1.2-to-cityscapes-19 (variant A)",
        "cityscapes-19-to-cityscapes-categories",
      ])
    let table = categories.table()
    #expect(table.contains("not used: mapillary-vistas-v1.2-to-cityscapes-categories"))
    #expect(table.contains("sends 24 classes elsewhere"))
    #expect(categories.jsonText().contains("\"mappings\""))
    // Another 66 -> 19 table for the ground truth than the predictions were made with: < 100 %.
    let ladd = try evaluateCommand(
      arguments + ["--mapping", "mapillary-vistas-v1.2--cityscapes-19.ladd"]
    ).report()
    #expect(ladd.meanIoU < 1)
    #expect(ladd.mappings == ["mapillary-vistas-v1.2-to-cityscapes-19.ladd (variant B)"])
  }

  @Test("--variants: one pass, every shipped 66 -> 19 table, the spread")
  func variants() throws {
    let data = try MapillaryOracle(library: library)
    defer { data.remove() }
    let report = try evaluateCommand([
      "--truth", data.spec, "--predictions", data.predictions, "--prediction-classes",
      "cityscapes-19", "--at", "cityscapes-categories", "--variants",
    ]).report()
    #expect(report.variants.count == 5)
    #expect(report.variants[0].meanIoU == 1 && report.variants[0].label.contains("variant A"))
    #expect(report.variants.dropFirst().allSatisfy { $0.meanIoU < 1 })
    #expect(report.meanIoU == 1)  // the main report: the defaults
    let text = report.table()
    #expect(text.contains("the same pixels under 5 variant combination(s)"))
    #expect(text.contains("spread of mIoU: "))
    #expect(report.jsonText().contains("\"classIoU\""))
  }

  @Test("the same through the checkpoint path, with a model that predicts exactly")
  func checkpointPath() throws {
    let data = try MapillaryOracle(library: library)
    defer { data.remove() }
    let table = try library.mapping(named: "mapillary-vistas-v1.2-to-cityscapes-19").lookupTable
    let model = OracleModel(table: table)
    let nineteen = try library.classSet(named: "cityscapes-19")
    for extra in [[], ["--at-working-size"]] {
      for level in ["cityscapes-19", "cityscapes-categories"] {
        let command = try evaluateCommand(
          ["--checkpoint", data.root + "/unused.safetensors", "--truth", data.spec, "--size",
           "8x12", "--at", level] + extra)
        let report = try command.report(
          model: model, modelClasses: nineteen, library: command.library())
        #expect(report.classes.name == level)
        #expect(report.meanIoU == 1, "\(level) \(extra): \(report.meanIoU)")
        #expect(report.pixelAccuracy == 1)
        #expect(report.evaluatedPixels > 0)
        #expect(report.notes.contains { $0.hasPrefix("resolution: network input 8x12 (HxW, --size)") })
      }
    }
    // A model one class off is not 100 %: the test can fail.
    var shifted = table
    shifted[13] = 1  // road predicted as sidewalk
    let command = try evaluateCommand([
      "--checkpoint", "unused", "--truth", data.spec, "--size", "8x12",
    ])
    let wrong = try command.report(
      model: OracleModel(table: shifted), modelClasses: nineteen, library: command.library())
    #expect(wrong.meanIoU < 1)
  }

  @Test("the transfer backend's score equals evaluate --checkpoint --at-working-size")
  func transferBackendAgrees() throws {
    let root = NSTemporaryDirectory() + "cli-backend-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: root) }
    try SyntheticStreets.writeDataset(
      domain: .source, root: root + "/source", split: "train", count: 4, seed: 3, width: 48,
      height: 32)
    try SyntheticStreets.writeDataset(
      domain: .target, root: root + "/target", split: "validation", count: 3, seed: 3,
      width: 48, height: 32)
    let test = "mapillary:\(root)/target:validation"
    let backend = try ImageBackend(
      options: ImageBackendOptions.decoding([
        "source": .string("cityscapes:\(root)/source:train"),
        "reference": .string(test + "?unlabeled"), "test": .string(test),
        "classes": "cityscapes-19", "widths": [4, 8], "size": "32x48", "batch": 2,
        "sourceIterations": 6, "mappings": .string(shippedMappings),
      ]), context: BackendContext(levels: [.fine], ignoreIndex: .standard))
    let checkpoint = root + "/source.ckpt"
    try backend.trainSource(SourceTrainingRequest(network: nil, output: checkpoint, seed: 5))
    let transfer = try backend.evaluate(
      EvaluationRequest(checkpoint: checkpoint, set: .test, level: .fine))
    let report = try evaluateCommand([
      "--checkpoint", checkpoint, "--truth", test, "--size", "32x48", "--at-working-size",
    ]).report()
    #expect(abs(report.meanIoU - transfer.score) < 1e-12, "\(report.meanIoU) vs \(transfer.score)")
    #expect(report.meanIoU > 0)
  }

  @Test(
    "real Mapillary crop: exact predictions score 100 % at categories",
    .enabled(
      if: FileManager.default.fileExists(atPath: sharedData + "/mapillary-mini/v1.2"),
      "needs ../shared/data/mapillary-mini (absent)"))
  func realMapillaryCrop() throws {
    let root = sharedData + "/mapillary-mini"
    let prediction = NSTemporaryDirectory() + "cli-mapillary-mini-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: prediction) }
    var apply = try AtsoTransfer.parseAsRoot([
      "mapping", "apply", "mapillary-vistas-v1.2:cityscapes-19", "--mappings", shippedMappings,
      "--input", root + "/v1.2", "--output", prediction,
    ])
    try apply.run()
    // Street light (44): MTAF's direct table calls it object, the 66 -> 19 table ignores it.
    let report = try evaluateCommand([
      "--truth", "mapillary:\(root)", "--predictions", prediction, "--prediction-classes",
      "cityscapes-19", "--at", "cityscapes-categories",
    ]).report()
    #expect(report.meanIoU == 1 && report.pixelAccuracy == 1)
  }

  @Test("predict's labels scored as files equal evaluate --checkpoint: one default size")
  func predictAndCheckpointAgree() throws {
    let root = NSTemporaryDirectory() + "cli-agree-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: root) }
    try SyntheticStreets.writeDataset(
      domain: .source, root: root + "/city", split: "train", count: 2, seed: 3, width: 48,
      height: 24)
    let spec = "cityscapes:\(root)/city:train"
    var train = try AtsoTransfer.parseAsRoot([
      "train", "--mappings", shippedMappings, "--dataset", spec, "--classes", "cityscapes-19",
      "--widths", "4,8", "--size", "16x32", "--batch", "2", "--iterations", "2", "--output",
      root + "/run", "--threads", "1",
    ])
    try train.run()
    let checkpoint = root + "/run/checkpoint.safetensors"
    var predict = try AtsoTransfer.parseAsRoot([
      "predict", "--mappings", shippedMappings, "--checkpoint", checkpoint, "--dataset", spec,
      "--output", root + "/pred",
    ])
    try predict.run()
    let files = try evaluateCommand([
      "--truth", spec, "--predictions", root + "/pred", "--prediction-classes", "cityscapes-19",
      "--at", "cityscapes-categories",
    ]).report()
    let direct = try evaluateCommand([
      "--checkpoint", checkpoint, "--truth", spec, "--at", "cityscapes-categories",
    ]).report()
    #expect(direct.matrix == files.matrix)
    #expect(direct.matrix.total == 2 * 48 * 24)  // scored at the images' own size
    #expect(
      direct.notes.contains {
        $0.hasPrefix("resolution: network input 16x32 (HxW, the training size") && $0.contains("upsampled")
      })
    #expect(
      throws: (any Error).self,
      "--at-working-size without --checkpoint"
    ) {
      try AtsoTransfer.parseAsRoot([
        "evaluate", "--truth", spec, "--predictions", root, "--prediction-classes",
        "cityscapes-19", "--at-working-size",
      ])
    }
  }

  @Test("19-class labels are refused as Mapillary labels: apply, readers, dataset info")
  func nineteenClassLabelsAreRefused() throws {
    let root = NSTemporaryDirectory() + "cli-refuse-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: root) }
    try SyntheticStreets.writeDataset(
      domain: .source, root: root + "/city", split: "train", count: 2, seed: 3, width: 32,
      height: 16)
    // Cityscapes labelIds -> trainIds: 19-class labels with 255.
    let trainIDs = root + "/trainids"
    var toTrainIDs = try AtsoTransfer.parseAsRoot([
      "mapping", "apply", "cityscapes-34:cityscapes-19", "--mappings", shippedMappings,
      "--input", root + "/city/gtFine/train/synth", "--output", trainIDs,
    ])
    try toTrainIDs.run()
    let names = try FileManager.default.contentsOfDirectory(atPath: trainIDs).sorted()
    let voidPixels = try ImageFile.readLabel(at: trainIDs + "/" + names[0]).values
      .filter { $0 == 255 }.count
    #expect(voidPixels > 0)
    // mapping apply with the 66 -> 19 mapping: refused, nothing written, file/value/count named.
    var apply = try AtsoTransfer.parseAsRoot([
      "mapping", "apply", "mapillary-vistas-v1.2:cityscapes-19", "--mappings", shippedMappings,
      "--input", trainIDs, "--output", root + "/garbage",
    ])
    let text = failure { try apply.run() }
    #expect(text.contains("refused 2 of 2 files"))
    #expect(
      text.contains(
        "\(trainIDs)/\(names[0]): label values that are not classes of mapillary-vistas-v1.2"))
    #expect(text.contains("255 (\(voidPixels) pixels)"))
    #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/garbage").isEmpty)
    // A list reading them as Mapillary labels: train refuses them when it reads them.
    let list = root + "/list.txt"
    let images = try FileManager.default.contentsOfDirectory(
      atPath: root + "/city/leftImg8bit/train/synth"
    ).sorted()
    try zip(images, names).map { "city/leftImg8bit/train/synth/\($0) trainids/\($1)" }
      .joined(separator: "\n").write(toFile: list, atomically: true, encoding: .utf8)
    var train = try AtsoTransfer.parseAsRoot([
      "train", "--mappings", shippedMappings, "--dataset", "list:\(list):mapillary-vistas-v1.2",
      "--classes", "cityscapes-19", "--widths", "4,8", "--size", "16x32", "--batch", "2",
      "--iterations", "1", "--output", root + "/run", "--threads", "1",
    ])
    let trainError = failure { try train.run() }
    #expect(trainError.contains("label values that are not classes of mapillary-vistas-v1.2"))
    #expect(trainError.contains("255 ("))
    // dataset info: every value with its class name, and a warning for 255.
    let info = try #require(
      try AtsoTransfer.parseAsRoot([
        "dataset", "info", "list:\(list):mapillary-vistas-v1.2", "--mappings", shippedMappings,
      ]) as? DatasetCommand.Info)
    let report = try info.report()
    #expect(report.contains("NOT A CLASS of mapillary-vistas-v1.2"))
    #expect(report.contains("warning: label values that mapillary-vistas-v1.2 lacks"))
    #expect(report.contains("trainids/\(names[0])"))
    // Read as what they are, they pass, with class names beside the values.
    let fine = try #require(
      try AtsoTransfer.parseAsRoot([
        "dataset", "info", "list:\(list):cityscapes-19", "--mappings", shippedMappings,
      ]) as? DatasetCommand.Info)
    let fineReport = try fine.report()
    #expect(!fineReport.contains("warning"))
    #expect(fineReport.contains("  road"))
    #expect(fineReport.contains("(ignore)"))
  }

  @Test("mapping check lists the 24 classes; validate notes them")
  func mappingCheck() throws {
    let check = try #require(
      try AtsoTransfer.parseAsRoot(["mapping", "check", "--mappings", shippedMappings])
        as? MappingCommand.Check)
    let (text, disagrees) = try check.report()
    #expect(disagrees)
    #expect(
      text.contains(
        "differs  mapillary-vistas-v1.2-to-cityscapes-categories (variant G) vs "
          + "mapillary-vistas-v1.2-to-cityscapes-19 + cityscapes-19-to-cityscapes-categories: "
          + "24 of 66 source classes"))
    #expect(text.contains("29 nature--terrain: flat (direct), nature (chain)"))
    #expect(text.contains("agrees   camvid-11-to-super-5 = "))
    var strict = try AtsoTransfer.parseAsRoot([
      "mapping", "check", "--strict", "--mappings", shippedMappings,
    ])
    #expect(throws: ExitCode(1)) { try strict.run() }
  }
}
