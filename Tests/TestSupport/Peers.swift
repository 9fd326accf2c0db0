import Foundation
import Testing

/// The CI policy of the peer tests (PyPI safetensors, nibabel, numpy, cityscapesscripts, torch),
/// whose interpreters ``PeerPython`` finds.
///
/// `scripts/setup_peers.sh` creates `../venv-peers` with all of them (`.ci/run` calls it). A test
/// that needs a peer is enabled with ``PeerPython/enabled(_:)``: it is skipped when the peer is
/// missing on a developer machine, and it runs (and fails at its `#require`) in CI (`CI=true`),
/// where a skipped peer test would hide a gap.
extension PeerPython {
  /// Whether the tests run in CI (`CI=true`), where every peer must be present.
  public static var isCI: Bool {
    ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true"
  }

  /// The condition of a peer test's `.enabled(if:)`: the peer was found, or this is CI (the
  /// test then runs and its `#require` of the interpreter fails instead of being skipped).
  public static func enabled(_ python: String?) -> Bool { python != nil || isCI }

  /// The skip (or, in CI, failure) message of a peer test.
  public static func missing(_ modules: String) -> Comment {
    "\(modules) missing: run scripts/setup_peers.sh (creates ../venv-peers)"
  }
}
