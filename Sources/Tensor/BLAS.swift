import CKernels
import COpenBLAS
import Synchronization

/// The one file that talks to OpenBLAS (through the `COpenBLAS` loader, which `dlopen`s it).

/// A base pointer shared by parallel workers that write disjoint index ranges.
/// Valid only while the owning buffer is alive and the ranges do not overlap.
package struct DisjointWrites<Element>: @unchecked Sendable {
  package let base: UnsafeMutablePointer<Element>
  package init(base: UnsafeMutablePointer<Element>) { self.base = base }
}

/// A base pointer shared read-only by parallel workers.
package struct SharedReads<Element>: @unchecked Sendable {
  package let base: UnsafePointer<Element>
  package init(base: UnsafePointer<Element>) { self.base = base }
}

/// The process-wide thread count of the toolkit's kernels, held apart from OpenBLAS.
///
/// OpenBLAS itself is pinned to one thread the first time any kernel runs: the kernels call
/// ``sgemm`` from inside their own parallel loops, and a process-global OpenBLAS setting that
/// kernels raised and lowered around their calls raced between concurrent callers (one caller's
/// "1 thread" leaked into another's parallel loop, and OpenBLAS's multi-threaded GEMM rounds
/// differently), which broke "same seed and thread count, same numbers".
final class KernelThreadSetting: Sendable {
  let value: Atomic<Int>

  init() {
    // Freed tensors stay in the heap for the next step (no page faults in the steady state).
    atso_keep_freed_memory()
    // OPENBLAS_NUM_THREADS (else the cores this process may use) sets the initial width;
    // OpenBLAS itself is loaded single-threaded.
    let initial = max(1, Int(atso_blas_default_threads()))
    atso_blas_set_num_threads(1)
    value = Atomic(initial)
  }
}

let kernelThreadSetting = KernelThreadSetting()

/// The number of threads the kernels use (parallel loops over coarse chunks; OpenBLAS runs
/// single-threaded inside them). Its initial value is `OPENBLAS_NUM_THREADS` (or
/// `GOTO_NUM_THREADS`, `OMP_NUM_THREADS`, as OpenBLAS reads them) if set, else the number of
/// CPUs the process may run on. OpenBLAS is loaded with `OPENBLAS_NUM_THREADS=1`, so it starts
/// no threads of its own; `openblas_set_num_threads(1)` pins it there.
public enum BLASThreads {
  /// The number of threads a kernel uses.
  public static var count: Int { kernelThreadSetting.value.load(ordering: .relaxed) }
  /// Sets the number of threads every later kernel call uses (at least 1).
  public static func set(_ n: Int) { kernelThreadSetting.value.store(max(1, n), ordering: .relaxed) }
}

/// Single-precision GEMM on row-major matrices: `c = alpha * op(a) * op(b) + beta * c`.
///
/// `op(a)` is `m x k`, `op(b)` is `k x n`, `c` is `m x n`; `lda`, `ldb`, `ldc` are the row strides of
/// the matrices as stored. The corresponding C call is `cblas_sgemm` with `CblasRowMajor`.
/// - Precondition: the pointers address buffers large enough for the stated shapes.
@inline(__always)
package func sgemm(
  transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
  alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
  _ = kernelThreadSetting  // loads OpenBLAS and pins it to one thread before its first use
  atso_sgemm(
    transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
    b, Int32(ldb), beta, c, Int32(ldc))
}

/// The processor the process runs on, as `cpuid` describes it.
public struct CPUDescription: Sendable, Equatable {
  /// The vendor string (`GenuineIntel`, `AuthenticAMD`), empty off x86.
  public var vendor: String
  /// The brand string (`AMD EPYC 9B45`).
  public var brand: String
  /// The display family, model and stepping.
  public var family: Int, model: Int, stepping: Int
  /// The vector features the CPU and the operating system both support, in a fixed order
  /// (`sse2` ... `avx2`, `fma`, `avx512f`, ...).
  public var features: [String]
  /// The widest registers usable for float FMA: 512 (AVX-512F), 256 (AVX2 + FMA) or 128.
  public var fmaBits: Int

