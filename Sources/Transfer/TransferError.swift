import Segmentation

/// The errors of the Transfer module: configuration, run directory, and orchestration.
///
/// Every case names the file (or run directory), the entry and the offending value, so that the
/// CLI can print it as is (`description`).
public enum TransferError: Error, Equatable, CustomStringConvertible {
  /// A configuration value is out of range or inconsistent (`key` is a JSON path such as
  /// `stages[1].initialization`).
  case invalidConfiguration(file: String, key: String, reason: String)
  /// A configuration file is not valid JSON or does not have the expected structure.
  case malformedConfiguration(file: String, reason: String)
  /// A schedule name that is not one of `self-learning`, `stso`, `atso`.
  case unknownSchedule(String, file: String)
  /// A label level that is neither `fine` nor `super:<mapping>`.
  case unknownLabelLevel(String, file: String)
  /// The reference set cannot be split as asked.
  case invalidReferenceSet(reason: String)
  /// The run directory is not in the expected state (already started, missing files...).
  case runDirectory(path: String, reason: String)
  /// `configuration.json` of a run differs from the configuration the run started with;
  /// `changes` are `key: old -> new`.
  case configurationChanged(file: String, changes: [String])
  /// A file of the run directory could not be read, written, or decoded.
  case fileOperation(path: String, reason: String)
  /// A pseudo label set would be produced by a model that was fine-tuned on some of its units.
  case foldLeak(labelSet: String, model: String, units: [String])
  /// A threshold option is out of range.
  case invalidThreshold(name: String, value: Double)
  /// A configuration written for an earlier version: `replacement` is what to write at `key`.
  case outdatedConfiguration(file: String, key: String, changes: [String], replacement: String)
  /// A job of a run failed; `reason` is the underlying error's description.
  case jobFailed(job: String, reason: String)

  public var description: String {
    switch self {
    case .invalidConfiguration(let file, let key, let reason):
      "\(file): \(key): \(reason)"
    case .malformedConfiguration(let file, let reason):
      "\(file): malformed configuration: \(reason)"
    case .unknownSchedule(let name, let file):
      "\(file): unknown schedule '\(name)' (expected self-learning, stso or atso)"
    case .unknownLabelLevel(let name, let file):
      "\(file): unknown label level '\(name)' (expected 'fine' or 'super:<mapping>')"
    case .invalidReferenceSet(let reason):
      "reference set: \(reason)"
    case .runDirectory(let path, let reason):
      "\(path): \(reason)"
    case .configurationChanged(let file, let changes):
      "\(file) was edited since the run started (\(RunFolder.startedConfiguration) beside it): "
        + changes.joined(separator: "; ")
        + ". `resume --accept-changes` continues with the edited configuration (the jobs it "
        + "changes are recomputed); or restore the file"
    case .fileOperation(let path, let reason):
      "\(path): \(reason)"
    case .foldLeak(let labelSet, let model, let units):
      "pseudo label set '\(labelSet)' would be produced by model '\(model)', which was fine-tuned "
        + "on \(units.count) of its units (first: \(units.first ?? "?"))"
    case .invalidThreshold(let name, let value):
      "\(name) = \(value) is out of range"
    case .outdatedConfiguration(let file, let key, let changes, let replacement):
      "\(file): \(key): written for an earlier atso-transfer (\(changes.joined(separator: "; "))). "
        + "Replace it with:\n\(replacement)"
    case .jobFailed(let job, let reason):
      "job \(job) failed: \(reason)"
    }
  }
}

extension TransferError {
  /// The error of a configuration entry: `key` in `file` (`backend.batch`, `stages[1].level`).
  public static func invalid(_ key: String, _ reason: String, file: String = "configuration")
    -> TransferError
  {
    .invalidConfiguration(file: file, key: key, reason: reason)
  }
}

extension TransferError {
  /// A setting refused by Segmentation's ``SettingChecks`` (or an architecture's validation) as
  /// `invalidConfiguration` naming `file`, the entry `key`, the value and what would be accepted.
  public static func refused(_ error: ModelError, key: String, file: String) -> TransferError {
    switch error {
    case .invalidSetting(_, let value, let expected):
      .invalidConfiguration(
        file: file, key: key, reason: "\(value) is not accepted: expected \(expected)")
    default:
      .invalidConfiguration(file: file, key: key, reason: error.description)
    }
  }
}
