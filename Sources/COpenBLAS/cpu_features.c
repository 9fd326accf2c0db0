// CPU features from cpuid, and the OpenBLAS x86 cores' requirements.
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "COpenBLAS.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static void cpuid(unsigned leaf, unsigned subleaf, unsigned r[4]) {
  if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) r[0] = r[1] = r[2] = r[3] = 0;
}

// XCR0: which register states the operating system saves on a context switch.
static unsigned long long xgetbv0(void) {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

static void read_cpu(atso_cpu_info *info) {
  unsigned r[4];
  __get_cpuid(0, &r[0], &r[1], &r[2], &r[3]);
  unsigned max_leaf = r[0];
  memcpy(info->vendor, &r[1], 4);
  memcpy(info->vendor + 4, &r[3], 4);
  memcpy(info->vendor + 8, &r[2], 4);
  info->vendor[12] = 0;

  cpuid(1, 0, r);
  unsigned eax = r[0], ecx = r[2], edx = r[3];
  int base_family = (eax >> 8) & 0xf, base_model = (eax >> 4) & 0xf;
  info->family = base_family == 15 ? base_family + ((eax >> 20) & 0xff) : base_family;
  info->model = (base_family == 6 || base_family == 15) ? base_model + (((eax >> 16) & 0xf) << 4)
                                                        : base_model;
  info->stepping = eax & 0xf;

  uint32_t f = 0;
  if (edx & (1u << 26)) f |= ATSO_CPU_SSE2;
  if (ecx & (1u << 0)) f |= ATSO_CPU_SSE3;
  if (ecx & (1u << 9)) f |= ATSO_CPU_SSSE3;
  if (ecx & (1u << 19)) f |= ATSO_CPU_SSE41;
  if (ecx & (1u << 20)) f |= ATSO_CPU_SSE42;
  unsigned long long xcr0 = (ecx & (1u << 27)) ? xgetbv0() : 0;  // OSXSAVE
  int os_ymm = (xcr0 & 0x6) == 0x6;                                // XMM and YMM state
  int os_zmm = (xcr0 & 0xe6) == 0xe6;                              // + opmask, ZMM_Hi256, Hi16_ZMM
  int os_amx = (xcr0 & 0x60000) == 0x60000;                        // XTILECFG, XTILEDATA
  if (os_ymm && (ecx & (1u << 28))) f |= ATSO_CPU_AVX;
  if (os_ymm && (ecx & (1u << 12))) f |= ATSO_CPU_FMA;
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    unsigned b = r[1], d = r[3];
    if (os_ymm && (b & (1u << 5))) f |= ATSO_CPU_AVX2;
    if (os_zmm) {
      if (b & (1u << 16)) f |= ATSO_CPU_AVX512F;
      if (b & (1u << 17)) f |= ATSO_CPU_AVX512DQ;
      if (b & (1u << 28)) f |= ATSO_CPU_AVX512CD;
      if (b & (1u << 30)) f |= ATSO_CPU_AVX512BW;
      if (b & (1u << 31)) f |= ATSO_CPU_AVX512VL;
      if (d & (1u << 23)) f |= ATSO_CPU_AVX512FP16;
      cpuid(7, 1, r);
      if (r[0] & (1u << 5)) f |= ATSO_CPU_AVX512BF16;
    }
    if (os_amx && (d & (1u << 22))) f |= ATSO_CPU_AMXBF16;
  }
  cpuid(0x80000000u, 0, r);
  unsigned max_extended = r[0];
  if (max_extended >= 0x80000001u) {
    cpuid(0x80000001u, 0, r);
    if (os_ymm && (r[2] & (1u << 16))) f |= ATSO_CPU_FMA4;
  }
  if (max_extended >= 0x80000004u) {
    char brand[49] = {0};
    for (unsigned i = 0; i < 3; i++) {
      cpuid(0x80000002u + i, 0, r);
      memcpy(brand + 16 * i, r, 16);
    }
    const char *start = brand;
    while (*start == ' ') start++;
    snprintf(info->brand, sizeof info->brand, "%s", start);
    size_t n = strlen(info->brand);
    while (n > 0 && info->brand[n - 1] == ' ') info->brand[--n] = 0;
  }
  info->features = f;
}
#else
static void read_cpu(atso_cpu_info *info) { (void)info; }
#endif

const atso_cpu_info *atso_cpu(void) {
  static atso_cpu_info info;
  static int done;  // benign: every thread computes the same bytes
  if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
    atso_cpu_info local = {0};
    read_cpu(&local);
    info = local;
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
  }
  return &info;
}

static const char *const feature_names[ATSO_CPU_FEATURE_COUNT] = {
    "sse2",     "sse3",     "ssse3",    "sse4.1",   "sse4.2",     "avx",        "fma",
    "avx2",     "fma4",     "avx512f",  "avx512cd", "avx512bw",   "avx512dq",   "avx512vl",
    "avx512bf16", "avx512fp16", "amx-bf16",
};

