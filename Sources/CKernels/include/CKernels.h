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
/// environment variable ATSO_KERNEL_ISA set to "avx2" or "none", at most that one.
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

/// Floats of the packed weights of `shape` for `isa` (output channels padded to whole vectors).
size_t atso_conv_packed_size(const atso_conv_shape *shape, atso_isa isa);
/// Packs `weight` ([r][s][c][k], row-major) for atso_conv_forward_rows: blocks of up to four
/// vectors of output channels, each [r][s][c][block width], zero-padded past k.
void atso_conv_pack(const atso_conv_shape *shape, atso_isa isa, const float *weight,
                    float *packed);

/// Forward convolution of output rows [row_begin, row_end) (row = b * out_h + oy):
/// out[b][oy][ox][0..<k] = bias + sum over ky, kx, ci of x[...] * w[ky][kx][ci][...], zero
/// outside the image. Overwrites those rows of `out` ([n][out_h][out_w][k]). `bias` ([k]) may be
/// NULL. Allocates a few padded input rows (malloc) for the duration of the call.
/// `statistics` (NULL, or [rows][2][k] for all n * out_h rows) receives, per output row, the
/// sums of the outputs and of their squares per channel (for batch normalisation).
void atso_conv_forward_rows(const atso_conv_shape *shape, atso_isa isa, const float *x,
                            const float *packed, const float *bias, float *out,
                            float *statistics, int row_begin, int row_end);

/// The weight gradient of a convolution, for weight tiles [tile_begin, tile_end) out of
/// atso_conv_weight_tiles(shape, isa), summing over output rows [row_begin, row_end)
/// (row = b * out_h + oy):
/// dw[ky][kx][ci][co] += sum over pixels of x[b][iy][ix][ci] * dy[b][oy][ox][co].
/// `x` is the unpadded input. Accumulates into `dw` ([r][s][c][k]); each tile's sum runs over
/// the rows and pixels in order, so the result does not depend on how tiles are split among
/// callers.
void atso_conv_weight_gradient(const atso_conv_shape *shape, atso_isa isa, const float *x,
                               const float *dy, float *dw, int tile_begin, int tile_end,
                               int row_begin, int row_end);
/// The number of weight tiles of atso_conv_weight_gradient.
int atso_conv_weight_tiles(const atso_conv_shape *shape, atso_isa isa);

/// Measures the float FMA rate of one thread on registers only (no memory), for `seconds`:
/// 16 independent chains of fused multiply-adds on `isa`'s widest registers. Returns FLOP/s
/// (2 per lane per FMA). Run one per core at once for the machine's limit.
double atso_fma_peak(atso_isa isa, double seconds);

/// Makes glibc's malloc keep freed memory for reuse: large blocks come from the heap instead of
/// fresh mmap()s (M_MMAP_MAX = 0) and free memory at its top is kept up to 2 GiB
/// (M_TRIM_THRESHOLD). A training step allocates and frees the same large tensors every step;
/// without this, each step page-faults (and the kernel zeroes) all of them again. No effect off
/// glibc. Idempotent.
void atso_keep_freed_memory(void);
