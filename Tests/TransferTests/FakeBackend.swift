import Foundation
import Transfer

/// The error the fake backend throws to simulate a crash.
struct SimulatedCrash: Error, Equatable {
  var call: Int
}

/// A fake model, stored as the checkpoint file (JSON).
struct FakeModel: Codable, Equatable {
  /// Quality on unseen data in [0, 1].
  var quality: Double
  /// Units fine-tuned on (cumulative), recomputed by the fake from the label files it reads.
  var trainedOn: [String]
  /// Memorized per-unit quality: a model mimics the labels it was trained on (lazy mimicking).
  var memorized: [String: Double]
  var adaptedOn: [String]?

  func score(_ unit: String) -> Double { memorized[unit] ?? quality }
}

/// A fake pseudo label file: one per unit.
struct FakeLabel: Codable, Equatable {
  var unit: String
  var quality: Double
  var labelerTrainedOn: [String]
}

/// One recorded backend call. Paths are reduced to their last component so that runs in
/// different directories compare equal.
struct FakeCall: Equatable, CustomStringConvertible {
  enum Kind: String { case trainSource, fineTune, adaptBatchNorm, label, evaluate, agreement }
  var kind: Kind
  /// The model read (initial checkpoint, labeler...) and the output written.
  var input: String
  var output: String
  var units: [String]
  /// For label calls: the labeler's `trainedOn`, read from the checkpoint file.
  var labelerTrainedOn: [String]
  var seed: UInt64

  var description: String { "\(kind.rawValue)(\(input) -> \(output))" }
  var isMutating: Bool { kind != .evaluate && kind != .agreement }
}

/// A deterministic fake of the network side: models are small JSON tables whose quality
/// improves with pseudo-labeled data, and every call is recorded.
final class FakeBackend: TransferBackend {
  let units: [String]
  /// Throw `SimulatedCrash` at this call (1-based), after writing half an output.
  var crashAtCall: Int?
  private(set) var calls: [FakeCall] = []
  private(set) var callCount = 0

  init(units: [String], crashAtCall: Int? = nil) {
    self.units = units
    self.crashAtCall = crashAtCall
  }

  static func name(_ path: String) -> String {
    (path as NSString).lastPathComponent.replacingOccurrences(of: ".partial", with: "")
  }

  /// Counts a call and crashes if asked, leaving a half-written file at `partialOutput`.
  private func enter(partialOutput: String?) throws {
    callCount += 1
    if callCount == crashAtCall {
      if let partialOutput {
        if FileManager.default.fileExists(atPath: partialOutput) {
          // A label directory: leave one truncated label file.
          _ = FileManager.default.createFile(
            atPath: partialOutput + "/half.json", contents: Data("{\"unit\": ".utf8))
        } else {
          _ = FileManager.default.createFile(
            atPath: partialOutput, contents: Data("{\"quality\": 0.9".utf8))
        }
      }
      throw SimulatedCrash(call: callCount)
    }
  }

