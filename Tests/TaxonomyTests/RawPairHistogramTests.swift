import Tensor
import Testing
@testable import Taxonomy
import CPixelPairs

/// Label maps of runs of random length (1...40) of random pairs, some values repeated often.
private func runs(count: Int, seed: UInt64) -> (truth: [UInt8], prediction: [UInt8]) {
  var generator = SeededGenerator(seed: seed)
  var truth: [UInt8] = []
  var prediction: [UInt8] = []
  while truth.count < count {
    let length = min(count - truth.count, 1 + Int(generator.next() % 40))
    let t = UInt8(generator.next() % 6 == 0 ? 255 : generator.next() % 8)
    let p = UInt8(generator.next() % 3 == 0 ? t : UInt8(generator.next() % 256))
    truth += [UInt8](repeating: t, count: length)
    prediction += [UInt8](repeating: p, count: length)
  }
  return (truth, prediction)
}

@Test("raw pair counts equal a naive count, for runs and any length (not a multiple of 8)")
func rawPairHistogramMatchesNaive() {
  for (count, seed) in [(0, 1), (1, 2), (7, 3), (8, 4), (9, 5), (1000, 6), (4099, 7)] as [(Int, UInt64)] {
    var (truth, prediction) = runs(count: count, seed: seed)
    if count > 20 {  // isolated changes inside runs and in the tail
      truth[count / 2] = 3
      prediction[count - 1] = 200
    }
    if count > 1000 {  // a stretch of salt-and-pepper noise (a new pair at every pixel)
      var generator = SeededGenerator(seed: seed)
      for i in 100..<600 {
        truth[i] = UInt8(generator.next() % 256)
        prediction[i] = UInt8(generator.next() % 256)
      }
    }
    var naive = [UInt64](repeating: 0, count: 65536)
    for (t, p) in zip(truth, prediction) { naive[Int(t) << 8 | Int(p)] += 1 }
    var histogram = RawPairHistogram()
    histogram.add(groundTruth: truth, prediction: prediction)
    #expect(histogram.counts == naive, "\(count) pixels")
    let present = histogram.presentValues
    #expect(present.groundTruth == (0..<256).map { v in truth.contains(UInt8(v)) })
    #expect(present.prediction == (0..<256).map { v in prediction.contains(UInt8(v)) })
    histogram.add(groundTruth: truth, prediction: prediction)
    #expect(histogram.counts == naive.map { 2 * $0 })
    histogram.removeAll()
    #expect(histogram.counts.allSatisfy { $0 == 0 })
  }
}

@Test("raw pair counts of noise (a new pair at almost every pixel, 8-pixel blocks, alternations)")
func rawPairHistogramOfNoise() {
  var generator = SeededGenerator(seed: 9)
  // 8-pixel blocks of one random pair, single pixels, and stretches of two alternating pairs.
  var truth: [UInt8] = []
  var prediction: [UInt8] = []
  while truth.count < 50_003 {
    switch generator.next() % 3 {
    case 0:
      let (t, p) = (UInt8(generator.next() % 256), UInt8(generator.next() % 256))
      truth += [UInt8](repeating: t, count: 8)
      prediction += [UInt8](repeating: p, count: 8)
    case 1:
      truth.append(UInt8(generator.next() % 256))
      prediction.append(UInt8(generator.next() % 4))
    default:
      for k in 0..<13 {
        truth.append(UInt8(k % 2))
        prediction.append(1)
      }
    }
  }
  var naive = [UInt64](repeating: 0, count: 65536)
  for (t, p) in zip(truth, prediction) { naive[Int(t) << 8 | Int(p)] += 1 }
  var histogram = RawPairHistogram()
  histogram.add(groundTruth: truth, prediction: prediction)
  #expect(histogram.counts == naive)
  #expect(histogram.counts.reduce(0, +) == UInt64(truth.count))
}

