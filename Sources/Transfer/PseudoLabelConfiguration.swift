import Foundation
import Segmentation

/// How pseudo labels are filtered and produced (the `pseudoLabels` object of a configuration).
public struct PseudoLabelConfiguration: Codable, Sendable, Equatable {
  /// Pixels whose confidence is below this value become `ignoreIndex` (nil: keep all).
  public var confidenceThreshold: Double?
  /// Class-balanced self-training (CBST): per class, this portion of the most confident pixels
  /// is kept and the rest become `ignoreIndex` (nil: off). Exclusive with `confidenceThreshold`.
  public var classBalancedPortion: Double?
  /// Re-estimate batch-norm statistics on the images to be labeled before labeling (AdaBN).
  public var adaptBatchNorm: Bool
  /// The void label of the run: written for filtered pixels, and skipped by training, the
  /// scores and the agreement of every backend. It must not be a class id of any level.
  public var ignoreIndex: IgnoreIndex

  public init(
    confidenceThreshold: Double? = nil, classBalancedPortion: Double? = nil,
    adaptBatchNorm: Bool = false, ignoreIndex: IgnoreIndex = .standard
  ) {
    self.confidenceThreshold = confidenceThreshold
    self.classBalancedPortion = classBalancedPortion
    self.adaptBatchNorm = adaptBatchNorm
    self.ignoreIndex = ignoreIndex
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case confidenceThreshold, classBalancedPortion, adaptBatchNorm, ignoreIndex
  }

  public init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    confidenceThreshold = try c.decodeIfPresent(Double.self, forKey: .confidenceThreshold)
    classBalancedPortion = try c.decodeIfPresent(Double.self, forKey: .classBalancedPortion)
    adaptBatchNorm = try c.decodeIfPresent(Bool.self, forKey: .adaptBatchNorm) ?? false
    let ignore =
      try c.decodeInteger(Int.self, forKey: .ignoreIndex) ?? Int(IgnoreIndex.standard.value)
    guard let value = UInt8(exactly: ignore) else {
      throw TransferError.invalidConfiguration(
        file: "", key: keyPath(decoder.codingPath + [CodingKeys.ignoreIndex]),
        reason: "must be in 0...255, got \(ignore)")
    }
    ignoreIndex = IgnoreIndex(value)
  }

  /// Checks the ranges; `fail` builds the error for a key below `pseudoLabels`.
  func validate(_ fail: (String, String) -> TransferError) throws {
    if let t = confidenceThreshold, !(0...1).contains(t) {
      throw fail("pseudoLabels.confidenceThreshold", "must be in [0, 1], got \(t)")
    }
    if let q = classBalancedPortion, !(q > 0 && q <= 1) {
      throw fail("pseudoLabels.classBalancedPortion", "must be in (0, 1], got \(q)")
    }
    if confidenceThreshold != nil, classBalancedPortion != nil {
      throw fail(
        "pseudoLabels", "confidenceThreshold and classBalancedPortion are mutually exclusive")
    }
  }

  /// The filters a labeling job applies.
  var filters: PseudoLabelFilters {
    PseudoLabelFilters(
      confidenceThreshold: confidenceThreshold, classBalancedPortion: classBalancedPortion,
      ignoreIndex: ignoreIndex)
  }
}

/// The filters applied to a teacher's predictions before they become pseudo labels.
public struct PseudoLabelFilters: Sendable, Equatable, Codable {
  /// Keep a pixel only if its confidence is at least this value.
  public var confidenceThreshold: Double?
  /// Keep, per class, this portion of the most confident pixels over all units
  /// (see ``ClassBalancedThresholds``).
  public var classBalancedPortion: Double?
  /// The label written for filtered pixels.
  public var ignoreIndex: IgnoreIndex

  public init(
    confidenceThreshold: Double? = nil, classBalancedPortion: Double? = nil,
    ignoreIndex: IgnoreIndex
  ) {
    self.confidenceThreshold = confidenceThreshold
    self.classBalancedPortion = classBalancedPortion
    self.ignoreIndex = ignoreIndex
  }

  /// The pseudo labels of a set of units from each unit's decisions (class and confidence per
  /// pixel): every filter in one place, for every backend.
  ///
  /// - Parameter classCount: the classes of the level (for the class-balanced thresholds).
  /// - Throws: `TransferError.invalidThreshold` for a portion out of range.
  public func apply(_ decisions: [ClassDecisions], classCount: Int) throws -> [[UInt8]] {
    if let threshold = confidenceThreshold {
      return decisions.map {
        applyConfidenceThreshold(
          classes: $0.labels, confidences: $0.confidences, threshold: Float(threshold),
          ignoreIndex: ignoreIndex)
      }
    }
    if let portion = classBalancedPortion {
      let thresholds = try ClassBalancedThresholds(
        classes: decisions.flatMap(\.labels), confidences: decisions.flatMap(\.confidences),
        classCount: classCount, portion: portion, ignoreIndex: ignoreIndex)
      return decisions.map {
        thresholds.apply(classes: $0.labels, confidences: $0.confidences, ignoreIndex: ignoreIndex)
      }
    }
    return decisions.map(\.labels)
  }
}
