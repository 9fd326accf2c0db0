import Tensor

/// A seeded split of the reference units into K folds, saved as `folds.json` in the run directory.
///
/// The units are sorted, shuffled with a generator seeded by
/// `derivedSeed(runSeed:identity: "folds")`, and dealt round-robin, so fold sizes differ by at
/// most one and the split depends only on the seed and the set of units (not their order).
public struct FoldSplit: Codable, Sendable, Equatable {
  /// The run seed the split derives from.
  public var seed: UInt64
  /// The units of each fold, sorted.
  public var folds: [[String]]

  /// Splits `units` into `count` folds.
  ///
  /// - Throws: `TransferError.invalidReferenceSet` for duplicate ids or fewer units than folds.
  public init(units: [String], count: Int, runSeed: UInt64) throws {
    let sorted = units.sorted()
    for i in sorted.indices.dropFirst() where sorted[i] == sorted[i - 1] {
      throw TransferError.invalidReferenceSet(reason: "unit '\(sorted[i])' is listed twice")
    }
    guard count >= 1, sorted.count >= count else {
      throw TransferError.invalidReferenceSet(
        reason: "\(sorted.count) units cannot be split into \(count) non-empty folds")
    }
    var shuffled = sorted
    var generator = SeededGenerator(seed: derivedSeed(runSeed: runSeed, identity: "folds"))
    if shuffled.count > 1 {
      for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
        let j = Int(generator.next() % UInt64(i + 1))
        shuffled.swapAt(i, j)
      }
    }
    var folds = Array(repeating: [String](), count: count)
    for (i, unit) in shuffled.enumerated() { folds[i % count].append(unit) }
    self.seed = runSeed
    self.folds = folds.map { $0.sorted() }
  }

  /// All units, sorted.
  public var allUnits: [String] { folds.flatMap { $0 }.sorted() }
}
