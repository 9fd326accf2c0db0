import Foundation
import TestSupport
import Testing
import Transfer
@testable import atso_transfer

/// Collects what a ``ProgressPrinter`` writes.
final class Captured: @unchecked Sendable {
  private let lock = NSLock()
  private var parts: [String] = []
  func append(_ text: String) {
    lock.lock()
    parts.append(text)
    lock.unlock()
  }
  var text: String {
    lock.lock()
    defer { lock.unlock() }
    return parts.joined()
  }
}

@Test("transfer progress: job k of n with the run's time, and the running job's loops")
func transferProgress() throws {
  let captured = Captured()
  let printer = ProgressPrinter(interval: 3600, isTerminal: false) { captured.append($0) }
  let reporter = TransferReporter(printer: printer)
  let directory = try makeTemporaryDirectory("cli-progress") + "/run"
  let configuration = try TransferConfiguration(
    schedules: [.selfLearning], generations: 1, backend: SimulationOptions(units: 4)
  ).validated()
  let backend = try configuration.makeBackend(progress: reporter.line, jobProgress: reporter.handle)
  let run = try TransferRun.start(configuration: configuration, directory: directory, backend: backend)
  try execute(run, reporter: reporter)
  let lines = captured.text.split(separator: "\n").map(String.init)
  let count = run.plan.jobs.count
  let first = lines.first ?? ""
  let last = lines.last ?? ""
  let starts = lines.filter { $0.contains("] started; run ") }.count
  let ends = lines.filter { $0.contains("] done in ") }.count
  #expect(first == "[1/\(count) train-source] started; run 0m00s")
  #expect(starts == count)
  #expect(ends == count)
  #expect(last.hasPrefix("[\(count)/\(count) "))
  #expect(last.hasSuffix(", about 0m00s left"))
  // A loop inside a job: the first status line and the last are written in a log; the others
  // only every `interval` seconds.
  reporter.handle(.started(RunPosition(job: "j", index: 2, count: 5, elapsed: 70, remainingAfter: 600)))
  for step in 1...50 {
    reporter.handle(
      JobProgress(
        task: "source model", done: step, total: 50, loss: 1.5, rate: 12.34, rateUnit: "img/s",
        secondsRemaining: Double(50 - step)))
  }
  let loops = captured.text.split(separator: "\n").map(String.init)
    .filter { $0.contains("source model:") }
  let expected =
    "[2/5 j] source model: 1/50  loss 1.5000  12.3 img/s  job left 0m49s; run 1m10s, about 10m49s left"
  #expect(loops.count == 2)
  #expect(loops.first ?? "" == expected)
  #expect((loops.last ?? "").hasPrefix("[2/5 j] source model: 50/50"))
  // No training job timed yet: a training job projects its own time onto the 3 after it, any
  // other job says what its estimate leaves out (every status line written: interval 0).
  let all = Captured()
  let fresh = TransferReporter(
    printer: ProgressPrinter(interval: 0, isTerminal: false) { all.append($0) })
  fresh.handle(
    .started(
      RunPosition(
        job: "s", index: 3, count: 7, elapsed: 70, remainingAfter: 20, untimedTrainingAfter: 3,
        trains: true)))
  fresh.handle(
    JobProgress(
      task: "student", done: 1, total: 100, loss: 1, rate: 1, rateUnit: "steps/s",
      secondsRemaining: 99))
  let student = all.text.split(separator: "\n").map(String.init).last { $0.contains("student:") }
  // 20 s of short jobs + 99 s of this one + 3 x (about 0 s run + 99 s left).
  #expect(student?.hasSuffix(", about 6m56s left") == true, "\(student ?? "")")
  fresh.handle(
    .started(
      RunPosition(
        job: "l", index: 4, count: 7, elapsed: 80, remainingAfter: 20, untimedTrainingAfter: 3)))
  let label = all.text.split(separator: "\n").map(String.init).last { $0.contains("[4/7 l]") }
  #expect(label == "[4/7 l] started; run 1m20s, about 0m20s left + 3 training jobs")
  // The line that starts a job counts the job itself: its estimate, or, for a training job
  // that nothing estimates yet, one more untimed training job.
  fresh.handle(
    .started(
      RunPosition(job: "e", index: 5, count: 7, elapsed: 90, remainingAfter: 600, estimate: 30)))
  fresh.handle(
    .started(
      RunPosition(
        job: "t", index: 6, count: 7, elapsed: 95, remainingAfter: 20, untimedTrainingAfter: 2,
        trains: true)))
  let started = all.text.split(separator: "\n").map(String.init)
  #expect(started.contains("[5/7 e] started; run 1m30s, about 10m30s left"))
  #expect(started.contains("[6/7 t] started; run 1m35s, about 0m20s left + 3 training jobs"))
}

@Test("progress on a terminal: the status line is rewritten in place, lines end it")
func terminalProgress() {
  let captured = Captured()
  let printer = ProgressPrinter(interval: 3600, isTerminal: true) { captured.append($0) }
  printer.status("a")
  printer.status("b")
  printer.line("done")
  printer.finish()
  #expect(captured.text == "\r\u{1B}[Ka\r\u{1B}[Kb\ndone\n")
}

@Test("groups of ranks with a backend that trains on one rank: a warning says how many ranks idle")
func idleGroupWarning() {
  #expect(ScaleOut.idleGroupWarning(backend: "image", trainsTogether: true, perJob: 2, ranks: 4) == nil)
  #expect(
    ScaleOut.idleGroupWarning(backend: "volume", trainsTogether: false, perJob: 2, ranks: 4)
      == "warning: the volume backend trains each model on one rank: --ranks-per-job 2 leaves 1 "
      + "of the 2 ranks of each group idle; without it the 4 ranks run 4 jobs at a time")
}
