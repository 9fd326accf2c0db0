import CKernels

/// Batch normalization over the channels of NHWC tensors (Ioffe and Szegedy, 2015).
///
/// Statistics are per channel over `n`, `h` and `w`: the tensor is viewed as `rows x c` with
/// `rows = count / c` (any rank works; the last axis is the channel axis). Training uses the
/// batch mean and the biased variance; the running statistics follow PyTorch (unbiased variance,
/// `running = (1 - momentum) * running + momentum * batch`).
///
/// Threads: rows are cut into fixed chunks of ``batchNormChunkRows`` rows; per-chunk sums are
/// combined in chunk order in `Double`, so results do not depend on the thread count.

/// Rows per reduction chunk of the batch-norm kernels.
package let batchNormChunkRows = 512

/// The batch statistics saved by a training forward pass for the backward pass (equal: the same
/// values over the same count, whatever the scope).
public struct BatchNormStatistics: Sendable, Equatable {
  /// The batch mean per channel, `[c]`.
  public var mean: Tensor
  /// `1 / sqrt(variance + epsilon)` per channel with the biased batch variance, `[c]`.
  public var inverseStandardDeviation: Tensor
  /// The values per channel the statistics were taken over (`n * h * w`, over every replica
  /// of a data-parallel step), and the scope the backward pass sums over.
  public var count: Int
  public var scope: BatchStatisticsScope

  public init(
    mean: Tensor, inverseStandardDeviation: Tensor, count: Int,
    scope: BatchStatisticsScope = .local
  ) {
    self.mean = mean
    self.inverseStandardDeviation = inverseStandardDeviation
    self.count = count
    self.scope = scope
  }

  /// The statistics of `c = mean.count` channels from plain arrays.
  init(mean: [Float], inverse: [Float], count: Int, scope: BatchStatisticsScope) {
    self.init(
      mean: Tensor(shape: [mean.count], scalars: mean),
      inverseStandardDeviation: Tensor(shape: [inverse.count], scalars: inverse), count: count,
      scope: scope)
  }

  public static func == (a: Self, b: Self) -> Bool {
    a.mean == b.mean && a.inverseStandardDeviation == b.inverseStandardDeviation
      && a.count == b.count
  }
}

/// Per-channel sums over fixed row chunks, combined in chunk order in `Double`.
///
/// `accumulate(rows, sums)` adds the sums of `quantities` quantities of the rows `rows` into
/// `sums` (`quantities * c` zero-initialized scalars, quantity-major). Returns the totals.
package func channelSums(
  rows: Int, c: Int, quantities: Int,
  _ accumulate: @Sendable (Range<Int>, UnsafeMutablePointer<Float>) -> Void
) -> [Double] {
  let chunks = (rows + batchNormChunkRows - 1) / batchNormChunkRows
  let size = quantities * c
  var partials = [Float](repeating: 0, count: chunks * size)
  partials.withUnsafeMutableBufferPointer { pb in
    guard let base = pb.baseAddress else { return }
    let p = DisjointWrites(base: base)
    parallelChunks(chunks) { i in
      let r0 = i * batchNormChunkRows
      accumulate(r0..<min(rows, r0 + batchNormChunkRows), p.base + i * size)
    }
  }
  var totals = [Double](repeating: 0, count: size)
  for i in 0..<chunks {
    for j in 0..<size { totals[j] += Double(partials[i * size + j]) }
  }
  return totals
}

/// Checks a batch-norm input and its `[c]` parameters; returns `(rows, c)`.
private func batchNormSizes(_ input: Tensor, _ parameters: [(String, Tensor)]) -> (Int, Int) {
  precondition(input.rank >= 1, "batch norm input must have a channel axis")
  let c = input.shape[input.rank - 1]
  for (name, p) in parameters {
    precondition(p.shape == [c], "batch norm \(name) \(p.shape) != [\(c)]")
  }
  let rows = c == 0 ? 0 : input.count / c
  return (rows, c)
}

