import Foundation
import Segmentation
import TestSupport

/// Paths used by the Segmentation tests.
enum TestPaths {
  /// The package root (three levels above this file).
  static let packageRoot: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().path
  }()

  /// The shared real-data folder (`<package>/../shared/data`), absent on CI.
  static let sharedData: String = {
    URL(fileURLWithPath: packageRoot).deletingLastPathComponent()
      .appendingPathComponent("shared/data").standardized.path
  }()

  /// Whether a subfolder of the shared data exists.
  static func hasSharedData(_ folder: String) -> Bool {
    FileManager.default.fileExists(atPath: sharedData + "/" + folder)
  }

  /// The path of a fixture copied into the test bundle (`resources: [.copy("Fixtures")]`).
  static func fixture(_ name: String) -> String {
    if let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")
    {
      return url.path
    }
    return packageRoot + "/Tests/SegmentationTests/Fixtures/" + name
  }

  /// The bytes of a fixture.
  static func fixtureBytes(_ name: String) throws -> [UInt8] {
    try ImageFile.readBytes(at: fixture(name))
  }

  /// A fresh, empty temporary directory (``makeTemporaryDirectory(_:)`` of TestSupport).
  static func temporaryDirectory(_ tag: String) throws -> String {
    try makeTemporaryDirectory("seg-\(tag)")
  }
}
