/* quantize.c - the CPU reference quantizer of DESIGN.md section 2 and the
 * public mcgqQuantizeHost.
 *
 * Three streaming passes over g and no O(n) scratch:
 *   1. m = max|g| and the finiteness check (integer max of the magnitude
 *      bits: for finite floats their order is the order of the values, and
 *      any NaN/Inf has magnitude bits >= 0x7f800000);
 *   2. T = sum q_k (read-only, so a range error is found before g_int is
 *      written);
 *   3. q_k again, per block into a small stack buffer, then the prefix C_k
 *      and the closed-form counts b_k - b_{k-1} (2.5) straight into g_int.
 * Recomputing q (one float division, vectorized) is cheaper than a second
 * n-element array's memory traffic.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "u128.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define MCGQ_HAVE_SSE2 1
#endif

#define MCGQ_FIXED_ONE 16777216.0f /* 2^24: fixed-point value of m */
#define MCGQ_BLOCK 2048            /* q values kept in L1 per block */

/* Largest double that float conversion rounds to FLT_MAX: FLT_MAX plus half
 * an ulp would round (ties to even) to 2^128, i.e. overflow. */
#define MCGQ_FLOAT_OVERFLOW 0x1.ffffffp+127

/* |x - nearest integer| below this sends b_k to the exact 128-bit test.  The
 * double estimate is within 2^-19 of the exact value (2.5), so 2^-16 leaves
 * a margin of 8. */
#define MCGQ_CEIL_GUARD 0x1p-16

static uint32_t float_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

