import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An executable of this package built next to the test bundle (`swift build` builds them
/// all), or nil.
public func builtExecutable(_ name: String) -> String? {
  let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for directory in [bundle, bundle.deletingLastPathComponent()] {
    let path = directory.appendingPathComponent(name).path
    if FileManager.default.isExecutableFile(atPath: path) { return path }
  }
  return nil
}

/// Open MPI's `mpirun` on the PATH (`make deps` installs openmpi-bin), or nil.
public let mpirunExecutable: String? = {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  for directory in path.split(separator: ":") {
    let candidate = "\(directory)/mpirun"
    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
  }
  return nil
}()

/// Why MPI tests skip when `mpirun` is missing.
public let mpirunMissing = "mpirun is not on the PATH (openmpi-bin; `make deps` installs it)"

/// `mpirun` arguments for `ranks` local ranks, root allowed, more ranks than cores allowed.
public func mpirunArguments(ranks: Int, extra: [String] = []) -> [String] {
  ["--allow-run-as-root", "--oversubscribe"] + extra + ["-np", "\(ranks)"]
}

/// A process whose standard output and error go to one file, read when it has finished.
public final class RecordedProcess {
  public let process = Process()
  public let log: String

  /// Starts `executable` with `arguments`; output goes to `log`.
  public init(_ executable: String, _ arguments: [String], log: String) throws {
    self.log = log
    FileManager.default.createFile(atPath: log, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
  }

  /// Starts `executable` under `mpirun` with `ranks` ranks (or alone if `ranks` is nil).
  public convenience init(
    mpi ranks: Int?, extra: [String] = [], _ executable: String, _ arguments: [String],
    log: String
  ) throws {
    if let ranks, let mpirun = mpirunExecutable {
      try self.init(
        mpirun, mpirunArguments(ranks: ranks, extra: extra) + [executable] + arguments, log: log)
    } else {
      try self.init(executable, arguments, log: log)
    }
  }

  /// Waits for the end; returns the exit status.
  @discardableResult
  public func wait() -> Int32 {
    process.waitUntilExit()
    return process.terminationStatus
  }

  /// Waits at most `seconds` for the end; kills the process and its children (``killAll()``)
  /// if it is still running then. Returns the exit status, nil after a kill.
  public func wait(seconds: Double) -> Int32? {
    guard waitUntil(seconds: seconds, { !process.isRunning }) else {
      killAll()
      return nil
    }
    return wait()
  }

  /// The lines written so far.
  public var lines: [String] {
    ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
      .map(String.init)
  }

  /// Kills (SIGKILL) the process and every process it started (mpirun's ranks), then waits.
  public func killAll() {
    let pid = Int(process.processIdentifier)
    for child in childProcesses(of: pid) { kill(pid_t(child), SIGKILL) }
    kill(pid_t(pid), SIGKILL)
    process.waitUntilExit()
  }
}

/// The processes whose parent is `pid` (from /proc).
public func childProcesses(of pid: Int) -> [Int] {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  return entries.compactMap { entry -> Int? in
    guard let child = Int(entry),
      let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.count > 2 && Int(fields[1]) == pid ? child : nil
  }
}

/// Waits until `condition` holds (polling every 20 ms), at most `seconds`; returns whether it
/// held.
@discardableResult
public func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    if condition() { return true }
    usleep(20_000)
  }
  return condition()
}

/// Every file under `directory` (relative paths, sorted) with its contents, except `skip`.
public func directoryContents(_ directory: String, skip: Set<String> = []) -> [String: Data] {
  var result: [String: Data] = [:]
  let enumerator = FileManager.default.enumerator(atPath: directory)
  while let relative = enumerator?.nextObject() as? String {
    guard !skip.contains(relative) else { continue }
    var isDirectory: ObjCBool = false
    let path = directory + "/" + relative
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
      !isDirectory.boolValue
    {
      result[relative] = FileManager.default.contents(atPath: path)
    }
  }
  return result
}
