import Foundation
import Segmentation
import Tensor

/// The training keys every backend shares, under one name each: how source models and students
/// train (`batch`, `sourceIterations`, `finetuneIterations`, ...) and the kernel threads.
///
/// A backend's options hold one value and decode, encode, document and validate it through
/// these methods, so that the shared keys have one spelling, one check and one help line; the
/// backend gives its own defaults (``Defaults``).
public struct TrainingOptions: Sendable, Equatable {
  /// Images (or slices) per step, and per AdaBN batch.
  public var batch: Int
  public var optimizer: OptimizerKind
  /// SGD momentum (not used by Adam).
  public var momentum: Float
  /// L2 weight decay.
  public var weightDecay: Float
  /// Clip the global gradient norm to this value (nil: no clipping).
  public var maxGradientNorm: Float?
  /// Steps to train a source model.
  public var sourceIterations: Int
  /// The base learning rate of a source model (poly schedule, power 0.9).
  public var learningRate: Float
  /// Steps to train a student.
  public var finetuneIterations: Int
  /// The base learning rate of a student.
  public var finetuneLearningRate: Float
  /// Kernel (OpenBLAS) threads; nil leaves them unchanged. Speed only.
  public var threads: Int?

  /// A backend's defaults of the shared keys.
  public struct Defaults: Sendable {
    public var batch: Int
    public var weightDecay: Float
    public var maxGradientNorm: Float?
    public var sourceIterations: Int
    /// Nil: `sourceIterations`.
    public var finetuneIterations: Int?
    /// What a step trains on, for the help (`images`, `slices`).
    public var unit: String

    public init(
      batch: Int, weightDecay: Float, maxGradientNorm: Float?, sourceIterations: Int,
      finetuneIterations: Int?, unit: String
    ) {
      self.batch = batch
      self.weightDecay = weightDecay
      self.maxGradientNorm = maxGradientNorm
      self.sourceIterations = sourceIterations
      self.finetuneIterations = finetuneIterations
      self.unit = unit
    }
  }

  /// The documentation of the shared keys with `defaults`.
  public static func keys(_ defaults: Defaults) -> [BackendOptionKey] {
    func text(_ value: Float) -> String {
      value == value.rounded() && abs(value) < 1e9 ? "\(Int(value))" : "\(value)"
    }
    return [
      .init(
        "batch", .integer, default: "\(defaults.batch)",
        "\(defaults.unit) per step (and per AdaBN batch)", formerNames: ["batch-size"]),
      .init("optimizer", .string, default: "sgd", "sgd or adam"),
      .init("momentum", .number, default: "0.9", "SGD momentum"),
      .init("weightDecay", .number, default: text(defaults.weightDecay), "L2 weight decay"),
      .init(
        "maxGradientNorm", .number, default: defaults.maxGradientNorm.map(text) ?? "off",
        "clip the global gradient norm to this value"),
      .init(
        "sourceIterations", .integer, default: "\(defaults.sourceIterations)",
        "steps to train a source model", scope: .sourceTraining, formerNames: ["iterations"]),
      .init(
        "learningRate", .number, default: "0.01", "base rate of a source model, poly schedule",
        scope: .sourceTraining),
      .init(
        "finetuneIterations", .integer,
        default: defaults.finetuneIterations.map { "\($0)" } ?? "sourceIterations",
        "steps to train a student", scope: .studentTraining, formerNames: ["fine-tune-iterations"]
      ),
      .init(
        "finetuneLearningRate", .number, default: "learningRate", "base rate of a student",
        scope: .studentTraining),
      .init("threads", .integer, default: "unchanged", "kernel (OpenBLAS) threads", scope: .speed),
    ]
  }

