/* sampling.h - the sampling core of DESIGN.md 2, one definition for the CPU
 * paths and the kernels: the fixed-point magnitude q_k (2.2), the scale and
 * its range check (2.7), the number of samples below a prefix C_k (2.5:
 * the double estimate with its guard, and the exact 128-bit test) and one
 * term of the exact W1 sum (Alg 3).
 *
 * Every floating-point operation here decides bits, so each is a single
 * IEEE operation in round-to-nearest: the host compiles with
 * -ffp-contract=off and the kernels with --fmad=false (CMakeLists.txt), and
 * the device spells the float ones with _rn intrinsics. */
#ifndef MCGQ_FORMAT_SAMPLING_H_
#define MCGQ_FORMAT_SAMPLING_H_

#include <math.h>
#include <stdint.h>

#include "hd.h"
#include "u128.h"

#define MCGQ_FIXED_ONE 16777216.0f /* 2^24: the fixed-point value of m */
/* |x - nearest integer| below this sends b_k to the exact 128-bit test: the
 * double estimate is within 2^-19 of the exact value (see
 * mcgq_estimate_samples_below), so 2^-16 leaves a margin of 8. */
#define MCGQ_CEIL_GUARD 0x1p-16
/* The smallest double that float conversion rounds to infinity. */
#define MCGQ_FLOAT_OVERFLOW 0x1.ffffffp+127

/* Round-to-nearest-even of y in [0, 2^24]: below 2^23, adding and
 * subtracting 2^23 rounds to an integer in the current (pinned, nearest)
 * mode; from 2^23 on every float is an integer already. */
static inline MCGQ_HD uint32_t mcgq_round_fixed(float y) {
  float r = y < 8388608.0f ? (y + 8388608.0f) - 8388608.0f : y;
  return (uint32_t)(int32_t)r;
}

/* q_k = rne(|g| / m * 2^24), DESIGN.md 2.2: |g| / m <= 1 is rounded once by
 * the division; the product with 2^24 only shifts the exponent, so it is
 * exact (also for denormal quotients). */
static inline MCGQ_HD uint32_t mcgq_fixed_point(float g, float m) {
#if MCGQ_DEVICE_PASS
  return __float2uint_rn(__fmul_rn(__fdiv_rn(fabsf(g), m), MCGQ_FIXED_ONE));
#else
  return mcgq_round_fixed(fabsf(g) / m * MCGQ_FIXED_ONE);
#endif
}

/* DESIGN.md 2.7: T*m / (2^24 * D) in double, evaluated in that order, with
 * D = N (unbiased) or max(N, n) (damped: residual error feedback).  The
 * caller refuses the layer (mcgqRangeError) when the result is
 * >= MCGQ_FLOAT_OVERFLOW and otherwise sends (float)result. */
static inline MCGQ_HD double mcgq_scale_double(uint64_t T, float m, uint64_t N,
                                               uint64_t n, int damped) {
  const uint64_t D = damped && n > N ? n : N;
  return ((double)T * (double)m) / ((double)MCGQ_FIXED_ONE * (double)D);
}

/* Exact b = Q + (R*2^32 > u*T) with (Q, R) = divmod(N*C, T), clamped to N
 * (DESIGN.md 2.5).  Q is found from the double estimate y ~ N*C/T and
 * corrected, so no 128-bit division is needed. */
static inline MCGQ_HD uint64_t mcgq_exact_samples_below(uint64_t C, uint64_t N,
                                                        uint64_t T, uint32_t u,
                                                        double y) {
  const mcgq_u128 P = mcgq_u128_mul64(N, C);
  const mcgq_u128 step = mcgq_u128_from64(T);
  uint64_t Q = y > 0.0 ? (uint64_t)y : 0;
  mcgq_u128 QT = mcgq_u128_mul64(Q, T);
  while (mcgq_u128_less(P, QT)) { /* estimate one too high */
    --Q;
    QT = mcgq_u128_sub(QT, step);
  }
  while (!mcgq_u128_less(P, mcgq_u128_add(QT, step))) { /* one too low */
    ++Q;
    QT = mcgq_u128_add(QT, step);
  }
  const uint64_t R = mcgq_u128_sub(P, QT).lo; /* R < T < 2^57 */
  const int above = mcgq_u128_less(mcgq_u128_mul64(u, T),
                                    mcgq_u128_shl32(mcgq_u128_from64(R)));
  const uint64_t b = Q + (above ? 1u : 0u);
  return b > N ? N : b;
}

