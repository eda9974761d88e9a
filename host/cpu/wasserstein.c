/* wasserstein.c - the exact W1 distance of DESIGN.md Alg 3 and the public
 * mcgqWassersteinHost.
 *
 * W1 between the equal-weight samples g/||g||_1 and g_int/||g_int||_1
 * (scipy.stats.wasserstein_distance semantics) is the mean absolute
 * difference of the two sorted sequences.  On the fixed-point magnitudes
 * a_k = sign(g_k) q_k (||a||_1 = T) with N = ||g_int||_1 it becomes
 *   d = S / (n N T),  S = sum_i |N sort(a)_i - T sort(g_int)_i|,
 * where S is an exact integer (each term < 2^88, the sum < 2^120), so every
 * path that follows the same final double evaluation agrees to the bit.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sampling.h"

#define RADIX_BITS 13
#define RADIX_SIZE (1u << RADIX_BITS)

/* LSD radix sort of int32 in place (tmp: n entries of scratch) on the key
 * v - min, 13 bits per pass and only as many passes as max - min needs:
 * one for the small counts of g_int (a counting sort), two for the 25-bit
 * fixed-point values.  A pass whose digit is equal for every key is
 * skipped. */
static void radix_sort_i32(int32_t *keys, int32_t *tmp, uint64_t n) {
  if (n < 2) return;
  int32_t lo = keys[0], hi = keys[0];
  for (uint64_t i = 1; i < n; ++i) {
    lo = keys[i] < lo ? keys[i] : lo;
    hi = keys[i] > hi ? keys[i] : hi;
  }
  const uint32_t span = (uint32_t)hi - (uint32_t)lo;
  uint32_t count[RADIX_SIZE]; /* 32 KiB; n < 2^32 fits */
  int32_t *src = keys, *dst = tmp;
  for (unsigned shift = 0; shift < 32 && (span >> shift) != 0; shift += RADIX_BITS) {
    memset(count, 0, sizeof count);
    for (uint64_t i = 0; i < n; ++i)
      ++count[(((uint32_t)src[i] - (uint32_t)lo) >> shift) & (RADIX_SIZE - 1)];
    uint32_t d0 = (((uint32_t)src[0] - (uint32_t)lo) >> shift) & (RADIX_SIZE - 1);
    if (count[d0] == n) continue;
    uint32_t offset = 0;
    for (unsigned b = 0; b < RADIX_SIZE; ++b) {
      uint32_t c = count[b];
      count[b] = offset;
      offset += c;
    }
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t digit = (((uint32_t)src[i] - (uint32_t)lo) >> shift) & (RADIX_SIZE - 1);
      dst[count[digit]++] = src[i];
    }
    int32_t *swap = src;
    src = dst;
    dst = swap;
  }
  if (src != keys) memcpy(keys, src, (size_t)n * sizeof *keys);
}

/* a_k = sign(g_k) q_k into a[], returns T = sum q_k.  m > 0. */
static uint64_t signed_fixed_point(const float *g, uint64_t n, float m,
                                   int32_t *a) {
  uint64_t T = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t q = mcgq_fixed_point(g[k], m);
    T += q;
    a[k] = (g[k] < 0.0f) ? -(int32_t)q : (int32_t)q;
  }
  return T;
}

static uint64_t l1_norm(const int32_t *v, uint64_t n) {
  uint64_t s = 0;
  for (uint64_t k = 0; k < n; ++k)
    s += v[k] < 0 ? 0u - (uint64_t)(int64_t)v[k] : (uint64_t)v[k];
  return s;
}

static double w1_pinned(const float *g, const int32_t *g_int, uint64_t n) {
  int nonfinite = 0;
  float m = mcgq_max_abs(g, n, &nonfinite);
  if (m == 0.0f || nonfinite) return 0.0; /* all-zero layer: d = 0 */
  uint64_t N = l1_norm(g_int, n);
  if (N == 0) return 0.0; /* no estimate to compare (not from quantize) */
  size_t bytes = (size_t)n * sizeof(int32_t);
  int32_t *a = (int32_t *)malloc(bytes);
  int32_t *b = (int32_t *)malloc(bytes);
  int32_t *tmp = (int32_t *)malloc(bytes);
  double d = -1.0;
  if (a && b && tmp) {
    uint64_t T = signed_fixed_point(g, n, m, a);
    memcpy(b, g_int, bytes);
    radix_sort_i32(a, tmp, n);
    radix_sort_i32(b, tmp, n);
    mcgq_u128 S = mcgq_u128_from64(0);
    for (uint64_t i = 0; i < n; ++i)
      S = mcgq_u128_add(S, mcgq_w1_term(N, a[i], T, b[i]));
    d = mcgq_w1_distance(S, n, N, T);
  }
  free(a);
  free(b);
  free(tmp);
  return d;
}

double mcgq_w1_ref(const float *g, const int32_t *g_int, uint64_t n) {
  if (n == 0) return 0.0;
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  double d = w1_pinned(g, g_int, n);
  mcgq_fpenv_leave(&env);
  return d;
}

mcgqResult_t mcgqWassersteinHost(const float *g, const int32_t *g_int,
                                 uint64_t n, double *w1) {
  static const char fn[] = "mcgqWassersteinHost";
  if (!g) return mcgq_fail(mcgqInvalidArgument, "%s: g is NULL", fn);
  if (!g_int) return mcgq_fail(mcgqInvalidArgument, "%s: g_int is NULL", fn);
  if (!w1) return mcgq_fail(mcgqInvalidArgument, "%s: w1 is NULL", fn);
  if (n == 0 || n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_fail(mcgqInvalidArgument, "%s: n = %llu is not in [1, 2^32-1]",
                     fn, (unsigned long long)n);
  int nonfinite = 0;
  float m = mcgq_max_abs(g, n, &nonfinite);
  if (nonfinite)
    return mcgq_fail(mcgqNonFinite, "%s: g holds a NaN or Inf", fn);
  if (m != 0.0f && l1_norm(g_int, n) == 0)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: g_int is all zero while g is not (no samples)", fn);
  double d = mcgq_w1_ref(g, g_int, n);
  if (d < 0.0)
    return mcgq_fail(mcgqOutOfMemory,
                     "%s: no memory for the sort scratch (%llu elements)", fn,
                     (unsigned long long)n);
  *w1 = d;
  mcgq_clear_error();
  return mcgqSuccess;
}
