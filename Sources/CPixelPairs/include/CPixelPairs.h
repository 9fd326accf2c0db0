#pragma once
// Counting (ground truth, prediction) label pairs: the inner loop of evaluation.
#include <stddef.h>
#include <stdint.h>

/// The vector code of the count (all give the same counts).
typedef enum {
  /// 16 bytes a compare (SSE2, every x86-64 CPU; plain C elsewhere).
  ATSO_PAIRS_BASELINE = 0,
  /// 32 bytes a compare.
  ATSO_PAIRS_AVX2 = 1,
  /// 64 bytes a compare, into a mask register.
  ATSO_PAIRS_AVX512BW = 2,
} atso_pairs_level;

/// The widest level this CPU and operating system support (cpuid, once); with the environment
/// variable ATSO_KERNEL_ISA set to "avx2" or "portable" (as for the convolutions), at most
/// that one.
atso_pairs_level atso_pixel_pairs_level(void);
/// Whether this CPU can run `level`.
int atso_pixel_pairs_supported(atso_pairs_level level);

/// Adds the pixel pairs of two label arrays of `n` bytes to `bins[truth << 8 | prediction]`
/// (65,536 bins) and sets `rows[truth]` and `columns[prediction]` to 1 for every bin added to
/// (so every marked row and column holds a non-zero bin).
///
/// Label maps are long runs of one pair, so the pass finds where the pair changes, 64 pixels
/// at a time (each pixel compared with its left neighbour), and touches a bin once a run.
/// Exact (integer counts): the same on every CPU and level. Uses atso_pixel_pairs_level().
void atso_count_pixel_pairs(const uint8_t *truth, const uint8_t *prediction, size_t n,
                            uint64_t *bins, uint8_t *rows, uint8_t *columns);
/// The same with a given level (tests compare them). `level` must be supported.
void atso_count_pixel_pairs_at(atso_pairs_level level, const uint8_t *truth,
                               const uint8_t *prediction, size_t n, uint64_t *bins,
                               uint8_t *rows, uint8_t *columns);
