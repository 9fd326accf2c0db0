import Foundation
import Tensor
import Testing

@testable import Segmentation

/// Ten 6x4 samples: sample k has every label pixel k and every red value 10 * k.
private func makeDataset(_ tag: String, count: Int = 10, labeled: Bool = true) throws -> (
  Dataset, String
) {
  let root = try TestPaths.temporaryDirectory(tag)
  var samples: [SampleReference] = []
  for k in 0..<count {
    let image = "\(root)/s\(k).png"
    try ImageFile.writePNG(
      RGBImage(width: 6, height: 4, red: UInt8(10 * k), green: 0, blue: 0), to: image)
    var label: String? = nil
    if labeled {
      label = "\(root)/s\(k)_label.png"
      try ImageFile.writePNG(
        LabelImage(width: 6, height: 4, values: [UInt8](repeating: UInt8(k), count: 24)),
        to: label ?? "")
    }
    samples.append(SampleReference(id: "s\(k)", imagePath: image, labelPath: label))
  }
  return (Dataset(classSetName: "test", samples: samples), root)
}

private let trainConfig = AugmentationConfig(
  scaleRange: 0.75...1.5, cropSize: ImageSize(height: 4, width: 4), flipProbability: 0.5,
  blurProbability: 0.3, normalization: .unit)

private func batches(_ loader: DataLoader, _ n: Int) throws -> [Batch] {
  try (0..<n).map { _ in try loader.next() }
}

private func same(_ a: [Batch], _ b: [Batch]) -> Bool {
  zip(a, b).allSatisfy { $0.images == $1.images && $0.labels == $1.labels && $0.ids == $1.ids }
    && a.count == b.count
}

@Suite("data loader")
struct DataLoaderTests {
  @Test("epochs visit distinct shuffled samples; labels mapped once and consistent with ids")
  func epochs() throws {
    let (dataset, root) = try makeDataset("epochs")
    defer { try? FileManager.default.removeItem(atPath: root) }
    var table = (0..<256).map { UInt8($0) }
    table[3] = 255
    let loader = try DataLoader(
      dataset: dataset, labelTable: table, augmentation: trainConfig, batchSize: 3, seed: 1)
    #expect(loader.batchesPerEpoch == 3)
    var orders: [[String]] = []
    for _ in 0..<2 {
      var ids: [String] = []
      for _ in 0..<3 {
        let batch = try loader.next()
        #expect(batch.images.shape == [3, 4, 4, 3])
        #expect(batch.labels.count == 48)
        for (n, id) in batch.ids.enumerated() {
          let k = try #require(Int(id.dropFirst()))
          let expected: UInt8 = k == 3 ? 255 : UInt8(k)
          let labels = batch.labels[(16 * n)..<(16 * n + 16)]
          #expect(labels.allSatisfy { $0 == expected || $0 == 255 }, "\(id)")
        }
        ids += batch.ids
      }
      #expect(Set(ids).count == 9)
      orders.append(ids)
    }
    #expect(orders[0] != orders[1])
    #expect(loader.state.epoch == 2 && loader.state.position == 0)
  }

  @Test(
    "results do not depend on workers or prefetch depth; memory window is bounded",
    arguments: [(1, 1), (2, 2), (3, 4)])
  func independentOfThreads(workers: Int, prefetch: Int) throws {
    let (dataset, root) = try makeDataset("threads-\(workers)")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let reference = try DataLoader(
      dataset: dataset, augmentation: trainConfig, batchSize: 2, seed: 7, prefetch: 1, workers: 1)
    let loader = try DataLoader(
      dataset: dataset, augmentation: trainConfig, batchSize: 2, seed: 7, prefetch: prefetch,
      workers: workers)
    #expect(same(try batches(reference, 12), try batches(loader, 12)))
    #expect(loader.peakInFlight <= prefetch)
  }

  @Test("concurrent consumers receive each batch exactly once")
  func concurrentConsumers() async throws {
    let (dataset, root) = try makeDataset("concurrent")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let loader = try DataLoader(
      dataset: dataset, augmentation: trainConfig, batchSize: 1, seed: 2, workers: 2)
    let ids = try await withThrowingTaskGroup(of: [String].self) { group in
      for _ in 0..<4 {
        group.addTask { try (0..<5).flatMap { _ in try loader.next().ids } }
      }
      return try await group.reduce(into: [String]()) { $0 += $1 }
    }
    // 20 batches of 1 = two epochs of 10: every sample exactly twice.
    #expect(ids.count == 20)
    #expect(Dictionary(grouping: ids, by: { $0 }).values.allSatisfy { $0.count == 2 })
    #expect(loader.state.epoch == 2 && loader.state.position == 0)
  }

