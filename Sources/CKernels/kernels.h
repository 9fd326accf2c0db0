// The per-instruction-set entry points behind dispatch.c.
#pragma once
#include <stdlib.h>
#include <string.h>

#include "CKernels.h"

double atso_seconds(void);

#define ATSO_DECLARE(suffix)                                                                  \
  size_t atso_conv_packed_size_##suffix(const atso_conv_shape *g);                            \
  void atso_conv_pack_##suffix(const atso_conv_shape *g, const float *weight, float *packed);  \
  void atso_conv_forward_rows_##suffix(const atso_conv_shape *g, const float *x,              \
                                       const float *packed, const float *bias, float *out,    \
                                       float *statistics, int row_begin, int row_end);        \
  void atso_conv_weight_gradient_##suffix(const atso_conv_shape *g, const float *x,           \
                                          const float *dy, float *dw, int tile_begin,        \
                                          int tile_end, int row_begin, int row_end);          \
  int atso_conv_weight_tiles_##suffix(const atso_conv_shape *g);                              \
  double atso_fma_peak_##suffix(double seconds);

ATSO_DECLARE(avx512)
ATSO_DECLARE(avx2)
