import Foundation
import Testing
import Tensor

/// Feature sets of CPU generations, as ``CPUDescription/features`` names them.
private let sse42 = ["sse2", "sse3", "ssse3", "sse4.1", "sse4.2"]
private let avx2 = sse42 + ["avx", "fma", "avx2"]
private let avx512 = avx2 + ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

struct CoreRule: Sendable, CustomTestStringConvertible {
  var features: [String]
  var isAMD: Bool
  var user: String?
  var requested: String?
  var decision: BLASCoreDecision
  var testDescription: String { "\(features.last ?? "-") amd=\(isAMD) user=\(user ?? "unset")" }
}

@Test(
  "the core rule: widest runnable core, the user's OPENBLAS_CORETYPE wins unless the CPU lacks it",
  arguments: [
    CoreRule(features: avx512, isAMD: false, user: nil, requested: "SkylakeX", decision: .automatic),
    CoreRule(features: avx512, isAMD: true, user: "", requested: "SkylakeX", decision: .automatic),
    CoreRule(features: avx2, isAMD: false, user: nil, requested: "Haswell", decision: .automatic),
    CoreRule(features: avx2, isAMD: true, user: nil, requested: "Zen", decision: .automatic),
    CoreRule(features: sse42, isAMD: false, user: nil, requested: nil, decision: .library),
    CoreRule(features: avx512, isAMD: true, user: "Haswell", requested: "Haswell", decision: .user),
    CoreRule(features: avx512, isAMD: false, user: "haswell", requested: "haswell", decision: .user),
    CoreRule(features: avx512, isAMD: false, user: "Prescott", requested: "Prescott", decision: .user),
    CoreRule(features: avx2, isAMD: false, user: "SkylakeX", requested: "Haswell", decision: .userRejected),
    CoreRule(features: avx512, isAMD: false, user: "Cooperlake", requested: "SkylakeX", decision: .userRejected),
    CoreRule(features: sse42, isAMD: false, user: "Zen", requested: nil, decision: .userRejected),
    CoreRule(features: avx2, isAMD: false, user: "Pentium9", requested: "Pentium9", decision: .userUnknown),
  ])
func coreRule(_ rule: CoreRule) {
  let choice = BLASLibrary.choose(features: rule.features, isAMD: rule.isAMD, user: rule.user)
  #expect(choice.requested == rule.requested)
  #expect(choice.decision == rule.decision)
}

/// The widest vector unit of the cores that both this CPU and the loaded library support.
private func widestSupportedBits() -> Int? {
  let cpu = CPUDescription.current
  return BLASLibrary.loaded.cores
    .filter { BLASLibrary.canRun(core: $0, features: cpu.features) }
    .compactMap { BLASLibrary.vectorBits(ofCore: $0) }.max()
}

@Test(
  "with OPENBLAS_CORETYPE cleared, the chosen core is the widest vector unit of both the CPU and the library",
  .enabled(if: BLASLibrary.loaded.isDynamicArch, "OpenBLAS is not a DYNAMIC_ARCH build"))
func automaticCoreIsWidest() throws {
  let cpu = CPUDescription.current
  let widest = try #require(widestSupportedBits())
  let choice = BLASLibrary.choose(features: cpu.features, isAMD: cpu.vendor == "AuthenticAMD", user: nil)
  if widest >= 256 {
    let requested = try #require(choice.requested)
    #expect(BLASLibrary.vectorBits(ofCore: requested) == widest)
    #expect(BLASLibrary.loaded.cores.contains(requested))
    #expect(BLASLibrary.canRun(core: requested, features: cpu.features))
  }
  #expect(min(cpu.fmaBits, 512) >= widest)
}

@Test(
  "the core in use is the one the rule gives for this process's OPENBLAS_CORETYPE",
  .enabled(if: BLASLibrary.loaded.isDynamicArch, "OpenBLAS is not a DYNAMIC_ARCH build"))
func loadedCoreFollowsRule() throws {
  let cpu = CPUDescription.current
  let blas = BLASLibrary.loaded
  // The variable as the loader saw it: the library restores it after loading.
  let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]
  #expect(blas.userCore == (user?.isEmpty == false ? user : nil))
  let expected = BLASLibrary.choose(features: cpu.features, isAMD: cpu.vendor == "AuthenticAMD", user: user)
  #expect(blas.decision == expected.decision)
  #expect(blas.automaticCore == expected.automatic)
  if let requested = expected.requested, expected.decision != .userUnknown {
    // An override (this machine's environment sets OPENBLAS_CORETYPE=Haswell) is honoured...
    #expect(blas.core.lowercased() == requested.lowercased(), "OpenBLAS runs \(blas.core)")
  }
  if expected.decision == .automatic {
    // ...and without one, the core in use is the widest the CPU and the library support.
    #expect(BLASLibrary.vectorBits(ofCore: blas.core) == widestSupportedBits())
  }
  #expect(BLASLibrary.canRun(core: blas.core, features: cpu.features))
}

/// The register width of a kernel set's floats.
private func vectorBits(of isa: KernelISA) -> Int {
  switch isa {
  case .portable: 128
  case .avx2: 256
  case .avx512: 512
  }
}

@Test(
  "the convolution kernels use the widest vector unit of the CPU, unless ATSO_KERNEL_ISA lowers it",
  .enabled(if: ProcessInfo.processInfo.environment["ATSO_KERNEL_ISA"] == nil, "ATSO_KERNEL_ISA is set"))
func kernelSetIsWidest() {
  let cpu = CPUDescription.current
  // The kernels' own cpuid reading agrees with the one the BLAS loader reports.
  #expect(KernelISA.avx512.isSupported == cpu.features.contains("avx512f"))
  #expect(KernelISA.avx2.isSupported == ["avx", "avx2", "fma"].allSatisfy(cpu.features.contains))
  let widest = KernelISA.allCases.filter(\.isSupported).max { vectorBits(of: $0) < vectorBits(of: $1) }
  #expect(KernelISA.best == widest)
  #expect(vectorBits(of: KernelISA.best) == max(128, cpu.fmaBits))
}
