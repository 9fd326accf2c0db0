import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The suffix of files and directories that are being written; never trusted on resume.
package let partialSuffix = ".partial"

/// Writes `data` to `path` atomically: a temporary file next to it, then `rename(2)`.
///
/// A reader (or a resumed run after `kill -9`) sees either the old file or the whole new one.
/// - Throws: `TransferError.fileOperation`.
package func writeAtomically(_ data: Data, to path: String) throws {
  let temporary = path + partialSuffix
  // Written in place (not `createFile`, whose own hidden temporary `.dat.nosync*` a kill would
  // leave behind): only the `.partial` name, which resume removes, can be half-written.
  do {
    try data.write(to: URL(fileURLWithPath: temporary))
  } catch {
    throw TransferError.fileOperation(path: temporary, reason: "cannot create the file: \(error)")
  }
  try renameReplacing(temporary, to: path)
}

/// Renames `source` to `destination`, replacing a file (not a non-empty directory) already there.
package func renameReplacing(_ source: String, to destination: String) throws {
  if rename(source, destination) != 0 {
    let reason = String(cString: strerror(errno))
    throw TransferError.fileOperation(path: destination, reason: "rename failed: \(reason)")
  }
}

/// Removes a file or a directory tree if it exists.
package func removeIfPresent(_ path: String) throws {
  let manager = FileManager.default
  guard manager.fileExists(atPath: path) else { return }
  do {
    try manager.removeItem(atPath: path)
  } catch {
    throw TransferError.fileOperation(path: path, reason: "cannot remove: \(error)")
  }
}

/// Creates a directory (and its parents) if it does not exist.
package func createDirectory(_ path: String) throws {
  do {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  } catch {
    throw TransferError.fileOperation(path: path, reason: "cannot create directory: \(error)")
  }
}

/// The 64-bit FNV-1a hash of the UTF-8 bytes of `text` (stable across processes, unlike `Hasher`).
package func fnv1a64(_ text: String) -> UInt64 {
  var hash: UInt64 = 0xcbf2_9ce4_8422_2325
  for byte in text.utf8 {
    hash ^= UInt64(byte)
    hash = hash &* 0x0000_0100_0000_01b3
  }
  return hash
}

/// A seed derived from the run seed and a job identity, independent of execution order.
///
/// SplitMix64's finalizer over `runSeed ^ fnv1a64(identity)`.
public func derivedSeed(runSeed: UInt64, identity: String) -> UInt64 {
  var z = (runSeed ^ fnv1a64(identity)) &+ 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

/// A digest of the bytes of a file, or of every regular file directly in a directory (names
/// and bytes, in name order): identifies a checkpoint by its content, wherever it lies.
///
/// - Throws: `TransferError.fileOperation` when the path cannot be read.
public func contentDigest(of path: String) throws -> String {
  let manager = FileManager.default
  var isDirectory: ObjCBool = false
  guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
    throw TransferError.fileOperation(path: path, reason: "no such file or directory")
  }
  func bytes(_ file: String) throws -> Data {
    guard let data = manager.contents(atPath: file) else {
      throw TransferError.fileOperation(path: file, reason: "cannot read")
    }
    return data
  }
  var hash: UInt64 = 0xcbf2_9ce4_8422_2325
  func mix(_ data: some Sequence<UInt8>) {
    for byte in data {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
  }
  if isDirectory.boolValue {
    let names = ((try? manager.contentsOfDirectory(atPath: path)) ?? []).sorted()
    for name in names where !name.hasPrefix(".") {
      var isSubdirectory: ObjCBool = false
      let file = path + "/" + name
      guard manager.fileExists(atPath: file, isDirectory: &isSubdirectory),
        !isSubdirectory.boolValue
      else { continue }
      mix(name.utf8)
      mix([0])
      mix(try bytes(file))
    }
  } else {
    mix(try bytes(path))
  }
  return String(hash, radix: 16)
}
