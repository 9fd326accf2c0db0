import Foundation
import Segmentation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The exclusive lock of a run directory, `RUN/run.lock`, held by the one process that writes it.
///
/// `flock(2)` on the lock file: the kernel releases it when the holder exits, even by `kill -9`,
/// so a stale lock never blocks a `resume`. The holder writes its pid into the file, so that a
/// second writer is refused at once with the holder's pid. Every write to a run directory
/// (starting it, executing jobs, accepting a changed configuration) happens under the lock.
public final class RunLock {
  /// The lock file's name in the run directory.
  public static let fileName = "run.lock"

  private var descriptor: Int32

  /// Takes the lock of `directory` (which must exist), or throws at once.
  ///
  /// - Throws: `TransferError.runDirectory` naming the holder's pid when another process (or
  ///   another open of the lock in this process) holds it; `.fileOperation` when the file cannot
  ///   be opened.
  public init(directory: String) throws {
    let path = directory + "/" + Self.fileName
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw TransferError.fileOperation(
        path: path, reason: "cannot open the lock: " + String(cString: strerror(errno)))
    }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      let code = errno
      let holder = code == EWOULDBLOCK ? Self.holder(of: fd) : nil
      close(fd)
      guard code == EWOULDBLOCK else {
        throw TransferError.fileOperation(
          path: path, reason: "cannot lock: " + String(cString: strerror(code)))
      }
      throw TransferError.runDirectory(
        path: directory,
        reason: "in use by "
          + (holder.map { "process \($0)" } ?? "another process")
          + " (it holds \(path)); wait for it to finish, or stop it and run `resume` again")
    }
    // The holder's pid, for the message of a refused writer.
    let pid = Array("\(getpid())\n".utf8)
    _ = ftruncate(fd, 0)
    _ = pwrite(fd, pid, pid.count, 0)
    descriptor = fd
  }

  /// The pid of the process holding the lock of the open lock file `fd`: the kernel's record
  /// (`/proc/locks`, Linux), else the pid the holder wrote into the file. (The file alone can be
  /// stale for an instant: a new holder has the lock before it writes its pid.)
  static func holder(of fd: Int32) -> Int32? {
    var info = stat()
    if fstat(fd, &info) == 0,
      case .success(let bytes) = FileRead.bytes(at: "/proc/locks", limit: 1 << 24)
    {
      let device = UInt64(info.st_dev)
      let major = (device >> 8) & 0xfff | (device >> 32) & ~UInt64(0xfff)
      let minor = device & 0xff | (device >> 12) & ~UInt64(0xff)
      let key = String(format: "%02llx:%02llx:%llu", major, minor, UInt64(info.st_ino))
      // "3: FLOCK  ADVISORY  WRITE 2393 fe:00:16223583 0 EOF"
      for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count >= 6, fields[1] == "FLOCK", fields[5] == key, let pid = Int32(fields[4]) {
          return pid
        }
      }
    }
    var buffer = [UInt8](repeating: 0, count: 32)
    let count = pread(fd, &buffer, buffer.count, 0)
    let text = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
    return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Releases the lock (also done when the object goes away).
  public func release() {
    guard descriptor >= 0 else { return }
    flock(descriptor, LOCK_UN)
    close(descriptor)
    descriptor = -1
  }

  deinit { release() }

  /// Runs `body` holding the lock of `directory`.
  public static func holding<T>(_ directory: String, _ body: () throws -> T) throws -> T {
    let lock = try RunLock(directory: directory)
    defer { lock.release() }
    return try body()
  }
}

/// The files of a run directory that are not jobs' outputs: temporary files, the configuration
/// the run started with, and the checksums of the outputs.
public enum RunFolder {
  /// The copy of `configuration.json` as the run was started (or last accepted by `resume
  /// --accept-changes`): `resume` refuses a `configuration.json` that differs from it.
  public static let startedConfiguration = "configuration.started.json"

  // MARK: Temporary files

  /// Whether a file or folder name is one of the run's temporary names: an output being written
  /// (`*.partial`, and what a writer puts beside it such as `x.ckpt.partial.json`) or a file
  /// being written atomically (`*.tmp-<pid>`, from ``Segmentation/FileWrite``).
  public static func isTemporary(_ name: String) -> Bool {
    name.hasSuffix(partialSuffix) || name.contains(partialSuffix + ".") || name.contains(".tmp-")
  }

