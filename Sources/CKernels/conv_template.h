// The convolution kernels, written once and compiled once per instruction set: the including
// file defines the vector macros below and ISA_NAME, then includes this file inside a
// `#pragma clang attribute` that enables the instruction set for every function.
//
//   vec, VLEN            the register type and its floats
//   V_ZERO() V_LOAD(p) V_STORE(p, a) V_SET1(x) V_FMA(a, b, c) = a * b + c (fused) V_ADD(a, b)
//   V_LOAD_N(p, n) V_STORE_N(p, a, n)   the first n floats (1...VLEN), zeros elsewhere
//   ACC_MAX              accumulator registers a tile may use; VMAX: vectors per block
//   FWD_CASES(X)         X(R, V) for every forward tile: R pixels x V vectors of channels
//   DW_CASES(X)          X(CI, V) for every weight-gradient tile: CI input channels x V vectors
//
// Tiles keep their accumulators in registers for the whole reduction; the loops over R, V and
// CI have constant trip counts after inlining, so the compiler unrolls them completely.

#define UNROLL _Pragma("clang loop unroll(full)")

// A run of the reduction of a forward tile: `c` channels read at x + pixel * pstep for each of
// the tile's pixels (pixel 0 being the tile's first), with weights w ([c][V * VLEN]).
typedef struct {
  const float *x;
  ptrdiff_t pstep;
  int c;
  const float *w;
} ISA_NAME(segment);

// Forward tile: R output pixels x V vectors of output channels, summing over the segments
// (taps and inputs); pixel r reads segment x + (first + r) * pstep.
//   out    the tile's first output; ostep = floats between its pixels' outputs
//   last   floats of the block's last vector that exist (1...VLEN)
//   e      bias, ReLU and statistics, their pointers at the block's first channel: the stored
//          value is max(0, sum + bias) with relu; stats (if not NULL) receives the sums of
//          (value - shift) over the tile's pixels and (at + k) of their squares
typedef struct {
  const float *bias, *shift;
  float *stats;
  ptrdiff_t k;
  int relu;
} ISA_NAME(epilogue);

static inline __attribute__((always_inline)) void ISA_NAME(fwd_tile)(
    const int R, const int V, const ISA_NAME(segment) *segments, int nsegments, ptrdiff_t first,
    float *out, ptrdiff_t ostep, int last, const ISA_NAME(epilogue) *e) {
  const float *bias = e->bias;
  float *stats = e->stats;
  const ptrdiff_t k = e->k;
  vec acc[ACC_MAX][VMAX];
  vec b0[VMAX];
  UNROLL for (int v = 0; v < V; v++) {
    if (!bias) b0[v] = V_ZERO();
    else if (v == V - 1) b0[v] = V_LOAD_N(bias + v * VLEN, last);
    else b0[v] = V_LOAD(bias + v * VLEN);
  }
  UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < V; v++) acc[r][v] = b0[v];
  for (int t = 0; t < nsegments; t++) {
    // Pixel r's input is base[r / 3] + (r % 3) * pstep: one pointer per three pixels, each
    // advanced by one channel per step, so that the addresses are independent (a single pointer
    // plus r * pstep makes the compiler chain the additions, which then bound the loop).
    const ptrdiff_t pstep = segments[t].pstep;
    const float *x = segments[t].x + first * pstep;
    const float *base[(ACC_MAX + 2) / 3];
    UNROLL for (int i = 0; i < (R + 2) / 3; i++) base[i] = x + 3 * i * pstep;
    const float *wt = segments[t].w;
    const int c = segments[t].c;
    for (int ci = 0; ci < c; ci++) {
      vec wv[VMAX];
      UNROLL for (int v = 0; v < V; v++) wv[v] = V_LOAD(wt + v * VLEN);
      wt += V * VLEN;
      UNROLL for (int r = 0; r < R; r++) {
        vec xb = V_SET1(*(base[r / 3] + (r % 3) * pstep));
        UNROLL for (int v = 0; v < V; v++) acc[r][v] = V_FMA(xb, wv[v], acc[r][v]);
      }
      // The empty asm makes each pointer opaque, so the compiler keeps them apart.
      UNROLL for (int i = 0; i < (R + 2) / 3; i++) {
        base[i] += 1;
        __asm__("" : "+r"(base[i]));
      }
    }
  }
  if (e->relu)
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < V; v++)
      acc[r][v] = V_MAX(acc[r][v], V_ZERO());
  UNROLL for (int r = 0; r < R; r++) {
    UNROLL for (int v = 0; v < V - 1; v++) V_STORE(out + r * ostep + v * VLEN, acc[r][v]);
    V_STORE_N(out + r * ostep + (V - 1) * VLEN, acc[r][V - 1], last);
  }
  if (stats) {
    UNROLL for (int v = 0; v < V; v++) {
      vec s = V_ZERO(), q = V_ZERO();
      const vec m = !e->shift         ? V_ZERO()
                    : v == V - 1      ? V_LOAD_N(e->shift + v * VLEN, last)
                                      : V_LOAD(e->shift + v * VLEN);
      UNROLL for (int r = 0; r < R; r++) {
        vec d = V_SUB(acc[r][v], m);
        s = V_ADD(s, d);
        q = V_FMA(d, d, q);
      }
      int n = v == V - 1 ? last : VLEN;
      V_STORE_N(stats + v * VLEN, V_ADD(V_LOAD_N(stats + v * VLEN, n), s), n);
      V_STORE_N(stats + k + v * VLEN, V_ADD(V_LOAD_N(stats + k + v * VLEN, n), q), n);
    }
  }
}

