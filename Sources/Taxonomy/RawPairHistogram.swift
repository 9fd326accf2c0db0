import CPixelPairs

/// Pixel counts of raw (ground-truth value, predicted value) byte pairs: 256 x 256 bins.
///
/// The fast first step of scoring label maps: one pass over the two arrays at memory speed,
/// independent of the class sets. Label maps are made of long runs of one (truth, prediction)
/// pair, so the pass counts runs: 64 pixels at a time are compared with their left neighbours
/// (AVX-512BW, AVX2 or SSE2 by cpuid, ``vectorLevel``; `atso_count_pixel_pairs`), and a bin is
/// touched once a run, where the pair changes.
/// Which values occur (to refuse values that are not classes) and the ``ConfusionMatrix`` both
/// follow from the bins.
public struct RawPairHistogram: Sendable {
  /// `counts[truth << 8 | prediction]`.
  public private(set) var counts: [UInt64]
  /// Which ground-truth values (rows) and predicted values (columns) have had a bin added to
  /// since the last ``removeAll()``: every non-zero bin lies in a marked row and a marked
  /// column, so clearing, ``presentValues`` and the fold into a ``ConfusionMatrix`` visit those
  /// (a few dozen by a few dozen for label maps) instead of all 65,536 bins.
  private var rowsTouched: [UInt8]
  private var columnsTouched: [UInt8]

  /// The vector code that counts pairs on this CPU: `avx512bw`, `avx2`, or `sse2` (`portable`
  /// off x86); the environment variable `ATSO_KERNEL_ISA` (`avx2`, `portable`) lowers it. Every
  /// level gives the same counts.
  public static var vectorLevel: String {
    switch atso_pixel_pairs_level() {
    case ATSO_PAIRS_AVX512BW: return "avx512bw"
    case ATSO_PAIRS_AVX2: return "avx2"
    default:
      #if arch(x86_64)
        return "sse2"
      #else
        return "portable"
      #endif
    }
  }

  /// An empty histogram.
  public init() {
    counts = [UInt64](repeating: 0, count: 65536)
    rowsTouched = [UInt8](repeating: 0, count: 256)
    columnsTouched = rowsTouched
  }

  /// The count of pixels with ground truth `truth` predicted as `prediction`.
  public subscript(truth: UInt8, prediction: UInt8) -> UInt64 {
    counts[Int(truth) << 8 | Int(prediction)]
  }

  /// The marked rows and columns (indices).
  var touched: (rows: [Int], columns: [Int]) {
    (
      rowsTouched.indices.filter { rowsTouched[$0] != 0 },
      columnsTouched.indices.filter { columnsTouched[$0] != 0 }
    )
  }

  /// Sets every bin to 0 (reuse one histogram for many images): only the marked rows and
  /// columns can hold counts.
  public mutating func removeAll() {
    let (rows, columns) = touched
    counts.withUnsafeMutableBufferPointer { bins in
      for row in rows { for column in columns { bins[row << 8 | column] = 0 } }
    }
    for row in rows { rowsTouched[row] = 0 }
    for column in columns { columnsTouched[column] = 0 }
  }

  /// Counts every pixel pair of two label arrays (accumulates).
  /// - Precondition: `groundTruth.count == prediction.count`.
  public mutating func add(groundTruth: [UInt8], prediction: [UInt8]) {
    precondition(
      groundTruth.count == prediction.count,
      "label arrays differ in size: \(groundTruth.count) vs \(prediction.count)")
    groundTruth.withUnsafeBufferPointer { gt in
      prediction.withUnsafeBufferPointer { pr in add(groundTruth: gt, prediction: pr) }
    }
  }

  /// Counts every pixel pair of two label arrays (accumulates).
  /// - Precondition: `groundTruth.count == prediction.count`.
  public mutating func add(
    groundTruth: UnsafeBufferPointer<UInt8>, prediction: UnsafeBufferPointer<UInt8>
  ) {
    add { count in count(groundTruth, prediction) }
  }

  /// Counts the pixel pairs of every pair of rows (ground truth, prediction) that `rows` hands
  /// to the function it is given (accumulates). Evaluation hands each pair over as soon as it is
  /// decoded, while it is in the cache; the bins are reached once for all of them.
  /// - Precondition: the two rows of a pair have one length.
  public mutating func add(
    rows: ((UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Void) -> Void
  ) {
    counts.withUnsafeMutableBufferPointer { bins in
      rowsTouched.withUnsafeMutableBufferPointer { marked in
        columnsTouched.withUnsafeMutableBufferPointer { markedColumns in
          let (bins, marked, markedColumns) =
            (bins.baseAddress, marked.baseAddress, markedColumns.baseAddress)
          rows { truth, prediction in
            precondition(
              truth.count == prediction.count,
              "label arrays differ in size: \(truth.count) vs \(prediction.count)")
            guard let t = truth.baseAddress, let p = prediction.baseAddress else { return }
            atso_count_pixel_pairs(t, p, truth.count, bins, marked, markedColumns)
          }
        }
      }
    }
  }

  /// Which ground-truth and which predicted values (index) occur in at least one pixel (a scan
  /// of the marked rows and columns).
  public var presentValues: (groundTruth: [Bool], prediction: [Bool]) {
    var truth = [Bool](repeating: false, count: 256)
    var prediction = [Bool](repeating: false, count: 256)
    let (rows, columns) = touched
    counts.withUnsafeBufferPointer { bins in
      for row in rows {
        for column in columns where bins[row << 8 | column] != 0 {
          truth[row] = true
          prediction[column] = true
        }
      }
    }
    return (truth, prediction)
  }
}

extension RawPairHistogram: Equatable {
  /// Equal counts (the marks only say where to look).
  public static func == (a: RawPairHistogram, b: RawPairHistogram) -> Bool {
    a.counts == b.counts
  }
}

extension ConfusionMatrix {
  /// Adds the counts of a raw-pair histogram: value pairs go to the rows and columns of their
  /// classes (values that are no class to the void row or column).
  public mutating func accumulate(_ histogram: RawPairHistogram) {
    var rowOf = [Int](repeating: voidRow, count: 256)
    for (position, semanticClass) in groundTruthClasses.classes.enumerated() {
      rowOf[semanticClass.id] = position
    }
    var columnOf = [Int](repeating: voidColumn, count: 256)
    for (position, semanticClass) in predictionClasses.classes.enumerated() {
      columnOf[semanticClass.id] = position
    }
    let columns = columnCount
    let touched = histogram.touched
    histogram.counts.withUnsafeBufferPointer { bins in
      for truth in touched.rows {
        let rowBase = rowOf[truth] * columns
        for prediction in touched.columns {
          let count = bins[truth << 8 | prediction]
          if count != 0 { addCount(Int64(count), at: rowBase + columnOf[prediction]) }
        }
      }
    }
  }
}
