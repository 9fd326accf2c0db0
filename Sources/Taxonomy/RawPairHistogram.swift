/// Pixel counts of raw (ground-truth value, predicted value) byte pairs: 256 x 256 bins.
///
/// The fast first step of scoring label maps: one pass over the two arrays at memory speed,
/// independent of the class sets. Label maps are made of long runs of one (truth, prediction)
/// pair, so the pass counts runs: eight pixels at a time are compared with the current pair as
/// two 64-bit words, the run's length inside them is the count of trailing equal bytes, and a
/// bin is touched only when the pair changes; stretches of noise (runs under 4 pixels) are
/// counted pixel by pixel. Which values occur (to
/// refuse values that are not classes) and the ``ConfusionMatrix`` both follow from the bins.
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
          let spread: UInt64 = 0x0101_0101_0101_0101
          var key = Int(gt[0]) << 8 | Int(pr[0])
          var gtWord = UInt64(gt[0]) &* spread
          var prWord = UInt64(pr[0]) &* spread
          var run: UInt64 = 0
          var i = 0
          @inline(__always) func differences(at offset: Int) -> UInt64 {
            (UInt64(littleEndian: gtBytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
              ^ gtWord)
              | (UInt64(littleEndian: prBytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                ^ prWord)
          }
          while i + 8 <= n {
            // Byte k of `x` is non-zero where pixel i + k differs from the current pair (little
            // endian), so its trailing zero bytes continue the run.
            let x = differences(at: i)
            if x == 0 {
              run &+= 8
              i += 8
              continue
            }
            let same = x.trailingZeroBitCount >> 3
            if same > 0 {
              run &+= UInt64(same)
              i += same
              continue
            }
            // Pixel i starts a new pair.
            bins[key] &+= run
            key = Int(gt[i]) << 8 | Int(pr[i])
            gtWord = UInt64(key >> 8) &* spread
            prWord = UInt64(key & 255) &* spread
            let next = differences(at: i)
            let length = next == 0 ? 8 : next.trailingZeroBitCount >> 3
            if length >= 4 {
              run = UInt64(length)
              i += length
            } else {
              // Noise (runs shorter than 4): count these 8 pixels one by one, no run kept.
              for j in i..<(i + 8) { bins[Int(gt[j]) << 8 | Int(pr[j])] &+= 1 }
              i += 8
              key = Int(gt[i - 1]) << 8 | Int(pr[i - 1])
              gtWord = UInt64(key >> 8) &* spread
              prWord = UInt64(key & 255) &* spread
              run = 0
            }
          }
          while i < n {
            let k = Int(gt[i]) << 8 | Int(pr[i])
            if k == key {
              run &+= 1
            } else {
              bins[key] &+= run
              key = k
              run = 1
            }
            i += 1
          }
          bins[key] &+= run
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