/// Normalizes with the batch statistics (training mode), optionally followed by a ReLU.
private func batchNormTraining(
  _ input: Tensor, scale: Tensor, offset: Tensor, epsilon: Float, relu: Bool,
  scope: BatchStatisticsScope
) -> (output: Tensor, statistics: BatchNormStatistics) {
  let (localRows, c) = batchNormSizes(input, [("scale", scale), ("offset", offset)])
  var rows = localRows
  precondition(rows >= 1, "batch norm training needs at least one value per channel")
  var mean = [Float](repeating: 0, count: c)
  var inverse = [Float](repeating: 0, count: c)
  let output = input.scalars.withUnsafeBufferPointer { xb -> Tensor in
    guard let xBase = xb.baseAddress else { return input }
    let x = SharedReads(base: xBase)
    // Pass 1: mean.
    let isa = KernelISA.best.cValue
    let localSums = channelSums(rows: localRows, c: c, quantities: 1) { range, s in
      atso_channel_moments(isa, x.base, Int32(c), range.lowerBound, range.upperBound, nil, s, nil)
    }
    let sums: [Double]
    (sums, rows) = scope.combine(localSums, rows: localRows)
    for j in 0..<c { mean[j] = Float(sums[j] / Double(rows)) }
    // Pass 2: biased variance around the mean.
    let m = mean
    let localSquares = m.withUnsafeBufferPointer { mb -> [Double] in
      let mu = SharedReads(base: mb.baseAddress ?? xBase)
      return channelSums(rows: localRows, c: c, quantities: 2) { range, s in
        // s[0..<c] collects the sums of x - mean (discarded), s[c..<2c] those of squares.
        atso_channel_moments(
          isa, x.base, Int32(c), range.lowerBound, range.upperBound, mu.base, s, s + c)
      }
    }
    let squares = scope.combine(localSquares, rows: localRows).totals
    for j in 0..<c {
      inverse[j] = Float(1 / (squares[c + j] / Double(rows) + Double(epsilon)).squareRoot())
    }
    return affinePerChannel(
      x: x, rows: localRows, c: c, shape: input.shape,
      a: normalizingScale(scale: scale, inverse: inverse),
      b: normalizingOffset(offset: offset, mean: mean, scale: scale, inverse: inverse), relu: relu)
  }
  return (output, BatchNormStatistics(mean: mean, inverse: inverse, count: rows, scope: scope))
}

/// `a = scale * inverse` of `y = x * a + b`.
private func normalizingScale(scale: Tensor, inverse: [Float]) -> [Float] {
  (0..<inverse.count).map { scale.scalars[$0] * inverse[$0] }
}

/// `b = offset - mean * a` of `y = x * a + b`.
private func normalizingOffset(offset: Tensor, mean: [Float], scale: Tensor, inverse: [Float])
  -> [Float]
{
  (0..<mean.count).map { offset.scalars[$0] - mean[$0] * (scale.scalars[$0] * inverse[$0]) }
}

/// Batch normalisation in training mode (then a ReLU if `relu`) with statistics gathered
/// elsewhere, as the convolution kernel gathers them while storing its output
/// (``conv2dForwardWithMoments(concatenating:weight:stride:padding:dilation:shift:isa:)``):
/// per channel `j`, `sums[j]` and `squares[j]` are the sums of `x - shift[j]` and of its square
/// over the `n * h * w` values, so
/// ```
/// mean = shift + sums / m        variance = squares / m - (sums / m)^2   (biased, >= 0)
/// ```
/// Otherwise the same as ``batchNormReLUTrainingForward(_:scale:offset:epsilon:scope:)``; with
/// replicas (`scope`, the same `shift` on each) the sums are added over the replicas first.
package func batchNormTrainingForward(
  _ input: Tensor, sums localSums: [Double], squares localSquares: [Double], shift: Tensor,
  scale: Tensor, offset: Tensor, epsilon: Float = 1e-5, relu: Bool,
  scope: BatchStatisticsScope = .local
) -> (output: Tensor, statistics: BatchNormStatistics) {
  let (localRows, c) = batchNormSizes(
    input, [("scale", scale), ("offset", offset), ("shift", shift)])
  precondition(localRows >= 1, "batch norm training needs at least one value per channel")
  precondition(
    localSums.count == c && localSquares.count == c,
    "batch norm moments of \(localSums.count) channels")
  let (moments, rows) = scope.combine(localSums + localSquares, rows: localRows)
  let sums = Array(moments[0..<c])
  let squares = Array(moments[c...])
  var mean = [Float](repeating: 0, count: c)
  var inverse = [Float](repeating: 0, count: c)
  for j in 0..<c {
    let centred = sums[j] / Double(rows)
    let variance = max(0, squares[j] / Double(rows) - centred * centred)
    mean[j] = Float(Double(shift.scalars[j]) + centred)
    inverse[j] = Float(1 / (variance + Double(epsilon)).squareRoot())
  }
  let output = input.scalars.withUnsafeBufferPointer { xb -> Tensor in
    guard let xBase = xb.baseAddress else { return input }
    return affinePerChannel(
      x: SharedReads(base: xBase), rows: localRows, c: c, shape: input.shape,
      a: normalizingScale(scale: scale, inverse: inverse),
      b: normalizingOffset(offset: offset, mean: mean, scale: scale, inverse: inverse), relu: relu)
  }
  return (output, BatchNormStatistics(mean: mean, inverse: inverse, count: rows, scope: scope))
}

