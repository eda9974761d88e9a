/* quantize_reference.c - DESIGN.md section 2 (steps 1-7) for one layer, as
 * plainly as the spec states it: one loop per step, exact integers where
 * the spec has integers, no SIMD and no tricks.  See docs/REFERENCE.md for
 * how this follows Algorithm 1 of the paper. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mcgq_reference.h"
#include "reference_u128.h"

/* The spec's float operations must be float operations, not wider ones. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the reference needs FLT_EVAL_METHOD == 0 (float math in float)"
#endif

#define TWO_POW_24 16777216.0 /* fixed-point value of m (2.2) */

/* ---------------------------------------------------------------- N */

/* DESIGN.md 2, input: N = ceil(n*K) with the product rounded to double, or
 * N given directly; N < 2^31 (section 7). */
mcgqResult_t mcgq_ref_samples(uint64_t n, double k, uint64_t samples,
                              uint64_t *N) {
  if (n < 1 || n > MCGQ_MAX_LAYER_ELEMENTS) return mcgqInvalidArgument;
  if (samples != 0) {
    if (samples > MCGQ_MAX_SAMPLES) return mcgqInvalidArgument;
    *N = samples;
    return mcgqSuccess;
  }
  if (!(k > 0.0 && k <= MCGQ_MAX_K)) return mcgqInvalidArgument; /* NaN too */
  double product = (double)n * k;
  double rounded_up = ceil(product);
  if (rounded_up > (double)MCGQ_MAX_SAMPLES) return mcgqInvalidArgument;
  *N = (uint64_t)rounded_up;
  return mcgqSuccess;
}

/* ------------------------------------------------------- steps 1 and 2 */

/* Step 1: index of the first NaN/Inf, or n. */
static uint64_t first_nonfinite(const float *g, uint64_t n) {
  for (uint64_t k = 0; k < n; ++k)
    if (!isfinite(g[k])) return k;
  return n;
}

/* Step 1: m = max |g_k| (g finite). */
static float max_abs(const float *g, uint64_t n) {
  float m = 0.0f;
  for (uint64_t k = 0; k < n; ++k)
    if (fabsf(g[k]) > m) m = fabsf(g[k]);
  return m;
}

/* Round half to even of y >= 0, in exact double steps: y - floor(y) is
 * exact for the values here (y <= 2^24). */
static double round_half_even(double y) {
  double whole = floor(y);
  double fraction = y - whole;
  if (fraction > 0.5) return whole + 1.0;
  if (fraction == 0.5 && fmod(whole, 2.0) == 1.0) return whole + 1.0;
  return whole;
}

/* Step 2: one IEEE float division |g|/m (the C expression below is a float
 * division because FLT_EVAL_METHOD == 0), then the exact scaling by 2^24
 * (the quotient is at most 1, so no rounding), then round half to even. */
uint32_t mcgq_ref_fixed_point(float g, float m) {
  float quotient = fabsf(g) / m;
  double y = (double)quotient * TWO_POW_24;
  return (uint32_t)round_half_even(y);
}

/* Step 3: T = C_{n-1} = sum of q_k, exact in uint64 (n*2^24 < 2^56). */
static uint64_t total_q(const float *g, uint64_t n, float m) {
  uint64_t T = 0;
  for (uint64_t k = 0; k < n; ++k) T += mcgq_ref_fixed_point(g[k], m);
  return T;
}

/* ------------------------------------------------------------ step 5 */

/* (Q, R) = divmod(P, T) for P < T * 2^32, by long division over the 32
 * possible quotient bits (here P = N*C_k <= N*T and N < 2^31, so the
 * quotient fits 32 bits). */
static uint64_t divmod_u128(ref_u128 P, uint64_t T, uint64_t *R) {
  ref_u128 rest = P;
  uint64_t Q = 0;
  for (int bit = 31; bit >= 0; --bit) {
    ref_u128 chunk = ref_u128_shl(ref_u128_of(T), (unsigned)bit); /* T*2^bit */
    if (!ref_u128_less(rest, chunk)) {
      rest = ref_u128_sub(rest, chunk);
      Q |= (uint64_t)1 << bit;
    }
  }
  *R = rest.lo; /* rest < T < 2^57 */
  return Q;
}

/* Step 5: b_k = Q_k + (R_k * 2^32 > u * T ? 1 : 0), (Q_k, R_k) =
 * divmod(N * C_k, T): the number of samples x_i below C_k / T. */
static uint64_t closed_form_b(uint64_t C, uint64_t N, uint64_t T, uint32_t u) {
  uint64_t R = 0;
  uint64_t Q = divmod_u128(ref_u128_mul(N, C), T, &R);
  ref_u128 remainder_scaled = ref_u128_shl(ref_u128_of(R), 32); /* < 2^89 */
  ref_u128 u_times_T = ref_u128_mul(u, T);
  return Q + (ref_u128_less(u_times_T, remainder_scaled) ? 1u : 0u);
}

/* Step 6: sign(g) * count.  g = -0.0 has q = 0, so it is never hit and its
 * count is 0 either way. */
static int32_t signed_count(float g, uint64_t count) {
  return g < 0.0f ? -(int32_t)count : (int32_t)count;
}

/* Steps 3, 5, 6: C_k as a running inclusive prefix, count_k = b_k - b_{k-1}
 * with b_{-1} = 0. */