  /// The running CPU.
  public static let current: CPUDescription = {
    let info = atso_cpu().pointee
    var features: [String] = []
    for i in 0..<ATSO_CPU_FEATURE_COUNT {
      let bit = UInt32(1) << UInt32(i)
      if info.features & bit != 0, let name = atso_cpu_feature_name(bit) {
        features.append(String(cString: name))
      }
    }
    return CPUDescription(
      vendor: cString(info.vendor), brand: cString(info.brand), family: Int(info.family),
      model: Int(info.model), stepping: Int(info.stepping), features: features,
      fmaBits: Int(atso_cpu_fma_bits(info.features)))
  }()
}

/// How the OpenBLAS core (its kernel set) was chosen when the library was loaded.
public enum BLASCoreDecision: String, Sendable, Equatable {
  /// `OPENBLAS_CORETYPE` was unset: the toolkit chose the core (``BLASLibrary/automaticCore``).
  case automatic
  /// The user's `OPENBLAS_CORETYPE` names a core this CPU can run: honoured.
  case user
  /// The user's `OPENBLAS_CORETYPE` names a core this CPU cannot run (it would stop on an
  /// illegal instruction): replaced by the automatic choice.
  case userRejected
  /// The user's `OPENBLAS_CORETYPE` is not a core name the toolkit knows: passed to OpenBLAS
  /// unchecked (OpenBLAS warns and detects the core itself if it does not know it either).
  case userUnknown
  /// No choice was made (no AVX2 on this CPU): OpenBLAS detected the core itself.
  case library

  /// The decision the C loader reports.
  init(_ reason: atso_core_reason) {
    switch reason {
    case ATSO_CORE_AUTOMATIC: self = .automatic
    case ATSO_CORE_USER: self = .user
    case ATSO_CORE_USER_REJECTED: self = .userRejected
    case ATSO_CORE_USER_UNKNOWN: self = .userUnknown
    default: self = .library
    }
  }
}

/// The OpenBLAS library in use: where it was loaded from, its version and the core it runs.
///
/// OpenBLAS picks its kernels once, when it is loaded: from `OPENBLAS_CORETYPE` if set, else
/// from its own CPU detection, which falls back to SSE kernels on CPUs newer than the library.
/// The toolkit does not link OpenBLAS at load time; the first BLAS call reads `cpuid`, sets
/// `OPENBLAS_CORETYPE` to the best core for the CPU (AVX-512 -> SkylakeX, AVX2 -> Haswell on
/// Intel, Zen on AMD) unless the user set it, `dlopen`s `libopenblas.so.0` and restores the
/// environment. A user's value wins unless the CPU cannot run that core.
public struct BLASLibrary: Sendable, Equatable {
  /// The shared object loaded (after symbolic links).
  public var path: String
  /// `openblas_get_config()`: version and build options (`OpenBLAS 0.3.21 DYNAMIC_ARCH ...`).
  public var configuration: String
  /// Whether the library chooses its kernels at run time (a `DYNAMIC_ARCH` build).
  public var isDynamicArch: Bool
  /// The x86 cores whose kernels the library contains (it exports `gotoblas_<CORE>`), among
  /// those the toolkit knows, widest first.
  public var cores: [String]
  /// `openblas_get_corename()`: the core in use.
  public var core: String
  /// The core the toolkit chooses on this CPU when the user sets nothing (nil: none).
  public var automaticCore: String?
  /// The user's `OPENBLAS_CORETYPE` at load time (nil if unset).
  public var userCore: String?
  /// How ``core`` was chosen.
  public var decision: BLASCoreDecision

