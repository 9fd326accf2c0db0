#pragma once
// Convolution kernels with AVX-512 and AVX2 + FMA code paths, chosen at run time from cpuid.
//
// Every function is single-threaded and deterministic: it computes its outputs in one fixed
// order that depends on the sizes and the instruction set only. The Swift side (Tensor) splits
// the work into fixed pieces, runs them on its workers and validates the shapes.
#include <stddef.h>
#include <stdint.h>

/// An instruction set the kernels are compiled for.
typedef enum {
  /// No vector kernels here (no AVX2 + FMA): callers use their portable path.
  ATSO_ISA_NONE = 0,
  /// AVX2 + FMA, 256-bit registers (8 floats), 16 of them.
  ATSO_ISA_AVX2 = 1,
  /// AVX-512F, 512-bit registers (16 floats), 32 of them.
  ATSO_ISA_AVX512 = 2,
} atso_isa;

/// The best instruction set this CPU and operating system support (cpuid, once). With the
/// environment variable ATSO_KERNEL_ISA set to "avx2" or "portable", at most that one.
atso_isa atso_best_isa(void);
/// Whether this CPU can run `isa`'s kernels.
int atso_isa_supported(atso_isa isa);
/// Floats per vector register of `isa` (16, 8; 0 for none).
int atso_isa_vector_floats(atso_isa isa);

/// The sizes of a convolution over NHWC tensors (zero padding on all four sides).
typedef struct {
  int n, h, w, c;        // input images
  int r, s, k;           // kernel height, width, output channels
  int stride, padding, dilation;
  int out_h, out_w;      // (h + 2 * padding - dilation * (r - 1) - 1) / stride + 1, likewise w
} atso_conv_shape;

/// One input of a convolution. The input channels of a convolution are the concatenation of
/// its inputs' channels (each [n][h][w][channels]), in order; shape->c is their sum.
typedef struct {
  const float *data;
  int channels;
} atso_conv_input;

/// One output of a convolution: its output channels, in order, are split among its outputs
/// (each [n][out_h][out_w][channels]); shape->k is their sum.
typedef struct {
  float *data;
  int channels;
} atso_conv_output;

/// Floats of the packed weights of `shape` for `isa` and outputs of `output_channels` channels.
size_t atso_conv_packed_size(const atso_conv_shape *shape, atso_isa isa,
                             const int *output_channels, int outputs);
/// Packs `weight` ([r][s][c][k], row-major) for atso_conv_forward_rows with inputs of
/// `input_channels` channels: per output, blocks of up to four vectors of its channels, each
/// [r][input][s][input's channel][block width], zero-padded past the output's channels.
void atso_conv_pack(const atso_conv_shape *shape, atso_isa isa, const float *weight,
                    const int *input_channels, int ninputs, const int *output_channels,
                    int outputs, float *packed);
/// atso_conv_forward_rows processes rows in aligned groups of this many rows: split rows among
/// callers at multiples of it, so that results (the statistics' summation order) do not depend
/// on the split.
int atso_conv_row_group(atso_isa isa);

/// What the forward kernel does with its sums before and after storing them. Every pointer
/// may be NULL.
typedef struct {
  /// [k]: added to the sums.
  const float *bias;
  /// Stores max(0, value) instead of the value.
  int relu;
  /// [n * out_h][2][k]: per output row, the sums over its pixels of (value - shift) and of
  /// their squares, per channel (for batch normalisation).
  float *statistics;
  /// [k]: subtracted before the statistics (a running mean, so that they do not cancel).
  const float *shift;
} atso_conv_epilogue;

/// Forward convolution of output rows [row_begin, row_end) (row = b * out_h + oy):
/// out[b][oy][ox][0..<k] = sum over ky, kx, ci of x[...] * w[ky][kx][ci][...], zero outside the
/// image, x being the inputs side by side, then the epilogue (NULL: none). Overwrites those rows
/// of the outputs. Allocates a few padded input rows (malloc) for the duration of the call.
void atso_conv_forward_rows(const atso_conv_shape *shape, atso_isa isa,
                            const atso_conv_input *inputs, int ninputs, const float *packed,
                            const atso_conv_epilogue *epilogue, const atso_conv_output *outputs,
                            int noutputs, int row_begin, int row_end);

/// Whether the Winograd F(2x2, 3x3) kernels of `isa` apply and pay: a 3x3 kernel, stride 1,
/// dilation 1, padding 1, and enough channels (see dispatch.c).
int atso_conv_winograd_applies(const atso_conv_shape *shape, atso_isa isa);
/// Floats of the Winograd weights of `shape` for `isa` and outputs of `output_channels`
/// channels (16 transformed components per weight).
size_t atso_conv_winograd_packed_size(const atso_conv_shape *shape, atso_isa isa,
                                      const int *output_channels, int outputs);
/// Packs `weight` ([3][3][c][k]) as G w G^T: per output, per block of its channels,
/// [16][c][block width].
void atso_conv_winograd_pack(const atso_conv_shape *shape, atso_isa isa, const float *weight,
                             const int *output_channels, int outputs, float *packed);
/// The forward convolution by Winograd F(2x2, 3x3) of the 2x2 output tiles whose first row
/// (b * out_h + 2 ty) lies in [row_begin, row_end), then the epilogue, into the outputs (as
/// atso_conv_forward_rows). Any split of the rows among callers gives the same results; they
/// differ from atso_conv_forward_rows's in the last bits (relative 1e-6). Allocates a scratch.
void atso_conv_winograd_rows(const atso_conv_shape *shape, atso_isa isa,
                             const atso_conv_input *inputs, int ninputs, const float *packed,
                             const atso_conv_epilogue *epilogue, const atso_conv_output *outputs,
                             int noutputs, int row_begin, int row_end);

