import Foundation
import Segmentation
import Taxonomy
import Transfer

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writes progress to stderr: a status line rewritten in place on a terminal, and in a log or a
/// pipe a plain status line every `interval` seconds; other lines are written as they come.
/// Safe to call from any thread.
final class ProgressPrinter: @unchecked Sendable {
  let isTerminal: Bool
  let interval: Double
  private let lock = NSLock()
  private var lastStatus = Date.distantPast
  private var inPlace = false
  private let write: (String) -> Void
  /// Before every line: the rank under mpirun (``ScaleOut/label``), else "".
  let label: String

  /// - Parameters:
  ///   - interval: seconds between status lines when stderr is not a terminal.
  ///   - quiet: print nothing (a data-parallel rank other than 0).
  ///   - write: where the text goes (stderr; tests capture it).
  init(
    interval: Double, isTerminal: Bool = isatty(2) != 0, quiet: Bool = false,
    label: String = ScaleOut.label,
    write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }
  ) {
    self.interval = interval
    self.isTerminal = isTerminal
    self.label = label
    self.write = quiet ? { _ in } : write
  }

  /// A line of its own (ends a status line being rewritten).
  func line(_ text: String) {
    lock.lock()
    defer { lock.unlock() }
    if inPlace { write("\n") }
    inPlace = false
    write(label + text + "\n")
  }

  /// The current status: rewritten in place on a terminal; otherwise written when `interval`
  /// seconds have passed since the last one, or when `force` is set (e.g. a loop's last step).
  func status(_ text: String, force: Bool = false) {
    lock.lock()
    defer { lock.unlock() }
    if isTerminal {
      write("\r\u{1B}[K" + label + text)
      inPlace = true
    } else if force || -lastStatus.timeIntervalSinceNow >= interval {
      write(label + text + "\n")
      lastStatus = Date()
    }
  }

  /// Ends a status line being rewritten (before an error or a result is printed).
  func finish() {
    lock.lock()
    defer { lock.unlock() }
    if inPlace { write("\n") }
    inPlace = false
  }
}

/// `83m20s` / `1h05m`: a duration for progress lines.
func duration(_ seconds: Double) -> String {
  let s = Int(max(0, seconds).rounded())
  return s >= 3600
    ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
    : "\(s / 60)m\(String(format: "%02d", s % 60))s"
}

/// Training progress of `train` as status lines: step, loss, learning rate, speed, time left.
struct TrainingReporter {
  let printer: ProgressPrinter

  func report(_ event: TrainingEvent) {
    switch event {
    case .resumed(let step, let path): printer.line("resumed at step \(step) from \(path)")
    case .checkpoint: break
    case .validation(let step, let report):
      printer.line("step \(step): validation mIoU \(format(Float(report.meanIoU * 100), 2)) %")
      if let warning = singleClassWarning(
        report.matrix.predictedClassNames, on: "the validation set at step \(step)")
      {
        printer.line(warning)
      }
    case .step(let p):
      printer.status(
        "step \(p.step)/\(p.totalSteps)  loss \(format(p.loss, 4))  lr \(format(p.learningRate, 5))"
          + "  \(format(Float(p.imagesPerSecond), 1)) img/s  \(format(Float(p.secondsPerStep), 2)) s/step"
          + "  left \(duration(p.secondsRemaining))", force: p.step == p.totalSteps)
    }
  }
}

/// The progress of a transfer run: a line when each job starts and ends (job k of n, elapsed,
/// time left), the backend's lines, and a status line with the step, loss, speed and time left
/// of the running job's loops.
final class TransferReporter: @unchecked Sendable {
  let printer: ProgressPrinter
  private let lock = NSLock()
  private var position: RunPosition?
  private var jobStart = Date()

  init(printer: ProgressPrinter) { self.printer = printer }

  /// `[3/17 train-fine-m0]`: where the run is, for every line of a job.
  private func prefix() -> String {
    guard let position else { return "" }
    return "[\(position.index)/\(position.count) \(position.job)] "
  }

  /// `run 2m10s, about 12m05s left`. While no training job has been timed, a training job's
  /// projected time (`jobElapsed` + `jobRemaining`) stands for each later one; any other job
  /// says how many training jobs its estimate leaves out.
  private func runTime(_ position: RunPosition, jobRemaining: Double?, jobElapsed: Double = 0)
    -> String
  {
    let text = "run \(duration(position.elapsed))"
    guard let after = position.remainingAfter else { return text }
    var left = after + (jobRemaining ?? 0)
    let untimed = position.untimedTrainingAfter
    if untimed > 0, position.trains, let jobRemaining {
      left += Double(untimed) * (jobElapsed + jobRemaining)
    } else if untimed > 0 {
      return text + ", about \(duration(left)) left + \(untimed) training job\(untimed == 1 ? "" : "s")"
    }
    return text + ", about \(duration(left)) left"
  }

  /// `run 2m10s, about 14m05s left` when a job starts: the time left counts the job itself (its
  /// estimate), and a training job not yet estimable among the untimed training jobs.
  private func startTime(_ position: RunPosition) -> String {
    let text = "run \(duration(position.elapsed))"
    guard let after = position.remainingAfter else { return text }
    let left = after + (position.estimate ?? 0)
    let untimed = position.untimedTrainingAfter + (position.trains && position.estimate == nil ? 1 : 0)
    if untimed > 0 {
      return text + ", about \(duration(left)) left + \(untimed) training job\(untimed == 1 ? "" : "s")"
    }
    return text + ", about \(duration(left)) left"
  }

  func handle(_ event: RunEvent) {
    lock.lock()
    defer { lock.unlock() }
    switch event {
    case .started(let position):
      self.position = position
      jobStart = Date()
      printer.line("\(prefix())started; \(startTime(position))")
    case .finished(let position, let seconds):
      printer.line(
        "\(prefix())done in \(duration(seconds)); \(runTime(position, jobRemaining: 0))")
      self.position = nil
    case .warning(let text):
      printer.line("warning: \(text)")
    }
  }

  /// `task: done/total  loss L  R unit/s  left T`.
  static func describe(_ progress: JobProgress, left: String = "left") -> String {
    var text = "\(progress.task): \(progress.done)/\(progress.total)"
    if let loss = progress.loss { text += "  loss \(format(loss, 4))" }
    text += "  \(format(Float(progress.rate), 1)) \(progress.rateUnit)"
    return text + "  \(left) \(duration(progress.secondsRemaining))"
  }

  /// A line of the backend (what one of its calls did).
  func line(_ text: String) {
    lock.lock()
    defer { lock.unlock() }
    printer.line(prefix() + text)
  }

  /// A loop of the running job.
  func handle(_ progress: JobProgress) {
    lock.lock()
    defer { lock.unlock() }
    var text = prefix() + Self.describe(progress, left: "job left")
    if let position {
      var running = position
      let jobElapsed = -jobStart.timeIntervalSinceNow
      running.elapsed += jobElapsed
      text +=
        "; \(runTime(running, jobRemaining: progress.secondsRemaining, jobElapsed: jobElapsed))"
    }
    printer.status(text, force: progress.done == progress.total)
  }
}

extension ProgressPrinter {
  /// The status of `done` of `total` items of a loop started at `start` (`predict`, `evaluate
  /// --checkpoint`, `predict-volume`): count, speed, time left.
  func items(_ task: String, done: Int, total: Int, unit: String, since start: Date) {
    status(
      TransferReporter.describe(
        .items(task, done: done, total: total, unit: unit, since: start)),
      force: done == total)
  }
}