/// `y[r, j] = x[r, j] * a[j] + b[j]` (then `max(0, y)` if `relu`), in parallel over row chunks.
private func affinePerChannel(
  x: SharedReads<Float>, rows: Int, c: Int, shape: [Int], a: [Float], b: [Float], relu: Bool
) -> Tensor {
  Tensor.filled(shape: shape) { out in
    guard let outBase = out.baseAddress else { return }
    a.withUnsafeBufferPointer { ab in
      b.withUnsafeBufferPointer { bb in
        guard let aBase = ab.baseAddress, let bBase = bb.baseAddress else { return }
        let y = DisjointWrites(base: outBase)
        let sa = SharedReads(base: aBase)
        let sb = SharedReads(base: bBase)
        let chunks = (rows + batchNormChunkRows - 1) / batchNormChunkRows
        let isa = KernelISA.best.cValue
        parallelChunks(chunks) { i in
          atso_affine_channels(
            isa, x.base, y.base, sa.base, sb.base, Int32(c), i * batchNormChunkRows,
            min(rows, (i + 1) * batchNormChunkRows), relu ? 1 : 0)
        }
      }
    }
  }
}

/// Batch normalization in training mode: normalizes with the batch statistics.
///
/// `input` is `[..., c]` (NHWC images or `[rows, c]`); per channel `j`:
/// ```
/// mean = average of x[..., j]          variance = average of (x[..., j] - mean)^2   (biased)
/// y = (x - mean) / sqrt(variance + epsilon) * scale[j] + offset[j]
/// ```
/// - Returns: the new output, same shape as `input`, and the statistics the backward pass needs.
/// - Precondition: `scale` and `offset` are `[c]`; the input has at least one row.
public func batchNormTrainingForward(
  _ input: Tensor, scale: Tensor, offset: Tensor, epsilon: Float = 1e-5,
  scope: BatchStatisticsScope = .local
) -> (output: Tensor, statistics: BatchNormStatistics) {
  batchNormTraining(
    input, scale: scale, offset: offset, epsilon: epsilon, relu: false, scope: scope)
}

/// Batch normalization in training mode followed by a ReLU, in one pass over the output.
///
/// Same as ``reluForward(_:)`` of ``batchNormTrainingForward(_:scale:offset:epsilon:)``; pair it
/// with ``batchNormReLUBackward(outputGradient:output:input:scale:statistics:)``.
public func batchNormReLUTrainingForward(
  _ input: Tensor, scale: Tensor, offset: Tensor, epsilon: Float = 1e-5,
  scope: BatchStatisticsScope = .local
) -> (output: Tensor, statistics: BatchNormStatistics) {
  batchNormTraining(
    input, scale: scale, offset: offset, epsilon: epsilon, relu: true, scope: scope)
}

/// Batch normalization in inference mode: normalizes with running statistics.
///
/// `y = (x - runningMean) / sqrt(runningVariance + epsilon) * scale + offset`, per channel of the
/// last axis. Returns a new tensor of the input's shape.
/// - Precondition: `scale`, `offset`, `runningMean` and `runningVariance` are `[c]`.
public func batchNormInferenceForward(
  _ input: Tensor, scale: Tensor, offset: Tensor, runningMean: Tensor, runningVariance: Tensor,
  epsilon: Float = 1e-5
) -> Tensor {
  batchNormInference(
    input, scale: scale, offset: offset, runningMean: runningMean,
    runningVariance: runningVariance, epsilon: epsilon, relu: false)
}

/// Inference-mode batch normalization followed by a ReLU, in one pass.
public func batchNormReLUInferenceForward(
  _ input: Tensor, scale: Tensor, offset: Tensor, runningMean: Tensor, runningVariance: Tensor,
  epsilon: Float = 1e-5
) -> Tensor {
  batchNormInference(
    input, scale: scale, offset: offset, runningMean: runningMean,
    runningVariance: runningVariance, epsilon: epsilon, relu: true)
}

