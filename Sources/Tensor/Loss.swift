import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// Pixel-wise segmentation losses over NHWC logits.
//
// Both losses are written once, generic over `LossScalar`, so that the tests can run the very same
// code in `Double` for finite-difference checks; the public entry points run it in `Float` with
// `Double` accumulation of the loss sum.

/// A floating-point type the loss kernels can run in (`Float` in training, `Double` in tests).
package protocol LossScalar: BinaryFloatingPoint, Sendable {
  /// `e^x`.
  static func exponential(_ x: Self) -> Self
  /// The natural logarithm.
  static func logarithm(_ x: Self) -> Self
  /// Replaces `x[i]` by `e^x[i]` for `i < count`.
  static func exponentiate(_ x: UnsafeMutablePointer<Self>, count: Int)
}

extension Float: LossScalar {
  @inline(__always) package static func exponential(_ x: Float) -> Float { expf(x) }
  @inline(__always) package static func logarithm(_ x: Float) -> Float { logf(x) }
  /// The vector kernel `atso_exp_inplace` (relative error below 2e-7).
  package static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int) {
    atso_exp_inplace(KernelISA.best.cValue, x, count)
  }
}

extension Double: LossScalar {
  @inline(__always) package static func exponential(_ x: Double) -> Double { exp(x) }
  @inline(__always) package static func logarithm(_ x: Double) -> Double { log(x) }
  package static func exponentiate(_ x: UnsafeMutablePointer<Double>, count: Int) {
    for i in 0..<count { x[i] = exp(x[i]) }
  }
}

/// The first passes of a chunk's softmax: for every pixel `i` of `range` that `counts`, writes
/// `e^(z[i][c] - max_c z[i][c])` into row `i` of `g` (one ``LossScalar/exponentiate(_:count:)``
/// call over the whole chunk) and returns the maxima (`maxima[i - range.lowerBound]`). The rows
/// of the other pixels hold garbage for the caller to overwrite.
private func exponentiatedRows<T: LossScalar>(
  _ z: UnsafePointer<T>, _ g: UnsafeMutablePointer<T>, range: Range<Int>, classes: Int,
  counts: (Int) -> Bool
) -> [T] {
  var maxima = [T](repeating: 0, count: range.count)
  for i in range where counts(i) {
    let row = z + i * classes
    let out = g + i * classes
    var m = row[0]
    for c in 1..<classes where row[c] > m { m = row[c] }
    for c in 0..<classes { out[c] = row[c] - m }
    maxima[i - range.lowerBound] = m
  }
  T.exponentiate(g + range.lowerBound * classes, count: range.count * classes)
  return maxima
}

/// Computes the mean pixel-wise softmax cross-entropy of NHWC logits and its gradient.
///
/// `logits` is `[n, h, w, C]`; `labels` holds one class id per pixel in the same `n * h * w`
/// row-major order. Pixels labelled `ignoreIndex` take no part. With class weights `w` this is
/// PyTorch's `F.cross_entropy(weight: w, ignore_index: ignoreIndex, reduction: "mean")`, the
/// weighted mean over the counted pixels `i`:
/// ```
/// loss = sum_i w[y_i] * (-log softmax(z_i)[y_i]) / sum_i w[y_i]
/// ```
/// When no pixel counts (all ignored, or all weights zero) the loss is 0 and the gradient is zero
/// (PyTorch would return NaN).
/// - Parameters:
///   - logits: `[n, h, w, C]` (any rank: the last axis holds the classes).
///   - labels: one class id in `0..<C`, or `ignoreIndex`, per pixel.
///   - ignoreIndex: the void label.
///   - classWeights: optional weights, one per class.
/// - Returns: the loss and the gradient of the loss with respect to `logits` (overwritten, same
///   shape as `logits`).
/// - Precondition: `labels.count` is the number of pixels, every label is below `C` or equals
///   `ignoreIndex`, and `classWeights` (if given) has `C` non-negative entries. Callers validate
///   labels that come from files before they get here.
public func softmaxCrossEntropy(
  logits: Tensor, labels: [UInt8], ignoreIndex: UInt8 = 255, classWeights: [Float]? = nil
) -> (loss: Float, logitsGradient: Tensor) {
  let classes = logits.shape.last ?? 0
  let result = softmaxCrossEntropyCore(
    logits: logits.scalars, classes: classes, labels: labels, ignoreIndex: ignoreIndex,
    classWeights: classWeights)
  return (Float(result.loss), Tensor(shape: logits.shape, scalars: result.gradient))
}

