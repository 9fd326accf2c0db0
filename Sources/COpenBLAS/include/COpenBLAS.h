#pragma once
// OpenBLAS, loaded at first use after choosing its core, and the CPU features that choice reads.
//
// The package does not link libopenblas at load time: OpenBLAS picks its kernels (its "core")
// in a library constructor, from OPENBLAS_CORETYPE or its own CPU detection, so the only
// documented way to choose the core is to set OPENBLAS_CORETYPE before the library is loaded.
// atso_blas_load() does exactly that, once, and then dlopens libopenblas.so.0 and resolves the
// few functions the toolkit calls. See openblas_loader.c for the rules.
#include <stddef.h>
#include <stdint.h>

/// CPU features (bits of atso_cpu_info.features). A vector feature is set only when the
/// operating system also saves its registers (XCR0), i.e. when it can be used.
enum {
  ATSO_CPU_SSE2 = 1u << 0,
  ATSO_CPU_SSE3 = 1u << 1,
  ATSO_CPU_SSSE3 = 1u << 2,
  ATSO_CPU_SSE41 = 1u << 3,
  ATSO_CPU_SSE42 = 1u << 4,
  ATSO_CPU_AVX = 1u << 5,
  ATSO_CPU_FMA = 1u << 6,
  ATSO_CPU_AVX2 = 1u << 7,
  ATSO_CPU_FMA4 = 1u << 8,
  ATSO_CPU_AVX512F = 1u << 9,
  ATSO_CPU_AVX512CD = 1u << 10,
  ATSO_CPU_AVX512BW = 1u << 11,
  ATSO_CPU_AVX512DQ = 1u << 12,
  ATSO_CPU_AVX512VL = 1u << 13,
  ATSO_CPU_AVX512BF16 = 1u << 14,
  ATSO_CPU_AVX512FP16 = 1u << 15,
  ATSO_CPU_AMXBF16 = 1u << 16,
  ATSO_CPU_FEATURE_COUNT = 17,
};

/// What cpuid says about the CPU the process runs on.
typedef struct {
  char vendor[13];   // "GenuineIntel", "AuthenticAMD", ... ("" off x86)
  char brand[49];    // the brand string, e.g. "AMD EPYC 9B45"
  int family;        // display family (base + extended)
  int model;         // display model (base + extended << 4 for families 6 and 15)
  int stepping;
  uint32_t features; // ATSO_CPU_* bits
} atso_cpu_info;

/// The running CPU (cpuid read once).
const atso_cpu_info *atso_cpu(void);
/// The lower-case name of feature bit `bit` ("avx512f"), or NULL.
const char *atso_cpu_feature_name(uint32_t bit);
/// The widest vector registers (128, 256 or 512 bits) usable for float FMA: 512 with AVX-512F,
/// 256 with AVX2 + FMA, else 128.
int atso_cpu_fma_bits(uint32_t features);

/// How the OpenBLAS core was chosen.
typedef enum {
  /// OPENBLAS_CORETYPE was not set (or empty): the toolkit set it to its own choice.
  ATSO_CORE_AUTOMATIC = 0,
  /// OPENBLAS_CORETYPE named a core this CPU can run: honoured.
  ATSO_CORE_USER = 1,
  /// OPENBLAS_CORETYPE named a core this CPU cannot run: replaced by the automatic choice.
  ATSO_CORE_USER_REJECTED = 2,
  /// OPENBLAS_CORETYPE named a core unknown to the toolkit: passed to OpenBLAS unchecked.
  ATSO_CORE_USER_UNKNOWN = 3,
  /// No choice (not x86, or a CPU without AVX2): OpenBLAS detects the core itself.
  ATSO_CORE_LIBRARY = 4,
} atso_core_reason;

/// The core decision for a CPU and a user setting (no side effects; what atso_blas_load applies).
typedef struct {
  /// The core the toolkit prefers on this CPU ("SkylakeX", "Haswell", "Zen"), or "" for none.
  char automatic[32];
  /// The value OPENBLAS_CORETYPE gets while OpenBLAS loads ("" = left unset).
  char requested[32];
  /// The user's OPENBLAS_CORETYPE ("" if unset).
  char user[32];
  atso_core_reason reason;
} atso_core_choice;

/// Chooses the OpenBLAS core for `features` (ATSO_CPU_* bits, `is_amd` for the vendor) given the
/// user's OPENBLAS_CORETYPE value (`user`, NULL or "" when unset):
///   - AVX-512 (F, CD, BW, DQ, VL) -> SkylakeX; AVX2 + FMA -> Haswell (Intel) or Zen (AMD);
///     otherwise no choice (OpenBLAS's own detection);
///   - a user value naming a core the CPU can run wins, whatever its width;
///   - a user value naming a core the CPU cannot run (it would stop on an illegal instruction)
///     is replaced by the automatic choice; an unknown name is passed through.
atso_core_choice atso_choose_core(uint32_t features, int is_amd, const char *user);

/// The vector width (128, 256, 512) of an OpenBLAS x86 core name (case-insensitive), 0 if
/// unknown. `required` (if not NULL) receives the ATSO_CPU_* features the core's kernels use.
int atso_core_vector_bits(const char *core, uint32_t *required);
/// The OpenBLAS x86 core names the toolkit knows, NULL-terminated.
const char *const *atso_known_cores(void);

/// What atso_blas_load did.
typedef struct {
  atso_core_choice choice;
  /// The shared object loaded (from dladdr), "" if loading failed.
  char library_path[512];
  /// Whether the library exports gotoblas_<CORE> for each atso_known_cores() entry (a
  /// DYNAMIC_ARCH build that contains that core's kernels), in the same order.
  unsigned char library_has_core[32];
  /// Whether the library is a DYNAMIC_ARCH build (it exports gotoblas_dynamic_init).
  int dynamic_arch;
} atso_blas_status;

/// Loads OpenBLAS once (thread-safe; later calls return at once) and returns what was done.
/// If libopenblas.so.0 cannot be loaded, prints why on stderr and exits with status 127,
/// as the dynamic loader does for a missing library.
const atso_blas_status *atso_blas_load(void);

/// `openblas_get_corename()`: the core OpenBLAS runs.
const char *atso_blas_corename(void);
/// `openblas_get_config()`: version and build options, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ...".
const char *atso_blas_config(void);
/// `openblas_get_num_threads()` (1: OpenBLAS is loaded with OPENBLAS_NUM_THREADS=1).
int atso_blas_get_num_threads(void);
/// The thread count the user asked OpenBLAS for (OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or
/// OMP_NUM_THREADS), else the CPUs this process may run on: the toolkit's default width.
int atso_blas_default_threads(void);
/// `openblas_set_num_threads(n)`.
void atso_blas_set_num_threads(int n);

/// `cblas_sgemm(CblasRowMajor, ...)`: c = alpha * op(a) * op(b) + beta * c, row-major,
/// op(a) m x k, op(b) k x n.
void atso_sgemm(int transpose_a, int transpose_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