  private func read<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TransferError.fileOperation(path: path, reason: "fake: missing")
    }
    return try JSONDecoder().decode(type, from: data)
  }

  private func write(_ value: some Encodable, _ path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard FileManager.default.createFile(atPath: path, contents: try encoder.encode(value)) else {
      throw TransferError.fileOperation(path: path, reason: "fake: cannot write")
    }
  }

  /// A deterministic jitter in [0, 0.001) from a job seed.
  static func jitter(_ seed: UInt64) -> Double { Double(seed % 1000) / 1_000_000 }

  func referenceUnits() throws -> [String] { units }

  func trainSource(_ request: SourceTrainingRequest) throws {
    try enter(partialOutput: request.output)
    let model = FakeModel(
      quality: 0.5 + Self.jitter(request.seed), trainedOn: [], memorized: [:], adaptedOn: nil)
    try write(model, request.output)
    calls.append(
      FakeCall(
        kind: .trainSource, input: request.network ?? "-", output: Self.name(request.output),
        units: [], labelerTrainedOn: [], seed: request.seed))
  }

  func fineTune(_ request: FineTuningRequest) throws {
    try enter(partialOutput: request.output)
    let initial = try read(FakeModel.self, request.initialCheckpoint)
    var memorized = initial.memorized
    var qualities: [Double] = []
    var trained = Set(initial.trainedOn)
    for source in request.pseudoLabels {
      for unit in source.units {
        let label = try read(FakeLabel.self, source.directory + "/\(unit).json")
        memorized[unit] = label.quality
        qualities.append(label.quality)
        trained.insert(unit)
      }
    }
    let mean =
      qualities.isEmpty ? initial.quality : qualities.reduce(0, +) / Double(qualities.count)
    // Learning from pseudo labels generalizes a bit beyond their quality.
    let quality = min(
      0.99, max(initial.quality, mean) + 0.04 * (1 - mean) + Self.jitter(request.seed))
    let model = FakeModel(
      quality: quality, trainedOn: trained.sorted(), memorized: memorized, adaptedOn: nil)
    try write(model, request.output)
    calls.append(
      FakeCall(
        kind: .fineTune, input: Self.name(request.initialCheckpoint),
        output: Self.name(request.output),
        units: request.pseudoLabels.flatMap(\.units).sorted(), labelerTrainedOn: [],
        seed: request.seed))
  }

  func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    try enter(partialOutput: request.output)
    var model = try read(FakeModel.self, request.checkpoint)
    model.quality = min(0.99, model.quality + 0.01)
    model.adaptedOn = request.units
    try write(model, request.output)
    calls.append(
      FakeCall(
        kind: .adaptBatchNorm, input: Self.name(request.checkpoint),
        output: Self.name(request.output), units: request.units, labelerTrainedOn: [],
        seed: request.seed))
  }

  func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    try enter(partialOutput: request.outputDirectory)
    let model = try read(FakeModel.self, request.checkpoint)
    for unit in request.units {
      try write(
        FakeLabel(unit: unit, quality: model.score(unit), labelerTrainedOn: model.trainedOn),
        request.outputDirectory + "/\(unit).json")
    }
    calls.append(
      FakeCall(
        kind: .label, input: Self.name(request.checkpoint),
        output: Self.name(request.outputDirectory), units: request.units,
        labelerTrainedOn: model.trainedOn, seed: request.seed))
  }

  func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    try enter(partialOutput: nil)
    let model = try read(FakeModel.self, request.checkpoint)
    let value =
      request.set == .test
      ? model.quality : units.map(model.score).reduce(0, +) / Double(units.count)
    calls.append(
      FakeCall(
        kind: .evaluate, input: Self.name(request.checkpoint), output: request.set.rawValue,
        units: [], labelerTrainedOn: [], seed: 0))
    return Evaluation(meanIoU: value, perClassIoU: [value, value * 0.9, nil])
  }

  func agreement(_ request: AgreementRequest) throws -> Double {
    try enter(partialOutput: nil)
    let model = try read(FakeModel.self, request.checkpoint)
    var total = 0.0
    var count = 0
    for source in request.pseudoLabels {
      for unit in source.units {
        let label = try read(FakeLabel.self, source.directory + "/\(unit).json")
        total += 1 - abs(model.score(unit) - label.quality)
        count += 1
      }
    }
    calls.append(
      FakeCall(
        kind: .agreement, input: Self.name(request.checkpoint), output: "",
        units: request.pseudoLabels.flatMap(\.units).sorted(), labelerTrainedOn: [], seed: 0))
    return count == 0 ? 1 : total / Double(count)
  }
}

/// A fresh temporary directory for one test.
func temporaryDirectory(_ name: String) throws -> String {
  let path = NSTemporaryDirectory() + "transfer-tests-\(name)-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}
