// The Dice + cross-entropy loss of nnU-Net (Isensee et al., Nature Methods 2021), for volumes.

/// The smoothing term of the soft Dice (nnU-Net's `smooth = 1e-5`).
public let diceSmoothing = 1e-5

/// Computes the soft Dice + cross-entropy loss of NHWC logits and its gradient.
///
/// The logits score `C` fine classes; `superClassOfFine[f]` is the level class of fine class
/// `f` (the identity `[0, 1, ..., C - 1]` at the fine level; `nil`: none), and `labels` holds
/// level class ids or `ignoreIndex`. With `p` the softmax over the fine classes and
/// `q_ik = sum_{f in F(k)} p_if` the probability of level class `k` at pixel `i`, over the
/// counted pixels `i` of the whole batch (batch Dice):
/// ```
/// loss  = CE + (1 - mean_{k in 1..<K} dice_k)
/// CE    = mean_i -log q_i,y_i            (the reduce-then-compute loss; plain CE at the fine level)
/// dice_k = (2 sum_i q_ik [y_i = k] + s) / (sum_i q_ik + sum_i [y_i = k] + s),   s = 1e-5
/// ```
/// Level class 0 is the background and takes no part in the Dice term (nnU-Net's `do_bg=False`;
/// the Medical Segmentation Decathlon's labels put the background at 0); `K` is the number of
/// level classes (the largest entry of `superClassOfFine` plus one). A class absent from the
/// labels and never predicted has Dice 1. When no pixel counts the loss is 0 with a zero
/// gradient. Sums run over fixed pixel chunks in chunk order, so the result does not depend on
/// the thread count.
/// - Parameters:
///   - logits: `[n, h, w, C]` (any rank: the last axis holds the fine classes).
///   - labels: one level class id, or `ignoreIndex`, per pixel.
///   - superClassOfFine: `C` entries.
///   - ignoreIndex: the void label.
/// - Returns: the loss and its gradient with respect to `logits` (overwritten, same shape).
/// - Precondition: `superClassOfFine.count == C`, `labels.count` is the number of pixels, and
///   every label other than `ignoreIndex` is a level class with at least one fine class.
public func diceCrossEntropyLoss(
  logits: Tensor, labels: [UInt8], superClassOfFine: [Int?], ignoreIndex: UInt8 = 255
) -> (loss: Float, logitsGradient: Tensor) {
  let result = diceCrossEntropyCore(
    logits: logits.scalars, classes: logits.shape.last ?? 0, labels: labels,
    superClassOfFine: superClassOfFine, ignoreIndex: ignoreIndex)
  return (Float(result.loss), Tensor(shape: logits.shape, scalars: result.gradient))
}

/// The generic core of ``diceCrossEntropyLoss(logits:labels:superClassOfFine:ignoreIndex:)``:
/// `logits` is `pixels x classes` row-major; returns the loss and its gradient.
package func diceCrossEntropyCore<T: LossScalar>(
  logits: [T], classes: Int, labels: [UInt8], superClassOfFine: [Int?], ignoreIndex: UInt8 = 255
) -> (loss: Double, gradient: [T]) {
  withNewGradient(logits: logits, labels: labels) { z, y, gradient in
    diceCrossEntropyCore(
      logits: z, classes: classes, labels: y, superClassOfFine: superClassOfFine,
      ignoreIndex: ignoreIndex, into: gradient)
  }
}