@Test("the confusion matrix from a raw histogram puts unknown values in the void row/column")
func confusionFromRawHistogram() throws {
  let classes = try abcd()
  let (truth, prediction) = runs(count: 5000, seed: 9)
  var matrix = ConfusionMatrix(classes: classes)
  matrix.accumulate(groundTruth: truth, prediction: prediction)
  var expected = [Int64](repeating: 0, count: matrix.counts.count)
  for (t, p) in zip(truth, prediction) {
    let row = classes.position(ofID: Int(t)) ?? matrix.voidRow
    let column = classes.position(ofID: Int(p)) ?? matrix.voidColumn
    expected[row * matrix.columnCount + column] += 1
  }
  #expect(matrix.counts == expected)
  #expect(matrix.total == 5000)
}

@Test("every vector level of the pair count (baseline, AVX2, AVX-512BW, those this CPU has) gives the naive counts and marks exactly the rows and columns that hold counts")
func pixelPairLevels() throws {
  let levels = [ATSO_PAIRS_BASELINE, ATSO_PAIRS_AVX2, ATSO_PAIRS_AVX512BW].filter {
    atso_pixel_pairs_supported($0) != 0
  }
  #expect(levels.contains(atso_pixel_pairs_level()))
  // Lengths around the 64-pixel block, runs, noise, a change at every block edge.
  for (count, seed) in [(1, 1), (63, 2), (64, 3), (65, 4), (129, 5), (5000, 6)] as [(Int, UInt64)] {
    var (truth, prediction) = runs(count: count, seed: seed)
    var generator = SeededGenerator(seed: seed)
    for i in stride(from: 0, to: count, by: 64) { prediction[i] = UInt8(generator.next() % 256) }
    if count > 1000 {
      for i in 2000..<2300 { truth[i] = UInt8(generator.next() % 256) }
    }
    var naive = [UInt64](repeating: 0, count: 65536)
    for (t, p) in zip(truth, prediction) { naive[Int(t) << 8 | Int(p)] += 1 }
    let naiveRows = (0..<256).map { r in (0..<256).contains { naive[r << 8 | $0] != 0 } }
    let naiveColumns = (0..<256).map { c in (0..<256).contains { naive[$0 << 8 | c] != 0 } }
    for level in levels {
      var bins = [UInt64](repeating: 0, count: 65536)
      var rows = [UInt8](repeating: 0, count: 256)
      var columns = [UInt8](repeating: 0, count: 256)
      atso_count_pixel_pairs_at(level, truth, prediction, count, &bins, &rows, &columns)
      #expect(bins == naive, "level \(level.rawValue), \(count) pixels")
      #expect(rows.map { $0 != 0 } == naiveRows && columns.map { $0 != 0 } == naiveColumns)
    }
  }
}

@Test("rows handed over one by one count as the whole arrays; clearing clears every bin")
func rawPairHistogramRows() {
  let (truth, prediction) = runs(count: 61 * 37, seed: 12)
  var whole = RawPairHistogram()
  whole.add(groundTruth: truth, prediction: prediction)
  var byRows = RawPairHistogram()
  truth.withUnsafeBufferPointer { t in
    prediction.withUnsafeBufferPointer { p in
      byRows.add { count in
        for y in 0..<37 {
          count(
            UnsafeBufferPointer(rebasing: t[(y * 61)..<((y + 1) * 61)]),
            UnsafeBufferPointer(rebasing: p[(y * 61)..<((y + 1) * 61)]))
        }
      }
    }
  }
  #expect(byRows == whole && byRows.counts == whole.counts)
  byRows.removeAll()
  #expect(byRows.counts.allSatisfy { $0 == 0 })
  #expect(byRows.presentValues.groundTruth.allSatisfy { !$0 })
  byRows.add(groundTruth: [9, 9], prediction: [4, 200])
  #expect(byRows.presentValues.groundTruth.indices.filter { byRows.presentValues.groundTruth[$0] } == [9])
  #expect(byRows.counts.reduce(0, +) == 2)
}
