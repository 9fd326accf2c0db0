// Channel-wise kernels on [rows][c] (NHWC) tensors, written as plain loops over the channels
// and compiled once per instruction set (the loops vectorize across channels; every sum runs
// over the rows in order, so vectorizing does not change it). ISA_NAME names the build.

// y = z * a + b per channel (then max(0, y) if relu), rows [r0, r1).
void ISA_NAME(atso_affine_channels)(const float *restrict z, float *restrict y,
                                    const float *restrict a, const float *restrict b, int c,
                                    long r0, long r1, int relu) {
  for (long r = r0; r < r1; r++) {
    const float *zr = z + r * c;
    float *yr = y + r * c;
    if (relu)
      for (int j = 0; j < c; j++) {
        float v = zr[j] * a[j] + b[j];
        yr[j] = v > 0 ? v : 0;
      }
    else
      for (int j = 0; j < c; j++) yr[j] = zr[j] * a[j] + b[j];
  }
}

// The reductions below keep their sums in registers: channels in blocks of LANES, each block
// summed over all rows of the range (rows in order), then added to the caller's sums. A block
// reads one slice of every row, so callers pass ranges that fit in the cache (a few hundred
// rows). LANES is 16 (4 for the baseline build, whose 16 registers hold fewer floats). Full
// blocks have their own accumulators (a fixed trip count, so that the compiler keeps
// them in registers); the partial last block runs the same loop with a runtime count.
#ifndef LANES
#define LANES 16
#endif

#define MOMENTS_BLOCK(count)                                        \
  {                                                                 \
    float a1[LANES] = {0}, a2[LANES] = {0}, sh[LANES] = {0};        \
    if (shift)                                                      \
      for (int l = 0; l < (count); l++) sh[l] = shift[j0 + l];      \
    for (long r = r0; r < r1; r++) {                                \
      const float *xr = x + r * c + j0;                             \
      for (int l = 0; l < (count); l++) {                           \
        float d = xr[l] - sh[l];                                    \
        a1[l] += d;                                                 \
        a2[l] += d * d;                                             \
      }                                                             \
    }                                                               \
    for (int l = 0; l < (count); l++) {                             \
      s1[j0 + l] += a1[l];                                          \
      if (s2) s2[j0 + l] += a2[l];                                  \
    }                                                               \
  }

// s1[j] += x - shift, s2[j] += (x - shift)^2 over rows [r0, r1); shift and s2 may be NULL.
void ISA_NAME(atso_channel_moments)(const float *restrict x, int c, long r0, long r1,
                                    const float *restrict shift, float *restrict s1,
                                    float *restrict s2) {
  int j0 = 0;
  for (; j0 + LANES <= c; j0 += LANES) MOMENTS_BLOCK(LANES)
  if (j0 < c) {
    const int n = c - j0;
    MOMENTS_BLOCK(n)
  }
}

#define BN_SUMS_BLOCK(count)                                        \
  {                                                                 \
    float a1[LANES] = {0}, a2[LANES] = {0}, m[LANES] = {0}, iv[LANES] = {0}; \
    for (int l = 0; l < (count); l++) {                             \
      m[l] = mean[j0 + l];                                          \
      iv[l] = inv[j0 + l];                                          \
    }                                                               \
    for (long r = r0; r < r1; r++) {                                \
      const float *dyr = dy + r * c + j0, *xr = x + r * c + j0;     \
      if (y) {                                                      \
        const float *yr = y + r * c + j0;                           \
        for (int l = 0; l < (count); l++) {                         \
          float g = dyr[l], v = yr[l]; /* both loaded: a select */  \
          float dz = v > 0 ? g : 0;                                 \
          a1[l] += dz;                                              \
          a2[l] += dz * ((xr[l] - m[l]) * iv[l]);                   \
        }                                                           \
      } else {                                                      \
        for (int l = 0; l < (count); l++) {                         \
          a1[l] += dyr[l];                                          \
          a2[l] += dyr[l] * ((xr[l] - m[l]) * iv[l]);               \
        }                                                           \
      }                                                             \
    }                                                               \
    for (int l = 0; l < (count); l++) {                             \
      s1[j0 + l] += a1[l];                                          \
      s2[j0 + l] += a2[l];                                          \
    }                                                               \
  }