// Weight-gradient tile: CI input channels x V vectors of output channels of one tap, summed
// over `pixels` consecutive output pixels of one row.
//   x      input at the first pixel's tap position, channel ci0; xstep = stride * c
//   dy     output gradient at the first pixel, the block's first channel; dystep = k
//   dw     dw[tap][ci0][block's first channel], rows of dwstep = k floats; accumulates
static inline __attribute__((always_inline)) void ISA_NAME(dw_tile)(
    const int CI, const int V, const float *x, ptrdiff_t xstep, const float *dy, ptrdiff_t dystep,
    int pixels, float *dw, ptrdiff_t dwstep, int last) {
  vec acc[ACC_MAX][VMAX];
  UNROLL for (int i = 0; i < CI; i++) {
    UNROLL for (int v = 0; v < V - 1; v++) acc[i][v] = V_LOAD(dw + i * dwstep + v * VLEN);
    acc[i][V - 1] = V_LOAD_N(dw + i * dwstep + (V - 1) * VLEN, last);
  }
  for (int p = 0; p < pixels; p++) {
    vec g[VMAX];
    UNROLL for (int v = 0; v < V - 1; v++) g[v] = V_LOAD(dy + v * VLEN);
    g[V - 1] = V_LOAD_N(dy + (V - 1) * VLEN, last);
    UNROLL for (int i = 0; i < CI; i++) {
      vec xb = V_SET1(x[i]);
      UNROLL for (int v = 0; v < V; v++) acc[i][v] = V_FMA(xb, g[v], acc[i][v]);
    }
    x += xstep;
    dy += dystep;
  }
  UNROLL for (int i = 0; i < CI; i++) {
    UNROLL for (int v = 0; v < V - 1; v++) V_STORE(dw + i * dwstep + v * VLEN, acc[i][v]);
    V_STORE_N(dw + i * dwstep + (V - 1) * VLEN, acc[i][V - 1], last);
  }
}

