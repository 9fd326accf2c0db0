import ArgumentParser
import Foundation
import Tensor
import TestSupport
import Testing

@testable import Segmentation
@testable import atso_transfer

/// Paths of the PyTorch peer tests.
private enum TorchPeer {
  static let root = PeerPython.packageRoot
  static let script = root + "/scripts/torch_networks.py"
  static let reference = root + "/../shared/bench/torch_reference_unet.py"
  static let camvid = root + "/../shared/data/camvid"
  static let mappings = root + "/mappings"
  static var hasFrames: Bool { FileManager.default.fileExists(atPath: camvid + "/val.txt") }
  static var hasReference: Bool { FileManager.default.fileExists(atPath: reference) }

  /// Two real CamVid frames at 96x128, normalised as for evaluation: a daylight one (0016E5)
  /// and a dusk one (0001TP), `[2, 96, 128, 3]`.
  static func frames() throws -> Tensor {
    let augmenter = Augmenter(.evaluation(workingSize: ImageSize(height: 96, width: 128)))
    var scalars: [Float] = []
    for spec in ["val.txt?include=0016E5", "train.txt?include=0001TP"] {
      let data = try DatasetSpec(parsing: "camvid:\(camvid)/\(spec)").open()
      var generator = SeededGenerator(seed: 0)
      let image = augmenter.apply(try data.load(0), using: &generator).image
      scalars += image.scalars
    }
    return Tensor(shape: [2, 96, 128, 3], scalars: scalars)
  }

  /// Runs `scripts/torch_networks.py` with the peer Python; fails the test with its stderr.
  static func python(_ arguments: [String]) throws -> String {
    let python = try #require(PeerPython.torch, "\(PeerPython.torchMissing)")
    let result = PeerPython.run(python, [script] + arguments)
    try #require(result.status == 0, "torch_networks.py \(arguments) failed: \(result.error)")
    return result.output
  }

  /// The float tensor `name` of a safetensors file.
  static func tensor(_ name: String, in path: String) throws -> Tensor {
    let data = try #require(FileManager.default.contents(atPath: path))
    let (tensors, _) = try SafeTensors.decode(data, path: path, skipping: ["I64"])
    return try #require(tensors.first { $0.name == name }?.tensor, "no '\(name)' in \(path)")
  }

  /// PyTorch's logits of the network in `model` (or the reference `RefUNet` loaded with it) on
  /// `images` (NHWC), as NHWC.
  static func torchLogits(model: String, images: Tensor, reference: Bool, classes: Int, in dir: String)
    throws -> Tensor
  {
    let input = dir + "/images.safetensors"
    let output = dir + "/torch-logits.safetensors"
    try SafeTensors.encode([("images", images.permuted([0, 3, 1, 2]))], metadata: [:])
      .write(to: URL(fileURLWithPath: input))
    var arguments = ["logits", model, input, output]
    if reference { arguments += ["--reference", Self.reference, "--classes", String(classes)] }
    _ = try python(arguments)
    return try tensor("logits", in: output).permuted([0, 2, 3, 1])
  }

