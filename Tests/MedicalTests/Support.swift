import Foundation
import TestSupport
import Testing

/// The package root, found from this file's path (Tests/MedicalTests/Support.swift).
let packageRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path
}()

/// `<package>/../shared/data`, where the real data sets live (never copied into the repo).
let sharedData = packageRoot + "/../shared/data"

func fileExists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

let hippocampusRoot = sharedData + "/hippocampus-msd"
let totalsegRoot = sharedData + "/totalseg-ct-mr"
let hasHippocampus = fileExists(hippocampusRoot + "/dataset.json")
let hasTotalseg = fileExists(totalsegRoot + "/example_seg_mr.nii.gz")

/// Runs a program and returns its standard output, or `nil` when it fails.
func run(_ executable: String, _ arguments: [String]) -> Data? {
  let result = PeerPython.run(executable, arguments)
  return result.status == 0 ? Data(result.output.utf8) : nil
}

/// A Python interpreter that can import nibabel and numpy (``PeerPython``: ../venv-peers from
/// scripts/setup_peers.sh). `nil` skips the oracle tests, except in CI.
let nibabelPython = PeerPython.find(importing: ["nibabel", "numpy"])

/// Records a failure in CI when the nibabel oracle of an optional comparison is missing.
func requireNibabelInCI() {
  if PeerPython.isCI { Issue.record(PeerPython.missing("nibabel")) }
}

let script = packageRoot + "/scripts/make_nifti_fixtures.py"

/// A fresh temporary directory (``makeTemporaryDirectory(_:)`` of TestSupport).
func temporaryDirectory(_ name: String) -> String {
  (try? makeTemporaryDirectory("medical-\(name)")) ?? NSTemporaryDirectory()
}

/// The fixtures written by nibabel (scripts/make_nifti_fixtures.py make), once per test run.
let nibabelFixtures: String? = {
  guard let python = nibabelPython else { return nil }
  let dir = temporaryDirectory("fixtures")
  return run(python, [script, "make", dir]) != nil ? dir : nil
}()

/// One entry of the fixture manifest, or of `describe`'s output.
struct NibabelDescription: Decodable {
  var name: String?
  var shape: [Int]
  var zooms: [Double]
  var axcodes: String
  var affine: [[Double]]
  var dtype: String
  var data: [Double]?
  var big_endian: Bool?
  var canonical_shape: [Int]?
  var canonical_affine: [[Double]]?
  var qform: [[Double]]?
  var qform_code: Int?
  var sform_code: Int?
}

/// What nibabel reads from `paths` (headers only unless `withData`).
func nibabelDescribe(_ paths: [String], withData: Bool = true) -> [NibabelDescription]? {
  guard let python = nibabelPython,
    let out = run(python, [script, "describe"] + (withData ? [] : ["--no-data"]) + paths)
  else { return nil }
  return try? JSONDecoder().decode([NibabelDescription].self, from: out)
}

/// Reads little-endian float64 values.
func readFloat64(_ path: String) -> [Double] {
  guard let data = FileManager.default.contents(atPath: path) else { return [] }
  return data.withUnsafeBytes { raw in
    (0..<(data.count / 8)).map {
      Double(
        bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))
      )
    }
  }
}
