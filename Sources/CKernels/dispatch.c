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
    if (strcasecmp(limit, "portable") == 0 || strcasecmp(limit, "none") == 0) isa = ATSO_ISA_NONE;
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

size_t atso_conv_packed_size(const atso_conv_shape *g, atso_isa isa, const int *output_channels,
                             int outputs) {
  DISPATCH(return atso_conv_packed_size_avx512(g, output_channels, outputs),
           return atso_conv_packed_size_avx2(g, output_channels, outputs))
}

void atso_conv_pack(const atso_conv_shape *g, atso_isa isa, const float *weight,
                    const int *input_channels, int ninputs, const int *output_channels,
                    int outputs, float *packed) {
  DISPATCH(atso_conv_pack_avx512(g, weight, input_channels, ninputs, output_channels, outputs,
                                 packed);
           return,
           atso_conv_pack_avx2(g, weight, input_channels, ninputs, output_channels, outputs,
                               packed);
           return)
}

int atso_conv_winograd_applies(const atso_conv_shape *g, atso_isa isa) {
  if (!(g->r == 3 && g->s == 3 && g->stride == 1 && g->dilation == 1 && g->padding == 1))
    return 0;
  // Where the transforms cost less than the 2.25 times fewer products save, as measured on a
  // Zen 5 (the reference U-Net's layers, batch 8): with AVX-512, from 32 output and 16 input
  // channels (16 output channels are one register, whose 16 small GEMMs cost too much); with
  // AVX2, from 32 input or 32 output channels.
  if (isa == ATSO_ISA_AVX512) return g->k >= 32 && g->c >= 16;
  if (isa == ATSO_ISA_AVX2) return g->c >= 32 || (g->k >= 32 && g->c >= 16);
  return 0;
}

size_t atso_conv_winograd_packed_size(const atso_conv_shape *g, atso_isa isa,
                                      const int *output_channels, int outputs) {
  DISPATCH(return atso_conv_winograd_packed_size_avx512(g, output_channels, outputs),
           return atso_conv_winograd_packed_size_avx2(g, output_channels, outputs))
}

void atso_conv_winograd_pack(const atso_conv_shape *g, atso_isa isa, const float *weight,
                             const int *output_channels, int outputs, float *packed) {
  DISPATCH(atso_conv_winograd_pack_avx512(g, weight, output_channels, outputs, packed); return,
           atso_conv_winograd_pack_avx2(g, weight, output_channels, outputs, packed); return)
}

void atso_conv_winograd_rows(const atso_conv_shape *g, atso_isa isa,
                             const atso_conv_input *inputs, int ninputs, const float *packed,
                             const atso_conv_epilogue *epilogue, const atso_conv_output *outputs,
                             int noutputs, int row_begin, int row_end) {
  DISPATCH(atso_conv_winograd_rows_avx512(g, inputs, ninputs, packed, epilogue, outputs,
                                          noutputs, row_begin, row_end);
           return,
           atso_conv_winograd_rows_avx2(g, inputs, ninputs, packed, epilogue, outputs, noutputs,
                                        row_begin, row_end);
           return)
}

int atso_conv_row_group(atso_isa isa) {
  DISPATCH(return atso_conv_row_group_avx512(), return atso_conv_row_group_avx2())
}

void atso_conv_forward_rows(const atso_conv_shape *g, atso_isa isa, const atso_conv_input *inputs,
                            int ninputs, const float *packed, const atso_conv_epilogue *epilogue,
                            const atso_conv_output *outputs, int noutputs, int row_begin,
                            int row_end) {
  DISPATCH(atso_conv_forward_rows_avx512(g, inputs, ninputs, packed, epilogue, outputs, noutputs,
                                         row_begin, row_end);
           return,
           atso_conv_forward_rows_avx2(g, inputs, ninputs, packed, epilogue, outputs, noutputs,
                                       row_begin, row_end);
           return)
}