const char *atso_cpu_feature_name(uint32_t bit) {
  for (int i = 0; i < ATSO_CPU_FEATURE_COUNT; i++)
    if (bit == (1u << i)) return feature_names[i];
  return NULL;
}

#define AVX512 \
  (ATSO_CPU_AVX512F | ATSO_CPU_AVX512CD | ATSO_CPU_AVX512BW | ATSO_CPU_AVX512DQ | ATSO_CPU_AVX512VL)
#define AVX2FMA (ATSO_CPU_AVX | ATSO_CPU_AVX2 | ATSO_CPU_FMA)

int atso_cpu_fma_bits(uint32_t features) {
  if (features & ATSO_CPU_AVX512F) return 512;
  if ((features & AVX2FMA) == AVX2FMA) return 256;
  return 128;
}

// OpenBLAS's x86 core names (driver/others/dynamic.c), the features their kernels use and
// their register width, widest first. Matching is case-insensitive, as in OpenBLAS. (OpenBLAS
// also accepts Katmai, Coppermine, Northwood, Banias and Athlon, aliases of SSE2-era cores that
// current builds do not contain; they count as unknown here.)
static const struct {
  const char *name;
  uint32_t required;
  int bits;
} cores[] = {
    {"SapphireRapids", AVX512 | ATSO_CPU_AVX512BF16 | ATSO_CPU_AVX512FP16 | ATSO_CPU_AMXBF16, 512},
    {"Cooperlake", AVX512 | ATSO_CPU_AVX512BF16, 512},
    {"SkylakeX", AVX512, 512},
    {"Zen", AVX2FMA, 256},
    {"Haswell", AVX2FMA, 256},
    {"Excavator", AVX2FMA | ATSO_CPU_FMA4, 256},
    {"Steamroller", ATSO_CPU_AVX | ATSO_CPU_FMA | ATSO_CPU_FMA4, 256},
    {"Piledriver", ATSO_CPU_AVX | ATSO_CPU_FMA | ATSO_CPU_FMA4, 256},
    {"Bulldozer", ATSO_CPU_AVX | ATSO_CPU_FMA4, 256},
    {"Sandybridge", ATSO_CPU_AVX, 256},
    {"Nehalem", ATSO_CPU_SSE42, 128},
    {"Dunnington", ATSO_CPU_SSE41, 128},
    {"Penryn", ATSO_CPU_SSE41, 128},
    {"Core2", ATSO_CPU_SSSE3, 128},
    {"Atom", ATSO_CPU_SSSE3, 128},
    {"Bobcat", ATSO_CPU_SSSE3, 128},
    {"Nano", ATSO_CPU_SSE3, 128},
    {"Barcelona", ATSO_CPU_SSE3, 128},
    {"Opteron_SSE3", ATSO_CPU_SSE3, 128},
    {"Prescott", ATSO_CPU_SSE3, 128},
    {"Opteron", ATSO_CPU_SSE2, 128},
};
#define CORE_COUNT (sizeof cores / sizeof cores[0])

const char *const *atso_known_cores(void) {
  static const char *names[CORE_COUNT + 1];
  static int done;
  if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
    for (size_t i = 0; i < CORE_COUNT; i++) names[i] = cores[i].name;
    names[CORE_COUNT] = NULL;
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
  }
  return names;
}

int atso_core_vector_bits(const char *core, uint32_t *required) {
  if (core)
    for (size_t i = 0; i < CORE_COUNT; i++)
      if (strcasecmp(core, cores[i].name) == 0) {
        if (required) *required = cores[i].required;
        return cores[i].bits;
      }
  if (required) *required = 0;
  return 0;
}

atso_core_choice atso_choose_core(uint32_t features, int is_amd, const char *user) {
  atso_core_choice choice;
  memset(&choice, 0, sizeof choice);
  const char *automatic = "";
  if ((features & AVX512) == AVX512) automatic = "SkylakeX";
  else if ((features & AVX2FMA) == AVX2FMA) automatic = is_amd ? "Zen" : "Haswell";
  snprintf(choice.automatic, sizeof choice.automatic, "%s", automatic);
  if (user && *user) {
    snprintf(choice.user, sizeof choice.user, "%s", user);
    uint32_t required;
    if (atso_core_vector_bits(user, &required) == 0) {
      choice.reason = ATSO_CORE_USER_UNKNOWN;
      snprintf(choice.requested, sizeof choice.requested, "%s", user);
    } else if ((features & required) == required) {
      choice.reason = ATSO_CORE_USER;
      snprintf(choice.requested, sizeof choice.requested, "%s", user);
    } else {
      choice.reason = ATSO_CORE_USER_REJECTED;
      snprintf(choice.requested, sizeof choice.requested, "%s", automatic);
    }
  } else {
    choice.reason = *automatic ? ATSO_CORE_AUTOMATIC : ATSO_CORE_LIBRARY;
    snprintf(choice.requested, sizeof choice.requested, "%s", automatic);
  }
  return choice;
}
