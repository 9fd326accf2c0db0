// The entry points of one instruction set, called by dispatch.c (declared in kernels.h).
size_t ISA_NAME(atso_conv_packed_size)(const atso_conv_shape *g) {
  return (size_t)g->r * g->s * g->c * VLEN * ((g->k + VLEN - 1) / VLEN);
}

void ISA_NAME(atso_conv_pack)(const atso_conv_shape *g, const float *weight, float *packed) {
  int nb;
  ISA_NAME(block)(g->k, 0, NULL, NULL, &nb);
  const int taps = g->r * g->s;
  for (int j = 0; j < nb; j++) {
    int first, v;
    ISA_NAME(block)(g->k, j, &first, &v, NULL);
    float *dst = packed + (ptrdiff_t)taps * g->c * VLEN * first;
    for (int t = 0; t < taps; t++) {
      for (int ci = 0; ci < g->c; ci++)
        for (int l = 0; l < v * VLEN; l++) {
          const int co = first * VLEN + l;
          float value = 0;
          if (co < g->k) value = weight[((ptrdiff_t)t * g->c + ci) * g->k + co];
          *dst++ = value;
        }
    }
  }
}

void ISA_NAME(atso_conv_forward_rows)(const atso_conv_shape *g, const float *x,
                                      const float *packed, const float *bias, float *out,
                                      float *statistics, int row_begin, int row_end) {
  ISA_NAME(forward_rows)(g, x, packed, bias, out, statistics, row_begin, row_end);
}

void ISA_NAME(atso_conv_weight_gradient)(const atso_conv_shape *g, const float *x,
                                         const float *dy, float *dw, int tile_begin,
                                         int tile_end, int row_begin, int row_end) {
  ISA_NAME(weight_gradient)(g, x, dy, dw, tile_begin, tile_end, row_begin, row_end);
}

int ISA_NAME(atso_conv_weight_tiles)(const atso_conv_shape *g) { return ISA_NAME(dw_tiles)(g); }

double ISA_NAME(atso_fma_peak)(double seconds) {
  vec acc[16];
  const vec a = V_SET1(0.999999f), b = V_SET1(1e-7f);
  for (int j = 0; j < 16; j++) acc[j] = V_SET1((float)j);
  long iterations = 0;
  double start = atso_seconds(), elapsed;
  do {
    for (int i = 0; i < 100000; i++) {
      UNROLL for (int j = 0; j < 16; j++) acc[j] = V_FMA(acc[j], a, b);
      __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]),
                       "+v"(acc[4]), "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]));
    }
    iterations += 100000;
    elapsed = atso_seconds() - start;
  } while (elapsed < seconds);
  vec s = acc[0];
  for (int j = 1; j < 16; j++) s = V_ADD(s, acc[j]);
  float lanes[VLEN];
  V_STORE(lanes, s);
  volatile float sink = lanes[0];
  (void)sink;
  return (double)iterations * 16 * VLEN * 2 / elapsed;
}