static void ISA_NAME(fwd_dispatch)(int R, int V, const ISA_NAME(segment) *segments,
                                   int nsegments, ptrdiff_t first, float *out, ptrdiff_t ostep,
                                   int last, const ISA_NAME(epilogue) *e) {
  switch (V * 64 + R) {
#define X(R_, V_)                                                                        \
  case (V_)*64 + (R_):                                                                   \
    ISA_NAME(fwd_tile)(R_, V_, segments, nsegments, first, out, ostep, last, e);         \
    break;
    FWD_CASES(X)
#undef X
    default: __builtin_trap();
  }
}

static void ISA_NAME(dw_dispatch)(int CI, int V, const float *x, ptrdiff_t xstep,
                                  const float *dy, ptrdiff_t dystep, int pixels, float *dw,
                                  ptrdiff_t dwstep, int last) {
  switch (V * 64 + CI) {
#define X(CI_, V_)                                                                      \
  case (V_)*64 + (CI_):                                                                 \
    ISA_NAME(dw_tile)(CI_, V_, x, xstep, dy, dystep, pixels, dw, dwstep, last); \
    break;
    DW_CASES(X)
#undef X
    default: __builtin_trap();
  }
}

// Output-channel blocks: ceil(k / VLEN) vectors split into ceil(vectors / VMAX) blocks of
// nearly equal size (the first ones one vector larger).
static void ISA_NAME(block)(int k, int j, int *first_vector, int *vectors, int *blocks) {
  int nvec = (k + VLEN - 1) / VLEN;
  int nb = (nvec + VMAX - 1) / VMAX;
  int base = nvec / nb, extra = nvec % nb;
  if (blocks) *blocks = nb;
  if (first_vector) *first_vector = j * base + (j < extra ? j : extra);
  if (vectors) *vectors = base + (j < extra ? 1 : 0);
}

// The packed weights: per output, per block of its channels, [ky][input][kx][input's channel]
// rows of V * VLEN floats. The offset of (ky, input i, kx) in a block, in rows:
static ptrdiff_t ISA_NAME(weight_row)(const atso_conv_shape *g, int ky, int offset_i, int c_i,
                                      int kx) {
  return (ptrdiff_t)ky * g->s * g->c + (ptrdiff_t)g->s * offset_i + (ptrdiff_t)kx * c_i;
}

// Copies input row iy of image b, every input's channels side by side, into `dst` (a padded
// row of (w + 2p) pixels of c channels, zero in the padding).
__attribute__((no_builtin("memcpy"))) static void ISA_NAME(fill_row)(
    const atso_conv_shape *g, const atso_conv_input *inputs, int ninputs, int b, int iy,
    float *dst) {
  const int p = g->padding;
  memset(dst, 0, sizeof(float) * (size_t)p * g->c);
  memset(dst + (ptrdiff_t)(p + g->w) * g->c, 0, sizeof(float) * (size_t)p * g->c);
  float *d = dst + (ptrdiff_t)p * g->c;
  const ptrdiff_t pixel0 = ((ptrdiff_t)b * g->h + iy) * g->w;
  if (ninputs == 1) {
    memcpy(d, inputs[0].data + pixel0 * g->c, sizeof(float) * (size_t)g->w * g->c);
    return;
  }
  int offset = 0;
  for (int i = 0; i < ninputs; i++) {
    const int ci = inputs[i].channels;
    const float *src = inputs[i].data + pixel0 * ci;
    for (int x = 0; x < g->w; x++) {
      const float *s = src + (ptrdiff_t)x * ci;
      float *o = d + (ptrdiff_t)x * g->c + offset;
      for (int j = 0; j < ci; j++) o[j] = s[j];
    }
    offset += ci;
  }
}

// Whether the convolution reads its inputs in place: stride 1, dilation 1, "same" padding
// ((r - 1) / 2 and (s - 1) / 2) and rows wider than the padding. Output pixels whose window
// lies inside the row read the input rows directly; the p border columns of every row are
// gathered, a few rows at a time, into small zero-padded windows.
static int ISA_NAME(reads_in_place)(const atso_conv_shape *g) {
  return g->stride == 1 && g->dilation == 1 && 2 * g->padding == g->r - 1 &&
         2 * g->padding == g->s - 1 && g->w > 2 * g->padding;
}