static float bits_float(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

float mcgq_max_abs(const float *g, uint64_t n, int *nonfinite) {
  /* Magnitude bits are < 2^31, so a signed max works on plain SSE2 too. */
  int32_t max_bits = 0;
  uint64_t k = 0;
#if defined(MCGQ_HAVE_SSE2)
  const __m128i magnitude = _mm_set1_epi32(0x7fffffff);
  __m128i vmax = _mm_setzero_si128();
  for (; k + 4 <= n; k += 4) {
    __m128i b = _mm_and_si128(_mm_loadu_si128((const __m128i *)(g + k)), magnitude);
    __m128i greater = _mm_cmpgt_epi32(b, vmax);
    vmax = _mm_or_si128(_mm_and_si128(greater, b), _mm_andnot_si128(greater, vmax));
  }
  int32_t lanes[4];
  _mm_storeu_si128((__m128i *)lanes, vmax);
  for (int i = 0; i < 4; ++i) max_bits = lanes[i] > max_bits ? lanes[i] : max_bits;
#endif
  for (; k < n; ++k) {
    int32_t b = (int32_t)(float_bits(g[k]) & 0x7fffffffu);
    max_bits = b > max_bits ? b : max_bits;
  }
  *nonfinite = max_bits >= 0x7f800000;
  return bits_float((uint32_t)max_bits);
}

/* Round-to-nearest-even of y in [0, 2^24] without libm: below 2^23, adding
 * and subtracting 2^23 rounds to an integer in the current (pinned, nearest)
 * mode; from 2^23 on every float is an integer already. */
static inline uint32_t round_fixed(float y) {
  float r = y < 8388608.0f ? (y + 8388608.0f) - 8388608.0f : y;
  return (uint32_t)(int32_t)r;
}

/* |g| / m <= 1 is rounded once by the division; the product with 2^24 only
 * shifts the exponent, so it is exact (also for denormal quotients). */
static inline uint32_t fixed_point_inline(float g, float m) {
  return round_fixed(fabsf(g) / m * MCGQ_FIXED_ONE);
}

uint32_t mcgq_fixed_point(float g, float m) { return fixed_point_inline(g, m); }

/* q of a block.  With SSE2 four at a time: the same IEEE division, exact
 * scaling and 2^23 rounding trick per lane, so the bits are the scalar ones
 * (the compiler does not vectorize this at -O2 by itself). */
static void fixed_point_block(const float *g, uint64_t len, float m,
                              uint32_t *q) {
  uint64_t j = 0;
#if defined(MCGQ_HAVE_SSE2)
  const __m128 vm = _mm_set1_ps(m), one = _mm_set1_ps(MCGQ_FIXED_ONE);
  const __m128 half = _mm_set1_ps(8388608.0f);
  const __m128 magnitude = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  for (; j + 4 <= len; j += 4) {
    __m128 y = _mm_mul_ps(_mm_div_ps(_mm_and_ps(_mm_loadu_ps(g + j), magnitude), vm), one);
    __m128 rounded = _mm_sub_ps(_mm_add_ps(y, half), half);
    __m128 small = _mm_cmplt_ps(y, half);
    __m128 r = _mm_or_ps(_mm_and_ps(small, rounded), _mm_andnot_ps(small, y));
    _mm_storeu_si128((__m128i *)(q + j), _mm_cvttps_epi32(r));
  }
#endif
  for (; j < len; ++j) q[j] = fixed_point_inline(g[j], m);
}

/* Sum of a block of q; SSE2 widens to two 64-bit lanes, so no overflow. */
static uint64_t block_sum(const uint32_t *q, uint64_t len) {
  uint64_t total = 0, j = 0;
#if defined(MCGQ_HAVE_SSE2)
  __m128i acc = _mm_setzero_si128();
  const __m128i zero = _mm_setzero_si128();
  for (; j + 4 <= len; j += 4) {
    __m128i v = _mm_loadu_si128((const __m128i *)(q + j));
    acc = _mm_add_epi64(acc, _mm_unpacklo_epi32(v, zero));
    acc = _mm_add_epi64(acc, _mm_unpackhi_epi32(v, zero));
  }
  uint64_t lanes[2];
  _mm_storeu_si128((__m128i *)lanes, acc);
  total = lanes[0] + lanes[1];
#endif
  for (; j < len; ++j) total += q[j];
  return total;
}

static uint64_t fixed_point_sum(const float *g, uint64_t n, float m) {
  uint32_t q[MCGQ_BLOCK];
  uint64_t total = 0;
  for (uint64_t start = 0; start < n; start += MCGQ_BLOCK) {
    uint64_t len = n - start < MCGQ_BLOCK ? n - start : MCGQ_BLOCK;
    fixed_point_block(g + start, len, m, q);
    total += block_sum(q, len);
  }
  return total;
}

/* Exact b_k = Q + (R*2^32 > u*T) with (Q, R) = divmod(N*C, T), clamped to
 * [0, N].  Q is found from the double estimate y ~ N*C/T and corrected, so
 * no 128-bit division is needed. */
static uint64_t exact_b(uint64_t C, uint64_t N, uint64_t T, uint32_t u,
                        double y) {
  mcgq_u128 P = mcgq_u128_mul64(N, C);
  uint64_t Q = y > 0.0 ? (uint64_t)y : 0;
  mcgq_u128 QT = mcgq_u128_mul64(Q, T);
  mcgq_u128 t128 = mcgq_u128_from64(T);
  while (mcgq_u128_cmp(QT, P) > 0) { /* estimate one too high */
    --Q;
    QT = mcgq_u128_sub(QT, t128);
  }
  for (;;) { /* estimate too low: while P - Q*T >= T */
    mcgq_u128 next = mcgq_u128_add(QT, t128);
    if (mcgq_u128_cmp(next, P) > 0) break;
    ++Q;
    QT = next;
  }
  uint64_t R = mcgq_u128_sub(P, QT).lo; /* < T < 2^57 */
  mcgq_u128 lhs = mcgq_u128_shl32(mcgq_u128_from64(R));
  mcgq_u128 rhs = mcgq_u128_mul64(u, T);
  uint64_t b = Q + (mcgq_u128_cmp(lhs, rhs) > 0 ? 1 : 0);
  return b > N ? N : b;
}

/* State of pass 3 carried across blocks. */
typedef struct {
  uint64_t N, T;
  uint32_t u;
  double ratio;   /* (double)N / (double)T */
  double u_frac;  /* u * 2^-32, exact */
  uint64_t C;     /* inclusive prefix of q */
  uint64_t b_prev;
  uint64_t nonzeros;
} count_state_t;

/* Marks a b_k whose estimate lies within the guard of an integer. */
#define MCGQ_B_EXACT (-1)

/* b_k = ceil(C*N/T - u/2^32) from the double estimate, or MCGQ_B_EXACT when
 * the estimate is within the guard of an integer.  Always < 2^31: x <= N +
 * 2^-19 and anything near N is guarded. */
static int32_t estimate_b(const count_state_t *s, uint64_t C) {
  double x = (double)(int64_t)C * s->ratio - s->u_frac; /* > -1 */
  int32_t t = (int32_t)x;   /* truncation: floor for x >= 0, 0 for x < 0 */
  double d = x - (double)t; /* in (-1, 1), exact */
  double ad = fabs(d);
  if (ad < MCGQ_CEIL_GUARD || ad > 1.0 - MCGQ_CEIL_GUARD) return MCGQ_B_EXACT;
  return t + (d > 0.0 ? 1 : 0);
}

/* b_k where the estimate was guarded: an unsampled zero leaves C and hence
 * b unchanged (skipping the 128-bit work that structured data such as ties
 * or u = 0 would otherwise repeat); anything else takes the exact test. */
static int32_t exact_b_at(const count_state_t *s, uint64_t C, uint32_t q,
                          int32_t b_before) {
  if (q == 0) return b_before;
  return (int32_t)exact_b(C, s->N, s->T, s->u, (double)(int64_t)C * s->ratio);
}

/* The estimates two at a time.  (double)C via the 2^52 exponent trick (exact
 * for C < 2^52, checked by the caller through T), so the lanes give the
 * scalar bits.  Returns how many it did. */
static uint64_t estimate_b_pairs(const count_state_t *s, const uint32_t *q,
                                 const uint64_t *C, uint64_t len, int32_t *b,
                                 int32_t b_start) {
  uint64_t j = 0;
#if defined(MCGQ_HAVE_SSE2)
  const __m128i magic_bits = _mm_set1_epi64x(0x4330000000000000LL);
  const __m128d magic = _mm_set1_pd(0x1p52), ratio = _mm_set1_pd(s->ratio);
  const __m128d u_frac = _mm_set1_pd(s->u_frac), zero = _mm_setzero_pd();
  const __m128d guard = _mm_set1_pd(MCGQ_CEIL_GUARD);
  const __m128d high_guard = _mm_set1_pd(1.0 - MCGQ_CEIL_GUARD);
  const __m128d magnitude = _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL));
  for (; j + 2 <= len; j += 2) {
    __m128i c = _mm_loadu_si128((const __m128i *)(C + j));
    __m128d cd = _mm_sub_pd(_mm_castsi128_pd(_mm_or_si128(c, magic_bits)), magic);
    __m128d x = _mm_sub_pd(_mm_mul_pd(cd, ratio), u_frac);
    __m128i t = _mm_cvttpd_epi32(x); /* two int32 in the low half */
    __m128d d = _mm_sub_pd(x, _mm_cvtepi32_pd(t));
    __m128d ad = _mm_and_pd(d, magnitude);
    __m128d risky = _mm_or_pd(_mm_cmplt_pd(ad, guard), _mm_cmpgt_pd(ad, high_guard));
    /* d > 0 lanes are all ones (-1): subtracting adds one. */
    __m128i up = _mm_shuffle_epi32(_mm_castpd_si128(_mm_cmpgt_pd(d, zero)),
                                   _MM_SHUFFLE(2, 0, 2, 0));
    _mm_storel_epi64((__m128i *)(b + j), _mm_sub_epi32(t, up));
    int flagged = _mm_movemask_pd(risky);
    if (flagged) { /* rare: fix the lanes in order, each after its left one */
      if (flagged & 1) b[j] = exact_b_at(s, C[j], q[j], j ? b[j - 1] : b_start);
      if (flagged & 2) b[j + 1] = exact_b_at(s, C[j + 1], q[j + 1], b[j]);
    }
  }