  /// Decodes the shared keys of a backend object (absent keys take `defaults`).
  public init(from decoder: any Decoder, defaults: Defaults) throws {
    let c = try decoder.container(keyedBy: AnyCodingKey.self)
    func key(_ name: String) -> AnyCodingKey { AnyCodingKey(stringValue: name) }
    func number(_ name: String) throws -> Float? { try c.decodeIfPresent(Float.self, forKey: key(name)) }
    batch = try c.decodeInteger(Int.self, forKey: key("batch")) ?? defaults.batch
    optimizer = try c.decodeIfPresent(OptimizerKind.self, forKey: key("optimizer")) ?? .sgd
    momentum = try number("momentum") ?? 0.9
    weightDecay = try number("weightDecay") ?? defaults.weightDecay
    maxGradientNorm = try number("maxGradientNorm") ?? defaults.maxGradientNorm
    sourceIterations =
      try c.decodeInteger(Int.self, forKey: key("sourceIterations")) ?? defaults.sourceIterations
    learningRate = try number("learningRate") ?? 0.01
    finetuneIterations =
      try c.decodeInteger(Int.self, forKey: key("finetuneIterations"))
      ?? defaults.finetuneIterations ?? sourceIterations
    finetuneLearningRate = try number("finetuneLearningRate") ?? learningRate
    threads = try c.decodeInteger(Int.self, forKey: key("threads"))
  }

  /// Encodes the shared keys into a backend object.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: AnyCodingKey.self)
    func key(_ name: String) -> AnyCodingKey { AnyCodingKey(stringValue: name) }
    try c.encode(batch, forKey: key("batch"))
    try c.encode(optimizer, forKey: key("optimizer"))
    try c.encode(momentum, forKey: key("momentum"))
    try c.encode(weightDecay, forKey: key("weightDecay"))
    try c.encodeIfPresent(maxGradientNorm, forKey: key("maxGradientNorm"))
    try c.encode(sourceIterations, forKey: key("sourceIterations"))
    try c.encode(learningRate, forKey: key("learningRate"))
    try c.encode(finetuneIterations, forKey: key("finetuneIterations"))
    try c.encode(finetuneLearningRate, forKey: key("finetuneLearningRate"))
    try c.encodeIfPresent(threads, forKey: key("threads"))
  }

  /// Checks the ranges of the shared keys.
  /// - Throws: `TransferError.invalidConfiguration` naming `file` and `backend.<key>`.
  public func validate(file: String) throws {
    var key = ""  // the entry being checked, named in the error
    do throws(ModelError) {
      key = "batch"
      try SettingChecks.batch(batch, field: key)
      key = "sourceIterations"
      try SettingChecks.steps(sourceIterations, field: key)
      key = "finetuneIterations"
      try SettingChecks.steps(finetuneIterations, field: key)
      key = "learningRate"
      try SettingChecks.positive(learningRate, field: key)
      key = "finetuneLearningRate"
      try SettingChecks.positive(finetuneLearningRate, field: key)
      key = "momentum"
      try SettingChecks.finite(momentum, in: 0..<1, field: key)
      key = "weightDecay"
      try SettingChecks.finite(weightDecay, in: 0...1, field: key)
      key = "maxGradientNorm"
      if let norm = maxGradientNorm { try SettingChecks.positive(norm, field: key) }
      key = "threads"
      if let threads { try SettingChecks.threads(threads, field: key) }
    } catch {
      throw TransferError.refused(error, key: "backend." + key, file: file)
    }
  }

  /// Sets the kernel threads, when given.
  public func applyThreads() {
    if let threads { BLASThreads.set(threads) }
  }

  /// A fresh optimizer of these settings.
  public var makeOptimizer: TrainingOptimizer {
    TrainingOptimizer(optimizer, momentum: momentum, weightDecay: weightDecay)
  }

  /// The steps and the base learning rate of a source model (`student: false`) or a student.
  public func schedule(student: Bool) -> (steps: Int, learningRate: Float) {
    student ? (finetuneIterations, finetuneLearningRate) : (sourceIterations, learningRate)
  }
}
