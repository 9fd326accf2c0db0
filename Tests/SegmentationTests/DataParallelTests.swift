import Foundation
import Tensor
import TestSupport
import Testing

@testable import Segmentation

/// Replicas that are threads of this process: each ``sum(_:)`` waits for every replica's values
/// and returns their sum in replica order (what the MPI tree does across processes).
private final class ThreadRendezvous: @unchecked Sendable {
  let count: Int
  private let condition = NSCondition()
  private var deposits: [[Double]?]
  private var result: [Double] = []
  private var arrived = 0
  private var round = 0
  private var failure: ReplicaFailure?

  init(count: Int) {
    self.count = count
    deposits = Array(repeating: nil, count: count)
  }

  func sum(_ values: [Double], from index: Int) throws(ReplicaFailure) -> [Double] {
    condition.lock()
    defer { condition.unlock() }
    if let failure { throw failure }
    let myRound = round
    deposits[index] = values
    arrived += 1
    if arrived == count {
      var total = deposits[0] ?? []
      for r in 1..<count {
        for (i, value) in (deposits[r] ?? []).enumerated() { total[i] += value }
      }
      result = total
      arrived = 0
      round += 1
      condition.broadcast()
    } else {
      while round == myRound, failure == nil { condition.wait() }
      if let failure { throw failure }
    }
    return result
  }

  func fail(_ failure: ReplicaFailure) {
    condition.lock()
    self.failure = self.failure ?? failure
    condition.broadcast()
    condition.unlock()
  }
}

private struct ThreadReplicas: TrainingReplicas {
  let index: Int
  let rendezvous: ThreadRendezvous
  var count: Int { rendezvous.count }

  func sum(_ values: [Double]) throws(ReplicaFailure) -> [Double] {
    try rendezvous.sum(values, from: index)
  }

  func sum(_ values: [Float]) throws(ReplicaFailure) -> [Float] {
    try rendezvous.sum(values.map(Double.init), from: index).map(Float.init)
  }

  func fail(_ error: any Error) throws(ReplicaFailure) -> Never {
    let failure = ReplicaFailure(rank: index, message: String(describing: error))
    rendezvous.fail(failure)
    throw failure
  }
}

/// Images with a few colour-coded classes and some void pixels.
private func scenes(count: Int, size: Int, classes: Int, seed: UInt64) -> Batch {
  var rng = SeededGenerator(seed: seed)
  var images = Tensor(repeating: 0, shape: [count, size, size, 3])
  var labels = [UInt8](repeating: 0, count: count * size * size)
  for n in 0..<count {
    let x0 = Int(rng.next() % UInt64(size / 2))
    for y in 0..<size {
      for x in 0..<size {
        let pixel = (n * size + y) * size + x
        var label = x >= x0 && x < x0 + size / 3 ? 1 : (y < size / 4 ? 2 % classes : 0)
        if (x * 5 + y * 3 + n) % 17 == 0 { label = 255 }
        labels[pixel] = UInt8(label)
        for k in 0..<3 {
          let base = label == 255 ? 0 : Float((label * 7 + k * 3) % 5) / 2 - 1
          images.scalars[pixel * 3 + k] = base + 0.3 * rng.nextNormal()
        }
      }
    }
  }
  return Batch(images: images, labels: labels)
}

private func trainer<Model: SegmentationModel>(_ model: Model, steps: Int) -> Trainer<Model> {
  Trainer(
    model: model,
    configuration: TrainerConfiguration(
      ignoreIndex: .standard, schedule: PolySchedule(baseLearningRate: 0.05, totalSteps: steps),
      optimizer: .sgd(SGD(momentum: 0.9, weightDecay: 1e-4)), maxGradientNorm: 5,
      classSetName: "toy-3"),
    generator: SeededGenerator(seed: 1))
}

/// The losses of `steps` steps of `model` in one process and over `ranks` thread replicas (the
/// first replica's), and every replica's final model.
private func train<Model: SegmentationModel & Equatable>(
  _ model: Model, ranks: Int, steps: Int, batches: [Batch], groups: [LossGroup]?
) throws -> (one: [Float], replicated: [Float], single: Model, replicas: [Model]) {
  var alone = trainer(model, steps: steps)
  var one: [Float] = []
  for step in 0..<steps { one.append(try alone.trainStep(batches[step], groups: groups).loss) }

  let rendezvous = ThreadRendezvous(count: ranks)
  let results = LockedResults<(losses: [Float], model: Model)>(count: ranks)
  onThreads(ranks) { index in
    var replica = trainer(model, steps: steps)
    replica.replicas = ThreadReplicas(index: index, rendezvous: rendezvous)
    var losses: [Float] = []
    do {
      for step in 0..<steps {
        losses.append(try replica.trainStep(batches[step], groups: groups).loss)
      }
      results.set(index, .success((losses, replica.model)))
    } catch {
      results.set(index, .failure(error))
    }
  }
  let outcomes = try results.values.map { try $0.get() }
  return (one, outcomes[0].losses, alone.model, outcomes.map(\.model))
}

/// Runs `body(0..<count)` on threads of their own, all at once (the replicas wait for each
/// other, so none may wait for a free worker), and returns when all have finished.
private func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  let group = DispatchGroup()
  for index in 0..<count {
    group.enter()
    let thread = Thread {
      body(index)
      group.leave()
    }
    thread.stackSize = 8 << 20
    thread.start()
  }
  group.wait()
}

