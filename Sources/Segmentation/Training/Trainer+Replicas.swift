import Foundation
import Tensor

/// Why a data-parallel step stopped: the replica that failed and its error.
public struct ReplicaFailure: Error, Equatable, CustomStringConvertible {
  public var rank: Int
  public var message: String

  public init(rank: Int, message: String) {
    self.rank = rank
    self.message = message
  }

  public var description: String { "rank \(rank): \(message)" }
}

/// The processes of a data-parallel training (``Trainer/replicas``): each holds the same model
/// and trains on its share of every batch.
///
/// Every replica is given the whole batch of a step; replica `index` of `count` computes the
/// images `n * index / count ..< n * (index + 1) / count`. Batch-norm statistics (synchronized
/// batch norm), loss normalizers and gradients are summed over the replicas with ``sum(_:)``,
/// which returns the same values on every replica (a fixed order), so that every replica takes
/// the same step and the models stay identical.
public protocol TrainingReplicas: Sendable {
  /// This replica, `0..<count`; replica 0 writes the files.
  var index: Int { get }
  var count: Int { get }
  /// Element-wise sums over the replicas, the same on each.
  ///
  /// - Throws: the failure of a replica (this one's or another's): every replica throws it.
  func sum(_ values: [Float]) throws(ReplicaFailure) -> [Float]
  func sum(_ values: [Double]) throws(ReplicaFailure) -> [Double]
  /// Makes the other replicas' next (or current) ``sum(_:)`` throw `error` of this replica,
  /// then throws it here.
  func fail(_ error: any Error) throws(ReplicaFailure) -> Never
}

/// The first failure of a replica's sums inside the kernels (which cannot throw): later sums
/// return their input at once, and the trainer throws the failure after the pass.
final class ReplicaSums: @unchecked Sendable {
  private let lock = NSLock()
  private var storedFailure: ReplicaFailure?
  let replicas: any TrainingReplicas

  init(_ replicas: any TrainingReplicas) { self.replicas = replicas }

  var failure: ReplicaFailure? { lock.withLock { storedFailure } }

  /// The batch-norm scope whose totals are summed over the replicas.
  var scope: BatchStatisticsScope {
    .replicas { [self] totals in
      guard failure == nil else { return totals }
      do throws(ReplicaFailure) {
        return try replicas.sum(totals)
      } catch {
        lock.withLock { storedFailure = storedFailure ?? error }
        return totals
      }
    }
  }
}

extension TrainingReplicas {
  /// The images of a batch of `count` that this replica computes:
  /// `count * index / self.count ..< count * (index + 1) / self.count`.
  public func share(of count: Int) -> Range<Int> {
    (count * index / self.count)..<(count * (index + 1) / self.count)
  }
}

/// Whether `error` is a failure that every replica has seen (a replica's failure, thrown by a
/// sum), rather than this replica's own, which the others still have to be told of
/// (``TrainingReplicas/fail(_:)``).
public func isSharedReplicaFailure(_ error: any Error) -> Bool {
  if error is ReplicaFailure { return true }
  if case .replicaFailed = error as? ModelError { return true }
  return false
}

extension Trainer {
  /// What a loss divides by over `labels`: the weights of the counted pixels (all 1 without
  /// class weights), as ``softmaxCrossEntropy(logits:labels:ignoreIndex:classWeights:)`` and
  /// ``reduceThenComputeLoss(logits:superLabels:superClassOfFine:ignoreIndex:)`` do.
  func normalizer(_ labels: [UInt8], loss: TrainingLoss) -> Double {
    let ignore = configuration.ignoreIndex.value
    if case .crossEntropy(let weights?) = loss {
      return labels.reduce(0) { $1 == ignore ? $0 : $0 + Double(weights[Int($1)]) }
    }
    return Double(configuration.ignoreIndex.countLabeled(labels))
  }

