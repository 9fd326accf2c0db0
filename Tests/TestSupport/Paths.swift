import Foundation

/// The package root, found from this file's path (`Tests/TestSupport/Paths.swift`).
public let packageRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path
}()

/// The package's `mappings/` folder.
public let packageMappings = packageRoot + "/mappings"

/// `<package>/../shared/data`, where the real data sets live (never copied into the repo).
public let sharedDataRoot = URL(fileURLWithPath: packageRoot).deletingLastPathComponent()
  .appendingPathComponent("shared/data").standardized.path

/// A fresh, empty directory under the system's temporary folder, named after `tag` (a new one
/// on every call, so that tests running in parallel never share one).
///
/// - Throws: the file system's error when it cannot be created.
public func makeTemporaryDirectory(_ tag: String) throws -> String {
  let path = NSTemporaryDirectory() + "atso-\(tag)-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}