// Rows are processed in groups of ACC_MAX rows (aligned to multiples of ACC_MAX); callers
// split rows at group boundaries, so that the border windows gathered across rows, and the
// order of the statistics, do not depend on the split.
#define ROW_GROUP ACC_MAX

static void ISA_NAME(forward_rows)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                   int ninputs, const float *packed,
                                   const atso_conv_epilogue *epilogue,
                                   const atso_conv_output *outputs, int noutputs, int row_begin,
                                   int row_end) {
  const float *bias = epilogue ? epilogue->bias : NULL;
  const float *shift = epilogue ? epilogue->shift : NULL;
  float *statistics = epilogue ? epilogue->statistics : NULL;
  const int relu = epilogue ? epilogue->relu : 0;
  const int p = g->padding;
  const int direct = ISA_NAME(reads_in_place)(g);
  // Otherwise, the input rows a tile reads are copied once into a small ring of zero-padded
  // rows (slot = input row % slots, which holds every row of one output row's window; the
  // inputs' channels side by side), and rows outside the image read a zero row.
  const int ring_rows = !direct && (p > 0 || ninputs > 1);
  const int wp = g->w + 2 * p;
  const ptrdiff_t pitch = (ptrdiff_t)(ring_rows ? wp : g->w) * g->c;
  const int slots = (g->r - 1) * g->dilation + 1;
  const ptrdiff_t window = (ptrdiff_t)g->r * g->s * g->c;  // one border pixel's window
  float *scratch = NULL;
  int slot_row[slots];
  if (ring_rows) {
    scratch = (float *)malloc(sizeof(float) * (size_t)(slots + 1) * pitch);
    if (!scratch) abort();
    memset(scratch + (ptrdiff_t)slots * pitch, 0, sizeof(float) * (size_t)pitch);
    for (int i = 0; i < slots; i++) slot_row[i] = -1;
  } else if (direct && p > 0) {
    scratch = (float *)malloc(sizeof(float) * (size_t)ROW_GROUP * window);
    if (!scratch) abort();
  }
  int offsets[ninputs];  // input i's first channel
  for (int i = 0, o = 0; i < ninputs; i++) {
    offsets[i] = o;
    o += inputs[i].channels;
  }
  if (statistics)
    memset(statistics + (ptrdiff_t)row_begin * 2 * g->k, 0,
           sizeof(float) * (size_t)(row_end - row_begin) * 2 * g->k);
  const int maxsegments = g->r * g->s * ninputs;
  ISA_NAME(segment) segments[maxsegments];
  ptrdiff_t wrows[maxsegments];  // each segment's first weight row in a block
  const float *rows[g->r];
  for (int row = row_begin; row < row_end; row++) {
    const int b = row / g->out_h, oy = row % g->out_h;
    // The segments of this output row, at output pixel 0; their weights (wrows) are set per
    // block below.
    int nsegments = 0;
    int ox_begin = 0, ox_end = g->out_w;
    if (direct) {
      ox_begin = p;
      ox_end = g->out_w - p;
      for (int ky = 0; ky < g->r; ky++) {
        const int iy = oy - p + ky;
        if (iy < 0 || iy >= g->h) continue;
        for (int i = 0; i < ninputs; i++) {
          const int ci = inputs[i].channels;
          wrows[nsegments] = ISA_NAME(weight_row)(g, ky, offsets[i], ci, 0);
          segments[nsegments++] = (ISA_NAME(segment)){
              inputs[i].data + (((ptrdiff_t)b * g->h + iy) * g->w - p) * ci, ci, g->s * ci, NULL};
        }
      }
    } else {
      for (int ky = 0; ky < g->r; ky++) {
        const int iy = oy * g->stride - p + ky * g->dilation;
        if (!ring_rows) {
          rows[ky] = inputs[0].data + ((ptrdiff_t)b * g->h + iy) * pitch;
        } else if (iy < 0 || iy >= g->h) {
          rows[ky] = scratch + (ptrdiff_t)slots * pitch;
        } else {
          const int slot = iy % slots;
          float *dst = scratch + (ptrdiff_t)slot * pitch;
          if (slot_row[slot] != b * g->h + iy) {
            ISA_NAME(fill_row)(g, inputs, ninputs, b, iy, dst);
            slot_row[slot] = b * g->h + iy;
          }
          rows[ky] = dst;
        }
        // With dilation 1 and one input the s taps of a kernel row read s * c consecutive
        // floats: one segment.
        if (g->dilation == 1 && ninputs == 1) {
          wrows[nsegments] = ISA_NAME(weight_row)(g, ky, 0, g->c, 0);
          segments[nsegments++] = (ISA_NAME(segment)){
              rows[ky], (ptrdiff_t)g->stride * g->c, g->s * g->c, NULL};
        } else {
          for (int i = 0; i < ninputs; i++)
            for (int kx = 0; kx < g->s; kx++) {
              wrows[nsegments] = ISA_NAME(weight_row)(g, ky, offsets[i], inputs[i].channels, kx);
              segments[nsegments++] = (ISA_NAME(segment)){
                  rows[ky] + (ptrdiff_t)kx * g->dilation * g->c + offsets[i],
                  (ptrdiff_t)g->stride * g->c, inputs[i].channels, NULL};
            }
        }
      }
    }
    float *srow = statistics ? statistics + (ptrdiff_t)row * 2 * g->k : NULL;
    const float *wout = packed;  // the packed weights of output o
    int kout = 0;                // output o's first channel
    for (int o = 0; o < noutputs; o++) {
      const int ko = outputs[o].channels;
      int nb;
      ISA_NAME(block)(ko, 0, NULL, NULL, &nb);
      const int nvec = (ko + VLEN - 1) / VLEN;
      const int tail = ko - (nvec - 1) * VLEN;
      float *orow = outputs[o].data + (ptrdiff_t)row * g->out_w * ko;
      for (int j = 0; j < nb; j++) {
        int first, v;
        ISA_NAME(block)(ko, j, &first, &v, NULL);
        const int rmax = ACC_MAX / v;
        const int last = j == nb - 1 ? tail : VLEN;
        const float *wblock = wout + (ptrdiff_t)g->r * g->s * g->c * VLEN * first;
        ISA_NAME(segment) local[maxsegments];
        for (int t = 0; t < nsegments; t++) {
          local[t] = segments[t];
          local[t].w = wblock + wrows[t] * v * VLEN;
        }
        const int k0 = kout + first * VLEN;
        const ISA_NAME(epilogue) e = {bias ? bias + k0 : NULL, shift ? shift + k0 : NULL,
                                      srow ? srow + k0 : NULL, g->k, relu};
        for (int ox = ox_begin; ox < ox_end; ox += rmax) {
          int r = ox_end - ox < rmax ? ox_end - ox : rmax;
          ISA_NAME(fwd_dispatch)(r, v, local, nsegments, ox, orow + (ptrdiff_t)ox * ko + first * VLEN,
                                 ko, last, &e);
        }
      }
      wout += (ptrdiff_t)g->r * g->s * g->c * VLEN * nvec;
      kout += ko;
    }
  }
  // The border columns of the rows read in place: for each column, rows in pieces of rmax
  // (within groups of ROW_GROUP rows), each pixel's window gathered with zeros outside.
  if (direct && p > 0) {
    for (int side = 0; side < 2; side++)
      for (int col = 0; col < p; col++) {
        const int ox = side == 0 ? col : g->out_w - p + col;
        const float *wout = packed;
        int kout = 0;
        for (int o = 0; o < noutputs; o++) {
          const int ko = outputs[o].channels;
          int nb;
          ISA_NAME(block)(ko, 0, NULL, NULL, &nb);
          const int nvec = (ko + VLEN - 1) / VLEN;
          const int tail = ko - (nvec - 1) * VLEN;
          for (int j = 0; j < nb; j++) {
            int first, v;
            ISA_NAME(block)(ko, j, &first, &v, NULL);
            const int rmax = ACC_MAX / v;
            const int last = j == nb - 1 ? tail : VLEN;
            const float *wblock = wout + (ptrdiff_t)g->r * g->s * g->c * VLEN * first;
            ISA_NAME(segment) wsegments[g->r * ninputs];
            int nw = 0;
            for (int ky = 0; ky < g->r; ky++)
              for (int i = 0; i < ninputs; i++)
                wsegments[nw++] = (ISA_NAME(segment)){
                    scratch + (ptrdiff_t)ky * g->s * g->c + (ptrdiff_t)g->s * offsets[i], window,
                    g->s * inputs[i].channels,
                    wblock + ISA_NAME(weight_row)(g, ky, offsets[i], inputs[i].channels, 0) * v *
                                 VLEN};
            const int k0 = kout + first * VLEN;
            for (int r0 = row_begin; r0 < row_end;) {
              const int group_end = (r0 / ROW_GROUP + 1) * ROW_GROUP;
              int n = rmax;
              if (r0 + n > row_end) n = row_end - r0;
              if (r0 + n > group_end) n = group_end - r0;
              // Pixel q's window: [ky][input][kx][channel], zero outside the image.
              for (int q = 0; q < n; q++) {
                const int rr = r0 + q, b = rr / g->out_h, oy = rr % g->out_h;
                float *win = scratch + (ptrdiff_t)q * window;
                for (int ky = 0; ky < g->r; ky++) {
                  const int iy = oy - p + ky;
                  for (int i = 0; i < ninputs; i++) {
                    const int ci = inputs[i].channels;
                    float *d = win + (ptrdiff_t)ky * g->s * g->c + (ptrdiff_t)g->s * offsets[i];
                    for (int kx = 0; kx < g->s; kx++, d += ci) {
                      const int ix = ox - p + kx;
                      if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                        memset(d, 0, sizeof(float) * (size_t)ci);
                      else
                        memcpy(d, inputs[i].data + (((ptrdiff_t)b * g->h + iy) * g->w + ix) * ci,
                               sizeof(float) * (size_t)ci);
                    }
                  }
                }
              }
              const ISA_NAME(epilogue) e = {
                  bias ? bias + k0 : NULL, shift ? shift + k0 : NULL,
                  statistics ? statistics + (ptrdiff_t)r0 * 2 * g->k + k0 : NULL, g->k, relu};
              ISA_NAME(fwd_dispatch)(
                  n, v, wsegments, nw, 0,
                  outputs[o].data + ((ptrdiff_t)r0 * g->out_w + ox) * ko + first * VLEN,
                  (ptrdiff_t)g->out_w * ko, last, &e);
              r0 += n;
            }
          }
          wout += (ptrdiff_t)g->r * g->s * g->c * VLEN * nvec;
          kout += ko;
        }
      }
  }
  free(scratch);
}

