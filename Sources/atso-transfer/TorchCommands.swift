import ArgumentParser
import Foundation
import Segmentation
import Taxonomy

/// The foreign checkpoint formats of `export` and `import`.
enum CheckpointFormat: String, ExpressibleByArgument, CaseIterable {
  /// A PyTorch `state_dict` in safetensors (`safetensors.torch.load_file`).
  case torch
}

/// `atso-transfer export --format torch CKPT OUT`: a checkpoint as a PyTorch state_dict.
struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write a checkpoint's weights as a PyTorch state_dict (safetensors).",
    discussion: """
      The output holds the network's weights and batch-norm buffers under PyTorch's names \
      and layouts, with no optimizer state: conv weights [out, in, kh, kw], batch norm \
      weight, bias, running_mean, running_var and num_batches_tracked (int64, the \
      checkpoint's step count). The U-Net's keys are those of the reference network \
      (enc1.0.weight, ..., bott.*, dec1.*, head.weight); the DeepLab's those of \
      scripts/torch_networks.py. The file's metadata records the architecture, the class set\
      , the input normalisation (ImageNet mean and std) and, when a training.json lies \
      beside the checkpoint, the working size HxW, so `import` reads it back without \
      questions. In Python, scripts/torch_networks.py builds the network from that metadata \
      and loads the weights:
        from torch_networks import load_network
        model = load_network("unet.safetensors").eval()
      or, into a network of your own with the same keys:
        model.load_state_dict(safetensors.torch.load_file("unet.safetensors"))

      Example:
        atso-transfer export --format torch \\
          runs/camvid-day/checkpoint.safetensors unet.safetensors
      """)

  @Option(help: "The output format.")
  var format: CheckpointFormat = .torch

  @Argument(help: "The checkpoint to export (any atso-transfer checkpoint).")
  var checkpoint: String

  @Argument(help: "The safetensors file to write.")
  var output: String

  func validate() throws {
    if URL(fileURLWithPath: output).standardizedFileURL
      == URL(fileURLWithPath: checkpoint).standardizedFileURL
    {
      throw ValidationError("the output must differ from the checkpoint")
    }
  }

  /// Writes the export; returns the line printed by `run()`.
  func write() throws -> String {
    let saved = try Checkpoint.read(from: checkpoint)
    // The working size is the training run's (training.json beside the checkpoint), if any.
    let folder = URL(fileURLWithPath: checkpoint).deletingLastPathComponent().path
    let recipe = TrainingRunFiles.configuration(in: folder)
    let size =
      FileManager.default.fileExists(atPath: recipe)
      ? try readRunConfiguration(recipe).augmentation.workingSize : nil
    try TorchStateDict.write(saved, workingSize: size, to: output)
    let architecture = saved.description.architecture
    return "wrote \(output): \(architecture.summary), class set "
      + "\(saved.description.classSetName), \(saved.names.count) tensors in PyTorch layout"
      + (size.map { ", trained at \($0.height)x\($0.width)" } ?? "")
  }

  func run() throws { print(try write()) }
}

/// `atso-transfer import --format torch FILE OUT`: a PyTorch state_dict as a checkpoint.
struct ImportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import",
    abstract: "Turn a PyTorch state_dict (safetensors) into an atso-transfer checkpoint.",
    discussion: """
      The reverse of `export`. A file that `export` wrote carries its architecture and class \
      set. Any other state_dict of the reference U-Net (enc1.0.weight, ..., bott.*, head.*) \
      or of the DeepLab of scripts/torch_networks.py is recognised by its key names; the \
      widths and class count come from the shapes. What the shapes cannot say must be given: \
      the class set the logits index (--classes, checked against the head's outputs) and, \
      for a DeepLab, its ASPP dilation rates (--aspp-rates). Every tensor of the network must \
      be present and no other (num_batches_tracked aside, which is not kept), as \
      load_state_dict(strict=True) asks. A checkpoint has no working size: give predict and \
      evaluate --size (an export records the size it was trained at). Write the file in \
      Python with
        from safetensors.torch import save_file
        save_file(model.state_dict(), "model.safetensors")

      Examples:
        atso-transfer import --format torch model.safetensors \\
          checkpoint.safetensors --classes camvid-11
        atso-transfer import --format torch deeplab.safetensors \\
          deeplab-ckpt.safetensors --classes cityscapes-19 --aspp-rates 2,4,6
      """)

  @OptionGroup var mappings: MappingsDirectoryOption

  @Option(help: "The input format.")
  var format: CheckpointFormat = .torch

  @Argument(help: "The PyTorch state_dict (safetensors) to read.")
  var input: String

  @Argument(help: "The checkpoint to write (with its .json description beside it).")
  var output: String

  @Option(
    help: "The class set the logits index: a name or file, e.g. camvid-11 (default: the file's own).")
  var classes: String?

  @Option(help: "DeepLab only: the ASPP dilation rates, e.g. 2,4,6 (default: the file's own).")
  var asppRates: String?

  func validate() throws {
    _ = try rates()
    if URL(fileURLWithPath: output).standardizedFileURL
      == URL(fileURLWithPath: input).standardizedFileURL
    {
      throw ValidationError("the output must differ from the input")
    }
  }

  func rates() throws -> [Int]? {
    try asppRates.map { try positiveIntegers($0, option: "--aspp-rates") }
  }

  /// Converts and writes the checkpoint; returns the line printed by `run()`.
  func write() throws -> String {
    let library = try mappings.library(including: [classes])
    let given = try classes.map { try library.classSet(named: $0) }  // a name or a file
    let checkpoint = try TorchStateDict.importCheckpoint(
      from: input, classSetName: given?.name, asppRates: try rates())
    let name = checkpoint.description.classSetName
    let architecture = checkpoint.description.architecture
    let classSet = try given ?? library.classSet(named: name)
    guard classSet.outputCount == architecture.classCount else {
      throw SegmentationCommandError(
        description: "\(input): the network has \(architecture.classCount) outputs, but class "
          + "set \(name) has \(classSet.outputCount) classes; give the class set it was "
          + "trained on (--classes)")
    }
    try checkpoint.write(to: output)
    let size: String? = try? SafeTensors.decode(
      Data(contentsOf: URL(fileURLWithPath: input)), path: input, skipping: ["I64"]
    ).metadata[TorchStateDict.workingSizeKey]
    return "wrote \(output): \(architecture.summary), class set \(name), "
      + "\(checkpoint.names.count) tensors"
      + (size.map { "; trained at \($0): give predict --size \($0)" } ?? "")
  }

  func run() throws { print(try write()) }
}
