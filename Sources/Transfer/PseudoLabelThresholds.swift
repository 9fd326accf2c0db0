/// Confidence filters for pseudo labels, as pure functions over per-pixel (predicted class,
/// confidence) arrays. The backend produces the arrays; these functions decide what is kept.

/// Replaces every prediction whose confidence is below `threshold` by `ignoreIndex`.
///
/// - Parameters:
///   - classes: the predicted class of each pixel.
///   - confidences: the confidence (maximum softmax probability) of each pixel, same count.
/// - Precondition: `classes.count == confidences.count`.
public func applyConfidenceThreshold(
  classes: [UInt8], confidences: [Float], threshold: Float, ignoreIndex: UInt8 = 255
) -> [UInt8] {
  precondition(
    classes.count == confidences.count,
    "\(classes.count) classes vs \(confidences.count) confidences")
  var labels = classes
  for i in labels.indices where !(confidences[i] >= threshold) { labels[i] = ignoreIndex }
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
    ignoreIndex: UInt8 = 255
  ) throws {
    precondition(
      classes.count == confidences.count,
      "\(classes.count) classes vs \(confidences.count) confidences")
    guard portion > 0, portion <= 1 else {
      throw TransferError.invalidThreshold(name: "classBalancedPortion", value: portion)
    }
    var perClass = Array(repeating: [Float](), count: classCount)
    for (c, confidence) in zip(classes, confidences) where c != ignoreIndex {
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
  public func apply(classes: [UInt8], confidences: [Float], ignoreIndex: UInt8 = 255) -> [UInt8] {
    precondition(
      classes.count == confidences.count,
      "\(classes.count) classes vs \(confidences.count) confidences")
    var labels = classes
    for i in labels.indices where labels[i] != ignoreIndex {
      let c = Int(labels[i])
      guard c < thresholds.count, let threshold = thresholds[c], confidences[i] >= threshold
      else {
        labels[i] = ignoreIndex
        continue
      }
    }
    return labels
  }
}

/// Accumulates per-class confidence histograms unit by unit, for class-balanced thresholds over
/// a set too large to hold in memory.
///
/// Confidences in [0, 1] fall into `binCount` equal bins. The threshold of class c is the lower
/// edge of the bin where the count from the top first reaches `k_c`, so at least `k_c` pixels are
/// kept, and at most `k_c` plus the other pixels of that bin.
public struct ClassBalancedThresholdEstimator: Sendable, Equatable {
  public let classCount: Int
  public let binCount: Int
  /// `counts[c * binCount + b]`: pixels of class c with confidence in bin b.
  public private(set) var counts: [Int]

  public init(classCount: Int, binCount: Int = 4096) {
    precondition(classCount > 0 && binCount > 0, "classCount and binCount must be positive")
    self.classCount = classCount
    self.binCount = binCount
    counts = Array(repeating: 0, count: classCount * binCount)
  }

  func bin(_ confidence: Float) -> Int {
    let clamped = min(max(Double(confidence), 0), 1)
    return min(binCount - 1, Int(clamped * Double(binCount)))
  }

  /// Adds the pixels of one unit (pixels of class `ignoreIndex` are skipped).
  ///
  /// - Throws: `TransferError.invalidThreshold` for a class id outside `0..<classCount`.
  public mutating func add(classes: [UInt8], confidences: [Float], ignoreIndex: UInt8 = 255)
    throws
  {
    precondition(
      classes.count == confidences.count,
      "\(classes.count) classes vs \(confidences.count) confidences")
    for (c, confidence) in zip(classes, confidences) where c != ignoreIndex {
      guard Int(c) < classCount else {
        throw TransferError.invalidThreshold(name: "class id", value: Double(c))
      }
      counts[Int(c) * binCount + bin(confidence)] += 1
    }
  }

  /// The thresholds for keeping `portion` of each class.
  ///
  /// - Throws: `TransferError.invalidThreshold` for a portion outside (0, 1].
  public func thresholds(portion: Double) throws -> ClassBalancedThresholds {
    guard portion > 0, portion <= 1 else {
      throw TransferError.invalidThreshold(name: "classBalancedPortion", value: portion)
    }
    var result: [Float?] = []
    for c in 0..<classCount {
      let row = counts[(c * binCount)..<((c + 1) * binCount)]
      let total = row.reduce(0, +)
      guard total > 0 else {
        result.append(nil)
        continue
      }
      let keep = classBalancedKeepCount(portion: portion, count: total)
      var seen = 0
      var threshold: Float = 0
      for b in stride(from: binCount - 1, through: 0, by: -1) {
        seen += row[row.startIndex + b]
        if seen >= keep {
          let edge = Double(b) / Double(binCount)
          threshold = Float(edge)
          if Double(threshold) > edge { threshold = threshold.nextDown }
          break
        }
      }
      result.append(threshold)
    }
    return ClassBalancedThresholds(thresholds: result)
  }
}
