import Foundation
import TestSupport
import Testing

/// `cluster-probe` next to the test bundle (built with the tests).
let probeExecutable = builtExecutable("cluster-probe")

let mpiAvailable = probeExecutable != nil && mpirunExecutable != nil
let mpiMissing = mpirunMissing + ", or cluster-probe is not built"

struct ProbeRun {
  var status: Int32
  /// Every line of stdout and stderr (mpirun's own and every rank's).
  var lines: [String]

  func ranks(_ prefix: String) -> [String] { lines.filter { $0.hasPrefix(prefix) } }
}

/// Runs `mpirun --allow-run-as-root --oversubscribe [extra] -np ranks cluster-probe arguments`,
/// or the probe alone when `ranks` is nil.
func probe(ranks: Int?, extra: [String] = [], _ arguments: [String]) throws -> ProbeRun {
  let process = Process()
  let executable = try #require(probeExecutable)
  if let ranks {
    process.executableURL = URL(fileURLWithPath: try #require(mpirunExecutable))
    process.arguments = mpirunArguments(ranks: ranks, extra: extra) + [executable] + arguments
  } else {
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
  }
  let output = Pipe()
  process.standardOutput = output
  process.standardError = output
  try process.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
  return ProbeRun(status: process.terminationStatus, lines: lines)
}

func temporaryDirectory(_ name: String) -> String {
  NSTemporaryDirectory() + "cluster-\(name)-\(UUID().uuidString)"
}

@Suite(
  "MPI: collectives and the job farm under mpirun", .serialized,
  .enabled(if: mpiAvailable, Comment(rawValue: mpiMissing)))
struct MPITests {
  @Test("sums are the same on every rank, follow the fixed tree order, and broadcast reaches all")
  func sums() throws {
    for ranks in [2, 4] {
      let run = try probe(ranks: ranks, ["sum", "999"])
      #expect(run.status == 0, "\(run.lines)")
      let sums = Set(run.lines.filter { $0.contains("] sum ") }.map { $0.split(separator: "]")[1] })
      #expect(sums.count == 1, "ranks disagree: \(run.lines)")
      #expect(run.lines.filter { $0.contains("] sum ") }.count == ranks)
      #expect(run.lines.contains("[rank 0/\(ranks)] reference equal"), "\(run.lines)")
      #expect(run.lines.filter { $0.hasSuffix("broadcast from rank 0") }.count == ranks)
    }
    // With four ranks the tree's sum is not the rank-order one: the order check can fail.
    let four = try probe(ranks: 4, ["sum", "999"])
    #expect(four.lines.contains("[rank 0/4] rank-order sum different"))
  }

  @Test("a rank that fails in a collective stops every rank with its error")
  func collectiveFailure() throws {
    let run = try probe(ranks: 3, ["fail", "1", "2"])
    #expect(run.status != 0)
    for rank in 0..<3 {
      #expect(
        run.lines.contains("[rank \(rank)/3] error: rank 1: probe failure at step 2"),
        "\(run.lines)")
    }
    #expect(!run.lines.contains { $0.hasSuffix("finished") })
  }

  func summary(_ directory: String) -> String? {
    try? String(contentsOfFile: directory + "/summary.txt", encoding: .utf8)
  }

  @Test("a farm on 3 ranks gives the single process's results, every rank doing jobs")
  func farmMatchesSingleProcess() throws {
    let single = temporaryDirectory("single")
    let alone = try probe(ranks: nil, ["farm", single, "3", "3", "50"])
    #expect(alone.status == 0, "\(alone.lines)")
    let directory = temporaryDirectory("three")
    let run = try probe(ranks: 3, ["farm", directory, "3", "3", "50"])
    #expect(run.status == 0, "\(run.lines)")
    let expected = try #require(summary(single))
    #expect(expected.split(separator: "\n").count == 9)
    #expect(summary(directory) == expected)
    for rank in 0..<3 {
      #expect(
        run.lines.contains { $0.hasPrefix("[rank 0/3] finished(") && $0.contains("rank: \(rank),") }
      )
    }
  }

  @Test("a rank killed (SIGKILL) mid-job loses only that job, which runs again: same results")
  func killedRank() throws {
    let single = temporaryDirectory("single")
    _ = try probe(ranks: nil, ["farm", single, "3", "3", "50"])
    let directory = temporaryDirectory("killed")
    let run = try probe(
      ranks: 3, extra: ["--enable-recovery"],
      ["farm", directory, "3", "3", "50", "kill=1:g1-0", "timeout=2"])
    #expect(run.status == 0, "\(run.lines)")
    #expect(run.lines.contains { $0.hasPrefix("[rank 0/3] lost(rank: 1, job: Optional(\"g1-0\")") })
    #expect(
      run.lines.contains {
        $0.hasPrefix("[rank 0/3] started(job: \"g1-0\", rank: 0")
          || $0.hasPrefix("[rank 0/3] started(job: \"g1-0\", rank: 2")
      })
    #expect(FileManager.default.fileExists(atPath: directory + "/fault-g1-0"))
    #expect(summary(directory) == summary(single))
  }

  @Test("a rank that stops answering (SIGSTOP) loses its job; rank 0 kills it at the end")
  func stoppedRank() throws {
    let single = temporaryDirectory("single")
    _ = try probe(ranks: nil, ["farm", single, "3", "3", "50"])
    let directory = temporaryDirectory("stopped")
    let run = try probe(
      ranks: 3, extra: ["--enable-recovery"],
      ["farm", directory, "3", "3", "50", "stop=2:g1-1", "timeout=2"])
    #expect(run.status == 0, "\(run.lines)")
    #expect(run.lines.contains { $0.hasPrefix("[rank 0/3] lost(rank: 2, job: Optional(\"g1-1\")") })
    #expect(run.lines.contains { $0.hasPrefix("[rank 0/3] killedLost(rank: 2") })
    #expect(summary(directory) == summary(single))
  }

  @Test("a job that throws, or a rank that cannot open the work, stops all ranks with its error")
  func failures() throws {
    let failed = try probe(
      ranks: 3, ["farm", temporaryDirectory("fail"), "3", "3", "50", "fail=g1-1"])
    #expect(failed.status != 0)
    #expect(
      failed.lines.contains {
        $0.hasPrefix("[rank 0/3] error: rank ")
          && $0.hasSuffix(", job g1-1: job g1-1 failed on purpose")
      }, "\(failed.lines)")
    #expect(!failed.lines.contains { $0.contains("farm finished") })
    let unopened = try probe(
      ranks: 3, ["farm", temporaryDirectory("open"), "3", "3", "50", "openfail=2"])
    #expect(unopened.status != 0)
    #expect(
      unopened.lines.contains { $0.hasPrefix("[rank 0/3] error: rank 2: cannot open ") },
      "\(unopened.lines)")
  }
}
