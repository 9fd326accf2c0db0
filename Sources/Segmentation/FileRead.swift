#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reading whole files with the system's reasons (`strerror`), not Foundation's error texts.
///
/// The one place where the readers of this package (images, lists, checkpoints, NIfTI volumes)
/// open a file: every failure is a short reason the callers put after the file name, e.g.
/// `"x.png: cannot read: no such file"`.
public enum FileRead {
  /// Why a file could not be read.
  public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing exists at the path.
    case notFound
    /// The path names a folder.
    case isDirectory
    /// The file is larger than the reader accepts.
    case tooLarge(size: Int, limit: Int)
    /// Another system error (permissions, I/O), as `strerror` words it.
    case system(String)

    public var description: String {
      switch self {
      case .notFound: "no such file"
      case .isDirectory: "is a folder, not a file"
      case .tooLarge(let size, let limit):
        "file of \(size) bytes exceeds the \(limit)-byte limit"
      case .system(let reason): reason
      }
    }
  }

  /// The bytes of the file at `path`, refusing folders and files over `limit` bytes before
  /// reading them.
  public static func bytes(at path: String, limit: Int) -> Result<[UInt8], Failure> {
    var buffer: [UInt8] = []
    if let failure = read(at: path, limit: limit, into: &buffer) { return .failure(failure) }
    return .success(buffer)
  }

  /// ``bytes(at:limit:)`` into `buffer`, reusing its storage: a reader of many files allocates
  /// only for a file larger than all before it. `nil` on success, else why not (`buffer` is
  /// then unspecified).
  public static func read(at path: String, limit: Int, into buffer: inout [UInt8]) -> Failure? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return failure(errno) }
    defer { close(descriptor) }
    var info = stat()
    guard fstat(descriptor, &info) == 0 else { return failure(errno) }
    if (info.st_mode & S_IFMT) == S_IFDIR { return .isDirectory }
    let size = Int(info.st_size)
    if size > limit { return .tooLarge(size: size, limit: limit) }
    // Regular files report their size; other files (pipes, /proc) are read until the end.
    resize(&buffer, to: max(size, 0))
    var filled = 0
    while true {
      if filled == buffer.count {
        if buffer.count >= limit {
          // A file that grows past the limit while it is read.
          var probe: UInt8 = 0
          let extra = Glibc.read(descriptor, &probe, 1)
          if extra > 0 { return .tooLarge(size: buffer.count + 1, limit: limit) }
          break
        }
        resize(&buffer, to: buffer.count + min(max(buffer.count, 1 << 16), limit - buffer.count))
      }
      let count = buffer.withUnsafeMutableBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return Glibc.read(descriptor, base + filled, raw.count - filled)
      }
      if count < 0 {
        if errno == EINTR { continue }
        return failure(errno)
      }
      if count == 0 { break }
      filled += count
    }
    resize(&buffer, to: filled)
    return nil
  }

  /// Sets `buffer.count` to `count`, keeping its storage (new bytes are 0).
  private static func resize(_ buffer: inout [UInt8], to count: Int) {
    if buffer.count > count {
      buffer.removeLast(buffer.count - count)
    } else if buffer.count < count {
      buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
    }
  }

  static func failure(_ code: Int32) -> Failure {
    switch code {
    case ENOENT, ENOTDIR: .notFound
    case EISDIR: .isDirectory
    default: .system(String(cString: strerror(code)).lowercased())
    }
  }
}

/// Writing whole files atomically with the system's reasons (`strerror`) in errors.
public enum FileWrite {
  /// Writes `bytes` to a temporary file beside `path` (`<path>.tmp-<pid>`), then renames it over
  /// `path`, so a reader (or a run resumed after `kill -9`) sees the old file or the whole new
  /// one. Missing parent folders are created when `createFolders` is true.
  ///
  /// - Returns: `nil` on success, else the reason (e.g. `"cannot create x.tmp-7: permission
  ///   denied"`).
  public static func atomically(
    _ bytes: some Collection<UInt8>, to path: String, createFolders: Bool = false
  ) -> String? {
    if createFolders, let slash = path.lastIndex(of: "/"), slash != path.startIndex {
      if let reason = makeFolders(String(path[..<slash])) { return reason }
    }
    let temporary = path + ".tmp-\(getpid())"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      return "cannot create \(temporary): " + String(cString: strerror(errno)).lowercased()
    }
    let contiguous = Array(bytes)
    var written = 0
    while written < contiguous.count {
      let count = contiguous.withUnsafeBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return write(descriptor, base + written, raw.count - written)
      }
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else {
        let reason = String(cString: strerror(errno)).lowercased()
        close(descriptor)
        unlink(temporary)
        return "cannot write \(temporary): \(reason)"
      }
      written += count
    }
    guard close(descriptor) == 0 else {
      let reason = String(cString: strerror(errno)).lowercased()
      unlink(temporary)
      return "cannot write \(temporary): \(reason)"
    }
    guard rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno)).lowercased()
      unlink(temporary)
      return "cannot rename \(temporary) to \(path): \(reason)"
    }
    return nil
  }

  /// Creates `folder` and its parents; `nil` on success, else the reason.
  public static func makeFolders(_ folder: String) -> String? {
    var info = stat()
    if stat(folder, &info) == 0 {
      return (info.st_mode & S_IFMT) == S_IFDIR ? nil : "\(folder) is a file, not a folder"
    }
    if let slash = folder.lastIndex(of: "/"), slash != folder.startIndex {
      if let reason = makeFolders(String(folder[..<slash])) { return reason }
    }
    if mkdir(folder, 0o755) != 0 && errno != EEXIST {
      return "cannot create the folder \(folder): " + String(cString: strerror(errno)).lowercased()
    }
    return nil
  }
}
