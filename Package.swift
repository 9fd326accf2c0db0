// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "atso-transfer",
  products: [
    .executable(name: "atso-transfer", targets: ["atso-transfer"]),
    .library(name: "Tensor", targets: ["Tensor"]),
    .library(name: "Taxonomy", targets: ["Taxonomy"]),
    .library(name: "Segmentation", targets: ["Segmentation"]),
    .library(name: "Transfer", targets: ["Transfer"]),
    .library(name: "ImageTransfer", targets: ["ImageTransfer"]),
    .library(name: "Medical", targets: ["Medical"]),
    .library(name: "VolumeTransfer", targets: ["VolumeTransfer"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
  ],
  targets: [
    // C libraries from Debian.
    .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(name: "CJSONC", pkgConfig: "json-c", providers: [.apt(["libjson-c-dev"])]),
    .systemLibrary(name: "CZLib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    // libdeflate: whole-buffer inflate for the 8-bit gray label-map fast path (GrayPNGDecoder).
    .systemLibrary(name: "CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
    .target(name: "CJPEGShim", linkerSettings: [.linkedLibrary("jpeg")]),
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    // OpenBLAS (Debian's libopenblas0), loaded with dlopen at first use after choosing its core.
    .target(name: "COpenBLAS", linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]),
    // Convolution kernels for AVX-512 and AVX2 + FMA, chosen at run time (cpuid).
    .target(name: "CKernels", dependencies: ["COpenBLAS"]),
    // Counting label pairs 64 pixels at a time (SSE2): the inner loop of evaluation.
    .target(name: "CPixelPairs"),

    // The toolkit, from the bottom up.
    .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"]),
    .target(name: "Cluster", dependencies: ["CMPI"]),
    .target(name: "Taxonomy", dependencies: ["CJSONC", "CPixelPairs"]),
    .target(
      name: "Segmentation", dependencies: ["Tensor", "Taxonomy", "CPNG", "CDeflate", "CJPEGShim"]),
    // The transfer core (plan, run directory, resume, tables) and its two backends, as peers.
    .target(name: "Transfer", dependencies: ["Segmentation", "Tensor", "Taxonomy", "Cluster"]),
    .target(
      name: "ImageTransfer", dependencies: ["Transfer", "Segmentation", "Tensor", "Taxonomy"]),
    .target(name: "Medical", dependencies: ["Segmentation", "Tensor", "Taxonomy", "CZLib"]),
    .target(
      name: "VolumeTransfer",
      dependencies: ["Transfer", "Medical", "Segmentation", "Tensor", "Taxonomy"]),
    .executableTarget(
      name: "atso-transfer",
      dependencies: [
        "Tensor", "Taxonomy", "Segmentation", "Transfer", "ImageTransfer", "Medical",
        "VolumeTransfer", "Cluster",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // Tests.
    .target(name: "TestSupport", dependencies: ["Tensor"], path: "Tests/TestSupport"),
    .testTarget(name: "TensorTests", dependencies: ["Tensor", "TestSupport"],
                resources: [.copy("Fixtures")]),
    .executableTarget(name: "cluster-probe", dependencies: ["Cluster"], path: "Tests/ClusterProbe"),
    .testTarget(name: "ClusterTests", dependencies: ["Cluster", "cluster-probe", "TestSupport"]),
    .testTarget(name: "TaxonomyTests", dependencies: ["Taxonomy", "CPixelPairs", "TestSupport"]),
    .testTarget(name: "SegmentationTests", dependencies: ["Segmentation", "CDeflate", "TestSupport"],
                resources: [.copy("Fixtures")]),
    .testTarget(
      name: "TransferTests",
      dependencies: ["Transfer", "Segmentation", "Taxonomy", "Tensor", "TestSupport"]),
    .testTarget(
      name: "ImageTransferTests",
      dependencies: [
        "ImageTransfer", "Transfer", "Segmentation", "Taxonomy", "Tensor", "TestSupport",
      ]),
    .testTarget(
      name: "MedicalTests",
      dependencies: [
        "Medical", "VolumeTransfer", "Transfer", "Segmentation", "Tensor", "TestSupport",
      ]),
    .testTarget(
      name: "CLITests",
      dependencies: [
        "atso-transfer", "Tensor", "TestSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
  ]
)

for target in package.targets where target.type != .system {
  var settings = target.swiftSettings ?? []
  settings.append(.enableUpcomingFeature("ExistentialAny"))
  settings.append(.enableUpcomingFeature("MemberImportVisibility"))
  target.swiftSettings = settings
}
