/* fixed_groups.c - fixed-width values eight at a time (fixed_groups.h).
 *
 * AVX2 only: the kernel is a byte shuffle, a variable shift and an
 * arithmetic shift per group, which SSE2 cannot do per lane.  Other CPUs
 * (and other widths) keep the bit reader of bitstream.c, which gives the
 * same values; tests/test_stream_fast.cpp compares both paths. */
#include "fixed_groups.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MCGQ_FIXED_GROUPS_AVX2 1
#endif

int mcgq_fixed_groups_supported(uint32_t bits_value) {
#if defined(MCGQ_FIXED_GROUPS_AVX2)
  return bits_value >= 1 && bits_value <= MCGQ_FIXED_GROUP_MAX_BITS &&
         __builtin_cpu_supports("avx2");
#else
  (void)bits_value;
  return 0;
#endif
}

#if defined(MCGQ_FIXED_GROUPS_AVX2)

/* Lane j's value starts at bit j*B_g of the group: byte o = j*B_g / 8, bit
 * s = j*B_g % 8 of it.  The shuffle puts bytes o .. o+3 into lane j most
 * significant first (a big-endian load; both 128-bit halves of the source
 * hold the same 16 bytes, so lanes 4..7 index them the same way), the shift
 * left by s brings the value's first bit to bit 31, and the arithmetic
 * shift right by 32 - B_g sign-extends it. */
__attribute__((target("avx2")))
static void group_controls(uint32_t bg, __m256i *shuffle, __m256i *shift) {
  uint8_t bytes[32];
  uint32_t shifts[8];
  for (uint32_t j = 0; j < 8; ++j) {
    uint32_t bit = j * bg, o = bit / 8u;
    for (uint32_t q = 0; q < 4; ++q) bytes[4 * j + q] = (uint8_t)(o + 3u - q);
    shifts[j] = bit % 8u;
  }
  *shuffle = _mm256_loadu_si256((const __m256i *)bytes);
  *shift = _mm256_loadu_si256((const __m256i *)shifts);
}

/* OR and sum of the eight 32-bit lanes of ors and sums (once per run of
 * groups, so plain loops over a stored copy). */
__attribute__((target("avx2")))
static void reduce_lanes(__m256i ors, __m256i sums, uint32_t *mag_or,
                         uint64_t *sum) {
  uint32_t o[8], a[8];
  _mm256_storeu_si256((__m256i *)o, ors);
  _mm256_storeu_si256((__m256i *)a, sums);
  for (int j = 0; j < 8; ++j) {
    *mag_or |= o[j];
    *sum += a[j];
  }
}

/* Groups per run of 32-bit lane sums: each adds at most 2^(B_g-1) <= 2^11
 * per lane, so a lane stays below 4096 * 2^11 = 2^23 (a 32-bit lane).  A
 * multiple of 8, so a run ends on a zero-mask word. */
#define SUM_RUN 4096u

__attribute__((target("avx2")))
static uint64_t groups_avx2(const uint8_t *in, uint32_t bg, uint64_t groups,
                            int32_t *out, uint64_t *zero_masks,
                            mcgq_fixed_group_stats_t *st) {
  __m256i shuffle, shift;
  group_controls(bg, &shuffle, &shift);
  const __m128i down = _mm_cvtsi32_si128((int)(32u - bg));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i min_value = _mm256_set1_epi32((int32_t)(0u - (1u << (bg - 1u))));
  __m256i ors = zero, hits = zero;
  uint64_t sum = 0, z = 0, g = 0;
  while (g < groups) {
    const uint64_t stop = groups - g < SUM_RUN ? groups : g + SUM_RUN;
    __m256i sums = zero;
    for (; g < stop; ++g, in += bg) {
      __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)in));
      __m256i v = _mm256_sra_epi32(
          _mm256_sllv_epi32(_mm256_shuffle_epi8(x, shuffle), shift), down);
      _mm256_storeu_si256((__m256i *)(out + 8u * g), v);
      __m256i mag = _mm256_abs_epi32(v);
      ors = _mm256_or_si256(ors, mag);
      sums = _mm256_add_epi32(sums, mag);
      hits = _mm256_or_si256(hits, _mm256_cmpeq_epi32(v, min_value));
      uint32_t zeros = (uint32_t)_mm256_movemask_ps(
          _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, zero)));
      z |= (uint64_t)zeros << (8u * (g & 7u));
      if ((g & 7u) == 7u) {
        zero_masks[g / 8u] = z;
        z = 0;
      }
    }
    reduce_lanes(zero, sums, &st->mag_or, &sum);
  }
  if (groups & 7u) zero_masks[groups / 8u] = z;
  reduce_lanes(ors, zero, &st->mag_or, &sum);
  st->has_min |= _mm256_movemask_epi8(hits) != 0;
  st->abs_sum += sum;
  return groups;
}
#endif

uint64_t mcgq_fixed_groups(const uint8_t *in, const uint8_t *end,
                           uint32_t bits_value, uint64_t groups, int32_t *out,
                           uint64_t *zero_masks, mcgq_fixed_group_stats_t *st) {
#if defined(MCGQ_FIXED_GROUPS_AVX2)
  /* Group g loads bytes [g*B_g, g*B_g + 16). */
  const uint64_t left = (uint64_t)(end - in);
  const uint64_t safe = left >= 16u ? (left - 16u) / bits_value + 1u : 0u;
  return groups_avx2(in, bits_value, groups < safe ? groups : safe, out,
                     zero_masks, st);
#else
  (void)in; (void)end; (void)bits_value; (void)groups; (void)out;
  (void)zero_masks; (void)st;
  return 0;
#endif
}
