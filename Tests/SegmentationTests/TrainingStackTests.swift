import Foundation
import Taxonomy
import Tensor
import TestSupport
import Testing

@testable import Segmentation

/// Random images and labels: `count` images of `size` x `size`, labels below `classes`.
private func randomBatch(count: Int, size: Int = 8, classes: Int, seed: UInt64) -> Batch {
  var rng = SeededGenerator(seed: seed)
  let images = Tensor.randomNormal(shape: [count, size, size, 3], using: &rng)
  let labels = (0..<(count * size * size)).map { _ in UInt8(rng.next() % UInt64(classes)) }
  return Batch(images: images, labels: labels)
}

private func tinyTrainer(
  classes: Int = 4, optimizer: TrainingOptimizer = .sgd(SGD(momentum: 0.9)), seed: UInt64 = 3
) -> Trainer<UNet> {
  var rng = SeededGenerator(seed: seed)
  return Trainer(
    model: UNet(.init(widths: [4, 8], classCount: classes), using: &rng),
    configuration: TrainerConfiguration(
      ignoreIndex: .standard, schedule: PolySchedule(baseLearningRate: 0.05, totalSteps: 10),
      optimizer: optimizer, classSetName: "toy"),
    generator: rng)
}

@Suite("one training stack")
struct TrainingStackTests {
  @Test("loss groups: the mean over the batch's counted pixels of each group's loss, labels checked per group")
  func lossGroups() throws {
    let table: [Int?] = [0, 0, 1, nil]
    var batch = randomBatch(count: 3, classes: 4, seed: 1)
    // Images 0 and 1 carry fine labels, image 2 super-class labels (0 or 1), 16 of its pixels
    // void: the groups weigh 128 and 48 counted pixels.
    let pixels = 64
    for i in (2 * pixels)..<(3 * pixels) { batch.labels[i] %= 2 }
    for i in (2 * pixels)..<(2 * pixels + 16) { batch.labels[i] = 255 }
    let groups = [
      LossGroup(count: 2, loss: .crossEntropy()),
      LossGroup(count: 1, loss: .reduceThenCompute(superClassOfFine: table)),
    ]
    var trainer = tinyTrainer()
    let model = trainer.model
    let logits = model(batch.images)
    let fine = softmaxCrossEntropy(
      logits: Tensor(shape: [2, 8, 8, 4], scalars: Array(logits.scalars[..<(2 * pixels * 4)])),
      labels: Array(batch.labels[..<(2 * pixels)]))
    let coarse = reduceThenComputeLoss(
      logits: Tensor(shape: [1, 8, 8, 4], scalars: Array(logits.scalars[(2 * pixels * 4)...])),
      superLabels: Array(batch.labels[(2 * pixels)...]), superClassOfFine: table)
    // The training forward pass normalises with batch statistics, inference with running ones:
    // compare the loss function itself on the same logits.
    let combined = trainer.lossAndGradient(logits, labels: batch.labels, groups: groups)
    #expect(abs(combined.loss - (128 * fine.loss + 48 * coarse.loss) / 176) < 1e-5)
    #expect(
      abs(combined.logitsGradient.scalars[0] - fine.logitsGradient.scalars[0] * 128 / 176) < 1e-7,
      "the first group's gradient is scaled by its share of the counted pixels")
    // Written in place, group by group: the same scalars as each group's own gradient times its
    // share, bit for bit.
    let shares: [Float] = [Float(128) / Float(176), Float(48) / Float(176)]
    #expect(
      combined.logitsGradient.scalars
        == fine.logitsGradient.scalars.map { $0 * shares[0] }
        + coarse.logitsGradient.scalars.map { $0 * shares[1] })
    let result = try trainer.trainStep(batch, groups: groups)
    #expect(result.countedPixels == [2 * pixels, pixels - 16])
    // A fine label in the super-class group is refused, naming the pixel.
    var bad = batch
    bad.labels[2 * pixels + 5] = 3
    #expect(throws: ModelError.invalidLabel(value: 3, pixel: 2 * pixels + 5, classCount: 4)) {
      try trainer.trainStep(bad, groups: groups)
    }
    #expect(throws: ModelError.invalidBatch(reason: "loss groups of [2, 2] images for 3")) {
      try trainer.trainStep(batch, groups: [groups[0], LossGroup(count: 2, loss: .crossEntropy())])
    }
  }

  @Test("the training loop reports every step and sums the counted pixels", arguments: [false, true])
  func trainingLoop(withIgnored: Bool) throws {
    var trainer = tinyTrainer()
    var batch = randomBatch(count: 2, classes: 4, seed: 2)
    if withIgnored { for i in 0..<10 { batch.labels[i] = 255 } }
    var reported: [Int] = []
    let result = try trainer.train(
      until: 4, imagesPerStep: 2, next: { _ in TrainingBatch(batch) },
      progress: { if case .step(let p) = $0 { reported.append(p.step) } })
    #expect(reported == [1, 2, 3, 4])
    #expect(result.steps == 4 && trainer.step == 4)
    #expect(result.countedPixels == [4 * (128 - (withIgnored ? 10 : 0))])
  }

  @Test("Adam: a checkpointed and resumed trainer continues bit for bit", arguments: OptimizerKind.allCases)
  func optimizerResume(kind: OptimizerKind) throws {
    let directory = try makeTemporaryDirectory("optimizer")
    let batches = (0..<4).map { randomBatch(count: 2, classes: 4, seed: 10 + UInt64($0)) }
    let optimizer = TrainingOptimizer(kind, momentum: 0.9, weightDecay: 1e-4)
    var straight = tinyTrainer(optimizer: optimizer)
    for batch in batches { try straight.trainStep(batch) }
    var first = tinyTrainer(optimizer: optimizer)
    for batch in batches.prefix(2) { try first.trainStep(batch) }
    let path = directory + "/half.safetensors"
    try first.saveCheckpoint(to: path)
    let saved = try Checkpoint.read(from: path)
    #expect(saved.trainingState?.optimizer == first.optimizer, "the state round-trips")
    #expect(saved.names == first.model.parameterNames, "optimizer state is not a model tensor")
    var resumed = try Trainer(
      model: tinyTrainer().model, configuration: first.configuration, resumingFrom: saved,
      path: path)
    for batch in batches.suffix(2) { try resumed.trainStep(batch) }
    #expect(resumed.model == straight.model)
    #expect(resumed.optimizer == straight.optimizer)
    // Resuming with the other optimizer is refused.
    var other = first.configuration
    other.optimizer = TrainingOptimizer(
      kind == .sgd ? .adam : .sgd, momentum: 0.9, weightDecay: 0)
    #expect(throws: ModelError.self) {
      try Trainer(model: tinyTrainer().model, configuration: other, resumingFrom: saved)
    }
  }

  @Test("checkpoints written before Adam (a plain SGD object) still decode")
  func legacyOptimizerJSON() throws {
    let json = #"{"momentum": 0.9, "weightDecay": 0.0005, "nesterov": false, "velocity": {}}"#
    let optimizer = try JSONDecoder().decode(TrainingOptimizer.self, from: Data(json.utf8))
    #expect(optimizer == .sgd(SGD(momentum: 0.9, weightDecay: 0.0005)))
    let adam = try JSONEncoder().encode(TrainingOptimizer.adam(Adam(weightDecay: 0.1)))
    #expect(String(decoding: adam, as: UTF8.self).hasPrefix(#"{"adam":"#))
  }

  @Test("AdaBN: every running mean is the exact mean over all images, in any batching")
  func batchNormAdaptation() throws {
    var rng = SeededGenerator(seed: 4)
    let model = UNet(.init(widths: [4, 8], classCount: 3), using: &rng)
    let images = (0..<6).map { _ in Tensor.randomNormal(shape: [8, 8, 3], using: &rng) }
    let byTwo = adaptedBatchNorm(model, images: images, batch: 2)
    let byThree = adaptedBatchNorm(model, images: images, batch: 3)
    let reversed = adaptedBatchNorm(model, images: images.reversed(), batch: 2)
    let name = "enc1.conv1.norm.running_mean"
    let before = try #require(model.parameters[name])
    let a = try #require(byTwo.parameters[name])
    #expect(a != before)
    // The first layer's inputs do not depend on batch statistics: its batch means average to
    // the mean of its convolution outputs over all images.
    var probe = model
    var zeroed = probe.parameters
    zeroed[name] = Tensor(repeating: 0, shape: before.shape)
    probe.parameters = zeroed
    _ = probe.trainingForward(stacked(images))
    let expected = try #require(probe.parameters[name]).scalars.map { $0 / 0.1 }
    for (x, y) in zip(expected, a.scalars) { #expect(abs(x - y) <= 1e-4 * max(1, abs(x))) }
    for other in [byThree, reversed] {
      let b = try #require(other.parameters[name])
      for (x, y) in zip(a.scalars, b.scalars) { #expect(abs(x - y) <= 1e-4 * max(1, abs(x))) }
    }
    // Nothing but the statistics changes.
    for (key, value) in model.parameters where !key.contains("running_") {
      #expect(byTwo.parameters[key] == value, "\(key) changed")
    }
  }

  @Test("photometric jitter: brightness scales, contrast 0 greys out, saturation 0 desaturates")
  func photometricJitter() throws {
    let image = Tensor(shape: [1, 2, 3], scalars: [200, 100, 0, 50, 150, 250])
    let darker = ImageOps.adjusted(image, brightness: 0.5, contrast: 1, saturation: 1)
    #expect(darker.scalars == [100, 50, 0, 25, 75, 125])
    let flat = ImageOps.adjusted(image, brightness: 1, contrast: 0, saturation: 1)
    let grey = (0.299 * 200 + 0.587 * 100 + 0.299 * 50 + 0.587 * 150 + 0.114 * 250) / 2
    #expect(flat.scalars.allSatisfy { abs($0 - Float(grey)) < 1e-3 })
    let pale = ImageOps.adjusted(image, brightness: 1, contrast: 1, saturation: 0)
    #expect(abs(pale.scalars[0] - (0.299 * 200 + 0.587 * 100)) < 1e-3)
    #expect(pale.scalars[0] == pale.scalars[1] && pale.scalars[1] == pale.scalars[2])
    // In the augmenter: labels untouched, draws independent of the strengths.
    let raw = Tensor(shape: [4, 4, 3], scalars: (0..<48).map { Float($0 * 5) })
    let labels = (0..<16).map { UInt8($0 % 3) }
    var plain = AugmentationConfig(normalization: .unit)
    var jittered = plain
    jittered.jitter = PhotometricJitter(brightness: 0.5, contrast: 0.5, saturation: 0.5)
    var g1 = SeededGenerator(seed: 7)
    var g2 = SeededGenerator(seed: 7)
    let a = Augmenter(plain).apply(image: raw, label: labels, using: &g1)
    let b = Augmenter(jittered).apply(image: raw, label: labels, using: &g2)
    #expect(a.label == labels && b.label == labels)
    #expect(zip(a.image.scalars, raw.scalars).allSatisfy { abs($0 * 255 - $1) < 1e-3 })
    #expect(b.image != a.image)
    #expect(g1.next() == g2.next(), "the same number of draws with and without jitter")
    plain.flipProbability = 1
    var g3 = SeededGenerator(seed: 7)
    let flipped = Augmenter(plain).apply(image: raw, label: labels, using: &g3)
    #expect(flipped.label == ImageOps.flippedHorizontally(labels, size: ImageSize(height: 4, width: 4)))
  }

  @Test("class levels: the three spellings of a super level, its decisions and its labels")
  func classLevels() throws {
    let library = try MappingLibrary(directory: packageMappings)
    let fine = try library.classSet(named: "cityscapes-19")
    let spellings = ["cityscapes-19-to-super-5", "cityscapes-19--super-5", "super-5"]
    let levels = try spellings.map {
      try ClassLevel.superClass(
        named: $0, library: library, fineClassSetName: "cityscapes-19", fineClassCount: 19)
    }
    #expect(levels.allSatisfy { $0 == levels[0] })
    let level = levels[0]
    #expect(level.classCount == 5 && level.classes.name == "super-5" && !level.isFine)
    let table = try #require(level.superClassOfFine)
    // Pixel 0: fine arg-max 0, but its super class loses to the sum of another's members.
    var probabilities = [Float](repeating: 0, count: 2 * 19)
    probabilities[0] = 0.3
    let members = (0..<19).filter { table[$0] != nil && table[$0] != table[0] }
    let other = try #require(members.first { f in members.filter { table[$0] == table[f] }.count >= 2 })
    let siblings = members.filter { table[$0] == table[other] }
    for f in siblings.prefix(2) { probabilities[f] = 0.25 }
    probabilities[19 + 4] = 1
    let decisions = level.decide(Tensor(shape: [2, 19], scalars: probabilities))
    #expect(decisions.labels == [UInt8(try #require(table[other])), UInt8(try #require(table[4]))])
    #expect(abs(decisions.confidences[0] - 0.5) < 1e-6)
    let fineDecisions = ClassLevel.fine(fine).decide(Tensor(shape: [2, 19], scalars: probabilities))
    #expect(fineDecisions.labels[0] == 0)
    #expect(level.labels(fromFine: [0, 4, 250], ignore: 250) == [UInt8(table[0] ?? 0), UInt8(table[4] ?? 0), 250])
    #expect(
      throws: TaxonomyError.unknownName(
        "nothing", searched: library.directories, known: library.mappings.map(\.name))
    ) {
      try ClassLevel.superClass(
        named: "nothing", library: library, fineClassSetName: "cityscapes-19", fineClassCount: 19)
    }
    #expect(
      throws: LevelError.unusableMapping(
        name: "camvid-11-to-super-5", reason: "it maps camvid-11, the network predicts cityscapes-19")
    ) {
      try ClassLevel.superClass(
        named: "camvid-11--super-5", library: library, fineClassSetName: "cityscapes-19",
        fineClassCount: 19)
    }
    // camvid-11 lists its void class Unlabelled as id 11, past the network's 11 outputs.
    let camvid = try ClassLevel.superClass(
      named: "camvid-11--super-5", library: library, fineClassSetName: "camvid-11",
      fineClassCount: 11)
    #expect(camvid.classCount == 5 && camvid.superClassOfFine?.count == 11)
    #expect(camvid.labels(fromFine: [0, 11], ignore: 11) == [UInt8(camvid.superClassOfFine?[0] ?? 0), 11])
  }
}