// Batch-norm backward sums over rows [r0, r1): with dz = dy (or 0 where y <= 0 if y is given),
// s1[j] += dz, s2[j] += dz * (x - mean) * inv.
void ISA_NAME(atso_bn_backward_sums)(const float *restrict dy, const float *restrict y,
                                     const float *restrict x, const float *restrict mean,
                                     const float *restrict inv, int c, long r0, long r1,
                                     float *restrict s1, float *restrict s2) {
  int j0 = 0;
  for (; j0 + LANES <= c; j0 += LANES) BN_SUMS_BLOCK(LANES)
  if (j0 < c) {
    const int n = c - j0;
    BN_SUMS_BLOCK(n)
  }
}

// dx = k1 * dz + k2 * (x - mean) + k3 per channel, rows [r0, r1) (dz as above).
void ISA_NAME(atso_bn_backward_apply)(const float *restrict dy, const float *restrict y,
                                      const float *restrict x, const float *restrict mean,
                                      const float *restrict k1, const float *restrict k2,
                                      const float *restrict k3, float *restrict dx, int c,
                                      long r0, long r1) {
  for (long r = r0; r < r1; r++) {
    const float *dyr = dy + r * c, *xr = x + r * c;
    float *dxr = dx + r * c;
    if (y) {
      const float *yr = y + r * c;
      for (int j = 0; j < c; j++) {
        float g = dyr[j], v = yr[j];  // both loaded: a select, not a branch
        float dz = v > 0 ? g : 0;
        dxr[j] = k1[j] * dz + k2[j] * (xr[j] - mean[j]) + k3[j];
      }
    } else {
      for (int j = 0; j < c; j++) dxr[j] = k1[j] * dyr[j] + k2[j] * (xr[j] - mean[j]) + k3[j];
    }
  }
}

// Copies `count` channels of every pixel in [p0, p1): dst[p][dst_offset + j] = src[p][src_offset
// + j], with src_c / dst_c channels per pixel (concatenation and its split).
__attribute__((no_builtin("memcpy"))) void ISA_NAME(atso_copy_channels)(const float *restrict src, int src_c, int src_offset,
                                  float *restrict dst, int dst_c, int dst_offset, int count,
                                  long p0, long p1) {
  for (long p = p0; p < p1; p++) {
    const float *s = src + p * src_c + src_offset;
    float *d = dst + p * dst_c + dst_offset;
    for (int j = 0; j < count; j++) d[j] = s[j];
  }
}

// Max pooling of output rows [row0, row1) (row = b * out_h + oy), size x size windows with
// `stride`: out and (unless argmax is NULL) the offset of the first maximum in x, per output.
void ISA_NAME(atso_max_pool_rows)(const float *restrict x, int h, int w, int c, int size,
                                  int stride, int out_h, int out_w, float *restrict out,
                                  int32_t *restrict argmax, long row0, long row1) {
  for (long row = row0; row < row1; row++) {
    const long b = row / out_h, oy = row % out_h;
    for (int ox = 0; ox < out_w; ox++) {
      float *o = out + (row * out_w + ox) * c;
      const long first = ((b * h + oy * stride) * w + (long)ox * stride) * c;
      for (int j = 0; j < c; j++) o[j] = x[first + j];
      if (argmax) {
        int32_t *a = argmax + (row * out_w + ox) * c;
        for (int j = 0; j < c; j++) a[j] = (int32_t)(first + j);
        for (int ky = 0; ky < size; ky++)
          for (int kx = 0; kx < size; kx++) {
            if (ky == 0 && kx == 0) continue;
            const long q = ((b * h + oy * stride + ky) * w + (long)ox * stride + kx) * c;
            for (int j = 0; j < c; j++) {
              float v = x[q + j], m = o[j];
              int better = v > m;  // ties keep the first maximum
              o[j] = better ? v : m;
              a[j] = better ? (int32_t)(q + j) : a[j];
            }
          }
      } else {
        for (int ky = 0; ky < size; ky++)
          for (int kx = 0; kx < size; kx++) {
            if (ky == 0 && kx == 0) continue;
            const long q = ((b * h + oy * stride + ky) * w + (long)ox * stride + kx) * c;
            for (int j = 0; j < c; j++) {
              float v = x[q + j], m = o[j];
              o[j] = v > m ? v : m;
            }
          }
      }
    }
  }
}

