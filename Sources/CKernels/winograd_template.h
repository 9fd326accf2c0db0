// Winograd F(2x2, 3x3) convolution (Lavin and Gray, 2016) for 3x3 kernels with stride 1,
// dilation 1 and padding 1: each 2x2 tile of outputs is A^T [(G g G^T) . (B^T d B)] A, where d
// is the tile's 4x4 input window, so the 9 products per output of a direct convolution become
// 16 per 4 outputs (2.25 times fewer), summed over the input channels as 16 small GEMMs (one per
// component of the 4x4 transform), which run on the forward tile of conv_template.h. Included
// after conv_template.h, with its macros.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
//
// Every output is computed in one fixed order (its tile's transforms, the GEMM's channel sums),
// whatever the split of rows among callers. The rounding differs from the direct convolution's
// (relative differences of about 1e-6).

// Packed weights: per output, per block of its channels, [16 components][c][block width]:
// G g G^T.
static size_t ISA_NAME(wino_packed_size)(const atso_conv_shape *g, const int *output_channels,
                                         int outputs) {
  size_t vectors = 0;
  for (int o = 0; o < outputs; o++) vectors += (size_t)(output_channels[o] + VLEN - 1) / VLEN;
  return (size_t)16 * g->c * VLEN * vectors;
}

static void ISA_NAME(wino_pack)(const atso_conv_shape *g, const float *weight,
                                const int *output_channels, int outputs, float *packed) {
  const vec half = V_SET1(0.5f);
  for (int o = 0, kout = 0; o < outputs; kout += output_channels[o], o++) {
   const int ko = output_channels[o];
   int nb;
   ISA_NAME(block)(ko, 0, NULL, NULL, &nb);
   for (int j = 0; j < nb; j++) {
    int first, v;
    ISA_NAME(block)(ko, j, &first, &v, NULL);
    float *block = packed + (ptrdiff_t)16 * g->c * VLEN * first;
    for (int ci = 0; ci < g->c; ci++)
      for (int vv = 0; vv < v; vv++) {
        // One vector of output channels at a time: w[ky][kx][ci][co...co + VLEN).
        const int local = (first + vv) * VLEN;  // in output o
        const int co = kout + local;
        const int cnt = ko - local < VLEN ? (ko - local > 0 ? ko - local : 0) : VLEN;
        vec w[3][3], t[4][3];
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++)
            w[ky][kx] = cnt > 0 ? V_LOAD_N(weight + ((ptrdiff_t)(ky * 3 + kx) * g->c + ci) * g->k + co, cnt)
                                : V_ZERO();
        for (int kx = 0; kx < 3; kx++) {  // G w
          t[0][kx] = w[0][kx];
          t[1][kx] = V_MUL(half, V_ADD(V_ADD(w[0][kx], w[1][kx]), w[2][kx]));
          t[2][kx] = V_MUL(half, V_ADD(V_SUB(w[0][kx], w[1][kx]), w[2][kx]));
          t[3][kx] = w[2][kx];
        }
        float *dst = block + (ptrdiff_t)ci * v * VLEN + vv * VLEN;
        const ptrdiff_t component = (ptrdiff_t)g->c * v * VLEN;
        for (int a = 0; a < 4; a++) {  // (G w) G^T
          V_STORE(dst + (a * 4 + 0) * component, t[a][0]);
          V_STORE(dst + (a * 4 + 1) * component,
                  V_MUL(half, V_ADD(V_ADD(t[a][0], t[a][1]), t[a][2])));
          V_STORE(dst + (a * 4 + 2) * component,
                  V_MUL(half, V_ADD(V_SUB(t[a][0], t[a][1]), t[a][2])));
          V_STORE(dst + (a * 4 + 3) * component, t[a][2]);
        }
      }
   }
   packed += (ptrdiff_t)16 * g->c * VLEN * ((ko + VLEN - 1) / VLEN);
  }
}

