/* variants_reference.c - the variants of DESIGN.md section 2: accumulation
 * (Alg 4 reset, residual error feedback) and dynamic K (Alg 3: exact W1 on
 * the fixed-point values, then the K update). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "mcgq_reference.h"
#include "reference_u128.h"

/* ------------------------------------------------------- accumulation */

void mcgq_ref_accumulate(const float *g, const float *accum, uint64_t n,
                         float *ag) {
  for (uint64_t k = 0; k < n; ++k) ag[k] = accum[k] + g[k];
}

void mcgq_ref_commit_reset(float *accum, const float *ag, const int32_t *g_int,
                           uint64_t n) {
  for (uint64_t k = 0; k < n; ++k) accum[k] = g_int[k] != 0 ? 0.0f : ag[k];
}

void mcgq_ref_commit_residual(float *accum, const float *ag,
                              const int32_t *g_int, float scale, uint64_t n) {
  for (uint64_t k = 0; k < n; ++k)
    accum[k] = fmaf(-scale, (float)g_int[k], ag[k]);
}

/* ------------------------------------------------------------------ W1 */

static int compare_int32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static uint64_t magnitude(int32_t v) {
  return v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
}

/* |N*a - T*b| exactly: magnitudes subtract when the signs agree (zero
 * agrees with both) and add when they differ. */
static ref_u128 term(uint64_t N, int32_t a, uint64_t T, int32_t b) {
  ref_u128 x = ref_u128_mul(N, magnitude(a));
  ref_u128 y = ref_u128_mul(T, magnitude(b));
  if ((a < 0 && b > 0) || (a > 0 && b < 0)) return ref_u128_add(x, y);
  return ref_u128_less(x, y) ? ref_u128_sub(y, x) : ref_u128_sub(x, y);
}

/* d = S / ((n N) T) in exactly the order DESIGN.md writes it. */
static double w1_of_sum(ref_u128 S, uint64_t n, uint64_t N, uint64_t T) {
  double numerator = (double)S.hi * 18446744073709551616.0 + (double)S.lo;
  return numerator / (((double)n * (double)N) * (double)T);
}

/* a_k = sign(g_k) q_k and b = g_int, both sorted; S = sum_i |N a_i - T b_i|
 * with N = ||g_int||_1 and T = ||a||_1. */
static double w1_sorted(const float *g, const int32_t *g_int, uint64_t n,
                        float m, int32_t *a, int32_t *b) {
  uint64_t T = 0, N = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t q = mcgq_ref_fixed_point(g[k], m);
    a[k] = g[k] < 0.0f ? -(int32_t)q : (int32_t)q;
    b[k] = g_int[k];
    T += q;
    N += magnitude(g_int[k]);
  }
  if (N == 0) return 0.0; /* no samples to compare (not a quantizer output) */
  qsort(a, (size_t)n, sizeof *a, compare_int32);
  qsort(b, (size_t)n, sizeof *b, compare_int32);
  ref_u128 S = ref_u128_of(0);
  for (uint64_t i = 0; i < n; ++i) S = ref_u128_add(S, term(N, a[i], T, b[i]));
  return w1_of_sum(S, n, N, T);
}

double mcgq_ref_w1(const float *g, const int32_t *g_int, uint64_t n) {
  float m = 0.0f;
  for (uint64_t k = 0; k < n; ++k)
    if (fabsf(g[k]) > m) m = fabsf(g[k]);
  if (m == 0.0f) return 0.0; /* all-zero layer: d = 0 */
  int32_t *a = (int32_t *)malloc((size_t)n * sizeof *a);
  int32_t *b = (int32_t *)malloc((size_t)n * sizeof *b);
  double d = (a && b) ? w1_sorted(g, g_int, n, m, a, b) : -1.0;
  free(a);
  free(b);
  return d;
}

/* ---------------------------------------------------------- K update */

void mcgq_ref_k_update(const mcgqLayerConfig_t *cfg, mcgqKState_t *state,
                       double d) {
  if (!state->started) { /* first step: no d_prev, K stays */
    state->d_prev = d;
    state->started = 1;
    return;
  }
  double k = state->k + cfg->delta_k * (state->d_prev - d);
  if (k < cfg->k_min) k = cfg->k_min;
  if (k > cfg->k_max) k = cfg->k_max;
  state->k = k;
  state->d_prev = d;
}