  static func directory(_ tag: String) throws -> String {
    let path = NSTemporaryDirectory() + "cli-torch-\(tag)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }
}

/// A network with PyTorch initialisation, random batch-norm affine parameters, running
/// statistics from three training passes over `images`, and a classifier scaled by 60 so that
/// the logits span about +-10 as a trained network's do (1e-4 is then about 1e-5 of them).
private func preparedModel<M: SegmentationModel>(_ model: M, images: Tensor) -> M {
  var model = model
  var generator = SeededGenerator(seed: 11)
  model.initialize(.pytorch, using: &generator)
  var replacements: [String: Tensor] = [:]
  for (name, tensor, _) in model.namedTensors {
    if name.hasSuffix("norm.scale") {
      replacements[name] = Tensor.randomUniform(
        shape: tensor.shape, lower: 0.5, upper: 1.5, using: &generator)
    } else if name.hasSuffix("norm.offset") {
      replacements[name] = Tensor.randomUniform(
        shape: tensor.shape, lower: -0.2, upper: 0.2, using: &generator)
    } else if name == "head.weight" || name == "classifier.weight" {
      replacements[name] = Tensor(shape: tensor.shape, scalars: tensor.scalars.map { 60 * $0 })
    }
  }
  model.parameters = replacements
  for _ in 0..<3 { _ = model.trainingForward(images) }
  return model
}

@Suite("PyTorch names and layouts")
struct TorchNameTests {
  @Test(
    "our names map to the reference U-Net's state_dict keys",
    arguments: [
      ("enc1.conv1.conv.weight", "enc1.0.weight"), ("enc1.conv1.norm.scale", "enc1.1.weight"),
      ("enc1.conv1.norm.offset", "enc1.1.bias"),
      ("enc2.conv2.norm.running_variance", "enc2.4.running_var"),
      ("bottleneck.conv2.conv.weight", "bott.3.weight"),
      ("dec1.conv1.norm.running_mean", "dec1.1.running_mean"), ("head.bias", "head.bias"),
      ("stem3.norm.scale", "stem3.1.weight"), ("stage4.conv2.conv.weight", "stage4.3.weight"),
      ("aspp.atrous2.conv.weight", "aspp.atrous2.0.weight"),
      ("aspp.pooling.bias", "aspp.pooling.bias"), ("projection.norm.offset", "projection.1.bias"),
    ])
  func names(_ pair: (String, String)) {
    #expect(TorchStateDict.torchName(pair.0) == pair.1)
  }

