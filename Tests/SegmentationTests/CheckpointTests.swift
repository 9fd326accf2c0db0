import Foundation
import Tensor
import TestSupport
import Testing

@testable import Segmentation

/// The package root, from this file's path.
private let packageRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A Python with PyPI's `safetensors` and numpy (``PeerPython``: ../venv-peers from
/// scripts/setup_peers.sh).
private let safetensorsPython = PeerPython.find(importing: ["safetensors.numpy", "numpy"])

private func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  do { try process.run() } catch { return (-1, "\(error)") }
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

private func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "atso-models-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// A tiny U-Net after one training step, so that running statistics and velocities are non-trivial.
private func trainedTinyModel() -> (UNet, TrainingState) {
  var rng = SeededGenerator(seed: 21)
  var model = UNet(.init(widths: [4, 6], classCount: 3), using: &rng)
  let images = Tensor.randomNormal(shape: [2, 8, 8, 3], using: &rng)
  let labels = (0..<128).map { UInt8($0 % 3) }
  let (logits, cache) = model.trainingForward(images)
  let loss = softmaxCrossEntropy(logits: logits, labels: labels)
  var parameters = model.parameters
  var sgd = SGD(momentum: 0.9, weightDecay: 1e-4)
  sgd.update(
    &parameters, gradients: model.backward(cache, logitsGradient: loss.logitsGradient),
    learningRate: 0.1)
  model.parameters = parameters
  let state = TrainingState(
    step: 1, optimizer: .sgd(sgd), schedule: PolySchedule(baseLearningRate: 0.1, totalSteps: 10),
    generator: rng)
  return (model, state)
}

@Test("a checkpoint round-trips tensors, buffers, optimizer state and RNG bit for bit")
func checkpointRoundTrip() throws {
  let directory = try temporaryDirectory()
  defer { try? FileManager.default.removeItem(at: directory) }
  let path = directory.appendingPathComponent("model.safetensors").path
  let (model, state) = trainedTinyModel()
  try Checkpoint(model: model, classSetName: "toy-3", training: state).write(to: path)
  #expect(FileManager.default.fileExists(atPath: path + ".json"))
  let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
  #expect(Set(leftovers) == ["model.safetensors", "model.safetensors.json"])

  let checkpoint = try Checkpoint.read(from: path)
  #expect(checkpoint.description.classSetName == "toy-3")
  #expect(checkpoint.trainingState == state)
  #expect(checkpoint.names == model.parameterNames)
  var rng = SeededGenerator(seed: 99)
  var fresh = UNet(.init(widths: [4, 6], classCount: 3), using: &rng)
  #expect(fresh != model)
  try checkpoint.restore(into: &fresh, path: path)
  #expect(fresh == model)
  let rebuilt = try checkpoint.makeModel(path: path)
  #expect(rebuilt.parameters == model.parameters)

  // Another architecture is refused with the offending detail.
  var other = UNet(.init(widths: [4, 8], classCount: 3), using: &rng)
  #expect(throws: ModelError.self) { try checkpoint.restore(into: &other, path: path) }
}

@Test("malformed and missing checkpoint files throw clear errors")
func checkpointErrors() throws {
  let directory = try temporaryDirectory()
  defer { try? FileManager.default.removeItem(at: directory) }
  let path = directory.appendingPathComponent("m.safetensors").path
  #expect(throws: ModelError.self) { try Checkpoint.read(from: path) }
  let (model, _) = trainedTinyModel()
  try Checkpoint(model: model, classSetName: "toy-3").write(to: path)
  let data = try Data(contentsOf: URL(fileURLWithPath: path))
  for cut in [4, 8 + 10, data.count - 3] {
    do {
      _ = try SafeTensors.decode(data.prefix(cut), path: "cut")
      Issue.record("a file cut at \(cut) bytes decoded")
    } catch {
      guard case .malformedCheckpoint(let p, _) = error else {
        Issue.record("unexpected \(error)")
        continue
      }
      #expect(p == "cut")
    }
  }
  // A safetensors file without the description is not a checkpoint.
  let plain = SafeTensors.encode([("x", Tensor(shape: [2], scalars: [1, 2]))], metadata: [:])
  try plain.write(to: URL(fileURLWithPath: path))
  #expect(
    throws: ModelError.malformedCheckpoint(
      path: path, reason: "no 'atso.checkpoint' entry in __metadata__")
  ) { try Checkpoint.read(from: path) }
}

