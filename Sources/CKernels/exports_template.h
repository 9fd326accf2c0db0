// The entry points of one instruction set, called by dispatch.c (declared in kernels.h).
size_t ISA_NAME(atso_conv_packed_size)(const atso_conv_shape *g, const int *output_channels,
                                      int outputs) {
  size_t vectors = 0;
  for (int o = 0; o < outputs; o++) vectors += (size_t)(output_channels[o] + VLEN - 1) / VLEN;
  return (size_t)g->r * g->s * g->c * VLEN * vectors;
}

void ISA_NAME(atso_conv_pack)(const atso_conv_shape *g, const float *weight,
                              const int *input_channels, int ninputs, const int *output_channels,
                              int outputs, float *packed) {
  int kout = 0;
  for (int o = 0; o < outputs; o++) {
    const int ko = output_channels[o];
    int nb;
    ISA_NAME(block)(ko, 0, NULL, NULL, &nb);
    for (int j = 0; j < nb; j++) {
      int first, v;
      ISA_NAME(block)(ko, j, &first, &v, NULL);
      // [ky][input][kx][input's channel], as ISA_NAME(weight_row) numbers the rows.
      for (int ky = 0; ky < g->r; ky++)
        for (int i = 0, offset = 0; i < ninputs; offset += input_channels[i], i++)
          for (int kx = 0; kx < g->s; kx++)
            for (int ci = 0; ci < input_channels[i]; ci++)
              for (int l = 0; l < v * VLEN; l++) {
                const int co = first * VLEN + l;
                const ptrdiff_t t = (ptrdiff_t)ky * g->s + kx;
                *packed++ =
                    co < ko ? weight[(t * g->c + offset + ci) * g->k + kout + co] : 0;
              }
    }
    kout += ko;
  }
}

int ISA_NAME(atso_conv_row_group)(void) { return ROW_GROUP; }

size_t ISA_NAME(atso_conv_winograd_packed_size)(const atso_conv_shape *g,
                                                const int *output_channels, int outputs) {
  return ISA_NAME(wino_packed_size)(g, output_channels, outputs);
}

void ISA_NAME(atso_conv_winograd_pack)(const atso_conv_shape *g, const float *weight,
                                       const int *output_channels, int outputs, float *packed) {
  ISA_NAME(wino_pack)(g, weight, output_channels, outputs, packed);
}

void ISA_NAME(atso_conv_winograd_rows)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                       int ninputs, const float *packed,
                                       const atso_conv_epilogue *epilogue,
                                       const atso_conv_output *outputs, int noutputs,
                                       int row_begin, int row_end) {
  ISA_NAME(wino_rows)(g, inputs, ninputs, packed, epilogue, outputs, noutputs, row_begin,
                      row_end);
}

void ISA_NAME(atso_conv_forward_rows)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                      int ninputs, const float *packed,
                                      const atso_conv_epilogue *epilogue,
                                      const atso_conv_output *outputs, int noutputs,
                                      int row_begin, int row_end) {
  ISA_NAME(forward_rows)(g, inputs, ninputs, packed, epilogue, outputs, noutputs, row_begin,
                         row_end);
}

void ISA_NAME(atso_conv_weight_gradient)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                         int ninputs, int min_tiles, const float *dy, float *dw,
                                         int tile_begin, int tile_end, int row_begin,
                                         int row_end) {
  ISA_NAME(weight_gradient)(g, inputs, ninputs, ISA_NAME(dw_split)(g, inputs, ninputs, min_tiles),
                            dy, dw, tile_begin, tile_end, row_begin, row_end);
}

int ISA_NAME(atso_conv_weight_tiles)(const atso_conv_shape *g, const atso_conv_input *inputs,
                                     int ninputs, int min_tiles) {
  return ISA_NAME(dw_tiles)(g, inputs, ninputs, ISA_NAME(dw_split)(g, inputs, ninputs, min_tiles));
}

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