  /// Removes every temporary entry (``isTemporary(_:)``) directly in `folder`; returns their
  /// names.
  @discardableResult
  public static func removeTemporaries(in folder: String) throws -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    let temporary = names.filter(isTemporary).sorted()
    for name in temporary { try removeIfPresent(folder + "/" + name) }
    return temporary
  }

  // MARK: Configuration changes

  /// Saves `RUN/configuration.json` as the configuration the run started with.
  static func recordStartedConfiguration(in directory: String) throws {
    let current = directory + "/configuration.json"
    guard let data = FileManager.default.contents(atPath: current) else {
      throw TransferError.fileOperation(path: current, reason: "cannot read")
    }
    try writeAtomically(data, to: directory + "/" + startedConfiguration)
  }

  /// Refuses a `configuration.json` edited since the run started, naming the keys that differ;
  /// with `acceptingChanges` the edited configuration becomes the started one (the jobs whose
  /// identity it changes are then recomputed). A run started before this check existed has no
  /// started configuration: its current one is recorded.
  ///
  /// - Throws: `TransferError.configurationChanged`.
  static func checkConfiguration(in directory: String, acceptingChanges: Bool) throws {
    let currentPath = directory + "/configuration.json"
    guard let current = FileManager.default.contents(atPath: currentPath) else { return }
    guard let started = FileManager.default.contents(atPath: directory + "/" + startedConfiguration)
    else {
      try RunLock.holding(directory) { try recordStartedConfiguration(in: directory) }
      return
    }
    let changes = configurationChanges(from: started, to: current)
    guard !changes.isEmpty else { return }
    guard acceptingChanges else {
      throw TransferError.configurationChanged(file: currentPath, changes: changes)
    }
    try RunLock.holding(directory) { try recordStartedConfiguration(in: directory) }
  }

  /// The keys whose values differ between two configuration files, as `key: old -> new`
  /// (`folds: 3 -> 4`, `backend.units: "8" -> "9"`, `stages[1].level: absent -> "fine"`), in key
  /// order. `runDirectory` is left out: a run folder may be moved. A file that is not a JSON
  /// object differs as a whole (key `(file)`).
  public static func configurationChanges(from old: Data, to new: Data) -> [String] {
    func flatten(_ data: Data) -> [String: String]? {
      guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
      else { return nil }
      var out: [String: String] = [:]
      func visit(_ value: Any, _ key: String) {
        if let dictionary = value as? [String: Any] {
          for (k, v) in dictionary { visit(v, key.isEmpty ? k : key + "." + k) }
          if dictionary.isEmpty { out[key] = "{}" }
        } else if let array = value as? [Any] {
          for (i, v) in array.enumerated() { visit(v, key + "[\(i)]") }
          if array.isEmpty { out[key] = "[]" }
        } else {
          out[key] = leaf(value)
        }
      }
      visit(object, "")
      out.removeValue(forKey: "runDirectory")
      return out
    }
    guard let a = flatten(old), let b = flatten(new) else {
      return old == new ? [] : ["(file): not the same JSON"]
    }
    return Set(a.keys).union(b.keys).sorted().compactMap { key in
      let before = a[key]
      let after = b[key]
      guard before != after else { return nil }
      return "\(key): \(before ?? "absent") -> \(after ?? "absent")"
    }
  }

  private static func leaf(_ value: Any) -> String {
    if value is NSNull { return "null" }
    if let string = value as? String { return "\"\(string)\"" }
    if let number = value as? NSNumber {
      // JSONSerialization gives booleans as NSNumber too, of type "c".
      if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }
      return number.stringValue
    }
    return "\(value)"
  }

  // MARK: Checksums

  /// The content digests of a job's outputs (paths relative to `directory`), for its
  /// completion record.
  static func checksums(of outputs: [String], in directory: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for output in outputs { result[output] = try contentDigest(of: directory + "/" + output) }
    return result
  }

  /// Whether every output named in `checksums` still has the recorded digest. A record without
  /// checksums (written before they existed) is trusted as it is.
  static func outputsIntact(_ checksums: [String: String]?, in directory: String) -> Bool {
    guard let checksums else { return true }
    return checksums.allSatisfy { output, digest in
      (try? contentDigest(of: directory + "/" + output)) == digest
    }
  }
}