/// The weight gradient of a convolution, for weight tiles [tile_begin, tile_end) out of
/// atso_conv_weight_tiles (called with the same `min_tiles`: input channels are split into more,
/// smaller tiles until there are at least that many, when possible), summing over output rows
/// [row_begin, row_end) (row = b * out_h + oy):
/// dw[ky][kx][ci][co] += sum over pixels of x[b][iy][ix][ci] * dy[b][oy][ox][co], x being the
/// (unpadded) inputs side by side. Accumulates into `dw` ([r][s][c][k]); every scalar of dw is
/// summed over the rows and pixels in order, so the result depends neither on how tiles are
/// split among callers nor on `min_tiles`.
void atso_conv_weight_gradient(const atso_conv_shape *shape, atso_isa isa,
                               const atso_conv_input *inputs, int ninputs, int min_tiles,
                               const float *dy, float *dw, int tile_begin, int tile_end,
                               int row_begin, int row_end);
/// The number of weight tiles of atso_conv_weight_gradient for `min_tiles`.
int atso_conv_weight_tiles(const atso_conv_shape *shape, atso_isa isa,
                           const atso_conv_input *inputs, int ninputs, int min_tiles);

/// Measures the float FMA rate of one thread on registers only (no memory), for `seconds`:
/// 16 independent chains of fused multiply-adds on `isa`'s widest registers. Returns FLOP/s
/// (2 per lane per FMA). Run one per core at once for the machine's limit.
double atso_fma_peak(atso_isa isa, double seconds);

/// Channel-wise kernels on [rows][c] (NHWC) tensors, for any `isa` (ATSO_ISA_NONE runs the
/// baseline build). Single-threaded over the given range; sums run over the rows in order.

/// y = z * a + b per channel, then max(0, y) if `relu`, for rows [r0, r1).
void atso_affine_channels(atso_isa isa, const float *z, float *y, const float *a, const float *b,
                          int c, long r0, long r1, int relu);
/// Accumulates s1[j] += x - shift[j] and (if s2) s2[j] += (x - shift[j])^2 over rows [r0, r1);
/// `shift` may be NULL (0).
void atso_channel_moments(atso_isa isa, const float *x, int c, long r0, long r1,
                          const float *shift, float *s1, float *s2);
/// Batch-norm backward sums over rows [r0, r1), with dz = dy, or 0 where y <= 0 if `y` (the
/// post-ReLU output) is given: accumulates s1[j] += dz and s2[j] += dz * (x - mean) * inv.
void atso_bn_backward_sums(atso_isa isa, const float *dy, const float *y, const float *x,
                           const float *mean, const float *inv, int c, long r0, long r1,
                           float *s1, float *s2);
/// dx = k1 * dz + k2 * (x - mean) + k3 per channel for rows [r0, r1) (dz as above).
void atso_bn_backward_apply(atso_isa isa, const float *dy, const float *y, const float *x,
                            const float *mean, const float *k1, const float *k2, const float *k3,
                            float *dx, int c, long r0, long r1);
/// dst[p][dst_offset + j] = src[p][src_offset + j] for j < count and pixels [p0, p1).
void atso_copy_channels(atso_isa isa, const float *src, int src_c, int src_offset, float *dst,
                        int dst_c, int dst_offset, int count, long p0, long p1);
/// Max pooling of output rows [row0, row1) (row = b * out_h + oy) of x ([n][h][w][c]) with
/// size x size windows: the maximum and (unless `argmax` is NULL) the offset in x of the first
/// maximum, per output.
void atso_max_pool_rows(atso_isa isa, const float *x, int h, int w, int c, int size, int stride,
                        int out_h, int out_w, float *out, int32_t *argmax, long row0, long row1);
/// Bilinear resizing of output rows [row0, row1) (row = b * height + oy) with per-row taps
/// (ty0, ty1) and weights (wy0, wy1) and per-column taps and weights.
void atso_resize_rows(atso_isa isa, const float *x, int h, int w, int c, int height, int width,
                      const int32_t *ty0, const int32_t *ty1, const float *wy0, const float *wy1,
                      const int32_t *tx0, const int32_t *tx1, const float *wx0, const float *wx1,
                      float *out, long row0, long row1);
/// The gradient of atso_resize_rows for image b, channels [c0, c1): accumulates into dx.
void atso_resize_backward_image(atso_isa isa, const float *dy, int h, int w, int c, int height,
                                int width, const int32_t *ty0, const int32_t *ty1,
                                const float *wy0, const float *wy1, const int32_t *tx0,
                                const int32_t *tx1, const float *wx0, const float *wx1, float *dx,
                                long b, int c0, int c1);

/// x[i] = e^x[i] for i < n (a polynomial after range reduction, relative error below 2e-7;
/// inputs clamped to [-87.33, 88.37]).
void atso_exp_inplace(atso_isa isa, float *x, long n);

/// Makes glibc's malloc keep freed memory for reuse: large blocks come from the heap instead of
/// fresh mmap()s (M_MMAP_MAX = 0) and free memory at its top is kept up to 2 GiB
/// (M_TRIM_THRESHOLD). A training step allocates and frees the same large tensors every step;
/// without this, each step page-faults (and the kernel zeroes) all of them again. No effect off
/// glibc. Idempotent.
void atso_keep_freed_memory(void);
