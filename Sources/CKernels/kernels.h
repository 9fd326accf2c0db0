// The per-instruction-set entry points behind dispatch.c.
#pragma once
#include <stdlib.h>
#include <string.h>

#include "CKernels.h"

double atso_seconds(void);

#define ATSO_DECLARE(suffix)                                                                   \
  size_t atso_conv_packed_size_##suffix(const atso_conv_shape *g, const int *output_channels,  \
                                        int outputs);                                          \
  void atso_conv_pack_##suffix(const atso_conv_shape *g, const float *weight,                  \
                               const int *input_channels, int ninputs,                         \
                               const int *output_channels, int outputs, float *packed);        \
  int atso_conv_row_group_##suffix(void);                                                      \
  size_t atso_conv_winograd_packed_size_##suffix(const atso_conv_shape *g,                    \
                                                 const int *output_channels, int outputs);     \
  void atso_conv_winograd_pack_##suffix(const atso_conv_shape *g, const float *weight,         \
                                        const int *output_channels, int outputs,               \
                                        float *packed);                                        \
  void atso_conv_winograd_rows_##suffix(const atso_conv_shape *g, const atso_conv_input *inputs,\
                                        int ninputs, const float *packed,                       \
                                        const atso_conv_epilogue *epilogue,                     \
                                        const atso_conv_output *outputs, int noutputs,          \
                                        int row_begin, int row_end);                            \
  void atso_conv_forward_rows_##suffix(const atso_conv_shape *g, const atso_conv_input *inputs, \
                                       int ninputs, const float *packed,                        \
                                       const atso_conv_epilogue *epilogue,                      \
                                       const atso_conv_output *outputs, int noutputs,           \
                                       int row_begin, int row_end);                             \
  void atso_conv_weight_gradient_##suffix(const atso_conv_shape *g,                             \
                                          const atso_conv_input *inputs, int ninputs,           \
                                          int min_tiles, const float *dy, float *dw,            \
                                          int tile_begin, int tile_end, int row_begin,          \
                                          int row_end);                                         \
  int atso_conv_weight_tiles_##suffix(const atso_conv_shape *g, const atso_conv_input *inputs,  \
                                      int ninputs, int min_tiles);                              \
  double atso_fma_peak_##suffix(double seconds);

ATSO_DECLARE(avx512)
ATSO_DECLARE(avx2)

// The channel-wise kernels of elementwise_template.h, per build.
#define ATSO_DECLARE_ELEMENTWISE(suffix)                                                        \
  void atso_affine_channels_##suffix(const float *z, float *y, const float *a, const float *b, \
                                     int c, long r0, long r1, int relu);                       \
  void atso_channel_moments_##suffix(const float *x, int c, long r0, long r1,                  \
                                     const float *shift, float *s1, float *s2);                \
  void atso_bn_backward_sums_##suffix(const float *dy, const float *y, const float *x,         \
                                      const float *mean, const float *inv, int c, long r0,     \
                                      long r1, float *s1, float *s2);                          \
  void atso_bn_backward_apply_##suffix(const float *dy, const float *y, const float *x,        \
                                       const float *mean, const float *k1, const float *k2,    \
                                       const float *k3, float *dx, int c, long r0, long r1);   \
  void atso_copy_channels_##suffix(const float *src, int src_c, int src_offset, float *dst,    \
                                   int dst_c, int dst_offset, int count, long p0, long p1);    \
  void atso_max_pool_rows_##suffix(const float *x, int h, int w, int c, int size, int stride,  \
                                   int out_h, int out_w, float *out, int32_t *argmax,          \
                                   long row0, long row1);                                      \
  void atso_resize_rows_##suffix(const float *x, int h, int w, int c, int height, int width,   \
                                 const int32_t *ty0, const int32_t *ty1, const float *wy0,     \
                                 const float *wy1, const int32_t *tx0, const int32_t *tx1,     \
                                 const float *wx0, const float *wx1, float *out, long row0,    \
                                 long row1);                                                   \
  void atso_resize_backward_image_##suffix(                                                    \
      const float *dy, int h, int w, int c, int height, int width, const int32_t *ty0,         \
      const int32_t *ty1, const float *wy0, const float *wy1, const int32_t *tx0,              \
      const int32_t *tx1, const float *wx0, const float *wx1, float *dx, long b, int c0,       \
      int c1);                                                                                \
  void atso_exp_inplace_##suffix(float *x, long n);

ATSO_DECLARE_ELEMENTWISE(avx512)
ATSO_DECLARE_ELEMENTWISE(avx2)
ATSO_DECLARE_ELEMENTWISE(portable)
