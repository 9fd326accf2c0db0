import Foundation
import Transfer

/// The error the fake backend throws to simulate a crash.
struct SimulatedCrash: Error, Equatable {
  var call: Int
}

typealias FakeModel = SimulationBackend.Model
typealias FakeLabel = SimulationBackend.Label

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

/// The simulation backend (models are small JSON tables whose quality improves with
/// pseudo-labeled data), with every call recorded and a crash on demand.
final class FakeBackend: TransferBackend {
  let units: [String]
  let simulation: SimulationBackend
  /// Throw `SimulatedCrash` at this call (1-based), after writing half an output.
  var crashAtCall: Int?
  private(set) var calls: [FakeCall] = []
  private(set) var callCount = 0

  init(units: [String], crashAtCall: Int? = nil) {
    self.units = units
    self.simulation = SimulationBackend(units: units)
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

  private func record(
    _ kind: FakeCall.Kind, _ input: String, _ output: String, units: [String] = [],
    labelerTrainedOn: [String] = [], seed: UInt64 = 0
  ) {
    calls.append(
      FakeCall(
        kind: kind, input: input, output: output, units: units,
        labelerTrainedOn: labelerTrainedOn, seed: seed))
  }

  func referenceUnits() throws -> [String] { units }

  func trainSource(_ request: SourceTrainingRequest) throws {
    try enter(partialOutput: request.output)
    try simulation.trainSource(request)
    record(.trainSource, request.network ?? "-", Self.name(request.output), seed: request.seed)
  }

  func fineTune(_ request: FineTuningRequest) throws {
    try enter(partialOutput: request.output)
    try simulation.fineTune(request)
    record(
      .fineTune, Self.name(request.initialCheckpoint), Self.name(request.output),
      units: request.pseudoLabels.flatMap(\.units).sorted(), seed: request.seed)
  }

  func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    try enter(partialOutput: request.output)
    try simulation.adaptBatchNorm(request)
    record(
      .adaptBatchNorm, Self.name(request.checkpoint), Self.name(request.output),
      units: request.units, seed: request.seed)
  }

  func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    try enter(partialOutput: request.outputDirectory)
    // The labeler's training set, read from the checkpoint itself (not from the orchestrator).
    let model = try SimulationBackend.read(FakeModel.self, request.checkpoint)
    try simulation.generatePseudoLabels(request)
    record(
      .label, Self.name(request.checkpoint), Self.name(request.outputDirectory),
      units: request.units, labelerTrainedOn: model.trainedOn, seed: request.seed)
  }

  func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    try enter(partialOutput: nil)
    let result = try simulation.evaluate(request)
    record(.evaluate, Self.name(request.checkpoint), request.set.rawValue)
    return result
  }

  func agreement(_ request: AgreementRequest) throws -> Double {
    try enter(partialOutput: nil)
    let result = try simulation.agreement(request)
    record(
      .agreement, Self.name(request.checkpoint), "",
      units: request.pseudoLabels.flatMap(\.units).sorted())
    return result
  }

  /// Not counted as a call (the simulation draws nothing).
  func writePreviews(_ request: PreviewRequest) throws -> Bool {
    try simulation.writePreviews(request)
  }
}

/// A fresh temporary directory for one test.
func temporaryDirectory(_ name: String) throws -> String {
  let path = NSTemporaryDirectory() + "transfer-tests-\(name)-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}
