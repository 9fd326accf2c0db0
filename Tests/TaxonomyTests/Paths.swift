import Foundation

/// The package root, found from this file's path (Tests/TaxonomyTests/Paths.swift).
let packageRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path
}()

/// The shipped mappings directory.
let mappingsDirectory = packageRoot + "/mappings"

/// The shared real data, outside the repository.
let sharedDataDirectory = packageRoot + "/../shared/data"

/// A fresh temporary directory for one test.
func makeTemporaryDirectory() throws -> String {
  let path = NSTemporaryDirectory() + "taxonomy-tests-" + UUID().uuidString
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Writes `text` to `directory/name` and returns the path.
@discardableResult
func write(_ text: String, to directory: String, named name: String) throws -> String {
  let path = directory + "/" + name
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}