  @Test("export then import gives back every tensor; the file is weights only")
  func swiftRoundTrip() throws {
    var generator = SeededGenerator(seed: 5)
    let model = DeepLab(
      .init(widths: [4, 8, 8, 8], asppChannels: 4, asppRates: [2, 3], classCount: 11),
      using: &generator)
    let state = TrainingState(
      step: 42, optimizer: .sgd(SGD(momentum: 0.9)),
      schedule: PolySchedule(baseLearningRate: 0.01, totalSteps: 100),
      generator: generator)
    var trained = model
    var sgd = SGD(momentum: 0.9)
    sgd.velocity = trained.parameters.filter { $0.key.hasSuffix("weight") }
    var withState = state
    withState.optimizer = .sgd(sgd)
    let checkpoint = Checkpoint(model: trained, classSetName: "camvid-11", training: withState)
    let dir = try TorchPeer.directory("swift")
    let path = dir + "/deeplab.safetensors"
    try TorchStateDict.write(checkpoint, workingSize: ImageSize(height: 96, width: 128), to: path)
    let data = try #require(FileManager.default.contents(atPath: path))
    let (float32, metadata) = try SafeTensors.decode(data, path: path, skipping: ["I64"])
    #expect(float32.allSatisfy { !$0.name.contains("velocity") && !$0.name.contains(".norm.") })
    #expect(float32.first { $0.name == "stem1.0.weight" }?.tensor.shape == [4, 3, 3, 3])
    #expect(metadata[TorchStateDict.classSetKey] == "camvid-11")
    #expect(metadata[TorchStateDict.workingSizeKey] == "96x128")
    // num_batches_tracked: int64 scalars holding the checkpoint's step count.
    let headerLength = data.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
    let header = try #require(
      try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength)))
        as? [String: Any])
    let counter = try #require(header["stem1.1.num_batches_tracked"] as? [String: Any])
    #expect(counter["dtype"] as? String == "I64" && (counter["shape"] as? [Int]) == [])
    let offsets = try #require(counter["data_offsets"] as? [Int])
    let start = 8 + headerLength + offsets[0]
    let value = data.subdata(in: start..<(start + 8)).reversed().reduce(0) { $0 << 8 | Int($1) }
    #expect(value == 42)
    #expect(metadata[TorchStateDict.inputKey]?.contains("0.485") == true)
    let back = try TorchStateDict.importCheckpoint(from: path)
    #expect(back.description.architecture == model.architecture)
    #expect(back.description.training == nil)
    trained.parameters = [:]
    for (name, tensor, _) in trained.namedTensors {
      #expect(back.tensors[name] == tensor, "tensor \(name)")
    }
    #expect(back.tensors.count == trained.namedTensors.count)
  }

  @Test("import refuses what it cannot place, naming the file and what to give")
  func importErrors() throws {
    let dir = try TorchPeer.directory("errors")
    let path = dir + "/other.safetensors"
    try SafeTensors.encode(
      [("fc.weight", Tensor(repeating: 1, shape: [2, 2]))], metadata: [:]
    ).write(to: URL(fileURLWithPath: path))
    #expect {
      try TorchStateDict.importCheckpoint(from: path, classSetName: "camvid-11")
    } throws: { error in
      "\(error)".hasPrefix(path) && "\(error)".contains("reference U-Net")
        && "\(error)".contains("'fc.weight'")
    }
    // Our own checkpoint is not a PyTorch file.
    var generator0 = SeededGenerator(seed: 2)
    let ours = dir + "/ours.safetensors"
    try Checkpoint(
      model: UNet(.init(widths: [4, 8], classCount: 11), using: &generator0),
      classSetName: "camvid-11"
    ).write(to: ours)
    #expect {
      try TorchStateDict.importCheckpoint(from: ours)
    } throws: { "\($0)".contains("an atso-transfer checkpoint already") }
    // A U-Net without atso metadata: the class set must be given, and must fit the head.
    var generator = SeededGenerator(seed: 1)
    let unet = UNet(.init(widths: [4, 8], classCount: 11), using: &generator)
    let exported = TorchStateDict.export(Checkpoint(model: unet, classSetName: "camvid-11"))
    let (floats, _) = try SafeTensors.decode(exported, path: "export", skipping: ["I64"])
    let foreign = dir + "/foreign.safetensors"
    try SafeTensors.encode(floats, metadata: [:]).write(to: URL(fileURLWithPath: foreign))
    #expect {
      try TorchStateDict.importCheckpoint(from: foreign)
    } throws: { "\($0)".contains("give it (--classes)") }
    let command = try #require(
      try AtsoTransfer.parseAsRoot([
        "import", "--format", "torch", foreign, dir + "/c.safetensors", "--classes",
        "cityscapes-19", "--mappings", TorchPeer.mappings,
      ]) as? ImportCommand)
    #expect {
      try command.write()
    } throws: { "\($0)".contains("11 outputs, but class set cityscapes-19 has 19 classes") }
    // A tensor of the wrong shape, and one too many.
    var misshapen = floats
    misshapen[0].tensor = Tensor(repeating: 0, shape: [4, 3, 1, 1])
    try SafeTensors.encode(misshapen, metadata: [:]).write(to: URL(fileURLWithPath: foreign))
    #expect {
      try TorchStateDict.importCheckpoint(from: foreign, classSetName: "camvid-11")
    } throws: { "\($0)".contains("'enc1.0.weight' has shape [4, 3, 1, 1], expected [4, 3, 3, 3]") }
    try SafeTensors.encode(floats + [("extra.weight", Tensor(repeating: 0, shape: [1]))], metadata: [:])
      .write(to: URL(fileURLWithPath: foreign))
    #expect {
      try TorchStateDict.importCheckpoint(from: foreign, classSetName: "camvid-11")
    } throws: { "\($0)".contains("unexpected tensor(s) 'extra.weight'") }
  }
}

@Suite(
  "PyTorch peer: export, import and logits",
  .enabled(if: PeerPython.enabled(PeerPython.torch), "\(PeerPython.torchMissing)"),
  .enabled(if: TorchPeer.hasFrames, "../shared/data/camvid is absent: no real frames"))