#else
  (void)s, (void)q, (void)C, (void)len, (void)b, (void)b_start;
#endif
  return j;
}

/* b_k of a block, all final (guarded ones resolved exactly). */
static void estimate_block(const count_state_t *s, const uint32_t *q,
                           const uint64_t *C, uint64_t len, int32_t *b) {
  const int32_t b_start = (int32_t)s->b_prev;
  uint64_t j = s->T < (1ull << 52) ? estimate_b_pairs(s, q, C, len, b, b_start) : 0;
  for (; j < len; ++j) {
    int32_t e = estimate_b(s, C[j]);
    b[j] = e != MCGQ_B_EXACT ? e : exact_b_at(s, C[j], q[j], j ? b[j - 1] : b_start);
  }
}

/* Serial part: the prefix, a chain of adds only. */
static void prefix_block(count_state_t *s, const uint32_t *q, uint64_t len,
                         uint64_t *C) {
  uint64_t c = s->C;
  for (uint64_t j = 0; j < len; ++j) {
    c += q[j];
    C[j] = c;
  }
  s->C = c;
}

/* g_int[k] = sign(g_k) * (b_k - b_{k-1}) without a branch (negate when the
 * sign bit is set), four at a time with SSE2. */
static void counts_block(count_state_t *s, const float *g, const int32_t *b,
                         uint64_t len, int32_t *g_int) {
  int32_t prev = (int32_t)s->b_prev;
  uint64_t nonzeros = 0, j = 0;
#if defined(MCGQ_HAVE_SSE2)
  if (len >= 5) {
    int32_t count = b[0] - prev;
    int32_t neg = -(int32_t)(float_bits(g[0]) >> 31);
    g_int[0] = (int32_t)(((uint32_t)count ^ (uint32_t)neg) - (uint32_t)neg);
    nonzeros += count != 0;
    __m128i zeros = _mm_setzero_si128(); /* per lane: minus the zero counts */
    for (j = 1; j + 4 <= len; j += 4) {
      __m128i counts = _mm_sub_epi32(_mm_loadu_si128((const __m128i *)(b + j)),
                                     _mm_loadu_si128((const __m128i *)(b + j - 1)));
      __m128i sign = _mm_srai_epi32(_mm_loadu_si128((const __m128i *)(g + j)), 31);
      __m128i signed_counts = _mm_sub_epi32(_mm_xor_si128(counts, sign), sign);
      _mm_storeu_si128((__m128i *)(g_int + j), signed_counts);
      zeros = _mm_add_epi32(zeros, _mm_cmpeq_epi32(counts, _mm_setzero_si128()));
    }
    int32_t lanes[4];
    _mm_storeu_si128((__m128i *)lanes, zeros);
    nonzeros += (j - 1) - (uint64_t)(-(int64_t)lanes[0] - lanes[1] - lanes[2] - lanes[3]);
    prev = b[j - 1];
  }
#endif
  for (; j < len; ++j) {
    int32_t count = b[j] - prev;
    prev = b[j];
    nonzeros += count != 0;
    int32_t neg = -(int32_t)(float_bits(g[j]) >> 31);
    g_int[j] = (int32_t)(((uint32_t)count ^ (uint32_t)neg) - (uint32_t)neg);
  }
  s->b_prev = (uint64_t)prev;
  s->nonzeros += nonzeros;
}

