/// How predictions in one class set are scored against ground truth in another, at a level:
/// the one scoring semantics of every evaluation (`evaluate` on label files or on a checkpoint,
/// and the transfer backends, which map their ground truth with ``groundTruthSteps``).
///
/// 1. Ground truth (class set G) and predictions (P) meet at the **common level** C: P itself
///    when G maps to P (Mapillary ground truth and cityscapes-19 predictions meet at
///    cityscapes-19), else G when P maps to G, else the finest class set that both map to.
/// 2. Both sides then go from C to the **level** L (default: C) through the same mappings.
///
/// A prediction that is exactly the G -> C mapping of its ground truth therefore scores 100 % at
/// every level. A direct G -> L mapping (such as MTAF's Mapillary -> Cityscapes categories
/// table) is not used unless it is a step of this path; ``bypassed`` names the direct mappings
/// that give other results, and ``MappingLibrary/pathComparisons()`` (`mapping check`) lists
/// the classes where they differ.
///
/// Intermediate classes that are not evaluated (a void class) map to ignore, as in training.
public struct ScoringPath: Sendable, Equatable {
  /// A direct mapping to the level that is not used because it differs from the path.
  public struct Bypassed: Sendable, Equatable {
    /// The direct mapping (G -> L or P -> L).
    public var mapping: LabelMapping
    /// The source classes that it sends elsewhere than the path does.
    public var differingClasses: Int
  }

  /// G, the class set of the ground-truth values.
  public let groundTruthClasses: ClassSet
  /// P, the class set of the predicted values.
  public let predictionClasses: ClassSet
  /// C, where ground truth and predictions meet.
  public let common: ClassSet
  /// L, the class set the scores are computed in.
  public let level: ClassSet
  /// The mappings from G to C, in order (empty when G is C).
  public let groundTruthSteps: [LabelMapping]
  /// The mappings from P to C, in order (empty when P is C).
  public let predictionSteps: [LabelMapping]
  /// The mappings from C to L, in order (empty when C is L); both sides take them.
  public let levelSteps: [LabelMapping]
  /// G -> L: the ground-truth steps, then the level steps, composed.
  public let groundTruthMapping: LabelMapping
  /// P -> L: the prediction steps, then the level steps, composed.
  public let predictionMapping: LabelMapping
  /// Direct default mappings G -> L or P -> L that differ from the path (not used).
  public let bypassed: [Bypassed]

  /// The matrix counted on the raw values (rows G, columns P) reduced onto the level.
  /// - Throws: ``TaxonomyError/classSetMismatch(expected:found:context:)`` when the matrix is
  ///   not counted in G x P.
  public func reduce(_ matrix: ConfusionMatrix) throws(TaxonomyError) -> ConfusionMatrix {
    try matrix.reduced(groundTruth: groundTruthMapping, prediction: predictionMapping)
  }

  /// The scores of a raw G x P matrix at the level, naming the mappings used.
  public func report(_ matrix: ConfusionMatrix) throws(TaxonomyError) -> EvaluationReport {
    var report = try reduce(matrix).report()
    report.mappings = mappingNames
    report.notes = descriptionLines
    return report
  }

  /// The distinct mappings of the path, in order: ground-truth steps, prediction steps, level
  /// steps.
  public var steps: [LabelMapping] {
    var result: [LabelMapping] = []
    for step in groundTruthSteps + predictionSteps + levelSteps
    where !result.contains(where: { $0.name == step.name }) {
      result.append(step)
    }
    return result
  }

  /// The names of the mappings used, with their variants: `name (variant A)`.
  public var mappingNames: [String] { steps.map(Self.label) }

  /// What the path is, in a few lines for a report.
  public var descriptionLines: [String] {
    func chain(_ start: ClassSet, _ chain: [LabelMapping]) -> String {
      chain.isEmpty
        ? "\(start.name) (as is)"
        : start.name + chain.map { " -> \($0.target.name) [\(Self.label($0))]" }.joined()
    }
    var lines = [
      "scored at \(level.name); ground truth and predictions meet at \(common.name)",
      "ground truth: " + chain(groundTruthClasses, groundTruthSteps + levelSteps),
      "predictions:  " + chain(predictionClasses, predictionSteps + levelSteps),
    ]
    for other in bypassed {
      lines.append(
        "not used: \(Self.label(other.mapping)) (\(other.mapping.source.name) -> "
          + "\(other.mapping.target.name) directly) sends \(other.differingClasses) classes "
          + "elsewhere than this path (see `atso-transfer mapping check`)")
    }
    return lines
  }

  /// `name (variant X)`, or the name alone.
  static func label(_ mapping: LabelMapping) -> String {
    mapping.variant.map { "\(mapping.name) (variant \($0))" } ?? mapping.name
  }