struct TorchPeerTests {
  @Test(
    "an exported U-Net loaded into the PyTorch reference network gives our logits",
    .enabled(if: TorchPeer.hasReference, "../shared/bench/torch_reference_unet.py is absent"))
  func exportIntoReference() throws {
    let images = try TorchPeer.frames()
    var generator = SeededGenerator(seed: 3)
    let model = preparedModel(UNet(.init(classCount: 11), using: &generator), images: images)
    let dir = try TorchPeer.directory("export")
    let checkpoint = dir + "/unet.safetensors"
    try Checkpoint(model: model, classSetName: "camvid-11").write(to: checkpoint)
    let export = try #require(
      try AtsoTransfer.parseAsRoot(["export", "--format", "torch", checkpoint, dir + "/torch.st"])
        as? ExportCommand)
    #expect(try export.write().contains("U-Net widths 16,32,64,128, 3 -> 11 classes"))
    let torch = try TorchPeer.torchLogits(
      model: dir + "/torch.st", images: images, reference: true, classes: 11, in: dir)
    let ours = model(images)
    #expect(torch.shape == ours.shape)
    let difference = torch.maxAbsoluteDifference(to: ours)
    #expect((ours.scalars.map { abs($0) }.max() ?? 0) > 3, "logits too small to test")
    #expect(difference <= 1e-4, "max |torch - ours| = \(difference)")
  }

  @Test("an exported DeepLab rebuilt by scripts/torch_networks.py gives our logits")
  func exportDeepLab() throws {
    let images = try TorchPeer.frames()
    var generator = SeededGenerator(seed: 4)
    let model = preparedModel(
      DeepLab(.init(widths: [8, 16, 16, 32], asppChannels: 16, classCount: 11), using: &generator),
      images: images)
    let dir = try TorchPeer.directory("deeplab")
    try TorchStateDict.write(Checkpoint(model: model, classSetName: "camvid-11"), to: dir + "/d.st")
    let torch = try TorchPeer.torchLogits(
      model: dir + "/d.st", images: images, reference: false, classes: 11, in: dir)
    let difference = torch.maxAbsoluteDifference(to: model(images))
    #expect(difference <= 1e-4, "max |torch - ours| = \(difference)")
  }

  @Test(
    "torch -> ours -> torch: logits agree and the second export is bit-identical",
    arguments: ["unet", "deeplab"])
  func torchRoundTrip(_ architecture: String) throws {
    if architecture == "unet" && !TorchPeer.hasReference { return }
    let images = try TorchPeer.frames()
    let dir = try TorchPeer.directory("roundtrip-\(architecture)")
    let original = dir + "/original.safetensors"
    var make = ["make", original, "--arch", architecture, "--classes", "11", "--seed", "7"]
    make += architecture == "unet"
      ? ["--reference", TorchPeer.reference]
      : ["--widths", "8,16,16,32", "--aspp-channels", "16", "--aspp-rates", "2,4,6"]
    _ = try TorchPeer.python(make)
    let ours = dir + "/ours.safetensors"
    var arguments = [
      "import", "--format", "torch", original, ours, "--classes", "camvid-11", "--mappings",
      TorchPeer.mappings,
    ]
    if architecture == "deeplab" {
      let withoutRates = try #require(try AtsoTransfer.parseAsRoot(arguments) as? ImportCommand)
      #expect(throws: (any Error).self) { try withoutRates.write() }
      arguments += ["--aspp-rates", "2,4,6"]
    }
    let importer = try #require(try AtsoTransfer.parseAsRoot(arguments) as? ImportCommand)
    #expect(try importer.write().contains("class set camvid-11"))
    let model = try Checkpoint.read(from: ours).makeModel(path: ours)
    // The reference network (unet) or the twin of scripts/torch_networks.py needs the
    // architecture: the latter reads it from an export, so compare on the re-export.
    let again = dir + "/again.safetensors"
    let exporter = try #require(
      try AtsoTransfer.parseAsRoot(["export", ours, again]) as? ExportCommand)
    _ = try exporter.write()
    let torch = try TorchPeer.torchLogits(
      model: architecture == "unet" ? original : again, images: images,
      reference: architecture == "unet", classes: 11, in: dir)
    let difference = torch.maxAbsoluteDifference(to: model(images))
    #expect(difference <= 1e-4, "max |torch - ours| = \(difference)")
    let comparison = try TorchPeer.python(["compare", original, again])
    let report = try #require(
      try JSONSerialization.jsonObject(with: Data(comparison.utf8)) as? [String: Any])
    #expect((report["only_a"] as? [String])?.isEmpty == true, "\(comparison)")
    #expect((report["only_b"] as? [String])?.isEmpty == true, "\(comparison)")
    #expect((report["different"] as? [String])?.isEmpty == true, "\(comparison)")
    #expect((report["count"] as? Int ?? 0) > 50)
  }
}
