/// Overlap counts of one class: true positives and the sizes of prediction and ground truth.
public struct OverlapCounts: Sendable, Equatable {
  /// Voxels labelled with the class in both prediction and ground truth.
  public var truePositives: Int
  /// Voxels predicted as the class (`|P|`).
  public var predicted: Int
  /// Voxels of the class in the ground truth (`|G|`).
  public var groundTruth: Int

  public init(truePositives: Int = 0, predicted: Int = 0, groundTruth: Int = 0) {
    self.truePositives = truePositives
    self.predicted = predicted
    self.groundTruth = groundTruth
  }

  /// `2 |P ∩ G| / (|P| + |G|)`, or `nil` when both are empty.
  ///
  /// Empty-ground-truth policy: when the class is absent from both prediction and ground truth
  /// the Dice is undefined; it is `nil` and excluded from every mean (the case does not count for
  /// that class). An absent class that is predicted anyway scores 0.
  public var dice: Double? {
    let denominator = predicted + groundTruth
    return denominator == 0 ? nil : 2 * Double(truePositives) / Double(denominator)
  }

  static func + (a: OverlapCounts, b: OverlapCounts) -> OverlapCounts {
    OverlapCounts(
      truePositives: a.truePositives + b.truePositives, predicted: a.predicted + b.predicted,
      groundTruth: a.groundTruth + b.groundTruth)
  }
}

/// Dice scores over a set of cases, per case and globally (the Medical Segmentation Decathlon's
/// "global Dice": every case merged, `2 Σ TP / Σ (|P| + |G|)` per class).
///
/// Class ids are `0..<classCount`; a voxel whose ground truth or prediction is outside that range
/// (e.g. an ignore label) counts for no class on that side. An optional lookup table maps fine
/// labels to coarser ones before counting, e.g. hippocampus anterior + posterior -> one
/// structure with `[0, 1, 1]`.
public struct DiceEvaluation: Sendable, Equatable {
  /// The number of classes after the lookup table.
  public let classCount: Int
  /// The lookup table applied to both prediction and ground truth (`table[label]`), or `nil`.
  public let table: [UInt8]?
  /// Overlap counts per case, `perCase[case][class]`.
  public private(set) var perCase: [[OverlapCounts]] = []

  /// Creates an empty evaluation.
  ///
  /// - Parameters:
  ///   - classCount: classes after mapping (including background 0).
  ///   - table: a lookup table from input labels to classes; labels beyond its end map to
  ///     nothing (they count for no class).
  public init(classCount: Int, table: [UInt8]? = nil) {
    precondition(classCount > 0 && classCount <= 256, "classCount must be in 1...256")
    self.classCount = classCount
    self.table = table
  }

  /// What values ``checkLabels(_:shape:path:)`` accepts, in words.
  public var acceptedLabels: String {
    if let table {
      return "0...\(table.count - 1), the entries of the \(table.count)-entry lookup table"
    }
    return "0...\(classCount - 1) for \(classCount) classes"
  }

  /// Refuses a label volume holding a value that is not a class being scored: at or past
  /// `classCount`, or past the end of the lookup table. (``counts(prediction:groundTruth:)``
  /// itself lets such voxels count for no class, as an ignore label of a training run does.)
  ///
  /// - Throws: ``MedicalError/labelOutsideClasses(path:value:voxel:accepted:)`` naming the
  ///   first such voxel `(x, y, z)` of `shape`.
  public func checkLabels(_ voxels: [UInt8], shape: [Int], path: String) throws(MedicalError) {
    let accepted = table?.count ?? classCount
    guard accepted < 256 else { return }
    var present = [Bool](repeating: false, count: 256)
    voxels.withUnsafeBufferPointer { values in
      present.withUnsafeMutableBufferPointer { flags in
        for v in values { flags[Int(v)] = true }
      }
    }
    guard present[accepted...].contains(true),
      let index = voxels.firstIndex(where: { Int($0) >= accepted })
    else { return }
    let nx = max(shape.first ?? 1, 1)
    let ny = max(shape.count > 1 ? shape[1] : 1, 1)
    throw .labelOutsideClasses(
      path: path, value: Int(voxels[index]), voxel: [index % nx, index / nx % ny, index / (nx * ny)],
      accepted: acceptedLabels)
  }

  /// Counts of one case.
  ///
  /// - Precondition: `prediction.count == groundTruth.count`.
  public func counts(prediction: [UInt8], groundTruth: [UInt8]) -> [OverlapCounts] {
    precondition(
      prediction.count == groundTruth.count, "prediction and ground truth differ in size")
    // Lookup for every byte: its class, or -1 for none.
    var lookup = [Int](repeating: -1, count: 256)
    for label in 0..<256 {
      let mapped = table.map { label < $0.count ? Int($0[label]) : -1 } ?? label
      lookup[label] = mapped < classCount ? mapped : -1
    }
    var tp = [Int](repeating: 0, count: classCount + 1)
    var p = tp
    var g = tp
    // Index classCount collects "no class", so the loop has no branches on range.
    for i in prediction.indices {
      var a = lookup[Int(prediction[i])]
      var b = lookup[Int(groundTruth[i])]
      if a < 0 { a = classCount }
      if b < 0 { b = classCount }
      p[a] += 1
      g[b] += 1
      if a == b { tp[a] += 1 }
    }
    return (0..<classCount).map {
      OverlapCounts(truePositives: tp[$0], predicted: p[$0], groundTruth: g[$0])
    }
  }

  /// Adds a case.
  ///
  /// - Precondition: `prediction.count == groundTruth.count`.
  public mutating func add(prediction: [UInt8], groundTruth: [UInt8]) {
    perCase.append(counts(prediction: prediction, groundTruth: groundTruth))
  }

  /// Dice per class of case `index` (`nil` where the class is absent from both).
  public func dice(case index: Int) -> [Double?] { perCase[index].map(\.dice) }

  /// The mean Dice of case `index` over the defined classes, background excluded unless asked;
  /// `nil` when no class is defined.
  public func meanDice(case index: Int, includingBackground: Bool = false) -> Double? {
    mean(
      dice(case: index).enumerated().filter { includingBackground || $0.offset > 0 }
        .compactMap(\.element))
  }

  /// Per class, the mean over cases of the per-case Dice (cases where it is `nil` excluded).
  public var meanDicePerClass: [Double?] {
    (0..<classCount).map { c in mean(perCase.compactMap { $0[c].dice }) }
  }

  /// Per class, the global Dice: all cases merged into one volume.
  public var globalDice: [Double?] {
    (0..<classCount).map { c in perCase.reduce(OverlapCounts()) { $0 + $1[c] }.dice }
  }

  /// The mean over foreground classes (1...) of ``globalDice``, skipping undefined ones.
  public var meanGlobalDice: Double? { mean(globalDice.dropFirst().compactMap { $0 }) }

  private func mean(_ values: [Double]) -> Double? {
    values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
  }
}
