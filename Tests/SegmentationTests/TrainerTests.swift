import Foundation
import Tensor
import TestSupport
import Testing

@testable import Segmentation

/// Tiny synthetic scenes: a background, a rectangle and a disc, each class with its own colour
/// plus noise. Labels use `fineClasses` colours; the returned labels are the fine classes.
private func syntheticBatch(count: Int, size: Int = 16, classes: Int = 3, seed: UInt64) -> Batch {
  var rng = SeededGenerator(seed: seed)
  var palette: [[Float]] = []
  for c in 0..<classes {
    palette.append((0..<3).map { k in Float((c * 7 + k * 3) % 5) / 2 - 1 })
  }
  var images = Tensor(repeating: 0, shape: [count, size, size, 3])
  var labels = [UInt8](repeating: 0, count: count * size * size)
  for n in 0..<count {
    // Rectangle of class 1, disc of class 2 (and further classes as stripes).
    let x0 = Int(rng.next() % UInt64(size / 2))
    let y0 = Int(rng.next() % UInt64(size / 2))
    let cx = Float(rng.next() % UInt64(size))
    let cy = Float(rng.next() % UInt64(size))
    for y in 0..<size {
      for x in 0..<size {
        var label = 0
        if x >= x0 && x < x0 + size / 3 && y >= y0 && y < y0 + size / 2 { label = 1 }
        if classes > 2, (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) < 12 {
          label = 2
        }
        if classes > 3, (x + 2 * y + n) % 11 == 0 { label = 3 + (x / 4) % (classes - 3) }
        let pixel = (n * size + y) * size + x
        labels[pixel] = UInt8(label)
        for k in 0..<3 {
          images.scalars[pixel * 3 + k] = palette[label][k] + 0.2 * rng.nextNormal()
        }
      }
    }
  }
  return Batch(images: images, labels: labels)
}

private func accuracy(_ predicted: [UInt8], _ truth: [UInt8], ignoreIndex: UInt8 = 255) -> Double {
  var right = 0
  var counted = 0
  for (p, t) in zip(predicted, truth) where t != ignoreIndex {
    counted += 1
    if p == t { right += 1 }
  }
  return counted == 0 ? 0 : Double(right) / Double(counted)
}

private func temporaryPath(_ name: String) throws -> (directory: URL, path: String) {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "atso-trainer-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return (url, url.appendingPathComponent(name).path)
}

@Test("the U-Net overfits four tiny images, and save -> load -> predict gives identical labels")
func unetOverfitsAndReloads() throws {
  var rng = SeededGenerator(seed: 5)
  let batch = syntheticBatch(count: 4, seed: 11)
  let model = UNet(.init(widths: [8, 16, 32], classCount: 3), using: &rng)
  let steps = 120
  var trainer = Trainer(
    model: model,
    configuration: TrainerConfiguration(
      ignoreIndex: .standard, schedule: PolySchedule(baseLearningRate: 0.05, totalSteps: steps),
      optimizer: .sgd(SGD(momentum: 0.9)), classSetName: "toy-3"),
    generator: rng)
  var losses: [Float] = []
  for _ in 0..<steps { losses.append(try trainer.trainStep(batch).loss) }
  let first = losses[0]
  let last = losses.suffix(5).reduce(0, +) / 5
  #expect(last < 0.2 * first, "loss went from \(first) to \(last)")
  let prediction = trainer.predict(batch.images)
  let trainAccuracy = accuracy(prediction.labels, batch.labels)
  #expect(trainAccuracy > 0.9, "training-set pixel accuracy \(trainAccuracy)")
  #expect(prediction.probabilities.shape == [4, 16, 16, 3])

  let (directory, path) = try temporaryPath("unet.safetensors")
  defer { try? FileManager.default.removeItem(at: directory) }
  try trainer.saveCheckpoint(to: path)
  let checkpoint = try Checkpoint.read(from: path)
  var otherRng = SeededGenerator(seed: 77)
  let blank = UNet(.init(widths: [8, 16, 32], classCount: 3), using: &otherRng)
  let resumed = try Trainer(
    model: blank, configuration: trainer.configuration, resumingFrom: checkpoint, path: path)
  #expect(resumed.predict(batch.images).labels == prediction.labels)
  #expect(resumed.predict(batch.images).probabilities == prediction.probabilities)
  #expect(resumed.step == steps && resumed.optimizer == trainer.optimizer)
  #expect(resumed.generator == trainer.generator)
  let loaded = try checkpoint.makeModel(path: path)
  #expect(predictSegmentation(loaded, images: batch.images).labels == prediction.labels)
}

