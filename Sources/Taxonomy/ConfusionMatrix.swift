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
  /// One pass at memory speed: two 256-entry tables turn raw values into row and column
  /// positions, then `histogram[row * columnCount + column] += 1` (over four interleaved
  /// copies of the histogram). Run images in parallel into separate matrices and ``merge(_:)``
  /// them.
  /// - Precondition: `groundTruth.count == prediction.count`.
  public mutating func accumulate(groundTruth: [UInt8], prediction: [UInt8]) {
    precondition(
      groundTruth.count == prediction.count,
      "label arrays differ in size: \(groundTruth.count) vs \(prediction.count)")
    var rowOf = [Int32](repeating: Int32(voidRow), count: 256)
    for (position, semanticClass) in groundTruthClasses.classes.enumerated() {
      rowOf[semanticClass.id] = Int32(position)
    }
    var columnOf = [Int32](repeating: Int32(voidColumn), count: 256)
    for (position, semanticClass) in predictionClasses.classes.enumerated() {
      columnOf[semanticClass.id] = Int32(position)
    }
    let columns = Int32(columnCount)
    // Flat index of each raw (gt, pred) byte pair: rowOf[gt] * columns + columnOf[pred].
    let flatOfRow = rowOf.map { $0 * columns }
    // Four interleaved sub-histograms (pixel i -> copy i % 4): label maps come in runs of one
    // value, and consecutive increments of one counter would wait on each other.
    let bins = counts.count
    var partial = [Int64](repeating: 0, count: 4 * bins)
    partial.withUnsafeMutableBufferPointer { histogram in
      flatOfRow.withUnsafeBufferPointer { rowBase in
        columnOf.withUnsafeBufferPointer { columnIndex in
          groundTruth.withUnsafeBufferPointer { gt in
            prediction.withUnsafeBufferPointer { pred in
              let n = gt.count
              var i = 0
              while i + 4 <= n {
                histogram[Int(rowBase[Int(gt[i])] + columnIndex[Int(pred[i])])] &+= 1
                histogram[bins + Int(rowBase[Int(gt[i + 1])] + columnIndex[Int(pred[i + 1])])] &+= 1
                histogram[
                  2 * bins + Int(rowBase[Int(gt[i + 2])] + columnIndex[Int(pred[i + 2])])] &+= 1
                histogram[
                  3 * bins + Int(rowBase[Int(gt[i + 3])] + columnIndex[Int(pred[i + 3])])] &+= 1
                i += 4
              }
              while i < n {
                histogram[Int(rowBase[Int(gt[i])] + columnIndex[Int(pred[i])])] &+= 1
                i += 1
              }
            }
          }
        }
      }
    }
    for bin in 0..<bins {
      counts[bin] &+=
        partial[bin] &+ partial[bins + bin] &+ partial[2 * bins + bin]
        &+ partial[3 * bins + bin]
    }
  }

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

  /// The matrix reduced onto the class set `target`, with the library's mappings (direct or
  /// composed defaults, see ``MappingLibrary/mapping(from:to:)``) for both sides.
  /// - Throws: ``TaxonomyError/noMapping(from:to:)`` and the errors of the look-up.
  public func reduced(to target: String, using library: MappingLibrary) throws(TaxonomyError)
    -> ConfusionMatrix
  {
    try reduced(
      groundTruth: library.mapping(from: groundTruthClasses.name, to: target),
      prediction: library.mapping(from: predictionClasses.name, to: target))
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