void atso_conv_weight_gradient(const atso_conv_shape *g, atso_isa isa,
                               const atso_conv_input *inputs, int ninputs, int min_tiles,
                               const float *dy, float *dw, int tile_begin, int tile_end,
                               int row_begin, int row_end) {
  DISPATCH(atso_conv_weight_gradient_avx512(g, inputs, ninputs, min_tiles, dy, dw, tile_begin,
                                            tile_end, row_begin, row_end);
           return,
           atso_conv_weight_gradient_avx2(g, inputs, ninputs, min_tiles, dy, dw, tile_begin,
                                          tile_end, row_begin, row_end);
           return)
}

int atso_conv_weight_tiles(const atso_conv_shape *g, atso_isa isa, const atso_conv_input *inputs,
                           int ninputs, int min_tiles) {
  DISPATCH(return atso_conv_weight_tiles_avx512(g, inputs, ninputs, min_tiles),
           return atso_conv_weight_tiles_avx2(g, inputs, ninputs, min_tiles))
}

double atso_fma_peak(atso_isa isa, double seconds) {
  DISPATCH(return atso_fma_peak_avx512(seconds), return atso_fma_peak_avx2(seconds))
}

#define EW(name, args)                          \
  switch (isa) {                                \
    case ATSO_ISA_AVX512: name##_avx512 args; return; \
    case ATSO_ISA_AVX2: name##_avx2 args; return;     \
    default: name##_portable args; return;      \
  }

void atso_affine_channels(atso_isa isa, const float *z, float *y, const float *a, const float *b,
                          int c, long r0, long r1, int relu) {
  EW(atso_affine_channels, (z, y, a, b, c, r0, r1, relu))
}

void atso_channel_moments(atso_isa isa, const float *x, int c, long r0, long r1,
                          const float *shift, float *s1, float *s2) {
  EW(atso_channel_moments, (x, c, r0, r1, shift, s1, s2))
}

void atso_bn_backward_sums(atso_isa isa, const float *dy, const float *y, const float *x,
                           const float *mean, const float *inv, int c, long r0, long r1,
                           float *s1, float *s2) {
  EW(atso_bn_backward_sums, (dy, y, x, mean, inv, c, r0, r1, s1, s2))
}

void atso_bn_backward_apply(atso_isa isa, const float *dy, const float *y, const float *x,
                            const float *mean, const float *k1, const float *k2, const float *k3,
                            float *dx, int c, long r0, long r1) {
  EW(atso_bn_backward_apply, (dy, y, x, mean, k1, k2, k3, dx, c, r0, r1))
}

void atso_copy_channels(atso_isa isa, const float *src, int src_c, int src_offset, float *dst,
                        int dst_c, int dst_offset, int count, long p0, long p1) {
  EW(atso_copy_channels, (src, src_c, src_offset, dst, dst_c, dst_offset, count, p0, p1))
}

void atso_max_pool_rows(atso_isa isa, const float *x, int h, int w, int c, int size, int stride,
                        int out_h, int out_w, float *out, int32_t *argmax, long row0, long row1) {
  EW(atso_max_pool_rows, (x, h, w, c, size, stride, out_h, out_w, out, argmax, row0, row1))
}

void atso_resize_rows(atso_isa isa, const float *x, int h, int w, int c, int height, int width,
                      const int32_t *ty0, const int32_t *ty1, const float *wy0, const float *wy1,
                      const int32_t *tx0, const int32_t *tx1, const float *wx0, const float *wx1,
                      float *out, long row0, long row1) {
  EW(atso_resize_rows,
     (x, h, w, c, height, width, ty0, ty1, wy0, wy1, tx0, tx1, wx0, wx1, out, row0, row1))
}

void atso_resize_backward_image(atso_isa isa, const float *dy, int h, int w, int c, int height,
                                int width, const int32_t *ty0, const int32_t *ty1,
                                const float *wy0, const float *wy1, const int32_t *tx0,
                                const int32_t *tx1, const float *wx0, const float *wx1, float *dx,
                                long b, int c0, int c1) {
  EW(atso_resize_backward_image,
     (dy, h, w, c, height, width, ty0, ty1, wy0, wy1, tx0, tx1, wx0, wx1, dx, b, c0, c1))
}

void atso_exp_inplace(atso_isa isa, float *x, long n) { EW(atso_exp_inplace, (x, n)) }

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
