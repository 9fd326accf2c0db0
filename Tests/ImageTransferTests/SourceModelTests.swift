import Foundation
import Segmentation
import Taxonomy
import Tensor
import TestSupport
import Testing
@testable import ImageTransfer
@testable import Transfer

@Suite("source model")
struct SourceModelTests {
  @Test("a run starts from a given checkpoint: M0 is that model, its size and widths adopted")
  func importedSourceModel() throws {
    let directory = try makeTemporaryDirectory("source-model")
    let trained = try tinySourceModel(try tinyBackend(), in: directory)
    // Options without size and widths: both come from the checkpoint.
    var object = tinyObject()
    object["size"] = nil
    object["widths"] = nil
    let configuration = try TransferConfiguration(
      seed: 4, schedules: [.atso], folds: 2, generations: 1,
      backend: ImageBackendOptions.decoding(object), sourceModel: trained
    ).validated()
    let backend = try #require(try configuration.makeBackend() as? ImageBackend)
    #expect(backend.size == ImageSize(height: 32, width: 48))
    let given = try Checkpoint.read(from: trained)
    #expect(backend.architecture(network: nil) == given.description.architecture)
    let counting = InterruptingBackend(backend, limit: .max)
    let run = try TransferRun.start(
      configuration: configuration, directory: directory + "/run", backend: counting)
    let records = try run.execute()
    #expect(run.executedJobs.first == "import-source")
    #expect(!run.plan.jobs.contains { if case .trainSource = $0.action { true } else { false } })
    #expect(backend.trainingLog.allSatisfy { $0.kind == "student" })
    let imported = try Checkpoint.read(from: directory + "/run/models/source.ckpt")
    #expect(imported.tensors == given.tensors)
    let direct = try backend.evaluate(
      EvaluationRequest(checkpoint: trained, set: .test, level: .fine))
    #expect(records.first { $0.generation == 0 }?.atE == direct.score)
  }

  @Test("a checkpoint that does not fit the run is refused, naming the option")
  func mismatchedSourceModel() throws {
    let directory = try makeTemporaryDirectory("source-model-mismatch")
    let trained = try tinySourceModel(try tinyBackend(), in: directory)
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "backend.size",
        reason: "64x96, but the source model has 32x48 (leave it out to use the model's)")
    ) { try tinyBackend(["size": "64x96"], sourceModel: trained) }
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "backend.classes",
        reason: "camvid-11, but the source model has cityscapes-19 (leave it out to use the model's)")
    ) { try tinyBackend(["classes": "camvid-11"], sourceModel: trained) }
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "backend.widths",
        reason: "[8, 16], but the source model has [4, 8] (leave it out to use the model's)")
    ) { try tinyBackend(["widths": [8, 16]], sourceModel: trained) }
    // A checkpoint that records no working size, alone in its folder: the size must be given.
    var rng = SeededGenerator(seed: 1)
    let bare = directory + "/bare.safetensors"
    try Checkpoint(
      model: UNet(.init(widths: [4, 8], classCount: 19), using: &rng), classSetName: "cityscapes-19"
    ).write(to: bare)
    var object = tinyObject()
    object["size"] = nil
    #expect(
      throws: TransferError.invalidConfiguration(
        file: "configuration", key: "backend.size",
        reason: "the source model records no working size (nor a training.json beside it): "
          + "give size=HxW, the size it was trained at")
    ) {
      try ImageBackend(
        options: ImageBackendOptions.decoding(object),
        context: BackendContext(levels: [.fine], ignoreIndex: .standard, sourceModel: bare))
    }
    #expect(try tinyBackend(sourceModel: bare).size == ImageSize(height: 32, width: 48))
    // Older `train` checkpoints: the size of the training.json beside them.
    let recipe = TrainingRunConfiguration(
      architecture: .unet(configuration: .init(widths: [4, 8], classCount: 19)),
      classSetName: "cityscapes-19", ignoreIndex: .standard,
      augmentation: AugmentationConfig(workingSize: ImageSize(height: 32, width: 48)),
      batchSize: 2, totalSteps: 1)
    try JSONEncoder().encode(recipe).write(
      to: URL(fileURLWithPath: TrainingRunFiles.configuration(in: directory)))
    let backend = try ImageBackend(
      options: ImageBackendOptions.decoding(object),
      context: BackendContext(levels: [.fine], ignoreIndex: .standard, sourceModel: bare))
    #expect(backend.size == ImageSize(height: 32, width: 48))
  }
}
