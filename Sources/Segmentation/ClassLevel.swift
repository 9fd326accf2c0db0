import Tensor
import Taxonomy

/// The class set at which labels are given, predicted and scored, resolved once from its name.
///
/// A network always predicts its fine classes. At the fine level the level is those classes; at
/// a super-class level (a ``LabelMapping`` from the fine classes to a coarser set) labels are
/// super-class ids, the network is trained through the reduce-then-compute loss with
/// ``superClassOfFine``, and predictions sum the fine probabilities per super class before the
/// arg-max (``decide(_:)``).
public struct ClassLevel: Sendable, Equatable {
  /// The classes of the level's labels: the fine classes, or the mapping's target.
  public let classes: ClassSet
  /// The name of the super-class mapping; nil at the fine level.
  public let mappingName: String?
  /// `superClassOfFine[f]` is the super class of fine class `f` (nil: none); nil at the fine
  /// level. Its count is the number of fine classes the network predicts.
  public let superClassOfFine: [Int?]?
  /// The number of classes at the level (logits at the fine level, super classes otherwise).
  public let classCount: Int

  /// The fine level of a network predicting `fineClassCount` outputs of `classes`.
  public static func fine(_ classes: ClassSet, fineClassCount: Int? = nil) -> ClassLevel {
    ClassLevel(
      classes: classes, mappingName: nil, superClassOfFine: nil,
      classCount: fineClassCount ?? classes.outputCount)
  }

  /// The super-class level of `mapping` for a network with `fineClassCount` outputs.
  ///
  /// - Throws: ``LevelError/unusableMapping(name:reason:)`` when the mapping's table does not
  ///   cover the network's classes or points beyond its target's outputs.
  public init(mapping: LabelMapping, fineClassCount: Int) throws(LevelError) {
    var table = mapping.superClassTable
    // Ids beyond the network's outputs (CamVid's Unlabelled, 11 of camvid-11) are no fine class
    // of the network: they may be in the table only as classes without a super class.
    while table.count > fineClassCount, table.last.map({ $0 == nil }) == true { table.removeLast() }
    guard table.count <= fineClassCount else {
      throw .unusableMapping(
        name: mapping.name,
        reason: "it maps \(table.count) classes; the network predicts \(fineClassCount)")
    }
    table += [Int?](repeating: nil, count: fineClassCount - table.count)
    let count = mapping.target.outputCount
    guard table.allSatisfy({ ($0 ?? 0) < count }) else {
      throw .unusableMapping(
        name: mapping.name, reason: "it maps to ids beyond the \(count) outputs of its target")
    }
    self.init(
      classes: mapping.target, mappingName: mapping.name, superClassOfFine: table,
      classCount: count)
  }

  private init(classes: ClassSet, mappingName: String?, superClassOfFine: [Int?]?, classCount: Int) {
    self.classes = classes
    self.mappingName = mappingName
    self.superClassOfFine = superClassOfFine
    self.classCount = classCount
  }

  /// Resolves the name of a super-class level for a network predicting `fineClasses`.
  ///
  /// `name` is a class set reachable from the fine classes (`super-5`: the library's mapping to
  /// it), else what ``MappingLibrary/mapping(named:)`` accepts: a mapping's name
  /// (`cityscapes-19-to-super-5`), a mapping file's stem (`cityscapes-19--super-5`) or path.
  /// - Parameters:
  ///   - fineClassSetName: the class set the network predicts; the mapping must start there.
  ///     Nil accepts any source with the right class count (volumes, whose classes come from
  ///     the dataset).
  /// - Throws: the library's `TaxonomyError` (no such mapping, listing the known ones), or
  ///   ``LevelError`` for a mapping from another class set.
  public static func superClass(
    named name: String, library: MappingLibrary, fineClassSetName: String?, fineClassCount: Int
  ) throws -> ClassLevel {
    let mapping: LabelMapping
    if let fine = fineClassSetName, library.classSets[name] != nil {
      mapping = try library.mapping(from: fine, to: name)
    } else {
      mapping = try library.mapping(named: name)
    }
    if let fine = fineClassSetName, mapping.source.name != fine {
      throw LevelError.unusableMapping(
        name: mapping.name, reason: "it maps \(mapping.source.name), the network predicts \(fine)")
    }
    return try ClassLevel(mapping: mapping, fineClassCount: fineClassCount)
  }

