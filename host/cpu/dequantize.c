/* dequantize.c - the float side of decoding (dequantize.h).
 *
 * Only the accumulation needs care for speed: fmaf is a library call on an
 * x86-64 baseline build, so CPUs with FMA3 take a vector loop of
 * _mm256_fmadd_ps, which is the same correctly rounded fused operation
 * (IEEE fusedMultiplyAdd) and so gives fmaf's bits.  The other loops are
 * plain multiplies, divides and conversions that the compiler vectorizes
 * with identical per-element results.
 *
 * Rank 0 as scale * g + 0.0f: the product is rounded once, as in fmaf; adding
 * +0 leaves a nonzero product exact and turns a -0 product (scale = +0 times
 * a negative count) into +0, which is what fmaf(scale, g, +0) returns.  (The
 * addition is kept by the compiler: without -ffast-math, x + 0.0f is not x
 * for x = -0.) */
#include "dequantize.h"

#include <math.h>

void mcgq_dequantize_store(float *out, const int32_t *g_int, uint64_t count,
                           float scale) {
  for (uint64_t k = 0; k < count; ++k) out[k] = scale * (float)g_int[k];
}

void mcgq_dequantize_first(float *out, const int32_t *g_int, uint64_t count,
                           float scale) {
  for (uint64_t k = 0; k < count; ++k) out[k] = scale * (float)g_int[k] + 0.0f;
}

/* For ranks = 2^m, x / 2^m and x * 2^-m are the same real number, rounded
 * once either way (subnormal results and FTZ/DAZ included), so the multiply
 * by the exact reciprocal gives the divide's bits at a fraction of its cost
 * (a vector divide takes several cycles per lane).  Other P divide. */
void mcgq_dequantize_divide(float *out, uint64_t count, float ranks) {
  int exponent = 0;
  if (frexpf(ranks, &exponent) == 0.5f) {
    const float reciprocal = 1.0f / ranks; /* 2^-m, exact */
    for (uint64_t k = 0; k < count; ++k) out[k] = out[k] * reciprocal;
    return;
  }
  for (uint64_t k = 0; k < count; ++k) out[k] = out[k] / ranks;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MCGQ_DEQUANTIZE_FMA 1

__attribute__((target("avx2,fma")))
static void accumulate_fma(float *out, const int32_t *g_int, uint64_t count,
                           float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  uint64_t k = 0;
  for (; k + 8 <= count; k += 8) {
    __m256 g = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(g_int + k)));
    __m256 acc = _mm256_loadu_ps(out + k);
    _mm256_storeu_ps(out + k, _mm256_fmadd_ps(s, g, acc));
  }
  for (; k < count; ++k) out[k] = fmaf(scale, (float)g_int[k], out[k]);
}
#endif

void mcgq_dequantize_accumulate(float *out, const int32_t *g_int,
                                uint64_t count, float scale) {
#if defined(MCGQ_DEQUANTIZE_FMA)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    accumulate_fma(out, g_int, count, scale);
    return;
  }
#endif
  for (uint64_t k = 0; k < count; ++k) out[k] = fmaf(scale, (float)g_int[k], out[k]);
}
