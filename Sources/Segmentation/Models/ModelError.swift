/// Errors of the models, checkpoints and training loop.
public enum ModelError: Error, Equatable, CustomStringConvertible {
  /// A checkpoint file could not be read or written.
  case fileAccess(path: String, reason: String)
  /// A checkpoint file is not valid safetensors, or its description is unreadable.
  case malformedCheckpoint(path: String, reason: String)
  /// A checkpoint does not fit the network it is loaded into.
  case checkpointMismatch(path: String, reason: String)
  /// A batch does not fit the network (shape, label count).
  case invalidBatch(reason: String)
  /// A label is neither a class of the network nor the ignore index.
  case invalidLabel(value: UInt8, pixel: Int, classCount: Int)
  /// A setting (a flag, a configuration value, a checkpoint's architecture) is outside what is
  /// accepted; `field` names it (`--learning-rate`, `FILE: architecture widths`), `expected`
  /// says what would be accepted.
  case invalidSetting(field: String, value: String, expected: String)
  /// Training produced a non-finite loss or gradient.
  case diverged(step: Int, reason: String, lastGoodCheckpoint: String?)
  /// A replica of data-parallel training failed (this one or another); every replica stops.
  case replicaFailed(rank: Int, reason: String)

  public var description: String {
    switch self {
    case .fileAccess(let path, let reason): "\(path): \(reason)"
    case .malformedCheckpoint(let path, let reason): "\(path): malformed checkpoint: \(reason)"
    case .checkpointMismatch(let path, let reason): "\(path): checkpoint does not fit: \(reason)"
    case .invalidBatch(let reason): "invalid batch: \(reason)"
    case .invalidLabel(let value, let pixel, let classCount):
      "label \(value) at pixel \(pixel) is not a class (0..<\(classCount)) nor the ignore index"
    case .invalidSetting(let field, let value, let expected):
      "\(field) \(value) is not accepted: expected \(expected)"
    case .diverged(let step, let reason, let checkpoint):
      "training diverged at step \(step): \(reason); "
        + (checkpoint.map { "last good checkpoint: \($0)" } ?? "no checkpoint was written")
    case .replicaFailed(let rank, let reason): "rank \(rank): \(reason)"
    }
  }
}