/// Computes the reduce-then-compute loss of fine-class logits against super-class labels.
///
/// The logits score `C` fine classes; `superClassOfFine[f]` is the super-class of fine class `f`,
/// or `nil` when `f` belongs to no super-class. For a pixel labelled with super-class `s`, let
/// `F(s)` be the fine classes whose super-class is `s`; the pixel's loss is the negative log of the
/// probability mass that the softmax over all `C` fine classes puts on `F(s)`:
/// ```
/// loss_i = -log sum_{f in F(s)} softmax(z_i)[f] = logsumexp_all(z_i) - logsumexp_{F(s)}(z_i)
/// dloss_i/dz_f = softmax(z_i)[f] - [f in F(s)] * exp(z_f - logsumexp_{F(s)}(z_i))
/// ```
/// Fine classes mapped to `nil` stay in the softmax denominator but are in no `F(s)`, so the loss
/// pushes their probability down. Pixels labelled `ignoreIndex` are skipped; the result is the mean
/// over the counted pixels (0, with a zero gradient, when none counts). With the identity mapping
/// this equals ``softmaxCrossEntropy(logits:labels:ignoreIndex:classWeights:)``.
/// - Parameters:
///   - logits: `[n, h, w, C]` (any rank: the last axis holds the fine classes).
///   - superLabels: one super-class id, or `ignoreIndex`, per pixel.
///   - superClassOfFine: `C` entries.
///   - ignoreIndex: the void label.
/// - Returns: the loss and its gradient with respect to `logits` (overwritten, same shape).
/// - Precondition: `superClassOfFine.count == C`, `superLabels.count` is the number of pixels,
///   and every super label other than `ignoreIndex` has at least one fine class.
public func reduceThenComputeLoss(
  logits: Tensor, superLabels: [UInt8], superClassOfFine: [Int?], ignoreIndex: UInt8 = 255
) -> (loss: Float, logitsGradient: Tensor) {
  let classes = logits.shape.last ?? 0
  let result = reduceThenComputeCore(
    logits: logits.scalars, classes: classes, superLabels: superLabels,
    superClassOfFine: superClassOfFine, ignoreIndex: ignoreIndex)
  return (Float(result.loss), Tensor(shape: logits.shape, scalars: result.gradient))
}

/// The number of pixels one parallel chunk of a loss handles.
private let lossChunkPixels = 4096

/// The one parallel pixel loop of the losses (cross-entropy, reduce-then-compute, Dice): runs
/// `body(pixelRange, gradientBase, sums)` over fixed pixel chunks on ``kernelWidth`` workers
/// and returns `width` sums. Each chunk owns the gradient rows of its pixels and adds into its
/// own `width` partial sums (zero at the start); the partial sums are added in chunk order, so
/// the result does not depend on the thread count.
package func pixelChunkSums<T: LossScalar>(
  pixels: Int, width: Int, gradient: UnsafeMutablePointer<T>,
  _ body: @Sendable (Range<Int>, UnsafeMutablePointer<T>, UnsafeMutablePointer<Double>) -> Void
) -> [Double] {
  let chunks = max(1, (pixels + lossChunkPixels - 1) / lossChunkPixels)
  // One spare slot: a pointer even when `width` is 0.
  var partial = [Double](repeating: 0, count: chunks * width + 1)
  partial.withUnsafeMutableBufferPointer { partialBuffer in
    guard let p = partialBuffer.baseAddress else { return }
    let gradientOut = DisjointWrites(base: gradient)
    let partialOut = DisjointWrites(base: p)
    // Chunk k owns pixels [k * lossChunkPixels, ...) and partial[(k * width)..<((k + 1) * width)].
    parallelChunks(chunks) { k in
      let range = (k * lossChunkPixels)..<min(pixels, (k + 1) * lossChunkPixels)
      body(range, gradientOut.base, partialOut.base + k * width)
    }
  }
  var sums = [Double](repeating: 0, count: width)
  for k in 0..<chunks {
    for j in 0..<width { sums[j] += partial[k * width + j] }
  }
  return sums
}

/// A loss core on arrays: runs `core(logits, labels, gradient)` on the arrays' buffers and a new
/// gradient array of `logits.count` scalars (every one written by the core), and returns the
/// loss with it.
package func withNewGradient<T: LossScalar>(
  logits: [T], labels: [UInt8],
  _ core: (UnsafeBufferPointer<T>, UnsafeBufferPointer<UInt8>, UnsafeMutableBufferPointer<T>)
    -> Double
) -> (loss: Double, gradient: [T]) {
  var loss = 0.0
  let gradient = [T](unsafeUninitializedCapacity: logits.count) { buffer, initialized in
    loss = logits.withUnsafeBufferPointer { z in
      labels.withUnsafeBufferPointer { y in core(z, y, buffer) }
    }
    initialized = logits.count
  }
  return (loss, gradient)
}

