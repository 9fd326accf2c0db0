#include "CPixelPairs.h"

#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__)
#define ATSO_X86 1
#include <immintrin.h>
#else
#define ATSO_X86 0
#endif

/// Counts the run that ends before `at` and starts the one at `at`.
static inline __attribute__((always_inline)) void end_run(
    unsigned *key, size_t *start, size_t at, const uint8_t *truth, const uint8_t *prediction,
    uint64_t *bins, uint8_t *rows, uint8_t *columns) {
  bins[*key] += (uint64_t)(at - *start);
  rows[*key >> 8] = 1;
  columns[*key & 255] = 1;
  *key = (unsigned)truth[at] << 8 | prediction[at];
  *start = at;
}

// The pass, for one way of finding changes: CHANGES64(truth, prediction, at) gives bit j set
// where pixel at + j differs (in truth or prediction) from pixel at + j - 1, for j in 0..<64
// (at >= 1, at + 64 <= n). The masks of up to 64 blocks (4096 pixels) are found first, with a
// bit per block that has a change; then only those blocks are visited. Blocks inside a run
// cost no branch; each change costs a few instructions and no branch on the data beyond the
// loop over its block's changes.
#define ATSO_COUNT_BODY(CHANGES64)                                               \
  if (n == 0) return;                                                            \
  unsigned key = (unsigned)truth[0] << 8 | prediction[0]; /* the run's pair */     \
  size_t start = 0;                                       /* where it began */     \
  size_t i = 1;                                                                  \
  uint64_t masks[64];                                                            \
  while (i + 64 <= n) {                                                          \
    size_t blocks = (n - i) / 64 < 64 ? (n - i) / 64 : 64;                        \
    uint64_t changed = 0;                                                        \
    for (size_t b = 0; b < blocks; b++) {                                        \
      masks[b] = CHANGES64(truth, prediction, i + 64 * b);                       \
      changed |= (uint64_t)(masks[b] != 0) << b;                                 \
    }                                                                            \
    for (; changed; changed &= changed - 1) {                                    \
      size_t b = (size_t)__builtin_ctzll(changed);                               \
      uint64_t changes = masks[b];                                               \
      do {                                                                       \
        size_t at = i + 64 * b + (size_t)__builtin_ctzll(changes);               \
        end_run(&key, &start, at, truth, prediction, bins, rows, columns);       \
        changes &= changes - 1;                                                  \
      } while (changes);                                                         \
    }                                                                            \
    i += 64 * blocks;                                                            \
  }                                                                              \
  for (; i < n; i++) {                                                           \
    if (truth[i] != truth[i - 1] || prediction[i] != prediction[i - 1])          \
      end_run(&key, &start, i, truth, prediction, bins, rows, columns);          \
  }                                                                              \
  bins[key] += (uint64_t)(n - start);                                            \
  rows[key >> 8] = 1;                                                            \
  columns[key & 255] = 1;

#if ATSO_X86
static inline uint64_t changes_sse2(const uint8_t *truth, const uint8_t *prediction,
                                    size_t at) {
  uint64_t changes = 0;
  for (int k = 0; k < 4; k++) {
    const uint8_t *t = truth + at + 16 * k, *p = prediction + at + 16 * k;
    __m128i same_truth = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)t),
                                        _mm_loadu_si128((const __m128i *)(t - 1)));
    __m128i same_prediction = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p),
                                             _mm_loadu_si128((const __m128i *)(p - 1)));
    uint32_t same = (uint32_t)_mm_movemask_epi8(_mm_and_si128(same_truth, same_prediction));
    changes |= (uint64_t)(~same & 0xFFFFu) << (16 * k);
  }
  return changes;
}

__attribute__((target("avx2"))) static inline uint64_t changes_avx2(
    const uint8_t *truth, const uint8_t *prediction, size_t at) {
  uint64_t changes = 0;
  for (int k = 0; k < 2; k++) {
    const uint8_t *t = truth + at + 32 * k, *p = prediction + at + 32 * k;
    __m256i same_truth = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)t),
                                           _mm256_loadu_si256((const __m256i *)(t - 1)));
    __m256i same_prediction = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)p),
                                                _mm256_loadu_si256((const __m256i *)(p - 1)));
    uint32_t same =
        (uint32_t)_mm256_movemask_epi8(_mm256_and_si256(same_truth, same_prediction));
    changes |= (uint64_t)(~same) << (32 * k);
  }
  return changes;
}

