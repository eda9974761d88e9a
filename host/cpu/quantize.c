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
 *      and the closed-form counts b_k - b_{k-1} (2.5) straight into g_int,
 *      and the bitstream measurement of that block of g_int (B_g, B_RLE,
 *      stream bits: bitstream.h's tally) while it is still in L1, so the
 *      encoder needs no separate pass over g_int to size the message.
 * Recomputing q (one float division, vectorized) is cheaper than a second
 * n-element array's memory traffic.  The loops are SSE2 (baseline x86-64),
 * with AVX2 versions picked at run time; every path gives the same bits.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bitstream.h"
#include "internal.h"
#include "range.h"
#include "sampling.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define MCGQ_HAVE_SSE2 1
#endif

/* AVX2 versions of the hot loops, taken when the CPU has AVX2 (checked at
 * run time, so the library runs on any x86-64).  They do the same IEEE
 * single/double operations lane by lane (mul then add: no FMA), and every
 * value they produce is exact or checked exactly, so the output does not
 * depend on which path ran. */
#if defined(MCGQ_HAVE_SSE2) && defined(__x86_64__) && \
    (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MCGQ_HAVE_AVX2_PATH 1
#endif

#define MCGQ_BLOCK 2048 /* q values kept in L1 per block */

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

#if defined(MCGQ_HAVE_AVX2_PATH)
static int have_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

/* Max of the magnitude bits, 32 at a time in four independent maxima (one
 * running max would make the loop latency-bound, not memory-bound).
 * Returns how many elements it did. */
__attribute__((target("avx2")))
static uint64_t max_bits_avx2(const float *g, uint64_t n, int32_t *max_bits) {
  const __m256i magnitude = _mm256_set1_epi32(0x7fffffff);
  __m256i m0 = _mm256_setzero_si256(), m1 = m0, m2 = m0, m3 = m0;
  uint64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    const __m256i *p = (const __m256i *)(g + k);
    m0 = _mm256_max_epi32(m0, _mm256_and_si256(_mm256_loadu_si256(p), magnitude));
    m1 = _mm256_max_epi32(m1, _mm256_and_si256(_mm256_loadu_si256(p + 1), magnitude));
    m2 = _mm256_max_epi32(m2, _mm256_and_si256(_mm256_loadu_si256(p + 2), magnitude));
    m3 = _mm256_max_epi32(m3, _mm256_and_si256(_mm256_loadu_si256(p + 3), magnitude));
  }
  __m256i m = _mm256_max_epi32(_mm256_max_epi32(m0, m1), _mm256_max_epi32(m2, m3));
  int32_t lanes[8];
  _mm256_storeu_si256((__m256i *)lanes, m);
  for (int i = 0; i < 8; ++i) *max_bits = lanes[i] > *max_bits ? lanes[i] : *max_bits;
  return k;
}
#else
static int have_avx2(void) { return 0; }
#endif

float mcgq_max_abs(const float *g, uint64_t n, int *nonfinite) {
  /* Magnitude bits are < 2^31, so a signed max works on plain SSE2 too. */
  int32_t max_bits = 0;
  uint64_t k = 0;
#if defined(MCGQ_HAVE_AVX2_PATH)
  if (have_avx2()) k = max_bits_avx2(g, n, &max_bits);
#endif
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
  for (; j < len; ++j) q[j] = mcgq_fixed_point(g[j], m);
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

#if defined(MCGQ_HAVE_AVX2_PATH)
/* q of eight values: fixed_point_block's operations, lane by lane. */
__attribute__((target("avx2")))
static inline __m256i fixed_point8(const float *g, __m256 m) {
  const __m256 one = _mm256_set1_ps(MCGQ_FIXED_ONE);
  const __m256 half = _mm256_set1_ps(8388608.0f);
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 y = _mm256_mul_ps(_mm256_div_ps(_mm256_and_ps(_mm256_loadu_ps(g), magnitude), m), one);
  __m256 rounded = _mm256_sub_ps(_mm256_add_ps(y, half), half);
  __m256 r = _mm256_blendv_ps(y, rounded, _mm256_cmp_ps(y, half, _CMP_LT_OQ));
  return _mm256_cvttps_epi32(r);
}

/* fixed_point_block eight at a time.  Returns how many it did. */
__attribute__((target("avx2")))
static uint64_t fixed_point_octets(const float *g, uint64_t len, float m,
                                   uint32_t *q) {
  const __m256 vm = _mm256_set1_ps(m);
  uint64_t j = 0;
  for (; j + 8 <= len; j += 8)
    _mm256_storeu_si256((__m256i *)(q + j), fixed_point8(g + j, vm));
  return j;
}

/* Pass 2 without storing q: sums in 32-bit lanes for 128 steps (128 * 2^24
 * = 2^31, no overflow), then widened into 64-bit lanes.  Returns how many
 * elements it did; *total receives their sum. */
__attribute__((target("avx2")))
static uint64_t fixed_point_sum_avx2(const float *g, uint64_t n, float m,
                                     uint64_t *total) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256i wide = _mm256_setzero_si256();
  uint64_t j = 0;
  while (j + 8 <= n) {
    __m256i narrow = _mm256_setzero_si256();
    for (int step = 0; step < 128 && j + 8 <= n; ++step, j += 8)
      narrow = _mm256_add_epi32(narrow, fixed_point8(g + j, vm));
    wide = _mm256_add_epi64(wide, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(narrow)));
    wide = _mm256_add_epi64(wide, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(narrow, 1)));
  }
  uint64_t lanes[4];
  _mm256_storeu_si256((__m256i *)lanes, wide);
  *total = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  return j;
}
#endif