// Blocks of input channels of a weight tile: ceil(c / cimax) times `split`, at most one per
// four channels (split > 1 makes more, smaller tiles, so that more workers share a layer's
// weight gradient; every scalar of dw is still summed over the same pixels in the same order).
static int ISA_NAME(channel_blocks)(int c, int cimax, int split) {
  const int fewest = (c + cimax - 1) / cimax;  // blocks of at most cimax channels
  int n = fewest * split;
  const int most = c / 4 > fewest ? c / 4 : fewest;
  if (n > most) n = most;
  return n < 1 ? 1 : n;
}

// Weight tiles, in order: output-channel block j, then tap, then input, then block of that
// input's channels.
static int ISA_NAME(dw_tiles)(const atso_conv_shape *g, const atso_conv_input *inputs,
                              int ninputs, int split) {
  int nb, total = 0;
  ISA_NAME(block)(g->k, 0, NULL, NULL, &nb);
  for (int j = 0; j < nb; j++) {
    int v;
    ISA_NAME(block)(g->k, j, NULL, &v, NULL);
    const int cimax = ACC_MAX / v;
    for (int i = 0; i < ninputs; i++)
      total += g->r * g->s * ISA_NAME(channel_blocks)(inputs[i].channels, cimax, split);
  }
  return total;
}