__attribute__((target("avx512bw"))) static inline uint64_t changes_avx512bw(
    const uint8_t *truth, const uint8_t *prediction, size_t at) {
  const uint8_t *t = truth + at, *p = prediction + at;
  __mmask64 truth_changes = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(t),
                                                    _mm512_loadu_si512(t - 1));
  __mmask64 prediction_changes = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(p),
                                                         _mm512_loadu_si512(p - 1));
  return (uint64_t)(truth_changes | prediction_changes);
}

static void count_baseline(const uint8_t *truth, const uint8_t *prediction, size_t n,
                           uint64_t *bins, uint8_t *rows, uint8_t *columns) {
  ATSO_COUNT_BODY(changes_sse2)
}

__attribute__((target("avx2"))) static void count_avx2(
    const uint8_t *truth, const uint8_t *prediction, size_t n, uint64_t *bins, uint8_t *rows,
    uint8_t *columns) {
  ATSO_COUNT_BODY(changes_avx2)
}

__attribute__((target("avx512bw"))) static void count_avx512bw(
    const uint8_t *truth, const uint8_t *prediction, size_t n, uint64_t *bins, uint8_t *rows,
    uint8_t *columns) {
  ATSO_COUNT_BODY(changes_avx512bw)
}
#else
static inline uint64_t changes_portable(const uint8_t *truth, const uint8_t *prediction,
                                        size_t at) {
  uint64_t changes = 0;
  for (int j = 0; j < 64; j++) {
    size_t i = at + (size_t)j;
    changes |= (uint64_t)(truth[i] != truth[i - 1] || prediction[i] != prediction[i - 1]) << j;
  }
  return changes;
}

static void count_baseline(const uint8_t *truth, const uint8_t *prediction, size_t n,
                           uint64_t *bins, uint8_t *rows, uint8_t *columns) {
  ATSO_COUNT_BODY(changes_portable)
}
#endif

int atso_pixel_pairs_supported(atso_pairs_level level) {
  switch (level) {
    case ATSO_PAIRS_BASELINE: return 1;
#if ATSO_X86
    case ATSO_PAIRS_AVX2: return __builtin_cpu_supports("avx2");
    case ATSO_PAIRS_AVX512BW:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
    default: return 0;
  }
}

atso_pairs_level atso_pixel_pairs_level(void) {
  static int cached = -1;
  int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (level >= 0) return (atso_pairs_level)level;
  level = atso_pixel_pairs_supported(ATSO_PAIRS_AVX512BW) ? ATSO_PAIRS_AVX512BW
          : atso_pixel_pairs_supported(ATSO_PAIRS_AVX2)   ? ATSO_PAIRS_AVX2
                                                          : ATSO_PAIRS_BASELINE;
  const char *limit = getenv("ATSO_KERNEL_ISA");
  if (limit) {
    if (strcasecmp(limit, "portable") == 0 || strcasecmp(limit, "none") == 0)
      level = ATSO_PAIRS_BASELINE;
    else if (strcasecmp(limit, "avx2") == 0 && level > ATSO_PAIRS_AVX2)
      level = ATSO_PAIRS_AVX2;
  }
  __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
  return (atso_pairs_level)level;
}

void atso_count_pixel_pairs_at(atso_pairs_level level, const uint8_t *truth,
                               const uint8_t *prediction, size_t n, uint64_t *bins,
                               uint8_t *rows, uint8_t *columns) {
  if (!atso_pixel_pairs_supported(level)) abort();
  switch (level) {
#if ATSO_X86
    case ATSO_PAIRS_AVX512BW: count_avx512bw(truth, prediction, n, bins, rows, columns); return;
    case ATSO_PAIRS_AVX2: count_avx2(truth, prediction, n, bins, rows, columns); return;
#endif
    default: count_baseline(truth, prediction, n, bins, rows, columns); return;
  }
}

void atso_count_pixel_pairs(const uint8_t *truth, const uint8_t *prediction, size_t n,
                            uint64_t *bins, uint8_t *rows, uint8_t *columns) {
  atso_count_pixel_pairs_at(atso_pixel_pairs_level(), truth, prediction, n, bins, rows,
                            columns);
}
