import Foundation
import Segmentation

/// The options of the ``SimulationBackend`` (`"kind": "simulation"`).
public struct SimulationOptions: BackendOptions, Equatable {
  public static let kind = "simulation"
  public static let summary = "JSON tables as models, to exercise plans and resume"
  public static let keys: [BackendOptionKey] = [
    .init("units", .integer, default: "12", "reference units unit0, unit1, ...", scope: .model),
    .init(
      "delayMicroseconds", .integer, default: "0", "pause in the middle of every file write",
      scope: .speed, formerNames: ["delay-us"]),
    .init(
      "sourceQuality", .number, default: "0.5", "the quality of a trained source model",
      scope: .sourceTraining),
    .init(
      "gain", .number, default: "0.04", "what a student gains over its pseudo labels",
      scope: .studentTraining),
  ]

  public var units = 12
  public var delayMicroseconds = 0
  public var sourceQuality = 0.5
  public var gain = 0.04

  public init(units: Int = 12, delayMicroseconds: Int = 0) {
    self.units = units
    self.delayMicroseconds = delayMicroseconds
  }

  enum CodingKeys: String, CodingKey { case units, delayMicroseconds, sourceQuality, gain }

  public init(from decoder: any Decoder) throws {
    try decodeBackendKeys(decoder, Self.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    units = try c.decodeInteger(Int.self, forKey: .units) ?? 12
    delayMicroseconds = try c.decodeInteger(Int.self, forKey: .delayMicroseconds) ?? 0
    sourceQuality = try c.decodeIfPresent(Double.self, forKey: .sourceQuality) ?? 0.5
    gain = try c.decodeIfPresent(Double.self, forKey: .gain) ?? 0.04
  }

  public func validate(file: String) throws {
    let fail = { (key: String, reason: String) in
      TransferError.invalid("backend." + key, reason, file: file)
    }
    if units < 1 { throw fail("units", "must be at least 1, got \(units)") }
    if delayMicroseconds < 0 { throw fail("delayMicroseconds", "must be >= 0") }
    if !(0...1).contains(sourceQuality) { throw fail("sourceQuality", "must be in [0, 1]") }
    if !(0...1).contains(gain) { throw fail("gain", "must be in [0, 1]") }
  }

  public func makeBackend(_ context: BackendContext) throws -> any TransferBackend {
    SimulationBackend(options: self)
  }
}

/// A backend whose "models" are small JSON tables, to exercise the orchestration end to end
/// (schedules, folds, resume, tables, plots) without networks: `backend kind=simulation`.
///
/// A simulated model has a quality in [0, 1] on unseen data and memorizes the quality of the
/// pseudo labels it was fine-tuned on (lazy mimicking): its score on R is the memorized value
/// for the units it trained on. Training a student on labels of mean quality q gives
/// `max(q0, q) + gain * (1 - q)` plus a jitter of the job seed below 0.001. Everything is
/// deterministic given the requests. Checkpoints are written in two halves with
/// `delayMicroseconds` between them, so that a kill can land in the middle of a write.
public final class SimulationBackend: TransferBackend {
  /// A simulated checkpoint.
  public struct Model: Codable, Equatable, Sendable {
    public var quality: Double
    /// Units fine-tuned on (cumulative), from the label files read.
    public var trainedOn: [String]
    public var memorized: [String: Double]
    public var adaptedOn: [String]?

    public func score(_ unit: String) -> Double { memorized[unit] ?? quality }
  }

  /// A simulated pseudo label file (one per unit).
  public struct Label: Codable, Equatable, Sendable {
    public var unit: String
    public var quality: Double
    public var labelerTrainedOn: [String]
  }

  public let units: [String]
  public let delayMicroseconds: UInt32
  public let sourceQuality: Double
  public let gain: Double

  public init(
    units: [String], delayMicroseconds: UInt32 = 0, sourceQuality: Double = 0.5,
    gain: Double = 0.04
  ) {
    self.units = units
    self.delayMicroseconds = delayMicroseconds
    self.sourceQuality = sourceQuality
    self.gain = gain
  }

  /// The backend of `options`: units `unit0`, `unit1`, ...
  public convenience init(options: SimulationOptions) {
    self.init(
      units: (0..<options.units).map { "unit\($0)" },
      delayMicroseconds: UInt32(clamping: options.delayMicroseconds),
      sourceQuality: options.sourceQuality, gain: options.gain)
  }