// The smallest split (1, 2, 4 or 8) that gives at least `min_tiles` tiles, if any does.
static int ISA_NAME(dw_split)(const atso_conv_shape *g, const atso_conv_input *inputs,
                              int ninputs, int min_tiles) {
  int split = 1;
  while (split < 8 && ISA_NAME(dw_tiles)(g, inputs, ninputs, split) < min_tiles &&
         ISA_NAME(dw_tiles)(g, inputs, ninputs, 2 * split) > ISA_NAME(dw_tiles)(g, inputs, ninputs, split))
    split *= 2;
  return split;
}

static void ISA_NAME(weight_gradient)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                      int ninputs, int split, const float *dy, float *dw,
                                      int tile_begin, int tile_end, int row_begin, int row_end) {
  int nb;
  ISA_NAME(block)(g->k, 0, NULL, NULL, &nb);
  const int nvec = (g->k + VLEN - 1) / VLEN;
  const int tail = g->k - (nvec - 1) * VLEN;
  const int taps = g->r * g->s;
  for (int row = row_begin; row < row_end; row++) {
    const int b = row / g->out_h, oy = row % g->out_h;
    int tile = 0;
    for (int j = 0; j < nb && tile < tile_end; j++) {
      int first, v;
      ISA_NAME(block)(g->k, j, &first, &v, NULL);
      const int cimax = ACC_MAX / v;
      const int last = j == nb - 1 ? tail : VLEN;
      for (int t = 0; t < taps && tile < tile_end; t++) {
        const int ky = t / g->s, kx = t % g->s;
        const int iy = oy * g->stride - g->padding + ky * g->dilation;
        // Output columns whose input column ox * stride - padding + kx * dilation is inside.
        const int shift = kx * g->dilation - g->padding;
        int lo = shift >= 0 ? 0 : (-shift + g->stride - 1) / g->stride;
        int hi = (g->w - 1 - shift) >= 0 ? (g->w - 1 - shift) / g->stride + 1 : 0;
        if (hi > g->out_w) hi = g->out_w;
        int coffset = 0;  // input i's first channel
        for (int in = 0; in < ninputs; in++) {
          const int cin = inputs[in].channels;
          const int nci = ISA_NAME(channel_blocks)(cin, cimax, split);
          if (tile + nci <= tile_begin || iy < 0 || iy >= g->h || hi <= lo) {
            tile += nci;
            coffset += cin;
            continue;
          }
          for (int i = 0; i < nci; i++, tile++) {
            if (tile < tile_begin || tile >= tile_end) continue;
            const int ci0 = i * (cin / nci) + (i < cin % nci ? i : cin % nci);
            const int ci = cin / nci + (i < cin % nci ? 1 : 0);
            const float *xp =
                inputs[in].data +
                (((ptrdiff_t)b * g->h + iy) * g->w + (ptrdiff_t)lo * g->stride + shift) * cin + ci0;
            const float *dyp = dy + ((ptrdiff_t)row * g->out_w + lo) * g->k + first * VLEN;
            float *dwp = dw + ((ptrdiff_t)t * g->c + coffset + ci0) * g->k + first * VLEN;
            ISA_NAME(dw_dispatch)(ci, v, xp, (ptrdiff_t)g->stride * cin, dyp, g->k, hi - lo, dwp,
                                  g->k, last);
          }
          coffset += cin;
        }
      }
    }
  }
}
