// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Benchmarks, kept out of the main package: `cd Benchmarks && swift run -c release KernelBench`
// (kernel micro-benchmarks) or `... UNetBench` (reference U-Net training step and inference).
// SwiftPM names a path dependency after its folder (`atso-transfer`, or a worktree's name).
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
  name: "Benchmarks",
  dependencies: [.package(path: "../")],
  targets: [
    .executableTarget(
      name: "UNetBench",
      dependencies: [
        .product(name: "Tensor", package: rootPackage),
        .product(name: "Segmentation", package: rootPackage),
      ],
      swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
    // Conv2d forward/backward on the reference net's layers next to a 2048^3 sgemm, and the
    // other kernels: `swift run -c release KernelBench [--repeats 5] [--threads 1,2]`.
    // Decoding label PNGs on N threads: the floor of `atso-transfer evaluate`
    // (scripts/bench_evaluate.sh).
    .executableTarget(
      name: "DecodeFloor",
      dependencies: [.product(name: "Segmentation", package: rootPackage)]),
    .executableTarget(
      name: "KernelBench",
      dependencies: [.product(name: "Tensor", package: rootPackage)]),
  ]
)
