import Segmentation
import Taxonomy

/// The label levels of a run, each resolved once by its backend into a ``ClassLevel`` (a lookup
/// table), with the run's void label checked against each.
public struct ResolvedLevels: Sendable {
  let levels: [LabelLevel: ClassLevel]

  /// Resolves `levels`: the fine level is `fine`, a super-class level what `superClass` makes of
  /// its mapping name (called once per level).
  ///
  /// - Throws: what `superClass` throws, and `TransferError.invalidConfiguration` when the void
  ///   label is a class of a level (its pixels would be scored and trained as that class).
  public init(
    _ levels: [LabelLevel], fine: ClassLevel, ignore: IgnoreIndex,
    superClass: (_ mapping: String) throws -> ClassLevel
  ) throws {
    var resolved: [LabelLevel: ClassLevel] = [:]
    for level in levels where resolved[level] == nil {
      switch level {
      case .fine: resolved[level] = fine
      case .superClass(let name): resolved[level] = try superClass(name)
      }
      guard let classes = resolved[level] else { continue }
      let value = Int(ignore.value)
      if value < classes.classCount || classes.classes.semanticClass(id: value)?.isEvaluated == true
      {
        throw TransferError.invalidConfiguration(
          file: "configuration", key: "pseudoLabels.ignoreIndex",
          reason: "\(ignore) is a class of \(classes.classes.name) (level \(level)); choose a "
            + "value of at least \(classes.classCount) that is no class id")
      }
    }
    self.levels = resolved
  }

  /// One line per level of `order` for the legend of the results: its classes, the mapping
  /// that defines it, and the loss it trains with.
  public func descriptions(_ order: [LabelLevel]) -> [String] {
    order.compactMap { level in
      guard let resolved = levels[level] else { return nil }
      let names = resolved.classes.classes.filter { $0.id < resolved.classCount && $0.isEvaluated }
        .map(\.name)
      let classes = "\(names.count) classes: \(names.joined(separator: ", "))"
      guard let mapping = resolved.mappingName else {
        return "Level fine: the network's classes, \(resolved.classes.name) (\(classes))."
      }
      return "Level \(level): the fine classes mapped by '\(mapping)' to "
        + "\(resolved.classes.name) (\(classes)); trained with the reduce-then-compute loss, "
        + "predicted as the arg-max of the summed fine probabilities."
    }
  }

  /// The resolved level of a request.
  ///
  /// - Throws: `TransferError.invalidConfiguration` for a level that is not one of the run's.
  public func callAsFunction(_ level: LabelLevel) throws -> ClassLevel {
    guard let resolved = levels[level] else {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "level", reason: "\(level) is not a level of this run")
    }
    return resolved
  }
}