private final class LockedResults<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: [Result<Value, any Error>?]
  init(count: Int) { stored = Array(repeating: nil, count: count) }
  func set(_ index: Int, _ value: Result<Value, any Error>) { lock.withLock { stored[index] = value } }
  var values: [Result<Value, any Error>] {
    lock.withLock { stored.map { $0 ?? .failure(ModelError.invalidBatch(reason: "no result")) } }
  }
}

/// The largest difference of the parameters and running statistics of two models, relative to
/// the largest magnitude of each tensor.
private func largestDifference<M: SegmentationModel>(_ a: M, _ b: M)
  -> Float
{
  let left = a.parameters
  let right = b.parameters
  var largest: Float = 0
  for (name, tensor) in left {
    guard let other = right[name] else { return .infinity }
    let scale = tensor.scalars.reduce(Float(1e-6)) { Swift.max($0, abs($1)) }
    for (x, y) in zip(tensor.scalars, other.scalars) {
      largest = Swift.max(largest, abs(x - y) / scale)
    }
  }
  return largest
}

/// Data-parallel steps (``Trainer/replicas``) against one process with the same global batch.
///
/// Not bitwise: the replicas sum their batch-norm totals and gradients after computing them
/// over their own images, which adds the same terms in another order than one pass over the
/// whole batch. The loss curves agree to a relative 1e-5 over these steps, the weights to 1e-4;
/// the replicas' models are bitwise the same as each other (they apply the same summed step).
@Suite("data-parallel training")
struct DataParallelTests {
  let steps = 6

  @Test("U-Net, 2 and 3 replicas (uneven shares, a loss group across a share boundary)")
  func unetReplicas() throws {
    var rng = SeededGenerator(seed: 3)
    let model = UNet(.init(widths: [4, 8], classCount: 4), using: &rng)
    let batches = (0..<steps).map { scenes(count: 5, size: 16, classes: 3, seed: UInt64(10 + $0)) }
    let groups = [
      LossGroup(count: 3, loss: .crossEntropy()),
      LossGroup(count: 2, loss: .reduceThenCompute(superClassOfFine: [0, 1, 2, 2])),
    ]
    for ranks in [2, 3] {
      let run = try train(model, ranks: ranks, steps: steps, batches: batches, groups: groups)
      for (step, (a, b)) in zip(run.one, run.replicated).enumerated() {
        #expect(abs(a - b) <= 1e-5 * abs(a), "\(ranks) ranks, step \(step): \(a) vs \(b)")
      }
      #expect(run.one[0] != run.one[steps - 1], "the model did not train")
      for replica in run.replicas.dropFirst() { #expect(replica == run.replicas[0]) }
      let difference = largestDifference(run.single, run.replicas[0])
      #expect(difference < 1e-4, "\(ranks) ranks: weights differ by \(difference)")
    }
  }

  @Test("DeepLab (ASPP, pooled branch): 2 replicas follow one process")
  func deeplabReplicas() throws {
    var rng = SeededGenerator(seed: 4)
    let model = DeepLab(.init(widths: [4, 8, 8, 8], asppChannels: 8, classCount: 3), using: &rng)
    let batches = (0..<steps).map { scenes(count: 4, size: 16, classes: 3, seed: UInt64(20 + $0)) }
    let run = try train(model, ranks: 2, steps: steps, batches: batches, groups: nil)
    for (step, (a, b)) in zip(run.one, run.replicated).enumerated() {
      #expect(abs(a - b) <= 1e-5 * abs(a), "step \(step): \(a) vs \(b)")
    }
    #expect(run.replicas[0] == run.replicas[1])
    #expect(largestDifference(run.single, run.replicas[0]) < 1e-4)
  }

  @Test("a batch smaller than the replicas is refused; one replica's failure stops every one")
  func failures() throws {
    var rng = SeededGenerator(seed: 5)
    let model = UNet(.init(widths: [4, 8], classCount: 3), using: &rng)
    let rendezvous = ThreadRendezvous(count: 3)
    var small = trainer(model, steps: 2)
    small.replicas = ThreadReplicas(index: 0, rendezvous: rendezvous)
    #expect(throws: ModelError.self) {
      try small.trainStep(scenes(count: 2, size: 16, classes: 3, seed: 1))
    }

    let pair = ThreadRendezvous(count: 2)
    let results = LockedResults<Int>(count: 2)
    onThreads(2) { index in
      var replica = trainer(model, steps: 2)
      replica.replicas = ThreadReplicas(index: index, rendezvous: pair)
      do {
        if index == 1 {
          try replica.replicas?.fail(ModelError.invalidBatch(reason: "unreadable image"))
        }
        try replica.trainStep(scenes(count: 4, size: 16, classes: 3, seed: 2))
        results.set(index, .success(0))
      } catch {
        results.set(index, .failure(error))
      }
    }
    let values = results.values
    guard case .failure(let error) = values[0] else {
      Issue.record("replica 0 trained past replica 1's failure")
      return
    }
    guard case .replicaFailed(let rank, let reason) = error as? ModelError else {
      Issue.record("replica 0 threw \(error)")
      return
    }
    #expect(rank == 1)
    #expect(reason.contains("unreadable image"))
  }
}
