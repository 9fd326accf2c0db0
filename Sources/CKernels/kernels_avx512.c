// The AVX-512F kernels: 16 floats per register, 32 registers.
#include <immintrin.h>

#include "CKernels.h"
#include "kernels.h"

#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)

typedef __m512 vec;
#define VLEN 16
#define ACC_MAX 24
#define VMAX 4
#define ISA_NAME(name) name##_avx512
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, a) _mm512_storeu_ps(p, a)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define V_LOAD_N(p, n) _mm512_maskz_loadu_ps(V_MASK(n), p)
#define V_STORE_N(p, a, n) _mm512_mask_storeu_ps(p, V_MASK(n), a)
#define FWD_CASES(X) \
  X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) \
  X(12, 1) X(13, 1) X(14, 1) X(15, 1) X(16, 1) X(17, 1) X(18, 1) X(19, 1) X(20, 1) X(21, 1) \
  X(22, 1) X(23, 1) X(24, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2) \
  X(9, 2) X(10, 2) X(11, 2) X(12, 2) X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) \
  X(8, 3) X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)
#define DW_CASES(X) \
  X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) \
  X(12, 1) X(13, 1) X(14, 1) X(15, 1) X(16, 1) X(17, 1) X(18, 1) X(19, 1) X(20, 1) X(21, 1) \
  X(22, 1) X(23, 1) X(24, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2) \
  X(9, 2) X(10, 2) X(11, 2) X(12, 2) X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) \
  X(8, 3) X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)

#include "conv_template.h"
#include "winograd_template.h"
#include "exports_template.h"
#include "elementwise_template.h"

#pragma clang attribute pop
