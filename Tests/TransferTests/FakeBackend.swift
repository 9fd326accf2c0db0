import Foundation
import TestSupport
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
  enum Kind: String {
    case trainSource, importSource, trainStudent, adaptBatchNorm, label, evaluate, agreement
    case scoreLabels
  }
  var kind: Kind
  /// The model read (initial checkpoint, labeler...) and the output written.
  var input: String
  var output: String
  var units: [String]
  /// For label calls: the labeler's `trainedOn`, read from the checkpoint file.
  var labelerTrainedOn: [String]
  var seed: UInt64

  var description: String { "\(kind.rawValue)(\(input) -> \(output))" }
  var isMutating: Bool { kind != .evaluate && kind != .agreement && kind != .scoreLabels }
}

/// The simulation backend (models are small JSON tables whose quality improves with
/// pseudo-labeled data), with every call recorded and a crash on demand.
final class FakeBackend: TransferBackend {
  let units: [String]
  let simulation: SimulationBackend
  /// Throw `SimulatedCrash` at this call (1-based), after writing half an output.
  var crashAtCall: Int?
  /// Evaluations report that models predict only this class.
  var onlyClass: String?
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

  func dataSummary() throws -> DataSummary {
    DataSummary(
      unit: "unit", labeled: ["s0", "s1"], reference: units, test: ["e0"],
      notes: ["Fake backend: units are names."])
  }

  func trainSource(_ request: SourceTrainingRequest) throws {
    try enter(partialOutput: request.output)
    try simulation.trainSource(request)
    record(.trainSource, request.network ?? "-", Self.name(request.output), seed: request.seed)
  }

  func importSource(_ request: SourceImportRequest) throws {
    try enter(partialOutput: request.output)
    try simulation.importSource(request)
    record(.importSource, Self.name(request.checkpoint), Self.name(request.output))
  }

  func trainStudent(_ request: StudentTrainingRequest) throws {
    try enter(partialOutput: request.output)
    try simulation.trainStudent(request)
    record(
      .trainStudent, Self.name(request.initialCheckpoint), Self.name(request.output),
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
    let model = try SimulationBackend.read(FakeModel.self, request.teacherCheckpoint)
    try simulation.generatePseudoLabels(request)
    record(
      .label, Self.name(request.teacherCheckpoint), Self.name(request.outputDirectory),
      units: request.units, labelerTrainedOn: model.trainedOn, seed: request.seed)
  }

  func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    try enter(partialOutput: nil)
    var result = try simulation.evaluate(request)
    if let onlyClass { result.predictedClasses = [onlyClass] }
    record(.evaluate, Self.name(request.checkpoint), request.set.rawValue)
    return result
  }

  func scorePseudoLabels(_ request: PseudoLabelScoreRequest) throws -> Evaluation? {
    try enter(partialOutput: nil)
    let result = try simulation.scorePseudoLabels(request)
    record(
      .scoreLabels, request.labels.map { Self.name($0.directory) }.joined(separator: "+"), "",
      units: request.labels.flatMap(\.units).sorted())
    return result
  }

  func agreement(_ request: AgreementRequest) throws -> Double {
    try enter(partialOutput: nil)
    let result = try simulation.agreement(request)
    record(
      .agreement, Self.name(request.studentCheckpoint), "",
      units: request.teacherLabels.flatMap(\.units).sorted())
    return result
  }

  /// Not counted as a call (the simulation draws nothing).
  func writePreviews(_ request: PreviewRequest) throws -> Bool {
    try simulation.writePreviews(request)
  }
}

/// Backend options for tests of the core's identity rules: one key of every scope and a data
/// location (the fake backend reads none of them).
struct TestOptions: BackendOptions, Equatable {
  static let kind = "test"
  static let summary = "options of the core's tests"
  static let keys: [BackendOptionKey] = [
    .init("source", .string, default: "required", "where the data lies", isLocation: true),
    .init("reference", .string, default: "none", "where R lies", scope: .reference, isLocation: true),
    .init("test", .string, default: "none", "where the test data lies", scope: .evaluation, isLocation: true),
    .init("size", .integer, default: "32", "changes every model"),
    .init("sourceSteps", .integer, default: "10", "trains M0", scope: .sourceTraining),
    .init("studentSteps", .integer, default: "5", "trains students", scope: .studentTraining),
    .init("threads", .integer, default: "1", "speed only", scope: .speed),
  ]
  var source: String
  var reference: String?
  var test: String?
  var size = 32
  var sourceSteps = 10
  var studentSteps = 5
  var threads = 1

  init(source: String) { self.source = source }

  enum CodingKeys: String, CodingKey {
    case source, reference, test, size, sourceSteps, studentSteps, threads
  }

  init(from decoder: any Decoder) throws {
    try decodeBackendKeys(decoder, Self.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    source = try c.decode(String.self, forKey: .source)
    reference = try c.decodeIfPresent(String.self, forKey: .reference)
    test = try c.decodeIfPresent(String.self, forKey: .test)
    size = try c.decodeInteger(Int.self, forKey: .size) ?? 32
    sourceSteps = try c.decodeInteger(Int.self, forKey: .sourceSteps) ?? 10
    studentSteps = try c.decodeInteger(Int.self, forKey: .studentSteps) ?? 5
    threads = try c.decodeInteger(Int.self, forKey: .threads) ?? 1
  }

  func validate(file: String) throws {
    if size < 1 {
      throw TransferError.invalidConfiguration(
        file: file, key: "backend.size", reason: "must be at least 1, got \(size)")
    }
  }

  func makeBackend(_ context: BackendContext) throws -> any TransferBackend {
    FakeBackend(units: sevenUnits)
  }
}