/// Checks the sizes every loss core shares; returns the pixel count.
private func lossPixels<T>(
  logits: UnsafeBufferPointer<T>, classes: Int, labels: Int, gradient: Int
) -> Int {
  precondition(classes > 0, "logits need at least one class")
  precondition(
    logits.count % classes == 0, "logits count \(logits.count) is not a multiple of \(classes)")
  let pixels = logits.count / classes
  precondition(labels == pixels, "\(labels) labels for \(pixels) pixels")
  precondition(gradient == logits.count, "gradient of \(gradient) for \(logits.count)")
  return pixels
}

/// The generic core of ``softmaxCrossEntropy(logits:labels:ignoreIndex:classWeights:)``:
/// `logits` is `pixels x classes` row-major; returns the mean loss and its gradient.
package func softmaxCrossEntropyCore<T: LossScalar>(
  logits: [T], classes: Int, labels: [UInt8], ignoreIndex: UInt8 = 255,
  classWeights: [Float]? = nil
) -> (loss: Double, gradient: [T]) {
  withNewGradient(logits: logits, labels: labels) { z, y, gradient in
    softmaxCrossEntropyCore(
      logits: z, classes: classes, labels: y, ignoreIndex: ignoreIndex,
      classWeights: classWeights, into: gradient)
  }
}

/// ``softmaxCrossEntropyCore(logits:classes:labels:ignoreIndex:classWeights:)`` in place: writes
/// `gradientFactor` times the gradient into `gradient` (as many scalars as `logits`, every one
/// written) and returns the mean loss. The loss groups of a training step write their parts of
/// one gradient this way (`gradientFactor`: the group's weight).
package func softmaxCrossEntropyCore<T: LossScalar>(
  logits: UnsafeBufferPointer<T>, classes: Int, labels: UnsafeBufferPointer<UInt8>,
  ignoreIndex: UInt8 = 255, classWeights: [Float]? = nil, gradientFactor: T = 1,
  into gradient: UnsafeMutableBufferPointer<T>
) -> Double {
  let pixels = lossPixels(
    logits: logits, classes: classes, labels: labels.count, gradient: gradient.count)
  if let classWeights {
    precondition(
      classWeights.count == classes, "\(classWeights.count) class weights for \(classes) classes")
    precondition(
      classWeights.allSatisfy { $0 >= 0 && $0.isFinite }, "class weights must be finite and >= 0")
  }
  guard let zBase = logits.baseAddress, let yBase = labels.baseAddress,
    let gBase = gradient.baseAddress
  else { return 0 }
  let weights = classWeights.map { $0.map { T($0) } }
  let z = SharedReads(base: zBase)
  let y = SharedReads(base: yBase)
  // The weight sum first (the labels alone, in the chunks and order of the main pass), so that
  // the main pass writes the gradient already divided by it.
  let weightSum = pixelChunkSums(pixels: pixels, width: 1, gradient: gBase) { range, _, own in
    for i in range {
      let label = y.base[i]
      let target = Int(label)
      precondition(
        label == ignoreIndex || target < classes,
        "label \(target) at pixel \(i) is not below \(classes) classes")
      if label != ignoreIndex { own[0] += Double(weights?[target] ?? 1) }
    }
  }[0]
  guard weightSum > 0 else {
    gradient.update(repeating: 0)
    return 0
  }
  let scale = T(1 / weightSum)
  let lossSum = pixelChunkSums(pixels: pixels, width: 1, gradient: gBase) { range, g, own in
    // e^(z - max) of the counted pixels, then the loss and the gradient. Row i of logits and
    // gradient: offset i * classes.
    let maxima = exponentiatedRows(z.base, g, range: range, classes: classes) { i in
      let label = y.base[i]
      return label != ignoreIndex && (weights?[Int(label)] ?? 1) != 0
    }
    for i in range {
      let label = y.base[i]
      let out = g + i * classes
      if label == ignoreIndex {
        out.update(repeating: 0, count: classes)
        continue
      }
      let target = Int(label)
      let w: T = weights?[target] ?? 1
      if w == 0 {
        out.update(repeating: 0, count: classes)
        continue
      }
      let row = z.base + i * classes
      let m = maxima[i - range.lowerBound]
      var sum: T = 0
      for c in 0..<classes { sum += out[c] }
      let logSum = T.logarithm(sum)
      own[0] += Double(w) * Double(m + logSum - row[target])
      let inverse = w / sum
      for c in 0..<classes { out[c] *= inverse }
      out[target] -= w
      for c in 0..<classes { out[c] *= scale }
      if gradientFactor != 1 { for c in 0..<classes { out[c] *= gradientFactor } }
    }
  }[0]
  return lossSum / weightSum
}