static uint64_t write_counts(const float *g, uint64_t n, float m, uint64_t N,
                             uint64_t T, uint32_t u, int32_t *g_int) {
  count_state_t s;
  s.N = N;
  s.T = T;
  s.u = u;
  s.ratio = (double)N / (double)T;
  s.u_frac = (double)u * 0x1p-32;
  s.C = 0;
  s.b_prev = 0;
  s.nonzeros = 0;
  uint32_t q[MCGQ_BLOCK];
  uint64_t C[MCGQ_BLOCK];
  int32_t b[MCGQ_BLOCK];
  for (uint64_t start = 0; start < n; start += MCGQ_BLOCK) {
    uint64_t len = n - start < MCGQ_BLOCK ? n - start : MCGQ_BLOCK;
    fixed_point_block(g + start, len, m, q);
    prefix_block(&s, q, len, C);
    estimate_block(&s, q, C, len, b);
    counts_block(&s, g + start, b, len, g_int + start);
  }
  return s.nonzeros;
}

static uint64_t first_nonfinite(const float *g, uint64_t n) {
  for (uint64_t k = 0; k < n; ++k)
    if ((float_bits(g[k]) & 0x7fffffffu) >= 0x7f800000u) return k;
  return n;
}

/* DESIGN.md 2.7: float(T*m / (2^24 * D)) with D = N (unbiased) or max(N, n)
 * (damped, residual error feedback), evaluated in that order in double. */
static double scale_double(uint64_t T, float m, uint64_t N, uint64_t n,
                           int damped) {
  uint64_t D = damped && n > N ? n : N;
  return ((double)T * (double)m) / ((double)MCGQ_FIXED_ONE * (double)D);
}

static void set_zero_layer(uint64_t n, int32_t *g_int,
                           mcgqLayerStats_t *stats) {
  memset(g_int, 0, (size_t)n * sizeof *g_int);
  stats->n = n;
  stats->samples = 0;
  stats->scale = 0.0f;
  stats->nonzeros = 0;
}