  /// Whether this is the fine level.
  public var isFine: Bool { superClassOfFine == nil }

  /// The loss that trains a network on labels of this level.
  public var loss: TrainingLoss {
    superClassOfFine.map { .reduceThenCompute(superClassOfFine: $0) } ?? .crossEntropy()
  }

  /// The Dice + cross-entropy loss at this level (``TrainingLoss/diceCrossEntropy(superClassOfFine:)``):
  /// Dice over the level's classes but the first, which must be the background.
  public var diceCrossEntropyLoss: TrainingLoss {
    .diceCrossEntropy(superClassOfFine: superClassOfFine ?? (0..<classCount).map { $0 })
  }

  /// Fine labels (network class ids) as labels of this level: fine classes without a super
  /// class, and `ignore`, become `ignore`.
  public func labels(fromFine labels: [UInt8], ignore: IgnoreIndex) -> [UInt8] {
    guard let table = superClassOfFine else { return labels }
    var lookup = [UInt8](repeating: ignore.value, count: 256)
    for (fine, target) in table.enumerated() where fine != Int(ignore.value) {
      if let target { lookup[fine] = UInt8(target) }
    }
    return labels.map { lookup[Int($0)] }
  }

  /// Per-pixel probabilities of the level's classes from fine probabilities (`pixels *
  /// fineCount` values, pixel-major): summed per super class, or unchanged at the fine level.
  public func levelProbabilities(_ fine: [Float], fineCount: Int) -> [Float] {
    guard let table = superClassOfFine else { return fine }
    let pixels = fine.count / max(1, fineCount)
    var level = [Float](repeating: 0, count: pixels * classCount)
    fine.withUnsafeBufferPointer { p in
      level.withUnsafeMutableBufferPointer { out in
        for i in 0..<pixels {
          for f in 0..<min(fineCount, table.count) {
            if let s = table[f] { out[i * classCount + s] += p[i * fineCount + f] }
          }
        }
      }
    }
    return level
  }

  /// The arg-max class of each pixel at this level and its probability, from fine class
  /// probabilities whose last axis is the fine classes (e.g. `[n, h, w, classes]`).
  public func decide(_ probabilities: Tensor) -> ClassDecisions {
    let fineCount = probabilities.shape.last ?? 1
    return ClassDecisions(
      probabilities: levelProbabilities(probabilities.scalars, fineCount: fineCount),
      classCount: isFine ? fineCount : classCount)
  }
}

/// The class decided for every pixel and its probability.
public struct ClassDecisions: Sendable, Equatable {
  /// The arg-max class of each pixel (the lowest class on ties).
  public var labels: [UInt8]
  /// The probability of that class.
  public var confidences: [Float]

  public init(labels: [UInt8], confidences: [Float]) {
    self.labels = labels
    self.confidences = confidences
  }

  /// The arg-max of per-pixel scores (`pixels * classCount`, pixel-major): the one arg-max of
  /// the package's predictions, pseudo labels and volume views.
  ///
  /// - Precondition: `classCount` in `1...256`.
  public init(probabilities: [Float], classCount: Int) {
    precondition((1...256).contains(classCount), "\(classCount) classes do not fit a label map")
    let pixels = probabilities.count / classCount
    var labels = [UInt8](repeating: 0, count: pixels)
    var confidences = [Float](repeating: 0, count: pixels)
    probabilities.withUnsafeBufferPointer { p in
      for i in 0..<pixels {
        let row = i * classCount  // the scores of pixel i
        var best = 0
        for c in 1..<classCount where p[row + c] > p[row + best] { best = c }
        labels[i] = UInt8(best)
        confidences[i] = p[row + best]
      }
    }
    self.init(labels: labels, confidences: confidences)
  }
}

/// Why a label level cannot be used.
public enum LevelError: Error, Equatable, CustomStringConvertible {
  /// The mapping does not fit the network.
  case unusableMapping(name: String, reason: String)

  public var description: String {
    switch self {
    case .unusableMapping(let name, let reason):
      "level super:\(name): mapping '\(name)' cannot be used: \(reason)"
    }
  }
}
