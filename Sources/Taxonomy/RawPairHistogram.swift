/// Pixel counts of raw (ground-truth value, predicted value) byte pairs: 256 x 256 bins.
///
/// The fast first step of scoring label maps: one pass over the two arrays at memory speed,
/// independent of the class sets. Label maps are made of long runs of one (truth, prediction)
/// pair, so the pass counts runs: eight pixels at a time, each compared with its left neighbour
/// as one 64-bit word per array (the word loaded one byte earlier), so that the non-zero bytes
/// of the difference mark the pixels where a new pair starts; a bin is touched only there, once
/// per run. Which values occur (to refuse values that are not classes) and the
/// ``ConfusionMatrix`` both follow from the bins.
public struct RawPairHistogram: Sendable, Equatable {
  /// `counts[truth << 8 | prediction]`.
  public private(set) var counts: [UInt64]

  /// An empty histogram.
  public init() { counts = [UInt64](repeating: 0, count: 65536) }

  /// The count of pixels with ground truth `truth` predicted as `prediction`.
  public subscript(truth: UInt8, prediction: UInt8) -> UInt64 {
    counts[Int(truth) << 8 | Int(prediction)]
  }

  /// Sets every bin to 0 (reuse one histogram for many images).
  public mutating func removeAll() {
    counts.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
  }

  /// Counts every pixel pair of two label arrays (accumulates).
  /// - Precondition: `groundTruth.count == prediction.count`.
  public mutating func add(groundTruth: [UInt8], prediction: [UInt8]) {
    precondition(
      groundTruth.count == prediction.count,
      "label arrays differ in size: \(groundTruth.count) vs \(prediction.count)")
    guard !groundTruth.isEmpty else { return }
    groundTruth.withUnsafeBufferPointer { gt in
      prediction.withUnsafeBufferPointer { pr in
        counts.withUnsafeMutableBufferPointer { bins in
          let n = gt.count
          let gtBytes = UnsafeRawPointer(gt.baseAddress!)
          let prBytes = UnsafeRawPointer(pr.baseAddress!)
          @inline(__always) func word(_ bytes: UnsafeRawPointer, _ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
          }
          // The current run: pixels start..<(the next boundary) of the pair `key`.
          var key = Int(gt[0]) << 8 | Int(pr[0])
          var start = 0
          @inline(__always) func boundary(at j: Int) {
            bins[key] &+= UInt64(j - start)
            key = Int(gt[j]) << 8 | Int(pr[j])
            start = j
          }
          let low: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
          var i = 1
          while i + 8 <= n {
            // Byte k of `d` is non-zero where pixel i + k differs from pixel i + k - 1 (little
            // endian); `marks` has bit 7 of exactly those bytes set.
            let d = (word(gtBytes, i) ^ word(gtBytes, i - 1)) | (word(prBytes, i) ^ word(prBytes, i - 1))
            if d != 0 {
              var marks = (((d & low) &+ low) | d) & ~low
              while marks != 0 {
                boundary(at: i + marks.trailingZeroBitCount >> 3)
                marks &= marks &- 1
              }
            }
            i += 8
          }
          while i < n {
            if (Int(gt[i]) << 8 | Int(pr[i])) != key { boundary(at: i) }
            i += 1
          }
          bins[key] &+= UInt64(n - start)
        }
      }
    }
  }

  /// Which ground-truth and which predicted values (index) occur in at least one pixel (one
  /// scan of the bins).
  public var presentValues: (groundTruth: [Bool], prediction: [Bool]) {
    var truth = [Bool](repeating: false, count: 256)
    // The OR of every row's bins, column by column (a loop without branches).
    var columns = [UInt64](repeating: 0, count: 256)
    counts.withUnsafeBufferPointer { bins in
      columns.withUnsafeMutableBufferPointer { seen in
        for row in 0..<256 {
          var any: UInt64 = 0
          for column in 0..<256 {
            let count = bins[row << 8 | column]
            any |= count
            seen[column] |= count
          }
          truth[row] = any != 0
        }
      }
    }
    let prediction = columns.map { $0 != 0 }
    return (truth, prediction)
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
    histogram.counts.withUnsafeBufferPointer { bins in
      for truth in 0..<256 {
        let rowBase = rowOf[truth] * columns
        for prediction in 0..<256 {
          let count = bins[truth << 8 | prediction]
          if count != 0 { addCount(Int64(count), at: rowBase + columnOf[prediction]) }
        }
      }
    }
  }
}
