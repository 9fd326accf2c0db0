import Foundation
import Segmentation
import Tensor
import TestSupport
import Testing

/// `train` under `mpirun`: data-parallel over the ranks, the loss curve of one process with the
/// same global batch.
@Suite(
  "train under mpirun", .serialized,
  .enabled(
    if: mpiTransferReady, Comment(rawValue: mpirunMissing + ", or atso-transfer is not built")))
struct MPITrainTests {
  /// Runs `arguments` to the end (under mpirun with `ranks`, or alone); returns the process.
  @discardableResult
  func run(_ ranks: Int?, _ arguments: [String], log: String) throws -> RecordedProcess {
    let process = try RecordedProcess(
      mpi: ranks, try #require(atsoTransferExecutable), arguments, log: log)
    process.wait()
    return process
  }

  /// The losses of the progress lines (`step k/n  loss x ...`, every step with --log-every 0).
  func losses(_ lines: [String]) -> [Double] {
    lines.compactMap { line in
      guard let range = line.range(of: "  loss ") else { return nil }
      return Double(line[range.upperBound...].prefix { !$0.isWhitespace })
    }
  }

  @Test("2 ranks: the loss curve and weights of one process; labelled lines and errors")
  func dataParallelTrain() throws {
    let root = try makeTemporaryDirectory("mpi-train")
    try run(
      nil,
      [
        "dataset", "synthesize", "--output", root + "/scenes", "--count", "6", "--width", "48",
        "--height", "32",
      ], log: root + "/scenes.log")
    let steps = 6
    let flags = [
      "train", "--mappings", packageMappings, "--dataset",
      "cityscapes:\(root)/scenes/source:train", "--classes", "cityscapes-19", "--widths", "4,8",
      "--size", "32x48", "--batch", "4", "--iterations", "\(steps)", "--threads", "1",
      "--log-every", "0", "--checkpoint-every", "3",
    ]
    let one = try run(nil, flags + ["--output", root + "/one"], log: root + "/one.log")
    #expect(one.process.terminationStatus == 0, "\(one.lines.suffix(10))")
    let two = try run(2, flags + ["--output", root + "/two"], log: root + "/two.log")
    #expect(two.process.terminationStatus == 0, "\(two.lines.suffix(10))")

    // The progress prints 4 decimals: the curves agree there (in-process replicas agree to a
    // relative 1e-5, DataParallelTests); the weights to a relative 1e-4.
    let expected = losses(one.lines)
    let actual = losses(two.lines)
    #expect(expected.count == steps)
    #expect(actual == expected, "one process \(expected), 2 ranks \(actual)")
    #expect(two.lines.contains { $0.hasPrefix("[rank 0/2] training ") && $0.contains("2 ranks") })
    #expect(two.lines.filter { $0.contains("step 1/") }.count == 1, "only rank 0 reports")
    let a = try Checkpoint.read(from: root + "/one/checkpoint.safetensors")
    let b = try Checkpoint.read(from: root + "/two/checkpoint.safetensors")
    #expect(a.names == b.names)
    var largest: Float = 0
    for name in a.names {
      let x = a.tensors[name]?.scalars ?? []
      let y = b.tensors[name]?.scalars ?? []
      let scale = x.reduce(Float(1e-6)) { Swift.max($0, abs($1)) }
      for (u, v) in zip(x, y) { largest = Swift.max(largest, abs(u - v) / scale) }
    }
    #expect(largest < 1e-4, "weights differ by a relative \(largest)")
    #expect(b.description.training?.step == steps)

    // A batch that cannot be split: every rank stops, rank 0 prints the labelled error once.
    let bad = try run(
      2, flags.map { $0 == "4" ? "1" : $0 } + ["--output", root + "/bad"], log: root + "/bad.log")
    #expect(bad.process.terminationStatus != 0)
    let errors = bad.lines.filter { $0.contains("--batch 1 is smaller than the 2 ranks") }
    #expect(errors.count == 1, "\(bad.lines.suffix(10))")
    #expect(errors.first?.hasPrefix("[rank 0/2] ") == true)

    // Rank 0 alone fails (its checkpoint path is a folder): rank 1, waiting in the next step's
    // exchange, stops quietly; rank 0's labelled error is the one printed.
    let failing = root + "/failing"
    try FileManager.default.createDirectory(
      atPath: failing + "/checkpoint.safetensors/x", withIntermediateDirectories: true)
    let failed = try run(2, flags + ["--output", failing], log: root + "/failing.log")
    #expect(failed.process.terminationStatus != 0)
    let reported = failed.lines.filter { $0.contains("Error") }
    #expect(reported.count == 1, "\(failed.lines.suffix(10))")
    #expect(reported.first?.hasPrefix("[rank 0/2] ") == true)
    #expect(reported.first?.contains("checkpoint.safetensors") == true)
  }
}
