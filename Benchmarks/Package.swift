// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Benchmarks, kept out of the main package: `cd Benchmarks && swift run -c release KernelBench`
// (kernel micro-benchmarks) or `... UNetBench` (reference U-Net training step and inference).
// A path dependency's identity is its folder name, so read it rather than hard-coding it.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
  name: "atso-transfer-benchmarks",
  dependencies: [.package(path: "../")],
  targets: [
    .executableTarget(
      name: "KernelBench",
      dependencies: [.product(name: "Tensor", package: root.lastPathComponent)]),
    .executableTarget(
      name: "UNetBench",
      dependencies: [
        .product(name: "Tensor", package: root.lastPathComponent),
        .product(name: "Segmentation", package: root.lastPathComponent),
      ]),
  ]
)
