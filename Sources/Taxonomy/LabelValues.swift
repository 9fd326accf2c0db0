/// A pixel value of a label file and the number of pixels that hold it.
public struct LabelValueCount: Sendable, Equatable {
  public var value: Int
  public var count: Int64

  public init(value: Int, count: Int64) {
    self.value = value
    self.count = count
  }
}

extension ClassSet {
  /// Whether each pixel value `0...255` may appear in a label file of this set: a class id or
  /// the ignore value (256 entries).
  public var acceptedLabelValues: [Bool] {
    var accepted = [Bool](repeating: false, count: 256)
    for semanticClass in classes { accepted[semanticClass.id] = true }
    accepted[ignoreIndex] = true
    return accepted
  }

  /// The values of a 256-bin histogram that are neither classes nor the ignore value, with
  /// their pixel counts, in value order.
  public func unknownLabelValues(in histogram: [Int64]) -> [LabelValueCount] {
    let accepted = acceptedLabelValues
    return histogram.indices.compactMap { value in
      value < 256 && histogram[value] > 0 && !accepted[value]
        ? LabelValueCount(value: value, count: histogram[value]) : nil
    }
  }

  /// Refuses a label file whose 256-bin value histogram holds values that are neither classes
  /// of this set nor its ignore value.
  /// - Throws: ``TaxonomyError/labelValuesNotInClassSet(file:classSet:values:)`` with every
  ///   such value and its pixel count.
  public func checkLabelValues(_ histogram: [Int64], file: String) throws(TaxonomyError) {
    let unknown = unknownLabelValues(in: histogram)
    if !unknown.isEmpty {
      throw .labelValuesNotInClassSet(file: file, classSet: name, values: unknown)
    }
  }

  /// The 256-bin histogram of the values of a label file.
  public static func valueHistogram(_ values: [UInt8]) -> [Int64] {
    var counts = [Int64](repeating: 0, count: 256)
    values.withUnsafeBufferPointer { pixels in
      counts.withUnsafeMutableBufferPointer { bins in
        for v in pixels { bins[Int(v)] &+= 1 }
      }
    }
    return counts
  }
}

extension RawPairHistogram {
  /// Pixels per value: the ground-truth values (row sums) and the predicted values (column
  /// sums), 256 entries each. For error messages; the hot path uses ``presentValues``.
  public var valueCounts: (groundTruth: [Int64], prediction: [Int64]) {
    var truth = [Int64](repeating: 0, count: 256)
    var prediction = [Int64](repeating: 0, count: 256)
    for row in 0..<256 {
      for column in 0..<256 {
        let count = Int64(self[UInt8(row), UInt8(column)])
        truth[row] += count
        prediction[column] += count
      }
    }
    return (truth, prediction)
  }
}