@Test("the reduce loss trains fine classes from coarse labels; fine predictions respect them")
func reduceLossTrainsFineClasses() throws {
  var rng = SeededGenerator(seed: 8)
  // Five fine classes: {0, 1} form super-class 0, {2, 3} super-class 1, fine class 4 belongs to none.
  let table: [Int?] = [0, 0, 1, 1, nil]
  let fine = syntheticBatch(count: 4, classes: 4, seed: 3)
  let coarse = Batch(images: fine.images, labels: fine.labels.map { UInt8(table[Int($0)] ?? 255) })
  let model = UNet(.init(widths: [8, 16, 32], classCount: 5), using: &rng)
  let steps = 80
  var trainer = Trainer(
    model: model,
    configuration: TrainerConfiguration(
      loss: .reduceThenCompute(superClassOfFine: table), ignoreIndex: .standard,
      schedule: PolySchedule(baseLearningRate: 0.05, totalSteps: steps),
      optimizer: .sgd(SGD(momentum: 0.9)), classSetName: "toy-fine"),
    generator: rng)
  var losses: [Float] = []
  for _ in 0..<steps { losses.append(try trainer.trainStep(coarse).loss) }
  #expect(
    losses.suffix(5).reduce(0, +) / 5 < 0.3 * losses[0],
    "losses \(losses[0]) -> \(losses.last ?? 0)")
  let predicted = trainer.predict(coarse.images).labels
  let superOfPredicted = predicted.map { UInt8(table[Int($0)] ?? 254) }
  let consistency = accuracy(superOfPredicted, coarse.labels)
  #expect(consistency > 0.9, "fine predictions agree with the coarse labels on \(consistency)")
  #expect(!predicted.contains(4), "the unmapped fine class is never predicted")
  // A coarse label outside the table is refused before anything changes.
  var bad = coarse
  bad.labels[7] = 2
  #expect(throws: ModelError.invalidLabel(value: 2, pixel: 7, classCount: 5)) {
    try trainer.trainStep(bad)
  }
}

@Test("a diverging step throws, leaves the model untouched and keeps the last good checkpoint")
func divergenceIsReported() throws {
  var rng = SeededGenerator(seed: 12)
  let batch = syntheticBatch(count: 2, size: 8, seed: 4)
  let (directory, path) = try temporaryPath("last-good.safetensors")
  defer { try? FileManager.default.removeItem(at: directory) }
  var trainer = Trainer(
    model: UNet(.init(widths: [4, 8], classCount: 3), using: &rng),
    configuration: TrainerConfiguration(
      ignoreIndex: .standard, schedule: PolySchedule(baseLearningRate: 0.01, totalSteps: 10),
      optimizer: .sgd(SGD(momentum: 0.9)), checkpointPath: path, checkpointInterval: 1,
      classSetName: "toy-3"),
    generator: rng)
  try trainer.trainStep(batch)
  let good = trainer.model
  var poisoned = batch
  poisoned.images.scalars[5] = .nan
  do {
    try trainer.trainStep(poisoned)
    Issue.record("a NaN image trained without error")
  } catch {
    guard case .diverged(let step, _, let checkpoint) = error else {
      Issue.record("unexpected \(error)")
      return
    }
    #expect(step == 1 && checkpoint == path)
    #expect(error.description.contains("last good checkpoint: \(path)"))
  }
  #expect(trainer.model == good && trainer.step == 1)
  var restored = UNet(.init(widths: [4, 8], classCount: 3), using: &rng)
  try Checkpoint.read(from: path).restore(into: &restored, path: path)
  #expect(restored == good)
  #expect(throws: ModelError.self) {
    try trainer.trainStep(Batch(images: batch.images, labels: [0, 1]))
  }
}

@Test("flip test-time augmentation is equivariant to mirroring the input")
func flipAugmentation() {
  var rng = SeededGenerator(seed: 2)
  let model = UNet(.init(widths: [4, 8], classCount: 3), using: &rng)
  let images = Tensor.randomNormal(shape: [2, 8, 12, 3], using: &rng)
  let direct = predictSegmentation(model, images: images, horizontalFlip: true)
  let mirrored = predictSegmentation(
    model, images: flippedHorizontally(images), horizontalFlip: true)
  #expect(
    flippedHorizontally(mirrored.probabilities).isClose(
      to: direct.probabilities, relativeTolerance: 1e-5))
  let plain = predictSegmentation(model, images: images)
  #expect(plain.probabilities != direct.probabilities)
  #expect(flippedHorizontally(flippedHorizontally(images)) == images)
}