@Test(
  "PyPI safetensors reads our files and we read its files",
  .enabled(if: PeerPython.enabled(safetensorsPython), PeerPython.missing("safetensors")))
func safetensorsInterop() throws {
  let python = try #require(safetensorsPython, PeerPython.missing("safetensors"))
  let directory = try temporaryDirectory()
  defer { try? FileManager.default.removeItem(at: directory) }
  let ours = directory.appendingPathComponent("ours.safetensors").path
  let theirs = directory.appendingPathComponent("theirs.safetensors").path
  let (model, state) = trainedTinyModel()
  try Checkpoint(model: model, classSetName: "toy-3", training: state).write(to: ours)
  let script = """
    import json, sys, numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
    t = load_file(sys.argv[1])
    with safe_open(sys.argv[1], framework="numpy") as f:
        meta = f.metadata()
    print(json.dumps({"names": sorted(t), "sums": {k: float(v.astype(np.float64).sum()) for k, v in t.items()},
                      "shapes": {k: list(v.shape) for k, v in t.items()}, "dtypes": sorted({str(v.dtype) for v in t.values()}),
                      "class_set": json.loads(meta["atso.checkpoint"])["classSetName"]}))
    save_file({"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1.5, -2.25], dtype=np.float32)},
              sys.argv[2], metadata={"k": "v"})
    """
  let result = run(python, ["-c", script, ours, theirs])
  try #require(result.status == 0, "python failed: \(result.output)")
  struct Summary: Decodable {
    var names: [String]
    var sums: [String: Double]
    var shapes: [String: [Int]]
    var dtypes: [String]
    var class_set: String
  }
  let summary = try JSONDecoder().decode(Summary.self, from: Data(result.output.utf8))
  let checkpoint = try Checkpoint.read(from: ours)
  #expect(summary.names == checkpoint.tensors.keys.sorted())
  #expect(summary.dtypes == ["float32"])
  #expect(summary.class_set == "toy-3")
  for (name, tensor) in checkpoint.tensors {
    #expect(summary.shapes[name] == tensor.shape)
    let sum = tensor.scalars.reduce(0.0) { $0 + Double($1) }
    #expect(abs((summary.sums[name] ?? .nan) - sum) <= 1e-9 * max(1, abs(sum)), "\(name)")
  }
  let decoded = try SafeTensors.decode(Data(contentsOf: URL(fileURLWithPath: theirs)), path: theirs)
  #expect(decoded.metadata == ["k": "v"])
  let byName = Dictionary(uniqueKeysWithValues: decoded.tensors.map { ($0.name, $0.tensor) })
  #expect(byName["b"] == Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5]))
  #expect(byName["a"] == Tensor(shape: [2], scalars: [1.5, -2.25]))
}

@Test("a DeepLab checkpoint rebuilds the network from its description alone")
func deepLabCheckpoint() throws {
  let directory = try temporaryDirectory()
  defer { try? FileManager.default.removeItem(at: directory) }
  let path = directory.appendingPathComponent("deeplab.safetensors").path
  var rng = SeededGenerator(seed: 31)
  let configuration = DeepLab.Configuration(
    widths: [4, 4, 6, 8], asppChannels: 4, asppRates: [1, 2], classCount: 5)
  let model = DeepLab(configuration, using: &rng)
  try Checkpoint(model: model, classSetName: "toy-5").write(to: path)
  let rebuilt = try Checkpoint.read(from: path).makeModel(path: path)
  #expect(rebuilt.architecture == .deepLab(configuration: configuration))
  #expect(rebuilt.parameters == model.parameters)
  let images = Tensor.randomNormal(shape: [1, 16, 16, 3], using: &rng)
  #expect(rebuilt(images) == model(images))
  // The readable description names the architecture and its widths.
  let sidecar = try String(contentsOfFile: path + ".json", encoding: .utf8)
  #expect(sidecar.contains("\"deepLab\"") && sidecar.contains("\"asppRates\""))
  #expect(sidecar.contains("\"classSetName\" : \"toy-5\""))
}