/// The generic core of ``reduceThenComputeLoss(logits:superLabels:superClassOfFine:ignoreIndex:)``:
/// `logits` is `pixels x classes` row-major; returns the mean loss and its gradient.
package func reduceThenComputeCore<T: LossScalar>(
  logits: [T], classes: Int, superLabels: [UInt8], superClassOfFine: [Int?],
  ignoreIndex: UInt8 = 255
) -> (loss: Double, gradient: [T]) {
  withNewGradient(logits: logits, labels: superLabels) { z, y, gradient in
    reduceThenComputeCore(
      logits: z, classes: classes, superLabels: y, superClassOfFine: superClassOfFine,
      ignoreIndex: ignoreIndex, into: gradient)
  }
}

/// ``reduceThenComputeCore(logits:classes:superLabels:superClassOfFine:ignoreIndex:)`` in place,
/// as ``softmaxCrossEntropyCore(logits:classes:labels:ignoreIndex:classWeights:gradientFactor:into:)``.
package func reduceThenComputeCore<T: LossScalar>(
  logits: UnsafeBufferPointer<T>, classes: Int, superLabels: UnsafeBufferPointer<UInt8>,
  superClassOfFine: [Int?], ignoreIndex: UInt8 = 255, gradientFactor: T = 1,
  into gradient: UnsafeMutableBufferPointer<T>
) -> Double {
  let pixels = lossPixels(
    logits: logits, classes: classes, labels: superLabels.count, gradient: gradient.count)
  precondition(
    superClassOfFine.count == classes,
    "superClassOfFine has \(superClassOfFine.count) entries for \(classes) fine classes")
  // members[s] lists the fine classes of super-class s (for s in 0...255).
  var members = [[Int]](repeating: [], count: 256)
  for (fine, superClass) in superClassOfFine.enumerated() {
    guard let superClass else { continue }
    precondition(
      (0..<256).contains(superClass),
      "super-class \(superClass) of fine class \(fine) is out of 0..<256")
    members[superClass].append(fine)
  }
  let membersOf = members
  guard let zBase = logits.baseAddress, let yBase = superLabels.baseAddress,
    let gBase = gradient.baseAddress
  else { return 0 }
  let z = SharedReads(base: zBase)
  let y = SharedReads(base: yBase)
  // The counted pixels first (the labels alone), so that the main pass writes the gradient
  // already divided by their number.
  let count = pixelChunkSums(pixels: pixels, width: 1, gradient: gBase) { range, _, own in
    for i in range {
      let label = y.base[i]
      if label == ignoreIndex { continue }
      precondition(
        !membersOf[Int(label)].isEmpty, "super-class \(label) at pixel \(i) has no fine class")
      own[0] += 1
    }
  }[0]
  guard count > 0 else {
    gradient.update(repeating: 0)
    return 0
  }
  let scale = T(1 / count)
  let lossSum = pixelChunkSums(pixels: pixels, width: 1, gradient: gBase) { range, g, own in
    // e^(z - max) of the counted pixels, then the loss and the gradient.
    let maxima = exponentiatedRows(z.base, g, range: range, classes: classes) { i in
      y.base[i] != ignoreIndex
    }
    for i in range {
      let label = y.base[i]
      let out = g + i * classes
      if label == ignoreIndex {
        out.update(repeating: 0, count: classes)
        continue
      }
      let fines = membersOf[Int(label)]
      let row = z.base + i * classes
      let m = maxima[i - range.lowerBound]
      var sum: T = 0
      for c in 0..<classes { sum += out[c] }
      // logsumexp over F(s) computed against its own maximum, so that a tiny target mass
      // does not underflow to log(0).
      var targetMax = row[fines[0]]
      for f in fines where row[f] > targetMax { targetMax = row[f] }
      var shiftedSum: T = 0
      for f in fines { shiftedSum += T.exponential(row[f] - targetMax) }
      let logSumAll = m + T.logarithm(sum)
      let logSumTarget = targetMax + T.logarithm(shiftedSum)
      own[0] += Double(logSumAll - logSumTarget)
      let inverse = 1 / sum
      for c in 0..<classes { out[c] *= inverse }
      for f in fines { out[f] -= T.exponential(row[f] - logSumTarget) }
      for c in 0..<classes { out[c] *= scale }
      if gradientFactor != 1 { for c in 0..<classes { out[c] *= gradientFactor } }
    }
  }[0]
  return lossSum / count
}
