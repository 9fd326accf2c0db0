import Segmentation

/// Confidence filters for pseudo labels, as pure functions over per-pixel (predicted class,
/// confidence) arrays. Backends produce the arrays; ``PseudoLabelFilters/apply(_:classCount:)``
/// decides what is kept with these functions.

/// Replaces every prediction whose confidence is below `threshold` by `ignoreIndex`.
///
/// - Parameters:
///   - classes: the predicted class of each pixel.
///   - confidences: the confidence (maximum softmax probability) of each pixel, same count.
/// - Precondition: `classes.count == confidences.count`.
public func applyConfidenceThreshold(
  classes: [UInt8], confidences: [Float], threshold: Float, ignoreIndex: IgnoreIndex
) -> [UInt8] {
  precondition(
    classes.count == confidences.count,
    "\(classes.count) classes vs \(confidences.count) confidences")
  var labels = classes
  for i in labels.indices where !(confidences[i] >= threshold) { labels[i] = ignoreIndex.value }
  return labels
}

/// The number of pixels CBST keeps among `count` pixels of a class: `max(1, ceil(portion * count))`
/// (0 when `count == 0`), computed so that `0.3 * 10` gives 3, not 4.
public func classBalancedKeepCount(portion: Double, count: Int) -> Int {
  guard count > 0 else { return 0 }
  let exact = portion * Double(count)
  return min(count, max(1, Int((exact - 1e-9 * max(1, exact)).rounded(.up))))
}

/// Class-balanced thresholds (CBST; Zou et al., ECCV 2018): for each class c, the threshold is
/// the confidence of the k_c-th most confident pixel predicted as c, with
/// `k_c = max(1, ceil(portion * n_c))`. A pixel predicted as c is kept if its confidence is at
/// least that threshold; ties at the threshold are all kept.
public struct ClassBalancedThresholds: Sendable, Equatable {
  /// The threshold of each class; nil for a class no pixel is predicted as.
  public var thresholds: [Float?]

  /// Computes the exact thresholds over every pixel of the set (e.g. all of R).
  ///
  /// Pixels whose class is `ignoreIndex` are skipped.
  /// - Throws: `TransferError.invalidThreshold` for a portion outside (0, 1] or a class id
  ///   outside `0..<classCount`.
  /// - Precondition: `classes.count == confidences.count`.
  public init(
    classes: [UInt8], confidences: [Float], classCount: Int, portion: Double,
    ignoreIndex: IgnoreIndex
  ) throws {
    precondition(
      classes.count == confidences.count,
      "\(classes.count) classes vs \(confidences.count) confidences")
    guard portion > 0, portion <= 1 else {
      throw TransferError.invalidThreshold(name: "classBalancedPortion", value: portion)
    }
    var perClass = Array(repeating: [Float](), count: classCount)
    for (c, confidence) in zip(classes, confidences) where !ignoreIndex.isVoid(c) {
      guard Int(c) < classCount else {
        throw TransferError.invalidThreshold(name: "class id", value: Double(c))
      }
      perClass[Int(c)].append(confidence)
    }
    thresholds = perClass.map { values in
      guard !values.isEmpty else { return nil }
      let sorted = values.sorted(by: >)
      return sorted[classBalancedKeepCount(portion: portion, count: sorted.count) - 1]
    }
  }

  /// Creates thresholds from known values.
  public init(thresholds: [Float?]) { self.thresholds = thresholds }

  /// Keeps the pixels at or above their class threshold; the others become `ignoreIndex`.
  ///
  /// Pixels of a class without a threshold (or outside the class range) become `ignoreIndex`.
  /// - Precondition: `classes.count == confidences.count`.
  public func apply(classes: [UInt8], confidences: [Float], ignoreIndex: IgnoreIndex) -> [UInt8] {
    precondition(
      classes.count == confidences.count,
      "\(classes.count) classes vs \(confidences.count) confidences")
    var labels = classes
    for i in labels.indices where !ignoreIndex.isVoid(labels[i]) {
      let c = Int(labels[i])
      guard c < thresholds.count, let threshold = thresholds[c], confidences[i] >= threshold
      else {
        labels[i] = ignoreIndex.value
        continue
      }
    }
    return labels
  }
}