  /// The library, loaded on first access (as by the first BLAS call).
  public static let loaded: BLASLibrary = {
    _ = kernelThreadSetting
    let status = atso_blas_load().pointee
    let choice = status.choice
    let known = knownCores
    let present = withUnsafeBytes(of: status.library_has_core) { bytes in
      known.indices.filter { $0 < bytes.count && bytes[$0] != 0 }.map { known[$0] }
    }
    let decision = BLASCoreDecision(choice.reason)
    let automatic = cString(choice.automatic)
    let user = cString(choice.user)
    return BLASLibrary(
      path: cString(status.library_path), configuration: String(cString: atso_blas_config()),
      isDynamicArch: status.dynamic_arch != 0, cores: present,
      core: String(cString: atso_blas_corename()),
      automaticCore: automatic.isEmpty ? nil : automatic, userCore: user.isEmpty ? nil : user,
      decision: decision)
  }()

  /// The x86 core names the toolkit knows, widest first (OpenBLAS's spelling).
  public static let knownCores: [String] = {
    var names: [String] = []
    var p = atso_known_cores()
    while let name = p?.pointee {
      names.append(String(cString: name))
      p = p?.successor()
    }
    return names
  }()

  /// The register width (128, 256 or 512 bits) of an OpenBLAS x86 core's kernels, nil for a name
  /// the toolkit does not know. Case-insensitive, as OpenBLAS reads `OPENBLAS_CORETYPE`.
  public static func vectorBits(ofCore core: String) -> Int? {
    let bits = Int(atso_core_vector_bits(core, nil))
    return bits == 0 ? nil : bits
  }

  /// Whether a CPU with `features` (``CPUDescription/features`` names) can run `core`'s
  /// kernels; false for an unknown core.
  public static func canRun(core: String, features: [String]) -> Bool {
    var required: UInt32 = 0
    guard atso_core_vector_bits(core, &required) != 0 else { return false }
    return featureBits(features) & required == required
  }

  /// The decision the loader makes for a CPU (`features` as ``CPUDescription/features``,
  /// `isAMD` for AMD and Hygon) and a user value of `OPENBLAS_CORETYPE` (nil or empty: unset).
  /// Pure: this is the rule that loading applies, for tests and `doctor`.
  /// - Returns: the core `OPENBLAS_CORETYPE` is set to while OpenBLAS loads (nil: left unset),
  ///   the automatic choice, and the decision.
  public static func choose(features: [String], isAMD: Bool, user: String?)
    -> (requested: String?, automatic: String?, decision: BLASCoreDecision)
  {
    let choice = atso_choose_core(featureBits(features), isAMD ? 1 : 0, user)
    let requested = cString(choice.requested)
    let automatic = cString(choice.automatic)
    return (
      requested.isEmpty ? nil : requested, automatic.isEmpty ? nil : automatic,
      BLASCoreDecision(choice.reason)
    )
  }

  /// One line for benchmark output: library version, core (width, decision), CPU, threads.
  public var summary: String {
    let version = configuration.split(separator: " ").prefix(2).joined(separator: " ")
    let bits = BLASLibrary.vectorBits(ofCore: core).map { "\($0)-bit" } ?? "width unknown"
    var line = "\(version) core \(core) (\(bits), \(decision.rawValue)"
    if let userCore, decision != .automatic { line += " OPENBLAS_CORETYPE=\(userCore)" }
    if let automaticCore, automaticCore.lowercased() != core.lowercased() {
      line += "; automatic: \(automaticCore)"
    }
    let cpu = CPUDescription.current
    line += "), CPU \(cpu.brand.isEmpty ? cpu.vendor : cpu.brand) family \(cpu.family) model "
    line += "\(cpu.model) (\(cpu.fmaBits)-bit FMA), \(BLASThreads.count) kernel threads"
    return line
  }
}

/// The `ATSO_CPU_*` bits of feature names.
private func featureBits(_ names: [String]) -> UInt32 {
  var bits: UInt32 = 0
  for i in 0..<ATSO_CPU_FEATURE_COUNT {
    let bit = UInt32(1) << UInt32(i)
    if let name = atso_cpu_feature_name(bit), names.contains(String(cString: name)) {
      bits |= bit
    }
  }
  return bits
}

/// A Swift string from a fixed-size C `char` array (a tuple in Swift).
private func cString<T>(_ tuple: T) -> String {
  withUnsafeBytes(of: tuple) { bytes in
    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
  }
}