/* What the estimate of b needs of a layer: ratio = N/T and 1 - u/2^32. */
typedef struct {
  uint64_t N, T;
  uint32_t u;
  double ratio;       /* (double)N / (double)T */
  double one_minus_u; /* 1 - u * 2^-32, exact (32 fraction bits) */
} mcgq_count_params;

static inline MCGQ_HD mcgq_count_params mcgq_count_params_of(uint64_t N, uint64_t T,
                                                             uint32_t u) {
  mcgq_count_params p;
  p.N = N;
  p.T = T;
  p.u = u;
  p.ratio = T ? (double)N / (double)T : 0.0;
  p.one_minus_u = 1.0 - (double)u * 0x1p-32;
  return p;
}

/* Marks an estimate that lies within the guard of an integer. */
#define MCGQ_B_EXACT (-1)
#define MCGQ_GUARD_LIMIT (0.5 - MCGQ_CEIL_GUARD)

/* b = ceil(C*N/T - u/2^32) from doubles, or MCGQ_B_EXACT when the estimate
 * is within the guard of an integer.  It works with x1 = x + 1 = C*N/T +
 * (1 - u/2^32) > 0, so that off the guard b = floor(x1) is a truncation and
 * the guard test is one compare: |frac(x1) - 1/2| > 1/2 - guard.
 * Error of x1 = fl(fl((double)C * ratio) + one_minus_u): ratio is N/T to a
 * relative 2^-53, (double)C (C < 2^56) and the product add a relative 2^-53
 * each, so with C*N/T <= N < 2^31 the product is within 3*2^-53*2^31 <
 * 2^-20 of C*N/T; the sum (< 2^32) adds at most half an ulp, 2^-21.  So
 * |x1 - exact| < 2^-19, well inside the 2^-16 guard, and frac(x1) = x1 -
 * floor(x1) is exact.  Off the guard b <= N < 2^31. */
static inline MCGQ_HD int32_t mcgq_estimate_samples_below(const mcgq_count_params *p,
                                                          uint64_t C) {
  const double x1 = (double)(int64_t)C * p->ratio + p->one_minus_u; /* > 0 */
  const int64_t t = (int64_t)x1; /* floor: x1 > 0 and < 2^32 */
  const double frac = x1 - (double)t;
  if (fabs(frac - 0.5) > MCGQ_GUARD_LIMIT) return MCGQ_B_EXACT;
  return (int32_t)t;
}

/* b(C) of DESIGN.md 2.5, estimate first, the exact test inside the guard. */
static inline MCGQ_HD uint64_t mcgq_samples_below(const mcgq_count_params *p, uint64_t C) {
  const int32_t b = mcgq_estimate_samples_below(p, C);
  if (b != MCGQ_B_EXACT) return (uint64_t)b;
  return mcgq_exact_samples_below(C, p->N, p->T, p->u, (double)(int64_t)C * p->ratio);
}

/* |v| of an int32 as uint64 (INT32_MIN included). */
static inline MCGQ_HD uint64_t mcgq_magnitude64(int32_t v) {
  return v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
}

/* One term of Alg 3's exact W1 sum: |N*a - T*b| for the i-th sorted values
 * a (signed fixed point) and b (g_int); each term < 2^88. */
static inline MCGQ_HD mcgq_u128 mcgq_w1_term(uint64_t N, int32_t a, uint64_t T, int32_t b) {
  const mcgq_u128 x = mcgq_u128_mul64(N, mcgq_magnitude64(a));
  const mcgq_u128 y = mcgq_u128_mul64(T, mcgq_magnitude64(b));
  if ((a < 0) != (b < 0)) return mcgq_u128_add(x, y); /* opposite signs */
  return mcgq_u128_absdiff(x, y);
}

/* Alg 3's distance from the exact sum S = sum_i |N*a_i - T*b_i|, evaluated
 * in exactly DESIGN.md's order in IEEE double. */
static inline MCGQ_HD double mcgq_w1_distance(mcgq_u128 S, uint64_t n, uint64_t N,
                                              uint64_t T) {
  const double numerator = (double)S.hi * 0x1p64 + (double)S.lo;
  const double denominator = ((double)n * (double)N) * (double)T;
  return numerator / denominator;
}

/* Alg 3's update K + delta_K * (d_prev - d) exactly as the paper writes it,
 * in double, then clamped to [k_min, k_max]. */
static inline MCGQ_HD double mcgq_dynamic_k_next(double k, double delta_k, double d_prev,
                                                 double d, double k_min, double k_max) {
  double next = k + delta_k * (d_prev - d);
  if (next < k_min) next = k_min;
  if (next > k_max) next = k_max;
  return next;
}

#endif /* MCGQ_FORMAT_SAMPLING_H_ */
