import ArgumentParser
import Foundation
import Tensor
import Taxonomy

/// `atso-transfer doctor`: the CPU, the BLAS library and the kernels the toolkit runs on.
struct DoctorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "doctor",
    abstract: "Print the CPU, its vector features, the BLAS library, its core and the threads.",
    discussion: """
      OpenBLAS chooses its kernels (its "core") when it is loaded. Unless OPENBLAS_CORETYPE is \
      set, the toolkit sets it to the best core for this CPU first (AVX-512: SkylakeX; AVX2: \
      Haswell on Intel, Zen on AMD). A value you set wins unless this CPU cannot run that core.

      Examples:
        atso-transfer doctor
        env -u OPENBLAS_CORETYPE atso-transfer doctor     # the automatic choice
        OPENBLAS_CORETYPE=Haswell atso-transfer doctor    # a core of your own
      """)

  /// The report, one `label  value` line each.
  func report() -> String {
    let cpu = CPUDescription.current
    let blas = BLASLibrary.loaded
    func width(_ core: String?) -> String {
      guard let core else { return "" }
      return BLASLibrary.vectorBits(ofCore: core).map { " (\($0)-bit)" } ?? " (width unknown)"
    }
    let automatic = blas.automaticCore.map { "\($0)\(width($0))" } ?? "none (OpenBLAS detects)"
    let user = blas.userCore ?? ""
    let how: String
    switch blas.decision {
    case .automatic: how = "chosen by atso-transfer (OPENBLAS_CORETYPE unset)"
    case .user:
      let differs = blas.automaticCore.map { $0.lowercased() != user.lowercased() } ?? false
      how =
        "OPENBLAS_CORETYPE=\(user) is set in the environment and honoured"
        + (differs ? "; the automatic choice would be \(automatic)" : "")
    case .userRejected:
      how = "OPENBLAS_CORETYPE=\(user) ignored: this CPU cannot run it; automatic choice used"
    case .userUnknown:
      how = "OPENBLAS_CORETYPE=\(user) is not a core atso-transfer knows: passed to OpenBLAS"
    case .library: how = "detected by OpenBLAS (no AVX2 on this CPU)"
    }
    let environment = ProcessInfo.processInfo.environment
    let threadVariable = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"].first {
      (Int(environment[$0] ?? "") ?? 0) > 0
    }
    let threadSource =
      threadVariable.map { "\($0)=\(environment[$0] ?? "")" }
      ?? "OPENBLAS_NUM_THREADS unset: the CPUs this process may use"
    let brand = cpu.brand.isEmpty ? "unknown" : cpu.brand
    let vendor = cpu.vendor.isEmpty ? "not x86" : cpu.vendor
    let cores =
      blas.isDynamicArch
      ? blas.cores.joined(separator: " ") + " (DYNAMIC_ARCH)" : "one core built in"
    let rows: [(String, String)] = [
      ("atso-transfer", AtsoTransfer.configuration.version),
      (
        "CPU",
        "\(brand) (\(vendor), family \(cpu.family) model \(cpu.model) stepping \(cpu.stepping))"
      ),
      ("vector features", "\(cpu.features.joined(separator: " ")) (float FMA: \(cpu.fmaBits)-bit)"),
      ("BLAS library", blas.path),
      ("BLAS version", blas.configuration.trimmingCharacters(in: .whitespaces)),
      ("BLAS cores", cores),
      ("core in use", "\(blas.core)\(width(blas.core)): \(how)"),
      ("automatic core", automatic),
      (
        "kernel threads",
        "\(BLASThreads.count) (\(threadSource)); OpenBLAS runs single-threaded inside them"
      ),
      (
        "vector kernels",
        "\(KernelISA.best.rawValue) (convolutions; ATSO_KERNEL_ISA=avx2|portable lowers it)"
      ),
      (
        "pair counting",
        "\(RawPairHistogram.vectorLevel) (evaluate; ATSO_KERNEL_ISA lowers it too, same counts)"
      ),
    ]
    let pad = rows.map(\.0.count).max() ?? 0
    return rows.map { $0.0.padding(toLength: pad + 2, withPad: " ", startingAt: 0) + $0.1 }
      .joined(separator: "\n")
  }

  func run() { print(report()) }
}