static void counts_closed_form(const float *g, uint64_t n, float m, uint64_t N,
                               uint64_t T, uint32_t u, int32_t *g_int) {
  uint64_t C = 0, b_prev = 0;
  for (uint64_t k = 0; k < n; ++k) {
    C += mcgq_ref_fixed_point(g[k], m);
    uint64_t b = closed_form_b(C, N, T, u);
    g_int[k] = signed_count(g[k], b - b_prev);
    b_prev = b;
  }
}

/* ------------------------------------------------------------ step 7 */

/* scale = float((double)T * m / (2^24 * D)), D = N, or max(N, n) for the
 * damped residual scale.  The double-to-float conversion rounds to nearest
 * and gives +Inf on overflow (IEEE 754, C11 Annex F): that is the range
 * error. */
static mcgqResult_t layer_scale(uint64_t T, float m, uint64_t N, uint64_t n,
                                int damped, float *scale) {
  uint64_t D = (damped && n > N) ? n : N;
  double exact_order = (double)T * (double)m / (TWO_POW_24 * (double)D);
  float rounded = (float)exact_order;
  if (isinf(rounded)) return mcgqRangeError;
  *scale = rounded;
  return mcgqSuccess;
}

/* docs/FORMAT.md 4, the range rule for one message: with B_g = 1 +
 * bitlen(max|g_int|), the largest value B_g bits hold is 2^(B_g-1) - 1, and
 * scale times it (as float, exact in double) must not exceed FLT_MAX, so
 * that the decode scale * (float)g_int cannot round to infinity. */
static int decode_stays_finite(const int32_t *g_int, uint64_t n, float scale) {
  uint64_t max_mag = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t mag = g_int[k] < 0 ? (uint64_t)(-(int64_t)g_int[k]) : (uint64_t)g_int[k];
    if (mag > max_mag) max_mag = mag;
  }
  uint32_t bits = 0; /* bitlen(max_mag) */
  while (bits < 64 && (max_mag >> bits) != 0) ++bits;
  const uint32_t bits_value = 1u + bits;
  const float largest = (float)(((uint64_t)1 << (bits_value - 1)) - 1u);
  return (double)scale * (double)largest <= (double)FLT_MAX;
}

/* ------------------------------------------------------- the layer */

mcgqResult_t mcgq_ref_quantize(const float *g, uint64_t n, uint64_t N,
                               uint32_t u, int damped, int32_t *g_int,
                               mcgq_ref_layer_t *out) {
  if (!g || !g_int || !out || n < 1 || N < 1 || N > MCGQ_MAX_SAMPLES)
    return mcgqInvalidArgument;
  if (first_nonfinite(g, n) != n) return mcgqNonFinite;
  const float m = max_abs(g, n);
  if (m == 0.0f) { /* step 1: all zero, no sampling */
    memset(g_int, 0, (size_t)n * sizeof *g_int);
    memset(out, 0, sizeof *out);
    return mcgqSuccess;
  }
  const uint64_t T = total_q(g, n, m); /* >= 2^24: the max maps to 2^24 */
  float scale = 0.0f;
  mcgqResult_t res = layer_scale(T, m, N, n, damped, &scale);
  if (res != mcgqSuccess) return res; /* before g_int is written */
  counts_closed_form(g, n, m, N, T, u, g_int);
  if (!decode_stays_finite(g_int, n, scale)) return mcgqRangeError;
  out->samples = N;
  out->total = T;
  out->max_abs = m;
  out->scale = scale;
  return mcgqSuccess;
}

/* --------------------------------------------- Algorithm 1 literally */

/* Step 4's half-open hit test: x_i < C_k / T with x_i = (u/2^32 + i) / N,
 * multiplied out: C_k * N * 2^32 > (i * 2^32 + u) * T (both < 2^121). */
static int sample_below(uint64_t C, uint64_t N, uint64_t T, uint64_t i,
                        uint32_t u) {
  ref_u128 left = ref_u128_shl(ref_u128_mul(C, N), 32);
  ref_u128 right = ref_u128_mul((i << 32) + u, T);
  return ref_u128_less(right, left);
}

mcgqResult_t mcgq_ref_quantize_by_sampling(const float *g, uint64_t n,
                                           uint64_t N, uint32_t u,
                                           int32_t *g_int) {
  if (!g || !g_int || n < 1 || N < 1 || N > MCGQ_MAX_SAMPLES)
    return mcgqInvalidArgument;
  if (first_nonfinite(g, n) != n) return mcgqNonFinite;
  memset(g_int, 0, (size_t)n * sizeof *g_int);
  const float m = max_abs(g, n);
  if (m == 0.0f) return mcgqSuccess;
  const uint64_t T = total_q(g, n, m);
  /* start_idx of Alg 1: points increase, so the hit index only moves on.
   * C_{n-1} = T puts every point below the last interval's end. */
  uint64_t hit = 0, C = mcgq_ref_fixed_point(g[0], m);
  for (uint64_t i = 0; i < N; ++i) {
    while (!sample_below(C, N, T, i, u)) {
      ++hit;
      C += mcgq_ref_fixed_point(g[hit], m);
    }
    g_int[hit] += g[hit] < 0.0f ? -1 : 1;
  }
  return mcgqSuccess;
}
