import ArgumentParser
import Foundation
import Segmentation
import Tensor
import Transfer

/// `atso-transfer adapt-bn`: AdaBN, a checkpoint with batch-norm statistics of other images.
struct AdaptBNCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "adapt-bn",
    abstract: "Re-estimate a checkpoint's batch-norm statistics on unlabeled images (AdaBN).",
    discussion: """
      AdaBN (Li et al., 2016): every batch-norm running mean and variance is replaced by the \
      average of the batch statistics of the --dataset images (labels are never read), layer \
      by layer in training mode; the weights are unchanged. The images are resized to --size \
      and normalised as for evaluation. A day-trained model adapted to dusk frames this way is \
      the "AdaBN" baseline of a domain transfer (and what `transfer --ada-bn` does before \
      every teacher labels the target).

      Example, CamVid day model -> dusk statistics, then its score on the dusk frames:
        atso-transfer adapt-bn --checkpoint runs/camvid-day/checkpoint.safetensors \\
          --dataset 'camvid:data/camvid/train.txt?include=0001TP&unlabeled' \\
          --size 96x128 --output runs/camvid-day/dusk-adabn.safetensors
        atso-transfer evaluate --checkpoint runs/camvid-day/dusk-adabn.safetensors \\
          --truth 'camvid:data/camvid/train.txt?include=0001TP' --size 96x128
      """)

  @Option(help: "The checkpoint to adapt (read only).")
  var checkpoint: String

  @Option(help: "The images whose statistics to use (a dataset spec; labels are not read).")
  var dataset: String

  @Option(
    parsing: .unconditional,
    help: "The working size HxW (the size the network was trained at).")
  var size: SizeArgument

  @Option(help: "The adapted checkpoint to write (atomically).")
  var output: String

  @Option(parsing: .unconditional, help: "Images per batch-norm batch.")
  var batch = 8

  @Option(parsing: .unconditional, help: "Kernel threads.")
  var threads: Int?

  func validate() throws {
    try validating {
      try SettingChecks.batch(batch, field: "--batch")
      if let threads { try SettingChecks.threads(threads, field: "--threads") }
    }
    if URL(fileURLWithPath: output).standardizedFileURL
      == URL(fileURLWithPath: checkpoint).standardizedFileURL
    {
      throw ValidationError("--output must differ from --checkpoint")
    }
  }

  func run() throws {
    if let threads { BLASThreads.set(threads) }
    let saved = try Checkpoint.read(from: checkpoint)
    let architecture = saved.description.architecture
    try architecture.check(workingSize: size.size, field: "--size")
    let data = try DatasetSpec(parsing: dataset).open()
    // Every image is held at the working size (3 floats a pixel) while the statistics are
    // estimated batch by batch in training mode.
    let held = data.samples.count * size.size.height * size.size.width * 3 * 4
    try architecture.checkMemory(
      batch: min(batch, data.samples.count), size: size.size, training: true,
      field: "--batch x --size (with \(data.samples.count) images held)",
      limit: SettingChecks.availableMemory - held)
    let model = try saved.makeModel(path: checkpoint)
    let augmenter = Augmenter(.evaluation(workingSize: size.size))
    var images: [Tensor] = []
    let printer = ProgressPrinter(interval: 10)
    defer { printer.finish() }
    var start = Date()
    for var reference in data.samples {
      reference.labelPath = nil
      var generator = SeededGenerator(seed: 0)  // the evaluation recipe draws nothing
      images.append(augmenter.apply(try Dataset.load(reference), using: &generator).image)
      printer.items(
        "reading", done: images.count, total: data.samples.count, unit: "img", since: start)
    }
    start = Date()
    let adapted = adaptedBatchNorm(model, images: images, batch: batch) { done in
      printer.items("AdaBN", done: done, total: images.count, unit: "img", since: start)
    }
    printer.items("AdaBN", done: images.count, total: images.count, unit: "img", since: start)
    printer.finish()
    try Self.write(adapted, classSetName: saved.description.classSetName, to: output)
    print(
      "adapted the batch-norm statistics of \(checkpoint) on \(images.count) images "
        + "(\(size.size.height)x\(size.size.width)) -> \(output)")
  }

  static func write<M: SegmentationModel>(_ model: M, classSetName: String, to path: String)
    throws
  {
    try Checkpoint(model: model, classSetName: classSetName).write(to: path)
  }
}
