/// Segmentation scores computed from a square ``ConfusionMatrix`` (cityscapesScripts semantics).
///
/// For an evaluated class `c`, with rows = ground truth:
/// ```
/// TP = m[c, c]
/// FN = (row c, all columns, void column included) - TP
/// FP = column c, summed over the rows of evaluated classes other than c
/// IoU = TP / (TP + FP + FN)      Dice = 2 TP / (2 TP + FP + FN)      accuracy = TP / row c
/// ```
/// Rows of classes that are not evaluated and the void row count nowhere (no FN, no FP), as in
/// `getIouScoreForLabel`. **Averaging policy:** a score whose denominator is 0 (the class is
/// absent from the evaluated ground truth and never predicted there) is NaN and is skipped by
/// the means, as in cityscapesScripts' `getScoreAverage`; a class that is absent but predicted
/// has IoU 0 and counts. Pixel accuracy = ΣTP / Σ evaluated rows; mean accuracy averages over
/// classes present in the ground truth; frequency-weighted IoU = Σ (row c / Σ rows) IoU c.
public struct EvaluationReport: Sendable {
  /// The scores of one class.
  public struct ClassScore: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var isEvaluated: Bool
    public var truePositives: Int64
    public var falsePositives: Int64
    public var falseNegatives: Int64
    /// Pixels of this class in the evaluated ground truth (`TP + FN`).
    public var groundTruthPixels: Int64 { truePositives + falseNegatives }
    /// NaN when not evaluated or `TP + FP + FN == 0`.
    public var iou: Double
    /// NaN when not evaluated or `TP + FP + FN == 0`.
    public var dice: Double
    /// `TP / (TP + FN)`; NaN when not evaluated or absent from the ground truth.
    public var accuracy: Double
  }

  /// The class set scored.
  public let classes: ClassSet
  /// The matrix the scores come from.
  public let matrix: ConfusionMatrix
  /// One score per class of `classes`, in class order (also the classes not evaluated, with NaN).
  public let perClass: [ClassScore]
  /// Mean IoU over evaluated classes with a defined IoU.
  public let meanIoU: Double
  /// Mean Dice over evaluated classes with a defined Dice.
  public let meanDice: Double
  /// Correct pixels / evaluated ground-truth pixels.
  public let pixelAccuracy: Double
  /// Mean per-class accuracy over evaluated classes present in the ground truth.
  public let meanAccuracy: Double
  /// IoU weighted by ground-truth frequency.
  public let frequencyWeightedIoU: Double
  /// Ground-truth pixels of evaluated classes.
  public let evaluatedPixels: Int64
  /// The mappings the scores went through, with their variants (``ScoringPath/mappingNames``).
  public var mappings: [String] = []
  /// How the scores were obtained (the scoring path, the resolution), one line each; printed
  /// under the table and written to the JSON.
  public var notes: [String] = []
  /// The same pixels scored under every variant of the mappings used (`evaluate --variants`),
  /// the defaults first; empty otherwise.
  public var variants: [VariantScore] = []

  /// The scores of one variant of the scoring path.
  public struct VariantScore: Sendable, Equatable {
    /// The mappings chosen for the steps that have variants (``ScoringVariant/label``).
    public var label: String
    /// Every mapping used (``ScoringPath/mappingNames``).
    public var mappings: [String]
    public var meanIoU: Double
    public var meanDice: Double
    public var pixelAccuracy: Double
    /// IoU per class of the level, in class order (NaN where undefined or not evaluated).
    public var classIoU: [Double]

    /// The summary of `report`, scored under `variant`.
    public init(_ variant: ScoringVariant, report: EvaluationReport) {
      label = variant.label
      mappings = variant.path.mappingNames
      meanIoU = report.meanIoU
      meanDice = report.meanDice
      pixelAccuracy = report.pixelAccuracy
      classIoU = report.perClass.map(\.iou)
    }
  }

  init(matrix: ConfusionMatrix) {
    let classes = matrix.groundTruthClasses
    let count = classes.classes.count
    let columns = matrix.columnCount
    let evaluated = classes.classes.map(\.isEvaluated)
    var scores: [ClassScore] = []
    var rowTotals: [Int64] = []
    for (c, semanticClass) in classes.classes.enumerated() {
      var row: Int64 = 0
      for column in 0..<columns { row += matrix.counts[c * columns + column] }
      let tp = matrix.counts[c * columns + c]
      var fp: Int64 = 0
      for r in 0..<count where r != c && evaluated[r] { fp += matrix.counts[r * columns + c] }
      let fn = row - tp
      let isEvaluated = semanticClass.isEvaluated
      let union = tp + fp + fn
      scores.append(
        ClassScore(
          id: semanticClass.id, name: semanticClass.name, isEvaluated: isEvaluated,
          truePositives: isEvaluated ? tp : 0, falsePositives: isEvaluated ? fp : 0,
          falseNegatives: isEvaluated ? fn : 0,
          iou: isEvaluated && union > 0 ? Double(tp) / Double(union) : .nan,
          dice: isEvaluated && union > 0 ? Double(2 * tp) / Double(2 * tp + fp + fn) : .nan,
          accuracy: isEvaluated && row > 0 ? Double(tp) / Double(row) : .nan))
      rowTotals.append(isEvaluated ? row : 0)
    }
    let total = rowTotals.reduce(0, +)
    let correct = scores.map(\.truePositives).reduce(0, +)
    func mean(_ values: [Double]) -> Double {
      let valid = values.filter { !$0.isNaN }
      return valid.isEmpty ? .nan : valid.reduce(0, +) / Double(valid.count)
    }
    self.classes = classes
    self.matrix = matrix
    self.perClass = scores
    self.meanIoU = mean(scores.map(\.iou))
    self.meanDice = mean(scores.map(\.dice))
    self.meanAccuracy = mean(scores.map(\.accuracy))
    self.pixelAccuracy = total > 0 ? Double(correct) / Double(total) : .nan
    var weighted = 0.0
    for (score, row) in zip(scores, rowTotals) where row > 0 && !score.iou.isNaN {
      weighted += Double(row) / Double(total) * score.iou
    }
    self.frequencyWeightedIoU = total > 0 ? weighted : .nan
    self.evaluatedPixels = total
  }

  /// The score of the class with pixel value `id`.
  public func score(id: Int) -> ClassScore? {
    perClass.first { $0.id == id }
  }

  /// The mean of one per-class score over the classes `ids` (NaN entries skipped), e.g. the
  /// foreground mean Dice of a medical label set: `mean(\.dice, classIDs: [1, 2])`.
  /// Ids that are not classes are ignored; NaN when no value is left.
  public func mean(_ score: KeyPath<ClassScore, Double>, classIDs ids: [Int]) -> Double {
    let values = perClass.filter { ids.contains($0.id) }.map { $0[keyPath: score] }
      .filter { !$0.isNaN }
    return values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
  }

  /// A plain-text table of the evaluated classes and the summary scores, for terminals.
  public func table() -> String {
    let nameWidth = max(5, perClass.map(\.name.count).max() ?? 0)
    func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
      let padding = String(repeating: " ", count: max(0, width - text.count))
      return left ? text + padding : padding + text
    }
    func percent(_ value: Double) -> String { value.isNaN ? "n/a" : formatFixed(value * 100, 2) }
    var lines = [
      "\(pad("id", 4)) \(pad("class", nameWidth, left: true)) \(pad("IoU %", 7)) "
        + "\(pad("Dice %", 7)) \(pad("Acc %", 7)) \(pad("GT pixels", 12))"
    ]
    lines.append(String(repeating: "-", count: lines[0].count))
    for score in perClass where score.isEvaluated {
      lines.append(
        "\(pad("\(score.id)", 4)) \(pad(score.name, nameWidth, left: true)) "
          + "\(pad(percent(score.iou), 7)) \(pad(percent(score.dice), 7)) "
          + "\(pad(percent(score.accuracy), 7)) \(pad("\(score.groundTruthPixels)", 12))")
    }
    lines.append(String(repeating: "-", count: lines[0].count))
    let present = perClass.filter { $0.isEvaluated && !$0.iou.isNaN }.count
    let evaluatedCount = perClass.filter(\.isEvaluated).count
    lines.append(
      "mIoU \(percent(meanIoU)) % over \(present) of \(evaluatedCount) classes "
        + "(classes absent from ground truth and prediction are skipped)")
    lines.append("mean Dice \(percent(meanDice)) %   FWIoU \(percent(frequencyWeightedIoU)) %")
    lines.append(
      "pixel accuracy \(percent(pixelAccuracy)) %   mean accuracy \(percent(meanAccuracy)) %   "
        + "evaluated pixels \(evaluatedPixels)")
    lines += notes
    if !variants.isEmpty { lines += variantLines() }
    return lines.joined(separator: "\n") + "\n"
  }

  /// The variant table and the spread of mIoU (``variants``).
  func variantLines() -> [String] {
    func percent(_ value: Double) -> String { value.isNaN ? "n/a" : formatFixed(value * 100, 2) }
    func pad(_ text: String, _ width: Int) -> String {
      String(repeating: " ", count: max(0, width - text.count)) + text
    }
    var lines = [
      "",
      "the same pixels under \(variants.count) variant combination(s) of the mappings:",
      "\(pad("mIoU %", 7)) \(pad("Dice %", 7)) \(pad("Acc %", 7))  variant",
    ]
    for variant in variants {
      lines.append(
        "\(pad(percent(variant.meanIoU), 7)) \(pad(percent(variant.meanDice), 7)) "
          + "\(pad(percent(variant.pixelAccuracy), 7))  \(variant.label)")
    }
    let scores = variants.map(\.meanIoU).filter { !$0.isNaN }
    if let low = scores.min(), let high = scores.max() {
      lines.append(
        "spread of mIoU: \(percent(low)) .. \(percent(high)) % "
          + "(\(formatFixed((high - low) * 100, 2)) points)")
    }
    // The classes whose IoU moves most between variants.
    var moves: [(name: String, range: Double)] = []
    for (position, score) in perClass.enumerated() where score.isEvaluated {
      let values = variants.compactMap { position < $0.classIoU.count ? $0.classIoU[position] : nil }
        .filter { !$0.isNaN }
      if let low = values.min(), let high = values.max(), high > low {
        moves.append((score.name, high - low))
      }
    }
    moves.sort { $0.range != $1.range ? $0.range > $1.range : $0.name < $1.name }
    if !moves.isEmpty {
      lines.append(
        "classes that move most (IoU range, points): "
          + moves.prefix(6).map { "\($0.name) \(formatFixed($0.range * 100, 2))" }
          .joined(separator: ", "))
    }
    return lines
  }

  /// The confusion matrix as a plain-text table (rows = ground truth), void row and column last.
  public func matrixTable() -> String {
    let labels = classes.classes.map(\.name) + ["(void)"]
    let width = max(labels.map(\.count).max() ?? 0, String(matrix.total).count) + 1
    func pad(_ text: String) -> String {
      String(repeating: " ", count: max(0, width - text.count)) + text
    }
    var lines = [pad("gt \\ pred") + labels.map(pad).joined()]
    for row in 0..<matrix.rowCount {
      let cells = (0..<matrix.columnCount).map { pad("\(matrix[row, $0])") }
      lines.append(pad(labels[row]) + cells.joined())
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// Per-class scores as CSV: `id,name,evaluated,tp,fp,fn,iou,dice,accuracy` (NaN as empty).
  public func csv() -> String {
    func field(_ value: Double) -> String { value.isNaN ? "" : "\(value)" }
    var lines = ["id,name,evaluated,tp,fp,fn,iou,dice,accuracy"]
    for score in perClass {
      let name =
        "\""
        + score.name.split(separator: "\"", omittingEmptySubsequences: false)
        .joined(separator: "\"\"") + "\""
      lines.append(
        "\(score.id),\(name),\(score.isEvaluated),\(score.truePositives),"
          + "\(score.falsePositives),\(score.falseNegatives),\(field(score.iou)),"
          + "\(field(score.dice)),\(field(score.accuracy))")
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// The confusion matrix as CSV: a header of prediction class names, one line per ground-truth
  /// class, void row and column last.
  public func matrixCSV() -> String {
    let labels = classes.classes.map(\.name) + ["(void)"]
    var lines = ["gt\\pred," + labels.joined(separator: ",")]
    for row in 0..<matrix.rowCount {
      let cells = (0..<matrix.columnCount).map { "\(matrix[row, $0])" }
      lines.append(labels[row] + "," + cells.joined(separator: ","))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// Everything as JSON (json-c): summary scores, per-class scores, the class names and the
  /// confusion matrix (rows = ground truth, void last). NaN is written as `null`; scores are
  /// fractions of 1 (`"scale": "fraction"`), a variant's `classIoU` follows its `classNames`.
  public func jsonText() -> String {
    func number(_ value: Double) -> JSONValue { value.isNaN ? .null : .double(value) }
    let perClassJSON: [JSONValue] = perClass.map { score in
      .object([
        ("id", .int(Int64(score.id))), ("name", .string(score.name)),
        ("evaluated", .bool(score.isEvaluated)), ("tp", .int(score.truePositives)),
        ("fp", .int(score.falsePositives)), ("fn", .int(score.falseNegatives)),
        ("iou", number(score.iou)), ("dice", number(score.dice)),
        ("accuracy", number(score.accuracy)),
      ])
    }
    let rows: [JSONValue] = (0..<matrix.rowCount).map { row in
      .array((0..<matrix.columnCount).map { .int(matrix[row, $0]) })
    }
    let root = JSONValue.object([
      ("scale", .string("fraction")),
      ("classSet", .string(classes.name)), ("meanIoU", number(meanIoU)),
      ("meanDice", number(meanDice)), ("pixelAccuracy", number(pixelAccuracy)),
      ("meanAccuracy", number(meanAccuracy)),
      ("frequencyWeightedIoU", number(frequencyWeightedIoU)),
      ("evaluatedPixels", .int(evaluatedPixels)),
      ("averaging", .string("NaN scores (class absent from ground truth and prediction) skipped")),
      ("mappings", .array(mappings.map { .string($0) })),
      ("notes", .array(notes.map { .string($0) })),
      (
        "variants",
        .array(
          variants.map { variant in
            .object([
              ("label", .string(variant.label)),
              ("mappings", .array(variant.mappings.map { .string($0) })),
              ("meanIoU", number(variant.meanIoU)), ("meanDice", number(variant.meanDice)),
              ("pixelAccuracy", number(variant.pixelAccuracy)),
              ("classIoU", .array(variant.classIoU.map(number))),
              ("classNames", .array(perClass.map { .string($0.name) })),
            ])
          })
      ),
      ("classes", .array(perClassJSON)),
      (
        "confusionMatrix",
        .object([
          ("labels", .array((classes.classes.map(\.name) + ["(void)"]).map { .string($0) })),
          ("rows", .array(rows)),
        ])
      ),
    ])
    return root.serialized() + "\n"
  }
}

/// `value` with `digits` decimals, without Foundation's `String(format:)`.
func formatFixed(_ value: Double, _ digits: Int) -> String {
  var scale = 1.0
  for _ in 0..<digits { scale *= 10 }
  let scaled = (abs(value) * scale).rounded()
  let whole = Int(scaled / scale)
  let fraction = Int(scaled - Double(whole) * scale)
  let fractionText = String(fraction)
  let padded = String(repeating: "0", count: max(0, digits - fractionText.count)) + fractionText
  return (value < 0 && scaled > 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + padded : "")
}