static mcgqResult_t quantize_pinned(const float *g, uint64_t n, uint64_t N,
                                    uint32_t u, int damped, int32_t *g_int,
                                    mcgqLayerStats_t *stats) {
  int nonfinite = 0;
  float m = mcgq_max_abs(g, n, &nonfinite);
  if (nonfinite) {
    uint64_t at = first_nonfinite(g, n);
    return mcgq_fail(mcgqNonFinite, "quantize: g[%llu] = %g is not finite",
                     (unsigned long long)at, (double)g[at]);
  }
  if (m == 0.0f) {
    set_zero_layer(n, g_int, stats);
    return mcgqSuccess;
  }
  uint64_t T = fixed_point_sum(g, n, m); /* >= 2^24: the max maps to 2^24 */
  double scale = scale_double(T, m, N, n, damped);
  if (scale >= MCGQ_FLOAT_OVERFLOW)
    return mcgq_fail(mcgqRangeError,
                     "quantize: scale = %g (max|g| = %g, N = %llu) overflows "
                     "float32",
                     scale, (double)m, (unsigned long long)N);
  stats->nonzeros = write_counts(g, n, m, N, T, u, g_int);
  stats->n = n;
  stats->samples = N;
  stats->scale = (float)scale;
  return mcgqSuccess;
}

mcgqResult_t mcgq_quantize_ref(const float *g, uint64_t n, uint64_t N,
                               uint32_t u, int damped, int32_t *g_int,
                               mcgqLayerStats_t *stats) {
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  mcgqResult_t res = quantize_pinned(g, n, N, u, damped, g_int, stats);
  mcgq_fpenv_leave(&env);
  return res;
}

/* ------------------------------------------------------------ public API */

static mcgqResult_t check_quantize_args(const char *fn, const float *g,
                                        uint64_t n, double k, uint64_t samples,
                                        int damped, const int32_t *g_int,
                                        uint64_t *N) {
  if (!g) return mcgq_fail(mcgqInvalidArgument, "%s: g is NULL", fn);
  if (!g_int) return mcgq_fail(mcgqInvalidArgument, "%s: g_int is NULL", fn);
  if (damped != 0 && damped != 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: damped = %d is not 0 or 1", fn,
                     damped);
  MCGQ_CHECK(mcgq_resolve_samples(fn, n, k, samples, N));
  /* n < 2^32: the byte count fits size_t on a 64-bit host. */
  size_t bytes = n > SIZE_MAX / sizeof(float) ? SIZE_MAX
                                              : (size_t)n * sizeof(float);
  if (mcgq_ranges_overlap(g, bytes, g_int, bytes))
    return mcgq_fail(mcgqInvalidArgument, "%s: g_int overlaps g", fn);
  return mcgqSuccess;
}

static void fill_failed_stats(mcgqLayerStats_t *stats, uint64_t n,
                              mcgqResult_t status) {
  memset(stats, 0, sizeof *stats);
  stats->n = n;
  stats->status = (uint32_t)status;
  stats->w1 = -1.0;
}

mcgqResult_t mcgqQuantizeHost(const float *g, uint64_t n, double k,
                              uint64_t samples, uint32_t u, int damped,
                              int32_t *g_int, mcgqLayerStats_t *stats) {
  static const char fn[] = "mcgqQuantizeHost";
  uint64_t N = 0;
  MCGQ_CHECK(check_quantize_args(fn, g, n, k, samples, damped, g_int, &N));
  mcgqLayerStats_t st;
  memset(&st, 0, sizeof st);
  mcgqResult_t res = mcgq_quantize_ref(g, n, N, u, damped, g_int, &st);
  if (res != mcgqSuccess) {
    if (stats) fill_failed_stats(stats, n, res);
    /* Re-record the reference's detail under the public name. */
    static const char prefix[] = "quantize: ";
    char detail[256];
    const char *what = mcgqGetLastErrorDetail();
    if (strncmp(what, prefix, sizeof prefix - 1) == 0) what += sizeof prefix - 1;
    mcgq_format_detail(detail, sizeof detail, "%s", what);
    return mcgq_fail(res, "%s: %s", fn, detail);
  }
  if (stats) {
    /* K as used: the caller's, or the N/n implied when samples fixed N. */
    st.k = samples ? (double)N / (double)n : k;
    mcgq_rle_measure(g_int, n, &st.bits_value, &st.bits_run, &st.stream_bits);
    st.w1 = mcgq_w1_ref(g, g_int, n);
    if (st.w1 < 0.0)
      return mcgq_fail(mcgqOutOfMemory,
                       "%s: no memory for the W1 sort scratch (%llu elements)",
                       fn, (unsigned long long)n);
    st.status = mcgqSuccess;
    st.wire_bytes = 0;
    *stats = st;
  }
  mcgq_clear_error();
  return mcgqSuccess;
}
