/// Pixel counts of (ground truth, prediction) pairs: rows are ground truth, columns prediction.
///
/// Rows follow `groundTruthClasses.classes`, then one **void row** for every other pixel value
/// (the ignore value, values that are no class). Columns follow `predictionClasses.classes`,
/// then one void column. Ground truth and prediction may use different class sets: accumulate
/// the raw values at the finest level available, then ``reduced(groundTruth:prediction:)`` both
/// sides onto a common class set before computing scores with ``report()``.
///
/// Counts are `Int64`, stored row-major in ``counts`` (`rowCount * columnCount`).
public struct ConfusionMatrix: Sendable, Equatable {
  /// The class set of the rows.
  public let groundTruthClasses: ClassSet
  /// The class set of the columns.
  public let predictionClasses: ClassSet
  /// Row-major counts, `rowCount * columnCount`.
  public private(set) var counts: [Int64]

  /// An empty matrix; ground truth and prediction in different class sets.
  public init(groundTruth: ClassSet, prediction: ClassSet) {
    groundTruthClasses = groundTruth
    predictionClasses = prediction
    counts = [Int64](
      repeating: 0, count: (groundTruth.classes.count + 1) * (prediction.classes.count + 1))
  }

  /// An empty matrix with ground truth and prediction in one class set.
  public init(classes: ClassSet) {
    self.init(groundTruth: classes, prediction: classes)
  }

  /// Classes of the ground truth plus the void row.
  public var rowCount: Int { groundTruthClasses.classes.count + 1 }
  /// Classes of the prediction plus the void column.
  public var columnCount: Int { predictionClasses.classes.count + 1 }
  /// The index of the void row.
  public var voidRow: Int { groundTruthClasses.classes.count }
  /// The index of the void column.
  public var voidColumn: Int { predictionClasses.classes.count }

  /// The count at (`row`, `column`), positions in the class lists (void = last).
  public subscript(row: Int, column: Int) -> Int64 {
    counts[row * columnCount + column]
  }

  /// The count of pixels with ground-truth id `groundTruthID` predicted as `predictionID`.
  /// Ids that are not classes address the void row or column.
  public func count(groundTruthID: Int, predictionID: Int) -> Int64 {
    let row = groundTruthClasses.position(ofID: groundTruthID) ?? voidRow
    let column = predictionClasses.position(ofID: predictionID) ?? voidColumn
    return self[row, column]
  }

  /// The total number of pixels counted.
  public var total: Int64 { counts.reduce(0, +) }

  /// Counts every pixel pair of two label arrays (accumulates).
  ///
  /// One pass at memory speed through a ``RawPairHistogram`` (runs of one value pair counted
  /// eight pixels at a time), then the 256 x 256 bins are folded into the class rows and
  /// columns. Run images in parallel into separate matrices and ``merge(_:)`` them.
  /// - Precondition: `groundTruth.count == prediction.count`.
  public mutating func accumulate(groundTruth: [UInt8], prediction: [UInt8]) {
    var histogram = RawPairHistogram()
    histogram.add(groundTruth: groundTruth, prediction: prediction)
    accumulate(histogram)
  }

  /// Adds `count` to the flat bin `index` (row-major).
  mutating func addCount(_ count: Int64, at index: Int) { counts[index] &+= count }

  /// Adds the counts of `other` (for parallel accumulation).
  /// - Precondition: both matrices use the same class sets.
  public mutating func merge(_ other: ConfusionMatrix) {
    precondition(
      other.groundTruthClasses == groundTruthClasses
        && other.predictionClasses == predictionClasses,
      "merging confusion matrices of different class sets")
    for index in counts.indices { counts[index] &+= other.counts[index] }
  }