/* q of a block on the path the CPU has. */
static void fixed_point_any(const float *g, uint64_t len, float m,
                            uint32_t *q, int avx2) {
  uint64_t j = 0;
#if defined(MCGQ_HAVE_AVX2_PATH)
  if (avx2) j = fixed_point_octets(g, len, m, q);
#else
  (void)avx2;
#endif
  fixed_point_block(g + j, len - j, m, q + j);
}

static uint64_t fixed_point_sum(const float *g, uint64_t n, float m, int avx2) {
  uint32_t q[MCGQ_BLOCK];
  uint64_t total = 0, start = 0;
#if defined(MCGQ_HAVE_AVX2_PATH)
  if (avx2) start = fixed_point_sum_avx2(g, n, m, &total);
#endif
  for (; start < n; start += MCGQ_BLOCK) {
    uint64_t len = n - start < MCGQ_BLOCK ? n - start : MCGQ_BLOCK;
    fixed_point_any(g + start, len, m, q, avx2);
    total += block_sum(q, len);
  }
  return total;
}

/* State of pass 3 carried across blocks. */
typedef struct {
  mcgq_count_params p; /* N, T, u and what the estimate needs of them */
  uint64_t C;         /* inclusive prefix of q */
  uint64_t b_prev;
  int avx2;           /* take the AVX2 estimates */
} count_state_t;

/* The estimate and its guard are format/sampling.h's
 * mcgq_estimate_samples_below; the vector loops below compute the same
 * x1 = C*N/T + (1 - u/2^32) lane by lane. */

/* b_k where the estimate was guarded: an unsampled zero leaves C and hence
 * b unchanged (skipping the 128-bit work that structured data such as ties
 * or u = 0 would otherwise repeat); anything else takes the exact test. */
static int32_t exact_b_at(const count_state_t *s, uint64_t C, uint32_t q,
                          int32_t b_before) {
  if (q == 0) return b_before;
  return (int32_t)mcgq_exact_samples_below(C, s->p.N, s->p.T, s->p.u,
                                           (double)(int64_t)C * s->p.ratio);
}

/* Prefix and estimates two at a time (the prefix chain in a vector: (q0,
 * q1) -> (q0, q0+q1) plus the running C).  (double)C via the 2^52 exponent
 * trick (exact for C < 2^52, checked by the caller through T); otherwise the
 * lanes compute what mcgq_estimate_samples_below computes.  A lane whose x1 is 2^31 or more
 * (only near N = 2^31 - 1) truncates to INT32_MIN, and then its fraction is
 * far from [0, 1), so it is guarded.  Stores C[] (the exact test needs it)
 * and returns how many elements it did. */