private func batchNormInference(
  _ input: Tensor, scale: Tensor, offset: Tensor, runningMean: Tensor, runningVariance: Tensor,
  epsilon: Float, relu: Bool
) -> Tensor {
  let (rows, c) = batchNormSizes(
    input,
    [("scale", scale), ("offset", offset), ("running mean", runningMean),
     ("running variance", runningVariance)])
  var a = [Float](repeating: 0, count: c)
  var b = [Float](repeating: 0, count: c)
  for j in 0..<c {
    a[j] = scale.scalars[j] / (runningVariance.scalars[j] + epsilon).squareRoot()
    b[j] = offset.scalars[j] - runningMean.scalars[j] * a[j]
  }
  return input.scalars.withUnsafeBufferPointer { xb -> Tensor in
    guard let xBase = xb.baseAddress else { return input }
    return affinePerChannel(
      x: SharedReads(base: xBase), rows: rows, c: c, shape: input.shape, a: a, b: b, relu: relu)
  }
}

/// The shared backward pass; `output` (post-ReLU) masks the gradient when given.
private func batchNormBackwardImpl(
  outputGradient: Tensor, output: Tensor?, input: Tensor, scale: Tensor,
  statistics: BatchNormStatistics
) -> (input: Tensor, scale: Tensor, offset: Tensor) {
  let (rows, c) = batchNormSizes(
    input,
    [("scale", scale), ("mean", statistics.mean),
     ("inverse standard deviation", statistics.inverseStandardDeviation)])
  precondition(
    outputGradient.shape == input.shape,
    "batch norm output gradient \(outputGradient.shape) != input \(input.shape)")
  if let output {
    precondition(output.shape == input.shape, "batch norm output \(output.shape) != \(input.shape)")
  }
  let mask = output?.scalars ?? []
  var scaleGradient = [Float](repeating: 0, count: c)
  var offsetGradient = [Float](repeating: 0, count: c)
  let inputGradient = input.scalars.withUnsafeBufferPointer { xb -> Tensor in
    outputGradient.scalars.withUnsafeBufferPointer { dyb -> Tensor in
      mask.withUnsafeBufferPointer { mb -> Tensor in
        statistics.mean.scalars.withUnsafeBufferPointer { meanb -> Tensor in
          statistics.inverseStandardDeviation.scalars.withUnsafeBufferPointer { ib -> Tensor in
            guard let xBase = xb.baseAddress, let dyBase = dyb.baseAddress,
              let meanBase = meanb.baseAddress, let iBase = ib.baseAddress
            else { return Tensor.zeros(input.shape) }
            let x = SharedReads(base: xBase)
            let dy = SharedReads(base: dyBase)
            // An empty array may still have a base address: test `output`, not the pointer.
            let y = output == nil ? nil : mb.baseAddress.map { SharedReads(base: $0) }
            let mu = SharedReads(base: meanBase)
            let inv = SharedReads(base: iBase)
            // Sums of dz and dz * xhat, with dz = dy (masked by output > 0 after a ReLU): this
            // process's for the parameter gradients (the replicas' gradients are summed later),
            // those of the statistics' scope for the input gradient.
            let isa = KernelISA.best.cValue
            let localSums = channelSums(rows: rows, c: c, quantities: 2) { range, s in
              // The sums of dz * xhat follow the sums of dz.
              atso_bn_backward_sums(
                isa, dy.base, y?.base, x.base, mu.base, inv.base, Int32(c), range.lowerBound,
                range.upperBound, s, s + c)
            }
            // dx = scale * inv / rows * (rows * dz - sum(dz) - xhat * sum(dz * xhat))
            //    = k1 * dz + k2 * (x - mean) + k3   per channel.
            var k1 = [Float](repeating: 0, count: c)
            var k2 = [Float](repeating: 0, count: c)
            var k3 = [Float](repeating: 0, count: c)
            let (sums, scopeRows) = statistics.scope.combine(localSums, rows: rows)
            for j in 0..<c {
              offsetGradient[j] = Float(localSums[j])
              scaleGradient[j] = Float(localSums[c + j])
              let g = Double(scale.scalars[j]) * Double(inv.base[j])
              let invRows = 1 / Double(scopeRows)
              k1[j] = Float(g)
              k2[j] = Float(-g * invRows * sums[c + j] * Double(inv.base[j]))
              k3[j] = Float(-g * invRows * sums[j])
            }
            return k1.withUnsafeBufferPointer { k1b in
              k2.withUnsafeBufferPointer { k2b in
                k3.withUnsafeBufferPointer { k3b in
                  let a1 = SharedReads(base: k1b.baseAddress ?? xBase)
                  let a2 = SharedReads(base: k2b.baseAddress ?? xBase)
                  let a3 = SharedReads(base: k3b.baseAddress ?? xBase)
                  return Tensor.filled(shape: input.shape) { out in
                    guard let outBase = out.baseAddress else { return }
                    let dx = DisjointWrites(base: outBase)
                    let chunks = (rows + batchNormChunkRows - 1) / batchNormChunkRows
                    parallelChunks(chunks) { i in
                      atso_bn_backward_apply(
                        isa, dy.base, y?.base, x.base, mu.base, a1.base, a2.base, a3.base,
                        dx.base, Int32(c), i * batchNormChunkRows,
                        min(rows, (i + 1) * batchNormChunkRows))
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return (
    input: inputGradient, scale: Tensor(shape: [c], scalars: scaleGradient),
    offset: Tensor(shape: [c], scalars: offsetGradient)
  )
}

/// Computes the gradients of ``batchNormTrainingForward(_:scale:offset:epsilon:)``.
///
/// With `xhat = (x - mean) * inverseStandardDeviation` and `m` values per channel:
/// ```
/// offset = sum(dy)      scale = sum(dy * xhat)
/// input  = scale[j] * inverseStandardDeviation / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))
/// ```
/// Returns new tensors (overwrites nothing).
/// - Precondition: `outputGradient` and `input` have the same shape; parameters are `[c]`.
public func batchNormBackward(
  outputGradient: Tensor, input: Tensor, scale: Tensor, statistics: BatchNormStatistics
) -> (input: Tensor, scale: Tensor, offset: Tensor) {
  batchNormBackwardImpl(
    outputGradient: outputGradient, output: nil, input: input, scale: scale,
    statistics: statistics)
}

/// Computes the gradients of ``batchNormReLUTrainingForward(_:scale:offset:epsilon:)``.
///
/// `output` is the forward's (post-ReLU) output; the gradient passes where `output > 0`.
public func batchNormReLUBackward(
  outputGradient: Tensor, output: Tensor, input: Tensor, scale: Tensor,
  statistics: BatchNormStatistics
) -> (input: Tensor, scale: Tensor, offset: Tensor) {
  batchNormBackwardImpl(
    outputGradient: outputGradient, output: output, input: input, scale: scale,
    statistics: statistics)
}

/// Updates running statistics with one batch, with PyTorch semantics.
///
/// ```
/// runningMean     = (1 - momentum) * runningMean     + momentum * mean
/// runningVariance = (1 - momentum) * runningVariance + momentum * variance * count / (count - 1)
/// ```
/// where `variance = 1 / inverseStandardDeviation^2 - epsilon` is the biased batch variance and
/// `count` the number of values per channel (`n * h * w`); with `count == 1` the variance is used
/// unscaled. Overwrites the running tensors.
/// - Precondition: all tensors are `[c]`; `count >= 1`.
public func updateRunningStatistics(
  runningMean: inout Tensor, runningVariance: inout Tensor, statistics: BatchNormStatistics,
  count: Int, momentum: Float = 0.1, epsilon: Float = 1e-5
) {
  let c = statistics.mean.count
  precondition(
    runningMean.shape == [c] && runningVariance.shape == [c]
      && statistics.inverseStandardDeviation.shape == [c],
    "running statistics \(runningMean.shape), \(runningVariance.shape) != [\(c)]")
  precondition(count >= 1, "running statistics need count >= 1, got \(count)")
  let correction = count > 1 ? Double(count) / Double(count - 1) : 1
  for j in 0..<c {
    let inv = Double(statistics.inverseStandardDeviation.scalars[j])
    let variance = max(0, 1 / (inv * inv) - Double(epsilon))
    runningMean.scalars[j] =
      (1 - momentum) * runningMean.scalars[j] + momentum * statistics.mean.scalars[j]
    runningVariance.scalars[j] =
      (1 - momentum) * runningVariance.scalars[j] + momentum * Float(variance * correction)
  }
}