// The tile rows (b, ty) whose first output row b * out_h + 2 ty lies in [row_begin, row_end):
// input transforms of a chunk of nt tiles into U [16][nt][c], the 16 GEMMs of each block of
// output channels into M [16][nt][block width], then the output transforms and the epilogue
// (bias, ReLU, statistics of each output row: its chunks' sums added in order).
static void ISA_NAME(wino_rows)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                int ninputs, const float *packed,
                                const atso_conv_epilogue *epilogue,
                                const atso_conv_output *outputs, int noutputs, int row_begin,
                                int row_end) {
  const float *bias = epilogue ? epilogue->bias : NULL;
  const float *shift = epilogue ? epilogue->shift : NULL;
  float *statistics = epilogue ? epilogue->statistics : NULL;
  const int relu = epilogue ? epilogue->relu : 0;
  const int th = (g->out_h + 1) / 2, tw = (g->out_w + 1) / 2;
  int vmax = 1;  // the widest block of any output
  for (int o = 0; o < noutputs; o++) {
    int v0;
    ISA_NAME(block)(outputs[o].channels, 0, NULL, &v0, NULL);
    vmax = v0 > vmax ? v0 : vmax;
  }
  const int nt = ACC_MAX / vmax;  // tiles per chunk: a GEMM tile of every block holds them
  // U [16][nt][c], M [16][nt][VMAX * VLEN], R [4][2 nt + 2][c].
  float *u = (float *)malloc(sizeof(float) * ((size_t)16 * nt * g->c +
                                              (size_t)16 * nt * VMAX * VLEN +
                                              (size_t)4 * (2 * nt + 2) * g->c));
  if (!u) abort();
  float *m = u + (ptrdiff_t)16 * nt * g->c;
  float *rvert = m + (ptrdiff_t)16 * nt * VMAX * VLEN;
  const ISA_NAME(epilogue) plain = {NULL, NULL, NULL, 0, 0};
  const int first_tile_row = (row_begin / g->out_h) * th + (row_begin % g->out_h + 1) / 2;
  if (statistics)  // the rows of the tile rows this call computes
    for (int tr = first_tile_row; tr < g->n * th; tr++) {
      const int b = tr / th, ty = tr % th;
      if (b * g->out_h + 2 * ty >= row_end) break;
      for (int a = 0; a < 2 && 2 * ty + a < g->out_h; a++)
        memset(statistics + ((ptrdiff_t)b * g->out_h + 2 * ty + a) * 2 * g->k, 0,
               sizeof(float) * 2 * (size_t)g->k);
    }
  for (int tr = first_tile_row; tr < g->n * th; tr++) {
    const int b = tr / th, ty = tr % th;
    if (b * g->out_h + 2 * ty >= row_end) break;
    for (int t0 = 0; t0 < tw; t0 += nt) {
      const int n = tw - t0 < nt ? tw - t0 : nt;
      // Input transforms V = B^T d B: first B^T d (the four rows' combinations) once per input
      // column of the chunk, which two neighbouring tiles share, into R [4][2n + 2][c]; then
      // the column combinations of each tile into U.
      const int columns = 2 * n + 2;
      for (int i = 0, offset = 0; i < ninputs; offset += inputs[i].channels, i++) {
        const int ci = inputs[i].channels;
        const float *rowp[4];
        for (int a = 0; a < 4; a++) {
          const int iy = 2 * ty - 1 + a;
          rowp[a] = iy < 0 || iy >= g->h ? NULL
                                         : inputs[i].data + ((ptrdiff_t)b * g->h + iy) * g->w * ci;
        }
        for (int col = 0; col < columns; col++) {
          const int ix = 2 * t0 - 1 + col;
          const int inside = ix >= 0 && ix < g->w;
          for (int cv = 0; cv < ci; cv += VLEN) {
            const int cnt = ci - cv < VLEN ? ci - cv : VLEN;
            vec d[4];
            UNROLL for (int a = 0; a < 4; a++)
              d[a] = inside && rowp[a] ? V_LOAD_N(rowp[a] + (ptrdiff_t)ix * ci + cv, cnt) : V_ZERO();
            float *dst = rvert + (ptrdiff_t)col * g->c + offset + cv;
            const ptrdiff_t plane = (ptrdiff_t)columns * g->c;
            V_STORE_N(dst, V_SUB(d[0], d[2]), cnt);
            V_STORE_N(dst + plane, V_ADD(d[1], d[2]), cnt);
            V_STORE_N(dst + 2 * plane, V_SUB(d[2], d[1]), cnt);
            V_STORE_N(dst + 3 * plane, V_SUB(d[1], d[3]), cnt);
          }
        }
      }
      {
        const ptrdiff_t plane = (ptrdiff_t)columns * g->c;
        const ptrdiff_t component = (ptrdiff_t)nt * g->c;  // floats between components of U
        for (int q = 0; q < n; q++)
          for (int cv = 0; cv < g->c; cv += VLEN) {
            const int cnt = g->c - cv < VLEN ? g->c - cv : VLEN;
            float *dst = u + (ptrdiff_t)q * g->c + cv;
            UNROLL for (int a = 0; a < 4; a++) {  // (B^T d) B
              const float *r = rvert + a * plane + (ptrdiff_t)(2 * q) * g->c + cv;
              const vec r0 = V_LOAD_N(r, cnt), r1 = V_LOAD_N(r + g->c, cnt);
              const vec r2 = V_LOAD_N(r + 2 * g->c, cnt), r3 = V_LOAD_N(r + 3 * g->c, cnt);
              V_STORE_N(dst + (a * 4 + 0) * component, V_SUB(r0, r2), cnt);
              V_STORE_N(dst + (a * 4 + 1) * component, V_ADD(r1, r2), cnt);
              V_STORE_N(dst + (a * 4 + 2) * component, V_SUB(r2, r1), cnt);
              V_STORE_N(dst + (a * 4 + 3) * component, V_SUB(r1, r3), cnt);
            }
          }
      }
      const float *wout = packed;  // output o's packed weights
      for (int o = 0, kout = 0; o < noutputs; kout += outputs[o].channels, o++) {
        const int ko = outputs[o].channels;
        int nb;
        ISA_NAME(block)(ko, 0, NULL, NULL, &nb);
        const int nvec = (ko + VLEN - 1) / VLEN;
        const int tail = ko - (nvec - 1) * VLEN;
        for (int j = 0; j < nb; j++) {
          int first, v;
          ISA_NAME(block)(ko, j, &first, &v, NULL);
          const float *wblock = wout + (ptrdiff_t)16 * g->c * VLEN * first;
          // The 16 GEMMs: M[x][q] = sum over c of U[x][q][c] * W[x][c].
          for (int x = 0; x < 16; x++) {
            const ISA_NAME(segment) s = {u + (ptrdiff_t)x * nt * g->c, g->c, g->c,
                                         wblock + (ptrdiff_t)x * g->c * v * VLEN};
            ISA_NAME(fwd_dispatch)(n, v, &s, 1, 0, m + (ptrdiff_t)x * nt * v * VLEN, v * VLEN,
                                   VLEN, &plain);
          }
          // Output transforms: Y = A^T M A, then the epilogue, stored where inside the image.
          for (int vv = 0; vv < v; vv++) {
            const int kv = first + vv;  // the vector of output channels, in output o
            const int cnt = kv == nvec - 1 ? tail : VLEN;
            const int k0 = kout + kv * VLEN;  // its first channel among all outputs
            const vec bv = bias ? V_LOAD_N(bias + k0, cnt) : V_ZERO();
            const vec mv = shift ? V_LOAD_N(shift + k0, cnt) : V_ZERO();
            vec sums[2][2] = {{V_ZERO(), V_ZERO()}, {V_ZERO(), V_ZERO()}};  // [row][sum, squares]
            for (int q = 0; q < n; q++) {
              const int tx = t0 + q;
              vec mm[16], s0[4], s1[4];
              UNROLL for (int x = 0; x < 16; x++)
                mm[x] = V_LOAD(m + ((ptrdiff_t)x * nt + q) * v * VLEN + vv * VLEN);
              UNROLL for (int bb = 0; bb < 4; bb++) {  // A^T M
                s0[bb] = V_ADD(V_ADD(mm[0 + bb], mm[4 + bb]), mm[8 + bb]);
                s1[bb] = V_SUB(V_SUB(mm[4 + bb], mm[8 + bb]), mm[12 + bb]);
              }
              vec y[2][2];  // (A^T M) A
              y[0][0] = V_ADD(V_ADD(s0[0], s0[1]), s0[2]);
              y[0][1] = V_SUB(V_SUB(s0[1], s0[2]), s0[3]);
              y[1][0] = V_ADD(V_ADD(s1[0], s1[1]), s1[2]);
              y[1][1] = V_SUB(V_SUB(s1[1], s1[2]), s1[3]);
              for (int a = 0; a < 2; a++)
                for (int bb = 0; bb < 2; bb++) {
                  const int oy = 2 * ty + a, ox = 2 * tx + bb;
                  if (oy >= g->out_h || ox >= g->out_w) continue;
                  vec value = V_ADD(y[a][bb], bv);
                  if (relu) value = V_MAX(value, V_ZERO());
                  V_STORE_N(outputs[o].data +
                                (((ptrdiff_t)b * g->out_h + oy) * g->out_w + ox) * ko + kv * VLEN,
                            value, cnt);
                  if (statistics) {
                    const vec d = V_SUB(value, mv);
                    sums[a][0] = V_ADD(sums[a][0], d);
                    sums[a][1] = V_FMA(d, d, sums[a][1]);
                  }
                }
            }
            if (statistics)
              for (int a = 0; a < 2 && 2 * ty + a < g->out_h; a++) {
                float *row = statistics + ((ptrdiff_t)b * g->out_h + 2 * ty + a) * 2 * g->k + k0;
                V_STORE_N(row, V_ADD(V_LOAD_N(row, cnt), sums[a][0]), cnt);
                V_STORE_N(row + g->k, V_ADD(V_LOAD_N(row + g->k, cnt), sums[a][1]), cnt);
              }
          }
        }
        wout += (ptrdiff_t)16 * g->c * VLEN * nvec;
      }
    }
  }
  free(u);
}