  public static func read<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TransferError.fileOperation(path: path, reason: "simulation: missing file")
    }
    do {
      return try JSONDecoder().decode(type, from: data)
    } catch {
      throw TransferError.fileOperation(path: path, reason: "simulation: corrupt file: \(error)")
    }
  }

  func write(_ value: some Encodable, _ path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = try encoder.encode(value)
    guard let handle = FileHandle(forWritingAtPath: path) ?? create(path) else {
      throw TransferError.fileOperation(path: path, reason: "simulation: cannot write")
    }
    defer { try? handle.close() }
    let half = data.count / 2
    try handle.write(contentsOf: data.prefix(half))
    if delayMicroseconds > 0 { usleep(delayMicroseconds) }
    try handle.write(contentsOf: data.dropFirst(half))
  }

  private func create(_ path: String) -> FileHandle? {
    guard FileManager.default.createFile(atPath: path, contents: nil) else { return nil }
    return FileHandle(forWritingAtPath: path)
  }

  /// A deterministic jitter in [0, 0.001) from a job seed.
  static func jitter(_ seed: UInt64) -> Double { Double(seed % 1000) / 1_000_000 }

  public func referenceUnits() throws -> [String] { units }

  /// R is `units`; S and E are simulated, without units.
  public func dataSummary() throws -> DataSummary {
    DataSummary(
      unit: "unit", labeled: [], reference: units, test: [],
      notes: ["Simulation: models are JSON tables; S and E hold no units."])
  }

  public func trainSource(_ request: SourceTrainingRequest) throws {
    let model = Model(
      quality: sourceQuality + Self.jitter(request.seed), trainedOn: [], memorized: [:],
      adaptedOn: nil)
    try write(model, request.output)
    try writeLossLog(request.lossLog, model)
  }

  /// A simulated training is one step whose loss is `1 - quality` (``LossLog``'s columns).
  func writeLossLog(_ path: String?, _ model: Model) throws {
    guard let path else { return }
    let text = LossLog.header() + "\n1,\(Float(1 - model.quality)),0.0,0.0,0\n"
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
      throw TransferError.fileOperation(path: path, reason: "simulation: cannot write")
    }
  }

  /// Copies a simulated model written elsewhere (it must decode as one).
  public func importSource(_ request: SourceImportRequest) throws {
    try write(try Self.read(Model.self, request.checkpoint), request.output)
  }

  public func trainStudent(_ request: StudentTrainingRequest) throws {
    let initial = try Self.read(Model.self, request.initialCheckpoint)
    var memorized = initial.memorized
    var qualities: [Double] = []
    var trained = Set(initial.trainedOn)
    for source in request.pseudoLabels {
      for unit in source.units {
        let label = try Self.read(Label.self, source.directory + "/\(unit).json")
        memorized[unit] = label.quality
        qualities.append(label.quality)
        trained.insert(unit)
      }
    }
    let mean =
      qualities.isEmpty ? initial.quality : qualities.reduce(0, +) / Double(qualities.count)
    let quality = min(
      0.99, max(initial.quality, mean) + gain * (1 - mean) + Self.jitter(request.seed))
    let model = Model(
      quality: quality, trainedOn: trained.sorted(), memorized: memorized, adaptedOn: nil)
    try write(model, request.output)
    try writeLossLog(request.lossLog, model)
  }

  public func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    var model = try Self.read(Model.self, request.checkpoint)
    model.quality = min(0.99, model.quality + 0.01)
    model.adaptedOn = request.units
    try write(model, request.output)
  }

  public func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    let model = try Self.read(Model.self, request.teacherCheckpoint)
    for unit in request.units {
      try write(
        Label(unit: unit, quality: model.score(unit), labelerTrainedOn: model.trainedOn),
        request.outputDirectory + "/\(unit).json")
    }
  }

  public func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    let model = try Self.read(Model.self, request.checkpoint)
    let value =
      request.set == .test
      ? model.quality : units.map(model.score).reduce(0, +) / Double(units.count)
    return Evaluation(
      score: value, perClass: [value, value * 0.9, nil], classNames: ["a", "b", "c"],
      predictedClasses: ["a", "b"])
  }

  /// The mean quality of the label files (a simulated label's quality is its accuracy).
  public func scorePseudoLabels(_ request: PseudoLabelScoreRequest) throws -> Evaluation? {
    var qualities: [Double] = []
    for source in request.labels {
      for unit in source.units {
        qualities.append(try Self.read(Label.self, source.directory + "/\(unit).json").quality)
      }
    }
    let value = qualities.isEmpty ? 0 : qualities.reduce(0, +) / Double(qualities.count)
    return Evaluation(score: value, perClass: [value])
  }

  public func agreement(_ request: AgreementRequest) throws -> Double {
    let model = try Self.read(Model.self, request.studentCheckpoint)
    var total = 0.0
    var count = 0
    for source in request.teacherLabels {
      for unit in source.units {
        let label = try Self.read(Label.self, source.directory + "/\(unit).json")
        total += 1 - abs(model.score(unit) - label.quality)
        count += 1
      }
    }
    return count == 0 ? 1 : total / Double(count)
  }

  /// Simulated models have no images to draw: writes nothing.
  public func writePreviews(_ request: PreviewRequest) throws -> Bool { false }
}
