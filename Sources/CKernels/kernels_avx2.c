// The AVX2 + FMA kernels: 8 floats per register, 16 registers.
#include <immintrin.h>

#include "CKernels.h"
#include "kernels.h"

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

typedef __m256 vec;
#define VLEN 8
#define ACC_MAX 12
#define VMAX 3
#define ISA_NAME(name) name##_avx2
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, a) _mm256_storeu_ps(p, a)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define V_LOAD_N(p, n) _mm256_maskload_ps(p, V_MASK(n))
#define V_STORE_N(p, a, n) _mm256_maskstore_ps(p, V_MASK(n), a)
#define FWD_CASES(X) \
  X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) \
  X(12, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(1, 3) X(2, 3) X(3, 3) X(4, 3)
#define DW_CASES(X) \
  X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) \
  X(12, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(1, 3) X(2, 3) X(3, 3) X(4, 3)

#include "conv_template.h"
#include "winograd_template.h"
#include "exports_template.h"
#include "elementwise_template.h"

#pragma clang attribute pop
