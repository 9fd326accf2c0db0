import Foundation

/// The loss of every training step as CSV, what plotting tools read directly
/// (`pandas.read_csv`, gnuplot, a spreadsheet): `train`'s `losses.csv`, `losses/<job>.csv` of
/// each training job of a transfer.
///
/// ```
/// step,loss,learningRate,gradientNorm,labeledPixels
/// 1,2.3979,0.01,4.812,49152
/// ```
/// `step` counts from 1 (the row of the first step), `loss` is the step's loss (the
/// image-weighted mean of its loss groups), `learningRate` the rate it used, `gradientNorm` the
/// global L2 norm of its gradients before clipping and `labeledPixels` the pixels that counted
/// (not void). Leading columns name the network of a row when a job trains several (the
/// `view` of a volume model). Numbers are written in their shortest exact form, so a resumed
/// run writes the same bytes as an uninterrupted one.
public final class LossLog {
  /// The file.
  public let path: String
  private let handle: FileHandle

  /// The header of a log with `leading` columns before the step's.
  public static func header(leading: [String] = []) -> String {
    (leading + ["step", "loss", "learningRate", "gradientNorm", "labeledPixels"])
      .joined(separator: ",")
  }

  /// Creates the log at `path` (replacing a file there), or continues it after `step`: the rows
  /// of later steps (written after the last checkpoint of a killed run) are dropped.
  ///
  /// - Parameters:
  ///   - leading: the names of the columns before the step's.
  ///   - resumingAfter: the step a resumed run continues from (nil: a new log).
  /// - Throws: ``ModelError/fileAccess(path:reason:)`` when the file cannot be written.
  public init(path: String, leading: [String] = [], resumingAfter step: Int? = nil) throws {
    self.path = path
    let header = Self.header(leading: leading)
    var text = header + "\n"
    if let step, let old = try? String(contentsOfFile: path, encoding: .utf8) {
      let stepColumn = leading.count
      let rows = old.split(separator: "\n").dropFirst().filter { row in
        let fields = row.split(separator: ",", omittingEmptySubsequences: false)
        return fields.count > stepColumn && (Int(fields[stepColumn]) ?? .max) <= step
      }
      text += rows.map { $0 + "\n" }.joined()
    }
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)),
      let handle = FileHandle(forWritingAtPath: path)
    else {
      throw ModelError.fileAccess(path: path, reason: "cannot write the loss log")
    }
    handle.seekToEndOfFile()
    self.handle = handle
  }

  deinit { try? handle.close() }

  /// Appends the row of a step, after the `leading` values.
  ///
  /// - Throws: ``ModelError/fileAccess(path:reason:)`` when the write fails.
  public func append(_ progress: TrainingProgress, leading: [String] = []) throws {
    let fields =
      leading + [
        "\(progress.step)", "\(progress.loss)", "\(progress.learningRate)",
        "\(progress.gradientNorm)", "\(progress.labeledPixels)",
      ]
    do {
      try handle.write(contentsOf: Data((fields.joined(separator: ",") + "\n").utf8))
    } catch {
      throw ModelError.fileAccess(path: path, reason: "cannot append to the loss log: \(error)")
    }
  }
}
