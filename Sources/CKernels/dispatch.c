// Chooses the instruction set at run time and forwards to its kernels.
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "COpenBLAS.h"
#include "CKernels.h"
#include "kernels.h"

double atso_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int atso_isa_supported(atso_isa isa) {
  uint32_t f = atso_cpu()->features;
  switch (isa) {
    case ATSO_ISA_NONE: return 1;
    case ATSO_ISA_AVX2: return (f & (ATSO_CPU_AVX | ATSO_CPU_AVX2 | ATSO_CPU_FMA)) ==
                               (ATSO_CPU_AVX | ATSO_CPU_AVX2 | ATSO_CPU_FMA);
    case ATSO_ISA_AVX512: return atso_isa_supported(ATSO_ISA_AVX2) && (f & ATSO_CPU_AVX512F);
  }
  return 0;
}

atso_isa atso_best_isa(void) {
  static int cached = -1;
  int isa = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (isa >= 0) return (atso_isa)isa;
  isa = atso_isa_supported(ATSO_ISA_AVX512) ? ATSO_ISA_AVX512
        : atso_isa_supported(ATSO_ISA_AVX2) ? ATSO_ISA_AVX2
                                            : ATSO_ISA_NONE;
  const char *limit = getenv("ATSO_KERNEL_ISA");
  if (limit) {
    if (strcasecmp(limit, "none") == 0) isa = ATSO_ISA_NONE;
    else if (strcasecmp(limit, "avx2") == 0 && isa > ATSO_ISA_AVX2) isa = ATSO_ISA_AVX2;
  }
  __atomic_store_n(&cached, isa, __ATOMIC_RELAXED);
  return (atso_isa)isa;
}

int atso_isa_vector_floats(atso_isa isa) {
  return isa == ATSO_ISA_AVX512 ? 16 : isa == ATSO_ISA_AVX2 ? 8 : 0;
}

#define DISPATCH(call_avx512, call_avx2) \
  switch (isa) {                         \
    case ATSO_ISA_AVX512: call_avx512;   \
    case ATSO_ISA_AVX2: call_avx2;       \
    default: abort();                    \
  }

size_t atso_conv_packed_size(const atso_conv_shape *g, atso_isa isa) {
  DISPATCH(return atso_conv_packed_size_avx512(g), return atso_conv_packed_size_avx2(g))
}

void atso_conv_pack(const atso_conv_shape *g, atso_isa isa, const float *weight, float *packed) {
  DISPATCH(atso_conv_pack_avx512(g, weight, packed); return,
           atso_conv_pack_avx2(g, weight, packed); return)
}

void atso_conv_forward_rows(const atso_conv_shape *g, atso_isa isa, const float *x,
                            const float *packed, const float *bias, float *out,
                            float *statistics, int row_begin, int row_end) {
  DISPATCH(atso_conv_forward_rows_avx512(g, x, packed, bias, out, statistics, row_begin, row_end);
           return,
           atso_conv_forward_rows_avx2(g, x, packed, bias, out, statistics, row_begin, row_end);
           return)
}

void atso_conv_weight_gradient(const atso_conv_shape *g, atso_isa isa, const float *x,
                               const float *dy, float *dw, int tile_begin, int tile_end,
                               int row_begin, int row_end) {
  DISPATCH(atso_conv_weight_gradient_avx512(g, x, dy, dw, tile_begin, tile_end, row_begin,
                                            row_end);
           return,
           atso_conv_weight_gradient_avx2(g, x, dy, dw, tile_begin, tile_end, row_begin, row_end);
           return)
}

int atso_conv_weight_tiles(const atso_conv_shape *g, atso_isa isa) {
  DISPATCH(return atso_conv_weight_tiles_avx512(g), return atso_conv_weight_tiles_avx2(g))
}

double atso_fma_peak(atso_isa isa, double seconds) {
  DISPATCH(return atso_fma_peak_avx512(seconds), return atso_fma_peak_avx2(seconds))
}

#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
void atso_keep_freed_memory(void) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}
#else
void atso_keep_freed_memory(void) {}
#endif