  /// The loss, the gradients summed over the replicas and the counted pixels of the groups,
  /// for the whole batch, from this replica's share of it.
  ///
  /// The loss of group `g` is its mean over the counted pixels of every replica:
  /// ```
  /// loss_g = sum_r mean_{g,r} * N_{g,r} / sum_r N_{g,r}       (N: the normalizer)
  /// ```
  /// so each replica scales its logits gradient of group `g` by `N_{g,r} / N_g` (and by the
  /// group's image weight `c_g / n`) before the backward pass, whose batch-norm sums and
  /// parameter gradients are then summed over the replicas.
  mutating func replicatedGradients(
    _ batch: Batch, groups: [LossGroup], replicas: any TrainingReplicas
  ) throws(ModelError) -> (loss: Float, gradients: [String: Tensor], counted: [Int]) {
    let n = batch.count
    let (h, w, c) = (batch.images.shape[1], batch.images.shape[2], batch.images.shape[3])
    let share = replicas.share(of: n)
    let pixels = h * w
    let images = Tensor(
      shape: [share.count, h, w, c],
      scalars: Array(
        batch.images.scalars[(share.lowerBound * pixels * c)..<(share.upperBound * pixels * c)]))
    let labels = Array(batch.labels[(share.lowerBound * pixels)..<(share.upperBound * pixels)])
    let sums = ReplicaSums(replicas)
    let (logits, cache) = model.trainingForward(images, statistics: sums.scope)
    if let failure = sums.failure { throw .replicaFailed(rank: failure.rank, reason: failure.message) }

    // This replica's part of each group: losses, normalizers, counted pixels, gradients.
    let classes = logits.shape[3]
    var normalizers = [Double](repeating: 0, count: groups.count)
    var lossSums = [Double](repeating: 0, count: groups.count)
    var counted = [Double](repeating: 0, count: groups.count)
    var parts: [(group: Int, images: Range<Int>, gradient: Tensor)] = []
    var first = 0
    for (g, group) in groups.enumerated() {
      let global = first..<(first + group.count)
      first += group.count
      let lower = max(global.lowerBound, share.lowerBound)
      let upper = min(global.upperBound, share.upperBound)
      guard lower < upper else { continue }
      let local = lower..<upper
      let offset = local.lowerBound - share.lowerBound
      let range = (offset * pixels)..<((offset + local.count) * pixels)
      let part = Tensor(
        shape: [local.count, h, w, classes],
        scalars: Array(logits.scalars[(range.lowerBound * classes)..<(range.upperBound * classes)]))
      let partLabels = Array(labels[range])
      let (loss, gradient) = lossAndGradient(part, labels: partLabels, loss: group.loss)
      normalizers[g] = normalizer(partLabels, loss: group.loss)
      lossSums[g] = Double(loss) * normalizers[g]
      counted[g] = Double(configuration.ignoreIndex.countLabeled(partLabels))
      parts.append((g, (offset..<(offset + local.count)), gradient))
    }
    let totals: [Double]
    do { totals = try replicas.sum(normalizers + lossSums + counted) } catch {
      throw .replicaFailed(rank: error.rank, reason: error.message)
    }
    let k = groups.count
    var loss = 0.0
    for g in 0..<k where totals[g] > 0 {
      loss += Double(groups[g].count) / Double(n) * totals[k + g] / totals[g]
    }
    guard loss.isFinite else {
      throw .diverged(step: step, reason: "loss is \(loss)", lastGoodCheckpoint: lastCheckpointPath)
    }

    // The logits gradient of this replica's images, each group part scaled to the whole batch.
    var gradient = [Float](repeating: 0, count: logits.count)
    for part in parts {
      let total = totals[part.group]
      guard total > 0 else { continue }
      let factor = Float(
        normalizers[part.group] / total * Double(groups[part.group].count) / Double(n))
      let start = part.images.lowerBound * pixels * classes
      for (i, value) in part.gradient.scalars.enumerated() { gradient[start + i] = value * factor }
    }
    var gradients = model.backward(cache, logitsGradient: Tensor(shape: logits.shape, scalars: gradient))
    if let failure = sums.failure { throw .replicaFailed(rank: failure.rank, reason: failure.message) }

    // Sum the parameter gradients over the replicas, in name order.
    let names = gradients.keys.sorted()
    var flat: [Float] = []
    flat.reserveCapacity(names.reduce(0) { $0 + (gradients[$1]?.count ?? 0) })
    for name in names { flat += gradients[name]?.scalars ?? [] }
    let summed: [Float]
    do { summed = try replicas.sum(flat) } catch {
      throw .replicaFailed(rank: error.rank, reason: error.message)
    }
    var offset = 0
    for name in names {
      guard let tensor = gradients[name] else { continue }
      gradients[name] = Tensor(
        shape: tensor.shape, scalars: Array(summed[offset..<(offset + tensor.count)]))
      offset += tensor.count
    }
    return (Float(loss), gradients, totals[(2 * k)...].map { Int($0.rounded()) })
  }
}
