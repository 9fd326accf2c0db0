// swift-tools-version: 6.1
import Foundation
import PackageDescription

// libFuzzer harnesses, kept out of the main package (its normal build never sees them).
// Build and run with scripts/fuzz.sh, which builds this package with
// `swift build -c release --sanitize=fuzzer --sanitize=address` (every module of the main
// package is then instrumented too) and runs each harness on its seed corpus in Corpus/<name>.
// Each harness is one file defining `LLVMFuzzerTestOneInput` (libFuzzer supplies `main`).
// SwiftPM names a path dependency after its folder (`atso-transfer`, or a worktree's name).
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().lastPathComponent.lowercased()

func harness(_ name: String, _ products: [String]) -> Target {
  .executableTarget(
    name: name, dependencies: products.map { .product(name: $0, package: rootPackage) },
    swiftSettings: [.unsafeFlags(["-parse-as-library"])])
}

let package = Package(
  name: "Fuzz",
  dependencies: [.package(path: "../")],
  targets: [
    harness("FuzzPNG", ["Segmentation"]),
    harness("FuzzJPEG", ["Segmentation"]),
    harness("FuzzNIfTI", ["Medical"]),
    harness("FuzzSafetensors", ["Segmentation"]),
    harness("FuzzClassSet", ["Taxonomy"]),
    harness("FuzzMapping", ["Taxonomy"]),
    harness("FuzzConfiguration", ["Transfer", "ImageTransfer", "VolumeTransfer"]),
    harness("FuzzDatasetSpec", ["Segmentation"]),
  ]
)