  /// The composition of `steps` from `source` for scoring: a class that is not evaluated at an
  /// intermediate class set (a void class) maps to ignore; the last step is kept as it is.
  static func composition(_ steps: [LabelMapping], from source: ClassSet) -> LabelMapping {
    guard let last = steps.last else { return .identity(source) }
    if steps.count == 1 { return last }
    let targets: [Int?] = source.classes.map { fine in
      var id: Int? = fine.id
      for (index, step) in steps.enumerated() {
        id = id.flatMap { step.targetID(ofSourceID: $0) }
        if index < steps.count - 1, let current = id,
          step.target.semanticClass(id: current)?.isEvaluated != true
        {
          id = nil
        }
      }
      return id
    }
    return LabelMapping(
      name: "\(source.name)-to-\(last.target.name)", variant: nil, isDefault: true,
      summary: "Composition of " + steps.map(\.name).joined(separator: ", ") + " (for scoring).",
      citation: steps.map(\.citation).filter { !$0.isEmpty }.joined(separator: "; "),
      source: source, target: last.target, targetIDs: targets)
  }

  /// Where a mapping sends each source class in a score: `nil` for a source class that is not
  /// evaluated, an ignored one, or a target class that is not evaluated.
  static func effectiveTargets(_ mapping: LabelMapping) -> [Int?] {
    zip(mapping.source.classes, mapping.targetIDs).map { fine, target in
      guard fine.isEvaluated, let target,
        mapping.target.semanticClass(id: target)?.isEvaluated == true
      else { return nil }
      return target
    }
  }
}

/// One mapping of the library compared with a chain of default mappings between the same class
/// sets (`atso-transfer mapping check`).
public struct PathComparison: Sendable, Equatable {
  /// A source class that the two send to different places (`nil` = ignore).
  public struct Difference: Sendable, Equatable {
    public var sourceID: Int
    public var direct: Int?
    public var composed: Int?
  }

  /// The mapping compared.
  public let direct: LabelMapping
  /// The chain of two or more default mappings from `direct.source` to `direct.target`.
  public let path: [LabelMapping]
  /// The classes where they differ (empty: they agree), in source order.
  public let differences: [Difference]
}

/// One choice of variants for the steps of a scoring path that have several
/// (``MappingLibrary/scoringPathVariants(groundTruth:prediction:level:using:)``).
public struct ScoringVariant: Sendable, Equatable {
  /// The path with these mappings as its steps.
  public let path: ScoringPath
  /// The mapping chosen for each step that has variants, in path order.
  public let choices: [LabelMapping]

  public init(path: ScoringPath, choices: [LabelMapping]) {
    self.path = path
    self.choices = choices
  }

  /// `name (variant X), ...` of the choices.
  public var label: String {
    choices.isEmpty ? "(no variants)" : choices.map(ScoringPath.label).joined(separator: " + ")
  }
}

extension MappingLibrary {
  /// Resolves how predictions in `prediction` are scored against ground truth in
  /// `groundTruth` at `level` (default: where they meet). See ``ScoringPath``.
  ///
  /// - Parameters:
  ///   - groundTruth, prediction, level: class set names or files.
  ///   - overrides: mappings used instead of the default between their two class sets (a
  ///     variant, your own file); each must be a step of the path.
  /// - Throws: ``TaxonomyError/noCommonLevel(groundTruth:prediction:level:)``,
  ///   ``TaxonomyError/mappingNotOnPath(mapping:path:)``, and the errors of the look-ups.
  public func scoringPath(
    groundTruth: String, prediction: String, level: String? = nil,
    using overrides: [LabelMapping] = []
  ) throws(TaxonomyError) -> ScoringPath {
    let truthSet = try classSet(named: groundTruth)
    let predictionSet = try classSet(named: prediction)
    let levelSet = try level.map { (name: String) throws(TaxonomyError) in try classSet(named: name) }
    let edges = scoringEdges(overrides)
    let fromTruth = distances(from: truthSet.name, over: edges)
    let fromPrediction = distances(from: predictionSet.name, over: edges)
    let candidates = fromTruth.keys.filter { name in
      fromPrediction[name] != nil
        && (levelSet.map { path(from: name, to: $0.name, over: edges) != nil } ?? true)
    }.sorted()
    let commonName: String
    if candidates.contains(predictionSet.name) {
      commonName = predictionSet.name
    } else if candidates.contains(truthSet.name) {
      commonName = truthSet.name
    } else {
      // The finest: the candidate from which most other candidates are reached; then the
      // shortest total path; then the name.
      let ranked = candidates.map { name in
        let below = distances(from: name, over: edges).keys.filter { candidates.contains($0) }
        return (name: name, below: below.count,
                length: (fromTruth[name] ?? 0) + (fromPrediction[name] ?? 0))
      }
      let order = ranked.sorted {
        ($0.below, -$0.length) != ($1.below, -$1.length)
          ? ($0.below, -$0.length) > ($1.below, -$1.length) : $0.name < $1.name
      }
      guard let best = order.first else {
        throw .noCommonLevel(
          groundTruth: truthSet.name, prediction: predictionSet.name, level: levelSet?.name)
      }
      commonName = best.name
    }
    let common = try classSet(named: commonName)
    let target = levelSet ?? common
    guard let truthSteps = path(from: truthSet.name, to: common.name, over: edges),
      let predictionSteps = path(from: predictionSet.name, to: common.name, over: edges),
      let levelSteps = path(from: common.name, to: target.name, over: edges)
    else {
      throw .noCommonLevel(
        groundTruth: truthSet.name, prediction: predictionSet.name, level: levelSet?.name)
    }
    let truthMapping = ScoringPath.composition(truthSteps + levelSteps, from: truthSet)
    let predictionMapping = ScoringPath.composition(predictionSteps + levelSteps, from: predictionSet)
    var bypassed: [ScoringPath.Bypassed] = []
    let used = Set((truthSteps + predictionSteps + levelSteps).map(\.name))
    for (start, composed) in [(truthSet, truthMapping), (predictionSet, predictionMapping)] {
      for direct in mappings
      where direct.isDefault && direct.source.name == start.name
        && direct.target.name == target.name && !used.contains(direct.name)
        && !bypassed.contains(where: { $0.mapping.name == direct.name })
      {
        let count = zip(
          ScoringPath.effectiveTargets(direct), ScoringPath.effectiveTargets(composed)
        ).filter { $0 != $1 }.count
        if count > 0 { bypassed.append(.init(mapping: direct, differingClasses: count)) }
      }
    }
    let scoring = ScoringPath(
      groundTruthClasses: truthSet, predictionClasses: predictionSet, common: common,
      level: target, groundTruthSteps: truthSteps, predictionSteps: predictionSteps,
      levelSteps: levelSteps, groundTruthMapping: truthMapping,
      predictionMapping: predictionMapping, bypassed: bypassed)
    for mapping in overrides where !used.contains(mapping.name) {
      throw .mappingNotOnPath(
        mapping: "\(mapping.name) (\(mapping.source.name) -> \(mapping.target.name))",
        path: scoring.descriptionLines.dropFirst().prefix(2).joined(separator: "; "))
    }
    return scoring
  }

