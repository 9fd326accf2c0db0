import Foundation
import Taxonomy
import Tensor
import Testing

@testable import Segmentation

/// A tiny Cityscapes-layout dataset and its cityscapes-34 -> cityscapes-19 training table.
private func tinySource(_ tag: String, count: Int = 4) throws -> (
  source: LabeledSource, classes: ClassSet, root: String
) {
  let root = try TestPaths.temporaryDirectory(tag)
  let dataset = try SyntheticStreets.writeDataset(
    domain: .source, root: root, split: "train", count: count, seed: 3, width: 32, height: 16)
  let library = try MappingLibrary(directory: TestPaths.packageRoot + "/mappings")
  let classes = try library.classSet(named: "cityscapes-19")
  let mapping = try library.mapping(from: dataset.classSetName, to: "cityscapes-19")
  return (
    LabeledSource(dataset: dataset, labelTable: trainingLabelTable(mapping, modelClasses: classes)),
    classes, root
  )
}

private func tinyConfiguration(steps: Int, checkpointInterval: Int = 100)
  -> TrainingRunConfiguration
{
  TrainingRunConfiguration(
    architecture: .unet(configuration: .init(widths: [4, 8], classCount: 19)), classSetName: "cityscapes-19",
    ignoreIndex: 255,
    augmentation: AugmentationConfig(
      workingSize: ImageSize(height: 16, width: 32), scaleRange: 0.75...1.25,
      cropSize: ImageSize(height: 16, width: 32), flipProbability: 0.5),
    batchSize: 2, totalSteps: steps, baseLearningRate: 0.05, seed: 5,
    checkpointInterval: checkpointInterval)
}

@Suite struct TrainingRunTests {
  @Test func trainingTableSendsVoidClassesToIgnore() throws {
    let library = try MappingLibrary(directory: TestPaths.packageRoot + "/mappings")
    let camvid = try library.classSet(named: "camvid-11")
    let table = trainingLabelTable(.identity(camvid), modelClasses: camvid)
    #expect(table[3] == 3)
    #expect(table[11] == 11)  // Unlabelled -> the camvid ignore value
    #expect(table[200] == 11)
  }

  @Test func runsValidatesAndWritesCheckpoint() throws {
    let (source, classes, root) = try tinySource("run")
    defer { try? FileManager.default.removeItem(atPath: root) }
    var steps: [Int] = []
    var validations = 0
    var configuration = tinyConfiguration(steps: 4, checkpointInterval: 2)
    configuration.validationInterval = 2
    let result = try runTraining(
      configuration, in: root + "/run", training: source, validation: source,
      modelClasses: classes
    ) { event in
      switch event {
      case .step(let p): steps.append(p.step)
      case .validation: validations += 1
      default: break
      }
    }
    #expect(steps == [1, 2, 3, 4])
    #expect(validations == 2)
    #expect(result.steps == 4)
    let checkpoint = try Checkpoint.read(from: result.checkpointPath)
    #expect(checkpoint.trainingState?.step == 4)
    #expect(checkpoint.trainingState?.loader?.epoch == 2)
    #expect(result.validation?.meanIoU.isFinite == true)
    let lines = try String(
      contentsOfFile: TrainingRunFiles.validationLog(in: root + "/run"), encoding: .utf8)
    #expect(lines.split(separator: "\n").count == 2)
  }

  @Test func resumedRunEqualsUninterruptedRun() throws {
    let (source, classes, root) = try tinySource("resume", count: 6)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let full = try runTraining(
      tinyConfiguration(steps: 6), in: root + "/full", training: source, modelClasses: classes)
    // First half: a run whose process "dies" in step 4 (its loss logged), after the checkpoint
    // of step 3.
    var half = tinyConfiguration(steps: 6, checkpointInterval: 3)
    struct Killed: Error {}
    #expect(throws: Killed.self) {
      _ = try runTraining(half, in: root + "/split", training: source, modelClasses: classes) {
        if case .step(let p) = $0, p.step == 4 { throw Killed() }
      }
    }
    half.checkpointInterval = 100
    var resumedAt: Int?
    let resumed = try runTraining(
      half, in: root + "/split", training: source, modelClasses: classes, resume: true
    ) { if case .resumed(let step, _) = $0 { resumedAt = step } }
    #expect(resumedAt == 3)
    let a = try Checkpoint.read(from: full.checkpointPath)
    let b = try Checkpoint.read(from: resumed.checkpointPath)
    #expect(a.tensors == b.tensors)
    #expect(a.trainingState == b.trainingState)
    // The loss log: step 4's row of the killed run dropped, then written again: the same bytes.
    let log = { (run: String) in
      try String(contentsOfFile: TrainingRunFiles.lossLog(in: root + run), encoding: .utf8)
    }
    #expect(try log("/full") == log("/split"))
    #expect(try log("/full").split(separator: "\n").count == 1 + 6)
  }

  @Test func resumeRejectsAnotherRecipe() throws {
    let (source, classes, root) = try tinySource("mismatch")
    defer { try? FileManager.default.removeItem(atPath: root) }
    _ = try runTraining(
      tinyConfiguration(steps: 1), in: root + "/run", training: source, modelClasses: classes)
    var other = tinyConfiguration(steps: 1)
    other.seed = 9
    #expect(throws: ModelError.self) {
      _ = try runTraining(
        other, in: root + "/run", training: source, modelClasses: classes, resume: true)
    }
  }
}
