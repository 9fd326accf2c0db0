import Foundation
import Testing
import Tensor
import TestSupport

/// One fixture written by scripts/make_tensor_fixtures.py (numpy references, checked once
/// against PyTorch).
struct KernelFixture: Decodable {
  struct Array: Decodable {
    var shape: [Int]
    var data: [Float]
    var tensor: Tensor { Tensor(shape: shape, scalars: data) }
  }
  var name: String
  var kernel: String
  var params: [String: Double]
  var inputs: [String: Array]
  var outputs: [String: Array]

  func input(_ key: String) throws -> Tensor { try #require(inputs[key], "\(name): input \(key)").tensor }
  func output(_ key: String) throws -> Tensor { try #require(outputs[key], "\(name): output \(key)").tensor }
  func int(_ key: String) throws -> Int { Int(try #require(params[key], "\(name): param \(key)")) }
}

/// All fixtures of one kernel family, sorted by name.
///
/// The folder is shared with other fixtures (e.g. `losses.json`): only the files named after the
/// family (`conv*.json` for "conv2d", `batchnorm*`, `pool*`, `resize*`) are read.
func fixtures(_ kernel: String) throws -> [KernelFixture] {
  let folder = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
  let prefix = kernel == "conv2d" ? "conv" : kernel
  let files = try FileManager.default.contentsOfDirectory(
    at: folder, includingPropertiesForKeys: nil
  )
  .filter { $0.pathExtension == "json" && $0.lastPathComponent.hasPrefix(prefix) }
  .sorted { $0.lastPathComponent < $1.lastPathComponent }
  let all = try files.map {
    try JSONDecoder().decode(KernelFixture.self, from: Data(contentsOf: $0))
  }
  return all.filter { $0.kernel == kernel }
}

/// Expects a forward value within `tolerance` of the reference, reporting the max difference.
func expectMatches(
  _ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(actual.shape == expected.shape, "\(what): shape", sourceLocation: sourceLocation)
  guard actual.shape == expected.shape else { return }
  let difference = actual.maxAbsoluteDifference(to: expected)
  #expect(difference <= tolerance, "\(what): max difference \(difference)", sourceLocation: sourceLocation)
}

@Test("conv2d forward matches the numpy fixtures")
func conv2dFixtures() throws {
  let cases = try fixtures("conv2d")
  #expect(cases.count == 7)
  for f in cases {
    let y = conv2dForward(
      try f.input("input"), weight: try f.input("weight"), bias: f.inputs["bias"]?.tensor,
      stride: try f.int("stride"), padding: try f.int("padding"), dilation: try f.int("dilation"))
    expectMatches(y, try f.output("output"), tolerance: 1e-5, f.name)
  }
}

@Test("batch norm (training, running update, inference) matches the numpy fixtures")
func batchNormFixtures() throws {
  let cases = try fixtures("batchnorm")
  #expect(cases.count == 2)
  for f in cases {
    let x = try f.input("input")
    let scale = try f.input("scale")
    let offset = try f.input("offset")
    let training = batchNormTrainingForward(x, scale: scale, offset: offset)
    expectMatches(training.output, try f.output("output"), tolerance: 1e-5, "\(f.name) output")
    expectMatches(training.statistics.mean, try f.output("mean"), tolerance: 1e-5, "\(f.name) mean")
    expectMatches(
      training.statistics.inverseStandardDeviation, try f.output("inverseStandardDeviation"),
      tolerance: 1e-5, "\(f.name) inverse standard deviation")
    var runningMean = try f.input("runningMean")
    var runningVariance = try f.input("runningVariance")
    expectMatches(
      batchNormInferenceForward(
        x, scale: scale, offset: offset, runningMean: runningMean,
        runningVariance: runningVariance),
      try f.output("inferenceOutput"), tolerance: 1e-5, "\(f.name) inference")
    updateRunningStatistics(
      runningMean: &runningMean, runningVariance: &runningVariance,
      statistics: training.statistics, count: x.count / scale.count, momentum: 0.1)
    expectMatches(runningMean, try f.output("updatedRunningMean"), tolerance: 1e-5, "\(f.name) running mean")
    expectMatches(
      runningVariance, try f.output("updatedRunningVariance"), tolerance: 1e-5,
      "\(f.name) running variance")
  }
}

@Test("max, average and global average pooling match the numpy fixtures")
func poolingFixtures() throws {
  let cases = try fixtures("pool")
  #expect(cases.count == 3)
  for f in cases {
    let x = try f.input("input")
    let size = try f.int("size")
    let stride = try f.int("stride")
    expectMatches(
      maxPool2dForward(x, size: size, stride: stride).output, try f.output("max"), tolerance: 0,
      "\(f.name) max")
    expectMatches(
      avgPool2dForward(x, size: size, stride: stride), try f.output("average"), tolerance: 1e-6,
      "\(f.name) average")
    expectMatches(globalAvgPoolForward(x), try f.output("global"), tolerance: 1e-6, "\(f.name) global")
  }
}

@Test("bilinear resize matches the numpy fixtures (PyTorch align_corners=false)")
func resizeFixtures() throws {
  let cases = try fixtures("resize")
  #expect(cases.count == 5)
  for f in cases {
    let y = resizeBilinearForward(
      try f.input("input"), height: try f.int("height"), width: try f.int("width"))
    expectMatches(y, try f.output("output"), tolerance: 1e-5, f.name)
  }
}
