import Foundation
import Testing

/// The Python peers the tests compare against (PyPI safetensors, nibabel, numpy,
/// cityscapesscripts, torch), found in one place.
///
/// `scripts/setup_peers.sh` creates `../venv-peers` beside the package with all of them
/// (`.ci/run` calls it). A test that needs a peer is enabled with ``Peers/enabled(_:)``: it is
/// skipped when the peer is missing on a developer machine, and it runs (and fails at its
/// `#require`) in CI (`CI=true`), where a skipped peer test would hide a gap.
public enum Peers {
  /// The package root (Tests/TestSupport/ -> ../..).
  public static let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
  }()

  /// The interpreters tried, in order: `$ATSO_PEER_PYTHON`, `../venv-peers/bin/python`,
  /// `../venv-torch/bin/python`.
  public static var candidates: [String] {
    var list: [String] = []
    if let explicit = ProcessInfo.processInfo.environment["ATSO_PEER_PYTHON"], !explicit.isEmpty {
      list.append(explicit)
    }
    let parent = URL(fileURLWithPath: packageRoot).deletingLastPathComponent().path
    list.append(parent + "/venv-peers/bin/python")
    list.append(parent + "/venv-torch/bin/python")
    return list
  }

  /// The first interpreter of ``candidates`` that imports every module of `modules` (e.g.
  /// `["safetensors.numpy"]`, `["nibabel", "numpy"]`, `["torch"]`), or `nil`.
  public static func python(importing modules: [String]) -> String? {
    let statement = "import " + modules.joined(separator: ", ")
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
      if run(candidate, ["-c", statement]).status == 0 { return candidate }
    }
    return nil
  }

  /// Whether the tests run in CI (`CI=true`), where every peer must be present.
  public static var isCI: Bool {
    ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true"
  }

  /// The condition of a peer test's `.enabled(if:)`: the peer was found, or this is CI (the
  /// test then runs and its `#require` of the interpreter fails instead of being skipped).
  public static func enabled(_ python: String?) -> Bool { python != nil || isCI }

  /// The skip message of a peer test.
  public static func missing(_ modules: String) -> Comment {
    "\(modules) missing: run scripts/setup_peers.sh (creates ../venv-peers)"
  }

  /// Runs a program; its exit status (-1 when it cannot start) and its standard output.
  @discardableResult
  public static func run(_ program: String, _ arguments: [String]) -> (status: Int32, output: Data)
  {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return (-1, Data()) }
    // Read before waiting so that a full pipe cannot block the child.
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
  }
}
