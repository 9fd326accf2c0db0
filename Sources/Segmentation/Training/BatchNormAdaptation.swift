import Tensor

/// AdaBN (Li et al., 2016, "Revisiting batch normalization for practical domain adaptation"):
/// the same weights with every batch-norm running statistic replaced by the exact average of the
/// batch statistics of `batches` over all their images.
///
/// Each batch goes through the network in training mode (so every layer normalises with the
/// statistics of its own inputs, as the layers below do), and each batch-norm layer's mean and
/// (unbiased) variance of the batch are averaged over the batches, weighted by their image
/// counts: with batches of one size this is PyTorch's cumulative average (`momentum=None`,
/// `reset_running_stats()`), which the reference `torch_atso_adabn.py` uses. The result does not
/// depend on the previous running statistics nor on the order of the batches (up to rounding),
/// and nothing but the `running_mean`/`running_variance` buffers changes. The one AdaBN of the
/// package: `adapt-bn`, the AdaBN teachers of a transfer (images and volume views).
///
/// The batch statistic of a layer is read back from its running buffer after one forward pass
/// from a buffer of zeros (`running = m * statistic`); the momentum `m` of every layer is
/// measured once, on the first batch, from a second pass starting at ones.
/// - Parameter batches: `[n, h, w, c]` inputs (n may vary); an empty sequence returns `model`.
public func adaptedBatchNorm<M: SegmentationModel>(_ model: M, batches: some Sequence<Tensor>) -> M
{
  let names = model.parameterNames.filter {
    $0.hasSuffix("running_mean") || $0.hasSuffix("running_variance")
  }
  guard !names.isEmpty else { return model }
  let original = model.parameters

  /// The running buffers after one training forward pass from buffers all set to `value`.
  func runningAfter(_ x: Tensor, from value: Float) -> [String: [Float]] {
    var copy = model
    var start = original
    for name in names {
      start[name] = Tensor(repeating: value, shape: original[name]?.shape ?? [])
    }
    copy.parameters = start
    _ = copy.trainingForward(x)
    let after = copy.parameters
    return Dictionary(uniqueKeysWithValues: names.map { ($0, after[$0]?.scalars ?? []) })
  }

  var momentum: [String: Float] = [:]
  var sums: [String: [Double]] = [:]
  var total = 0
  for batch in batches {
    let count = batch.shape.first ?? 0
    guard count > 0 else { continue }
    let fromZero = runningAfter(batch, from: 0)
    if momentum.isEmpty {
      // running = (1 - m) * running + m * statistic: from 0 it gives m * statistic, from 1 it
      // gives 1 - m + m * statistic, so the difference is 1 - m.
      let fromOne = runningAfter(batch, from: 1)
      for name in names {
        let m = 1 - ((fromOne[name]?.first ?? 1) - (fromZero[name]?.first ?? 0))
        momentum[name] = m > 0 ? m : 0.1
      }
    }
    for name in names {
      guard let values = fromZero[name], let m = momentum[name] else { continue }
      var sum = sums[name] ?? [Double](repeating: 0, count: values.count)
      for j in values.indices { sum[j] += Double(count) * Double(values[j] / m) }
      sums[name] = sum
    }
    total += count
  }
  guard total > 0 else { return model }
  var adapted = original
  for name in names {
    guard let sum = sums[name], let shape = original[name]?.shape else { continue }
    adapted[name] = Tensor(shape: shape, scalars: sum.map { Float($0 / Double(total)) })
  }
  var result = model
  result.parameters = adapted
  return result
}

/// ``adaptedBatchNorm(_:batches:)`` over `images` (`[h, w, c]` each) in batches of `batch`, in order.
/// - Parameter progress: called before each batch with the number of images done.
public func adaptedBatchNorm<M: SegmentationModel>(
  _ model: M, images: [Tensor], batch: Int, progress: ((_ done: Int) -> Void)? = nil
) -> M {
  let size = max(1, batch)
  let batches = stride(from: 0, to: images.count, by: size).lazy.map {
    progress?($0)
    return stacked(images[$0..<min(images.count, $0 + size)])
  }
  return adaptedBatchNorm(model, batches: batches)
}