  @Test("a replica's share: its images as the whole batch has them, zeros and void elsewhere")
  func share() throws {
    let (dataset, root) = try makeDataset("share")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let whole = try DataLoader(dataset: dataset, augmentation: trainConfig, batchSize: 4, seed: 5)
    let part = try DataLoader(
      dataset: dataset, augmentation: trainConfig, batchSize: 4, seed: 5, share: 1..<3)
    for _ in 0..<5 {
      let (a, b) = (try whole.next(), try part.next())
      let (image, pixels) = (a.images.count / 4, a.labels.count / 4)
      #expect(b.images.shape == a.images.shape && b.labels.count == a.labels.count)
      for position in 0..<4 {
        let images = (position * image)..<((position + 1) * image)
        let labels = (position * pixels)..<((position + 1) * pixels)
        if (1..<3).contains(position) {
          #expect(b.images.scalars[images] == a.images.scalars[images])
          #expect(b.labels[labels] == a.labels[labels])
          #expect(b.ids[position] == a.ids[position])
        } else {
          #expect(b.images.scalars[images].allSatisfy { $0 == 0 })
          #expect(b.labels[labels].allSatisfy { $0 == IgnoreIndex.standard.value })
          #expect(b.ids[position].isEmpty)
        }
      }
    }
  }

  @Test("samples kept at the working size give the same batches as decoding every time")
  func keptSamples() throws {
    let (dataset, root) = try makeDataset("kept")
    defer { try? FileManager.default.removeItem(atPath: root) }
    var config = trainConfig
    config.workingSize = ImageSize(height: 3, width: 5)  // a resize from 4x6 before the rest
    config.cropSize = ImageSize(height: 3, width: 3)
    let kept = try DataLoader(dataset: dataset, augmentation: config, batchSize: 5, seed: 8)
    let decoding = try DataLoader(
      dataset: dataset, augmentation: config, batchSize: 5, seed: 8, keptBytes: 0)
    // Epoch 0 visits all ten samples (two batches of five).
    #expect(same(try batches(kept, 2), try batches(decoding, 2)))
    let more = try batches(decoding, 6)
    // The files are gone: the kept loader still serves every sample, the same batches.
    for k in 0..<10 {
      try FileManager.default.removeItem(atPath: "\(root)/s\(k).png")
      try FileManager.default.removeItem(atPath: "\(root)/s\(k)_label.png")
    }
    #expect(same(try batches(kept, 6), more))
    #expect(throws: DatasetError.self) { _ = try batches(decoding, 3) }
    // Samples that do not fit the budget are not kept.
    #expect(DecodedSamples.fitting(10, workingSize: ImageSize(height: 3, width: 5), budget: 1949) == nil)
    #expect(DecodedSamples.fitting(10, workingSize: ImageSize(height: 3, width: 5), budget: 1950) != nil)
    #expect(DecodedSamples.fitting(10, workingSize: nil, budget: 1 << 30) == nil)
    // A count whose size overflows is not kept either.
    #expect(DecodedSamples.fitting(Int.max / 8, workingSize: ImageSize(height: 64, width: 64), budget: Int.max) == nil)
  }