static uint64_t prefix_estimate_pairs(count_state_t *s, const uint32_t *q,
                                      uint64_t len, uint64_t *C, int32_t *b,
                                      int32_t b_start) {
  uint64_t j = 0;
#if defined(MCGQ_HAVE_SSE2)
  const __m128i zero = _mm_setzero_si128();
  const __m128i magic_bits = _mm_set1_epi64x(0x4330000000000000LL);
  const __m128d magic = _mm_set1_pd(0x1p52), ratio = _mm_set1_pd(s->p.ratio);
  const __m128d one_minus_u = _mm_set1_pd(s->p.one_minus_u);
  const __m128d half = _mm_set1_pd(0.5), limit = _mm_set1_pd(MCGQ_GUARD_LIMIT);
  const __m128d magnitude = _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL));
  __m128i running = _mm_set1_epi64x((int64_t)s->C);
  for (; j + 2 <= len; j += 2) {
    __m128i v = _mm_unpacklo_epi32(_mm_loadl_epi64((const __m128i *)(q + j)), zero);
    __m128i c = _mm_add_epi64(_mm_add_epi64(v, _mm_slli_si128(v, 8)), running);
    running = _mm_shuffle_epi32(c, _MM_SHUFFLE(3, 2, 3, 2));
    _mm_storeu_si128((__m128i *)(C + j), c);
    __m128d cd = _mm_sub_pd(_mm_castsi128_pd(_mm_or_si128(c, magic_bits)), magic);
    __m128d x1 = _mm_add_pd(_mm_mul_pd(cd, ratio), one_minus_u);
    __m128i t = _mm_cvttpd_epi32(x1); /* two int32 in the low half */
    __m128d frac = _mm_sub_pd(x1, _mm_cvtepi32_pd(t));
    __m128d off = _mm_and_pd(_mm_sub_pd(frac, half), magnitude);
    _mm_storel_epi64((__m128i *)(b + j), t);
    int flagged = _mm_movemask_pd(_mm_cmpgt_pd(off, limit));
    if (flagged) { /* rare: fix the lanes in order, each after its left one */
      if (flagged & 1) b[j] = exact_b_at(s, C[j], q[j], j ? b[j - 1] : b_start);
      if (flagged & 2) b[j + 1] = exact_b_at(s, C[j + 1], q[j + 1], b[j]);
    }
  }
  if (j) s->C = C[j - 1];
#else
  (void)s, (void)q, (void)len, (void)C, (void)b, (void)b_start;
#endif
  return j;
}

#if defined(MCGQ_HAVE_AVX2_PATH)

/* prefix_estimate_pairs four at a time, with two cheaper steps that give
 * the same b:
 *  - the prefix of four in one register: (q0, q0+q1, q2, q2+q3) by an
 *    in-lane shift, then q0+q1 carried into the upper half;
 *  - floor(x1) without conversions: x1h = x1 - 1/2 (the constant 1/2 - u/2^32
 *    is exact), and x1h + 1.5*2^52 rounds to the nearest integer, i.e. to
 *    floor(x1), which then sits in the low mantissa bits (1.5*2^52, not
 *    2^52: x1h may be negative, and just below 2^52 the spacing is 1/2;
 *    the 2^51 it adds has zero low 32 bits).  d = x1h -
 *    (that integer) is exact (Sterbenz) and equals frac(x1) - 1/2, so the
 *    guard test |d| > 1/2 - guard is the one of the scalar estimate; x1h carries the
 *    error bound derived above, and ties (|d| = 1/2) are guarded. */
