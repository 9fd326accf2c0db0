import Foundation

/// Python interpreters for the peer tests (PyTorch, ...), looked up in one order.
public enum PeerPython {
  /// The package root (three levels above this file).
  public static let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
  }()

  /// The interpreters tried, in order: `$ATSO_PEER_PYTHON`, `<package>/../venv-peers/bin/python`,
  /// `<package>/../venv-torch/bin/python`.
  public static var candidates: [String] {
    let parent = URL(fileURLWithPath: packageRoot).deletingLastPathComponent().path
    var list = [parent + "/venv-peers/bin/python", parent + "/venv-torch/bin/python"]
    if let explicit = ProcessInfo.processInfo.environment["ATSO_PEER_PYTHON"], !explicit.isEmpty {
      list.insert(explicit, at: 0)
    }
    return list
  }

  /// The first candidate that can `import` every module of `modules`, or `nil`.
  public static func find(importing modules: [String]) -> String? {
    let statement = "import " + modules.joined(separator: ", ")
    return candidates.first { python in
      FileManager.default.isExecutableFile(atPath: python)
        && run(python, ["-c", statement]).status == 0
    }
  }

  /// A Python with PyTorch, or `nil` (the torch peer tests then skip).
  public static let torch: String? = find(importing: ["torch"])

  /// The message of a test skipped for want of PyTorch.
  public static let torchMissing =
    "no Python with torch: set ATSO_PEER_PYTHON or create ../venv-peers (or ../venv-torch)"

  /// Runs `executable` with `arguments`; returns its exit status, standard output and error.
  public static func run(_ executable: String, _ arguments: [String]) -> (
    status: Int32, output: String, error: String
  ) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    // Standard error goes to a file, so that neither stream can fill a pipe and block the child.
    let errorPath = NSTemporaryDirectory() + "peer-python-\(UUID().uuidString).err"
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errorPath) }
    guard let errorFile = FileHandle(forWritingAtPath: errorPath) else {
      return (-1, "", "cannot create \(errorPath)")
    }
    process.standardOutput = output
    process.standardError = errorFile
    do { try process.run() } catch { return (-1, "", "\(error)") }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try? errorFile.close()
    let errorText = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), errorText)
  }
}