/// ``diceCrossEntropyCore(logits:classes:labels:superClassOfFine:ignoreIndex:)`` in place, as
/// ``softmaxCrossEntropyCore(logits:classes:labels:ignoreIndex:classWeights:gradientFactor:into:)``.
package func diceCrossEntropyCore<T: LossScalar>(
  logits: UnsafeBufferPointer<T>, classes: Int, labels: UnsafeBufferPointer<UInt8>,
  superClassOfFine: [Int?], ignoreIndex: UInt8 = 255, gradientFactor: T = 1,
  into gradient: UnsafeMutableBufferPointer<T>
) -> Double {
  // The cross-entropy part (validates the arguments, and is plain CE for the identity table).
  var loss = reduceThenComputeCore(
    logits: logits, classes: classes, superLabels: labels, superClassOfFine: superClassOfFine,
    ignoreIndex: ignoreIndex, into: gradient)
  // The factor over the whole gradient, when the Dice part adds nothing.
  func scaled() -> Double {
    if gradientFactor != 1 { for i in gradient.indices { gradient[i] *= gradientFactor } }
    return loss
  }
  let levelCount = (superClassOfFine.compactMap { $0 }.max() ?? 0) + 1
  let pixels = logits.count / classes
  guard levelCount > 1, pixels > 0, let zBase = logits.baseAddress,
    let yBase = labels.baseAddress, let gBase = gradient.baseAddress
  else { return scaled() }
  let table = superClassOfFine
  let z = SharedReads(base: zBase)
  let y = SharedReads(base: yBase)
  // The softmax row of pixel i into `p` (fine classes), its level probabilities into `q`.
  @Sendable func levelRow(_ row: UnsafePointer<T>, _ p: inout [T], _ q: inout [T]) {
    var m = row[0]
    for c in 1..<classes where row[c] > m { m = row[c] }
    var sum: T = 0
    for c in 0..<classes {
      p[c] = T.exponential(row[c] - m)
      sum += p[c]
    }
    for k in 0..<levelCount { q[k] = 0 }
    for c in 0..<classes {
      p[c] /= sum
      if let k = table[c] { q[k] += p[c] }
    }
  }
  // Pass 1: sums[3k] = sum q_ik y_ik, sums[3k + 1] = sum q_ik, sums[3k + 2] = sum y_ik.
  let sums = pixelChunkSums(pixels: pixels, width: 3 * levelCount, gradient: gBase) {
    range, _, own in
    var p = [T](repeating: 0, count: classes)
    var q = [T](repeating: 0, count: levelCount)
    for i in range {
      let label = y.base[i]
      if label == ignoreIndex { continue }
      levelRow(z.base + i * classes, &p, &q)
      for k in 0..<levelCount {
        own[3 * k + 1] += Double(q[k])
      }
      own[3 * Int(label)] += Double(q[Int(label)])
      own[3 * Int(label) + 2] += 1
    }
  }
  let intersection = (0..<levelCount).map { sums[3 * $0] }
  let predicted = (0..<levelCount).map { sums[3 * $0 + 1] }
  let truth = (0..<levelCount).map { sums[3 * $0 + 2] }
  guard truth.reduce(0, +) > 0 else { return scaled() }
  // dL/dq_ik = -(1 / (K - 1)) * (2 [y_i = k] D_k - N_k) / D_k^2, N = 2 I + s, D = P + Y + s.
  let foreground = Double(levelCount - 1)
  var meanDice = 0.0
  var onTruth = [T](repeating: 0, count: levelCount)
  var offTruth = [T](repeating: 0, count: levelCount)
  for k in 1..<levelCount {
    let numerator = 2 * intersection[k] + diceSmoothing
    let denominator = predicted[k] + truth[k] + diceSmoothing
    meanDice += numerator / denominator / foreground
    offTruth[k] = T(numerator / (denominator * denominator) / foreground)
    onTruth[k] = offTruth[k] - T(2 / denominator / foreground)
  }
  loss += 1 - meanDice
  let (on, off) = (onTruth, offTruth)
  // Pass 2: dL/dz_ij = p_ij (g_ij - sum_f g_if p_if), g_if = dL/dq_i,table[f]; then the factor
  // (the ignored pixels' gradient is zero).
  _ = pixelChunkSums(pixels: pixels, width: 0, gradient: gBase) { range, g, _ in
    var p = [T](repeating: 0, count: classes)
    var q = [T](repeating: 0, count: levelCount)
    var d = [T](repeating: 0, count: classes)
    for i in range {
      let label = y.base[i]
      if label == ignoreIndex { continue }
      levelRow(z.base + i * classes, &p, &q)
      var dot: T = 0
      for c in 0..<classes {
        guard let k = table[c], k > 0 else {
          d[c] = 0
          continue
        }
        d[c] = k == Int(label) ? on[k] : off[k]
        dot += d[c] * p[c]
      }
      let out = g + i * classes
      for c in 0..<classes { out[c] += p[c] * (d[c] - dot) }
      if gradientFactor != 1 { for c in 0..<classes { out[c] *= gradientFactor } }
    }
  }
  return loss
}