  @Test("a saved state (through JSON) resumes the exact same batches")
  func resume() throws {
    let (dataset, root) = try makeDataset("resume")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let first = try DataLoader(dataset: dataset, augmentation: trainConfig, batchSize: 4, seed: 3)
    _ = try batches(first, 5)  // 2 batches per epoch: now in epoch 2, position 1
    let data = try JSONEncoder().encode(first.state)
    let state = try JSONDecoder().decode(LoaderState.self, from: data)
    #expect(state.epoch == 2 && state.position == 1)
    let resumed = try DataLoader(
      dataset: dataset, augmentation: trainConfig, batchSize: 4, seed: 3, resumingFrom: state)
    #expect(same(try batches(first, 4), try batches(resumed, 4)))

    #expect(throws: DatasetError.self) {
      try DataLoader(
        dataset: dataset, augmentation: trainConfig, batchSize: 5, seed: 3, resumingFrom: state)
    }
    var forged = state
    forged.generator = SeededGenerator(seed: 1)
    #expect(throws: DatasetError.self) {
      try DataLoader(
        dataset: dataset, augmentation: trainConfig, batchSize: 4, seed: 3, resumingFrom: forged)
    }
  }

  @Test(
    "a broken file fails its batch only; unlabelled samples get ignore; no shuffle keeps order"
  )
  func errorsAndUnlabeled() throws {
    var (dataset, root) = try makeDataset("errors", labeled: false)
    defer { try? FileManager.default.removeItem(atPath: root) }
    dataset.samples[2].imagePath = root + "/missing.png"
    let loader = try DataLoader(
      dataset: dataset, augmentation: .evaluation(workingSize: nil, ignoreIndex: 254), batchSize: 2,
      seed: 0, shuffle: false, dropLast: false)
    #expect(loader.batchesPerEpoch == 5)
    let b0 = try loader.next()
    #expect(b0.ids == ["s0", "s1"] && b0.labels.allSatisfy { $0 == 254 })
    #expect(b0.images.shape == [2, 4, 6, 3])
    #expect(throws: DatasetError.image(.fileNotFound(path: root + "/missing.png"))) {
      try loader.next()
    }
    #expect(try loader.next().ids == ["s4", "s5"])
  }

  @Test("a dropLast=false epoch ends with a smaller batch")
  func lastBatch() throws {
    let (dataset, root) = try makeDataset("last", count: 5)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let loader = try DataLoader(
      dataset: dataset, augmentation: trainConfig, batchSize: 2, seed: 0, dropLast: false)
    #expect(try batches(loader, 3).map { $0.ids.count } == [2, 2, 1])
    #expect(throws: DatasetError.self) {
      try DataLoader(dataset: dataset, augmentation: trainConfig, batchSize: 6, seed: 0)
    }
  }

  @Test("different sizes in one batch are reported, not crashed on")
  func inconsistent() throws {
    let (dataset, root) = try makeDataset("incons", count: 2)
    defer { try? FileManager.default.removeItem(atPath: root) }
    var mixed = dataset
    try ImageFile.writePNG(
      RGBImage(width: 3, height: 3, red: 1, green: 2, blue: 3), to: root + "/small.png")
    mixed.samples[1] = SampleReference(id: "small", imagePath: root + "/small.png")
    let loader = try DataLoader(
      dataset: mixed, augmentation: .evaluation(workingSize: nil), batchSize: 2, seed: 0,
      shuffle: false)
    #expect(
      throws: DatasetError.inconsistentBatch(id: "small", shape: [3, 3, 3], expected: [4, 6, 3])
    ) {
      try loader.next()
    }
  }

  @Test("prediction iterator: working size in, original size back")
  func prediction() throws {
    let (dataset, root) = try makeDataset("predict", count: 3)
    defer { try? FileManager.default.removeItem(atPath: root) }
    var iterator = PredictionIterator(dataset: dataset, workingSize: ImageSize(height: 2, width: 3))
    var seen = 0
    while let sample = try iterator.next() {
      #expect(sample.image.shape == [1, 2, 3, 3])
      #expect(sample.originalSize == ImageSize(height: 4, width: 6))
      #expect(sample.label?.width == 6)
      let back = sample.predictionAtOriginalSize([0, 1, 2, 3, 4, 5])
      #expect(back.count == 24 && back[0] == 0 && back[23] == 5)
      seen += 1
    }
    #expect(seen == 3)
  }

  @Test(
    "CamVid val: two 4-image batches at 96x128 crops from a 180x240 working size",
    .enabled(if: TestPaths.hasSharedData("camvid")))
  func camvid() throws {
    let dataset = try Dataset.camVid(listFile: TestPaths.sharedData + "/camvid/val.txt")
    var table = (0..<256).map { _ in UInt8(255) }
    for k in 0...10 { table[k] = UInt8(k) }
    let loader = try DataLoader(
      dataset: dataset, labelTable: table,
      augmentation: .training(
        workingSize: ImageSize(height: 180, width: 240), cropSize: ImageSize(height: 96, width: 128),
        ignoreIndex: .standard),
      batchSize: 4, seed: 1)
    for _ in 0..<2 {
      let batch = try loader.next()
      #expect(batch.images.shape == [4, 96, 128, 3])
      #expect(batch.labels.allSatisfy { $0 <= 10 || $0 == 255 })
    }
  }
}