__attribute__((target("avx2")))
static uint64_t prefix_estimate_quads(count_state_t *s, const uint32_t *q,
                                      uint64_t len, uint64_t *C, int32_t *b,
                                      int32_t b_start) {
  uint64_t j = 0;
  const __m256i zero = _mm256_setzero_si256();
  const __m256i magic_bits = _mm256_set1_epi64x(0x4330000000000000LL);
  const __m256i low_words = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m256d magic = _mm256_set1_pd(0x1p52), ratio = _mm256_set1_pd(s->p.ratio);
  const __m256d half_minus_u = _mm256_set1_pd(s->p.one_minus_u - 0.5);
  const __m256d limit = _mm256_set1_pd(MCGQ_GUARD_LIMIT);
  const __m256d round_magic = _mm256_set1_pd(0x1.8p52);
  const __m256d magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  __m256i running = _mm256_set1_epi64x((int64_t)s->C);
  for (; j + 4 <= len; j += 4) {
    __m256i v = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(q + j)));
    v = _mm256_add_epi64(v, _mm256_slli_si256(v, 8));
    __m256i carry = _mm256_blend_epi32(_mm256_permute4x64_epi64(v, _MM_SHUFFLE(1, 1, 1, 1)),
                                       zero, 0x0f);
    __m256i c = _mm256_add_epi64(_mm256_add_epi64(v, carry), running);
    running = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(3, 3, 3, 3));
    _mm256_storeu_si256((__m256i *)(C + j), c);
    __m256d cd = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(c, magic_bits)), magic);
    __m256d x1h = _mm256_add_pd(_mm256_mul_pd(cd, ratio), half_minus_u);
    __m256d floor_bits = _mm256_add_pd(x1h, round_magic);
    __m256d d = _mm256_sub_pd(x1h, _mm256_sub_pd(floor_bits, round_magic));
    __m256i t = _mm256_permutevar8x32_epi32(_mm256_castpd_si256(floor_bits), low_words);
    _mm_storeu_si128((__m128i *)(b + j), _mm256_castsi256_si128(t));
    __m256d off = _mm256_and_pd(d, magnitude);
    int flagged = _mm256_movemask_pd(_mm256_cmp_pd(off, limit, _CMP_GT_OQ));
    for (int lane = 0; flagged; ++lane, flagged >>= 1) /* rare, in order */
      if (flagged & 1) {
        uint64_t i = j + (uint64_t)lane;
        b[i] = exact_b_at(s, C[i], q[i], i ? b[i - 1] : b_start);
      }
  }
  if (j) s->C = C[j - 1];
  return j;
}

#endif

/* Prefix C and b_k of a block, all final (guarded ones resolved exactly). */
static void estimate_block(count_state_t *s, const uint32_t *q, uint64_t len,
                           uint64_t *C, int32_t *b) {
  const int32_t b_start = (int32_t)s->b_prev;
  uint64_t j = 0;
  if (s->p.T < (1ull << 52)) {
#if defined(MCGQ_HAVE_AVX2_PATH)
    if (s->avx2) j = prefix_estimate_quads(s, q, len, C, b, b_start);
#endif
    j += prefix_estimate_pairs(s, q + j, len - j, C + j, b + j, j ? b[j - 1] : b_start);
  }
  for (; j < len; ++j) {
    s->C += q[j];
    C[j] = s->C;
    int32_t e = mcgq_estimate_samples_below(&s->p, C[j]);
    b[j] = e != MCGQ_B_EXACT ? e : exact_b_at(s, C[j], q[j], j ? b[j - 1] : b_start);
  }
}

/* sign(g) * count without a branch: negate when the sign bit is set. */
static inline int32_t signed_count(int32_t count, float g) {
  int32_t neg = -(int32_t)(float_bits(g) >> 31);
  return (int32_t)(((uint32_t)count ^ (uint32_t)neg) - (uint32_t)neg);
}

#if defined(MCGQ_HAVE_AVX2_PATH)
/* counts_block's vector loop eight at a time, from element `from` >= 1.
 * Returns where it stopped. */
__attribute__((target("avx2")))
static uint64_t counts_octets(const float *g, const int32_t *b, uint64_t from,
                              uint64_t len, int32_t *g_int) {
  uint64_t j = from;
  for (; j + 8 <= len; j += 8) {
    __m256i counts = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(b + j)),
                                      _mm256_loadu_si256((const __m256i *)(b + j - 1)));
    __m256i sign = _mm256_srai_epi32(_mm256_loadu_si256((const __m256i *)(g + j)), 31);
    _mm256_storeu_si256((__m256i *)(g_int + j),
                        _mm256_sub_epi32(_mm256_xor_si256(counts, sign), sign));
  }
  return j;
}
#endif

/* g_int[k] = sign(g_k) * (b_k - b_{k-1}), vectorized from k = 1 on (b_{k-1}
 * is then in the block). */
static void counts_block(count_state_t *s, const float *g, const int32_t *b,
                         uint64_t len, int32_t *g_int) {
  g_int[0] = signed_count(b[0] - (int32_t)s->b_prev, g[0]);
  uint64_t j = 1;
#if defined(MCGQ_HAVE_AVX2_PATH)
  if (s->avx2) j = counts_octets(g, b, j, len, g_int);
#endif
#if defined(MCGQ_HAVE_SSE2)
  for (; j + 4 <= len; j += 4) {
    __m128i counts = _mm_sub_epi32(_mm_loadu_si128((const __m128i *)(b + j)),
                                   _mm_loadu_si128((const __m128i *)(b + j - 1)));
    __m128i sign = _mm_srai_epi32(_mm_loadu_si128((const __m128i *)(g + j)), 31);
    _mm_storeu_si128((__m128i *)(g_int + j),
                     _mm_sub_epi32(_mm_xor_si128(counts, sign), sign));
  }
#endif
  for (; j < len; ++j) g_int[j] = signed_count(b[j] - b[j - 1], g[j]);
  s->b_prev = (uint64_t)b[len - 1];
}