// Bilinear resizing of output rows [row0, row1) (row = b * height + oy): taps and weights per
// output row (ty0, ty1, wy0, wy1) and column (tx0, tx1, wx0, wx1).
void ISA_NAME(atso_resize_rows)(const float *restrict x, int h, int w, int c, int height,
                                int width, const int32_t *ty0, const int32_t *ty1,
                                const float *wy0, const float *wy1, const int32_t *tx0,
                                const int32_t *tx1, const float *wx0, const float *wx1,
                                float *restrict out, long row0, long row1) {
  for (long row = row0; row < row1; row++) {
    const long b = row / height, oy = row % height;
    const float *r0 = x + (b * h + ty0[oy]) * (long)w * c;
    const float *r1 = x + (b * h + ty1[oy]) * (long)w * c;
    const float a0 = wy0[oy], a1 = wy1[oy];
    for (int ox = 0; ox < width; ox++) {
      float *o = out + (row * width + ox) * c;
      const float *p00 = r0 + (long)tx0[ox] * c, *p01 = r0 + (long)tx1[ox] * c;
      const float *p10 = r1 + (long)tx0[ox] * c, *p11 = r1 + (long)tx1[ox] * c;
      const float b0 = wx0[ox], b1 = wx1[ox];
      for (int j = 0; j < c; j++)
        o[j] = a0 * (b0 * p00[j] + b1 * p01[j]) + a1 * (b0 * p10[j] + b1 * p11[j]);
    }
  }
}

// The gradient of atso_resize_rows for image b and channels [c0, c1): accumulates each output
// gradient into its four input taps, output rows in order.
void ISA_NAME(atso_resize_backward_image)(const float *restrict dy, int h, int w, int c,
                                          int height, int width, const int32_t *ty0,
                                          const int32_t *ty1, const float *wy0, const float *wy1,
                                          const int32_t *tx0, const int32_t *tx1,
                                          const float *wx0, const float *wx1, float *restrict dx,
                                          long b, int c0, int c1) {
  for (int oy = 0; oy < height; oy++) {
    float *r0 = dx + (b * h + ty0[oy]) * (long)w * c;
    float *r1 = dx + (b * h + ty1[oy]) * (long)w * c;
    const float a0 = wy0[oy], a1 = wy1[oy];
    for (int ox = 0; ox < width; ox++) {
      const float *g = dy + ((b * height + oy) * (long)width + ox) * c;
      float *p00 = r0 + (long)tx0[ox] * c, *p01 = r0 + (long)tx1[ox] * c;
      float *p10 = r1 + (long)tx0[ox] * c, *p11 = r1 + (long)tx1[ox] * c;
      const float w00 = a0 * wx0[ox], w01 = a0 * wx1[ox], w10 = a1 * wx0[ox],
                  w11 = a1 * wx1[ox];
      // The four taps may coincide (borders): accumulate them one after the other.
      for (int j = c0; j < c1; j++) p00[j] += w00 * g[j];
      for (int j = c0; j < c1; j++) p01[j] += w01 * g[j];
      for (int j = c0; j < c1; j++) p10[j] += w10 * g[j];
      for (int j = c0; j < c1; j++) p11[j] += w11 * g[j];
    }
  }
}

// e^x with a degree-6 polynomial on [-ln 2 / 2, ln 2 / 2] after x = n ln 2 + r (the constants of
// Cephes' expf; relative error below 2e-7). Inputs are clamped to [-87.33, 88.37], so the result
// is a normal float (the softmax never needs smaller values).
static inline float ISA_NAME(exp_poly)(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  float t = x * 1.44269504088896341f;
  float n = (float)(int32_t)(t + (t >= 0 ? 0.5f : -0.5f));
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// x[i] = e^x[i] for i < n.
void ISA_NAME(atso_exp_inplace)(float *restrict x, long n) {
  for (long i = 0; i < n; i++) x[i] = ISA_NAME(exp_poly)(x[i]);
}