  /// The matrix with both sides mapped onto coarser class sets (block sums).
  ///
  /// Row `r` goes to the row of `groundTruth.targetID(ofSourceID:)` and column `c` to the column
  /// of `prediction.targetID(ofSourceID:)`. Classes that are not evaluated in the fine class set,
  /// classes mapped to ignore, and targets that are not classes go to the void row or column.
  /// This reproduces cityscapesScripts' category IoU (`getIouScoreForCategory`): an
  /// `ignoreInEval` label counts neither in its category's rows nor columns.
  /// - Throws: ``TaxonomyError/classSetMismatch(expected:found:context:)`` when a mapping's
  ///   source is not the matrix's class set, or the two mappings' targets differ.
  public func reduced(groundTruth: LabelMapping, prediction: LabelMapping) throws(TaxonomyError)
    -> ConfusionMatrix
  {
    guard groundTruth.source == groundTruthClasses else {
      throw .classSetMismatch(
        expected: groundTruthClasses.name, found: groundTruth.source.name,
        context: "reducing the ground truth with '\(groundTruth.name)'")
    }
    guard prediction.source == predictionClasses else {
      throw .classSetMismatch(
        expected: predictionClasses.name, found: prediction.source.name,
        context: "reducing the prediction with '\(prediction.name)'")
    }
    guard groundTruth.target == prediction.target else {
      throw .classSetMismatch(
        expected: groundTruth.target.name, found: prediction.target.name,
        context: "reducing with '\(groundTruth.name)' and '\(prediction.name)'")
    }
    let coarse = groundTruth.target
    var result = ConfusionMatrix(classes: coarse)
    func destinations(_ mapping: LabelMapping) -> [Int] {
      var positions = zip(mapping.source.classes, mapping.targetIDs).map { fine, targetID in
        fine.isEvaluated
          ? targetID.flatMap { coarse.position(ofID: $0) } ?? coarse.classes.count
          : coarse.classes.count
      }
      positions.append(coarse.classes.count)  // void stays void
      return positions
    }
    let rowTo = destinations(groundTruth)
    let columnTo = destinations(prediction)
    let coarseColumns = result.columnCount
    for row in 0..<rowCount {
      let base = rowTo[row] * coarseColumns
      for column in 0..<columnCount {
        result.counts[base + columnTo[column]] &+= counts[row * columnCount + column]
      }
    }
    return result
  }

  /// The matrix with both sides reduced by the same mapping.
  public func reduced(by mapping: LabelMapping) throws(TaxonomyError) -> ConfusionMatrix {
    try reduced(groundTruth: mapping, prediction: mapping)
  }

  /// The matrix reduced onto the class set `target` along the library's scoring path
  /// (``MappingLibrary/scoringPath(groundTruth:prediction:level:using:)``: the ground truth
  /// goes to the prediction's class set first, then both to `target` through the same
  /// mappings).
  /// - Throws: ``TaxonomyError/noCommonLevel(groundTruth:prediction:level:)`` and the errors of
  ///   the look-up.
  public func reduced(to target: String, using library: MappingLibrary) throws(TaxonomyError)
    -> ConfusionMatrix
  {
    try library.scoringPath(
      groundTruth: groundTruthClasses.name, prediction: predictionClasses.name, level: target
    ).reduce(self)
  }

  /// The scores of a matrix whose ground truth and prediction share one class set.
  /// - Throws: ``TaxonomyError/classSetMismatch(expected:found:context:)`` otherwise: reduce
  ///   both sides to a common class set first.
  public func report() throws(TaxonomyError) -> EvaluationReport {
    guard groundTruthClasses == predictionClasses else {
      throw .classSetMismatch(
        expected: groundTruthClasses.name, found: predictionClasses.name,
        context: "scoring a confusion matrix (reduce both sides to one class set first)")
    }
    return EvaluationReport(matrix: self)
  }
}

extension ConfusionMatrix {
  /// The prediction classes with at least one pixel (the void column left out), in class order:
  /// a single one (e.g. only the background) is worth a warning.
  public var predictedClassNames: [String] {
    predictionClasses.classes.indices.filter { column in
      (0..<rowCount).contains { self[$0, column] > 0 }
    }.map { predictionClasses.classes[$0].name }
  }
}