/* Pass 3.  Each block of g_int is measured for the bitstream (B_g, B_RLE,
 * stream bits) right after it is written, while it is still in L1, which
 * saves the encoder a second pass over all of g_int. */
static void write_counts(const float *g, uint64_t n, float m, uint64_t N,
                         uint64_t T, uint32_t u, int avx2, int32_t *g_int,
                         mcgq_rle_tally_t *tally) {
  count_state_t s;
  s.p = mcgq_count_params_of(N, T, u);
  s.avx2 = avx2;
  s.C = 0;
  s.b_prev = 0;
  uint32_t q[MCGQ_BLOCK];
  uint64_t C[MCGQ_BLOCK];
  int32_t b[MCGQ_BLOCK];
  for (uint64_t start = 0; start < n; start += MCGQ_BLOCK) {
    uint64_t len = n - start < MCGQ_BLOCK ? n - start : MCGQ_BLOCK;
    fixed_point_any(g + start, len, m, q, s.avx2);
    estimate_block(&s, q, len, C, b);
    counts_block(&s, g + start, b, len, g_int + start);
    mcgq_rle_tally_add(tally, g_int + start, len);
  }
}

static uint64_t first_nonfinite(const float *g, uint64_t n) {
  for (uint64_t k = 0; k < n; ++k)
    if ((float_bits(g[k]) & 0x7fffffffu) >= 0x7f800000u) return k;
  return n;
}

/* The stats the quantizer owns, from the bitstream tally of g_int. */
static void set_stats(const mcgq_rle_tally_t *tally, uint64_t samples,
                      float scale, mcgqLayerStats_t *stats) {
  stats->n = tally->n;
  stats->samples = samples;
  stats->scale = scale;
  stats->nonzeros = tally->n - tally->zeros;
  mcgq_rle_tally_finish(tally, &stats->bits_value, &stats->bits_run,
                        &stats->stream_bits);
}

static void set_zero_layer(uint64_t n, int32_t *g_int,
                           mcgqLayerStats_t *stats) {
  memset(g_int, 0, (size_t)n * sizeof *g_int);
  mcgq_rle_tally_t tally;
  mcgq_rle_tally_init(&tally);
  mcgq_rle_tally_add(&tally, g_int, n);
  set_stats(&tally, 0, 0.0f, stats);
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
  const int avx2 = have_avx2();
  uint64_t T = fixed_point_sum(g, n, m, avx2); /* >= 2^24: the max maps to 2^24 */
  double scale = mcgq_scale_double(T, m, N, n, damped);
  if (scale >= MCGQ_FLOAT_OVERFLOW)
    return mcgq_fail(mcgqRangeError,
                     "quantize: scale = %g (max|g| = %g, N = %llu) overflows "
                     "float32",
                     scale, (double)m, (unsigned long long)N);
  mcgq_rle_tally_t tally;
  mcgq_rle_tally_init(&tally);
  write_counts(g, n, m, N, T, u, avx2, g_int, &tally);
  set_stats(&tally, N, (float)scale, stats);
  /* FORMAT.md's range rule with P = 1: the decode of this layer alone must
   * stay finite (e.g. 3e38, 2e38 at K = 1 give g_int = [2, 0] and scale
   * 2.5e38, which would decode to +inf). */
  const double bound = mcgq_range_bound(stats->scale, stats->bits_value);
  if (!mcgq_range_ok(bound, 1))
    return mcgq_fail(mcgqRangeError,
                     "quantize: scale %g times the largest value that B_g = %u bits "
                     "hold is %g: the decode would overflow float32 (max|g| = %g, "
                     "N = %llu; docs/FORMAT.md, range rule)",
                     (double)stats->scale, stats->bits_value, bound, (double)m,
                     (unsigned long long)N);
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
    /* bits_value, bits_run, stream_bits: measured by the quantizer. */
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