  /// The scoring path under every combination of the variants of its steps (every mapping of
  /// the library between the same two class sets): one entry per combination, the defaults
  /// first. Steps fixed by `overrides` are not varied.
  public func scoringPathVariants(
    groundTruth: String, prediction: String, level: String? = nil,
    using overrides: [LabelMapping] = []
  ) throws(TaxonomyError) -> [ScoringVariant] {
    let base = try scoringPath(
      groundTruth: groundTruth, prediction: prediction, level: level, using: overrides)
    let pinned = Set(overrides.map { "\($0.source.name)\u{0}\($0.target.name)" })
    let varied = base.steps.map(variants(of:)).filter {
      $0.count > 1 && !pinned.contains("\($0[0].source.name)\u{0}\($0[0].target.name)")
    }
    var combinations: [[LabelMapping]] = [[]]
    for options in varied {
      combinations = combinations.flatMap { prefix in options.map { prefix + [$0] } }
    }
    var result: [ScoringVariant] = []
    for choices in combinations {
      let scoring = try scoringPath(
        groundTruth: groundTruth, prediction: prediction, level: level,
        using: overrides + choices)
      result.append(ScoringVariant(path: scoring, choices: choices))
    }
    return result
  }

  /// Every mapping compared with every chain of two or more default mappings between its two
  /// class sets, in mapping name order (agreeing pairs included, with no differences).
  /// Classes are compared where they count in a score (``ScoringPath``'s composition).
  public func pathComparisons() -> [PathComparison] {
    let defaults = mappings.filter(\.isDefault)
    var result: [PathComparison] = []
    for direct in mappings {
      var chains: [[LabelMapping]] = []
      func extend(_ chain: [LabelMapping], visited: Set<String>) {
        let node = chain.last?.target.name ?? direct.source.name
        if node == direct.target.name {
          if chain.count >= 2 { chains.append(chain) }
          return
        }
        for step in defaults where step.source.name == node && !visited.contains(step.target.name)
        {
          extend(chain + [step], visited: visited.union([step.target.name]))
        }
      }
      extend([], visited: [direct.source.name])
      for chain in chains {
        let composed = ScoringPath.effectiveTargets(
          ScoringPath.composition(chain, from: direct.source))
        let differences = zip(
          direct.source.classes, zip(ScoringPath.effectiveTargets(direct), composed)
        ).compactMap { fine, pair in
          pair.0 == pair.1
            ? nil : PathComparison.Difference(sourceID: fine.id, direct: pair.0, composed: pair.1)
        }
        result.append(PathComparison(direct: direct, path: chain, differences: differences))
      }
    }
    return result
  }

  /// The default mappings with `overrides` in place of the defaults between the same class
  /// sets, in name order.
  func scoringEdges(_ overrides: [LabelMapping]) -> [LabelMapping] {
    let replaced = Set(overrides.map { "\($0.source.name)\u{0}\($0.target.name)" })
    let defaults = mappings.filter {
      $0.isDefault && !replaced.contains("\($0.source.name)\u{0}\($0.target.name)")
    }
    return (defaults + overrides).sorted { $0.name < $1.name }
  }
}
