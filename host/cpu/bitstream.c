/* bitstream.c - the paper's run-length bitstream (section 3.4): sizing,
 * encoding with the chunk index, canonical decoding, and the fixed-width
 * alternative of the container (docs/FORMAT.md). */
#include <inttypes.h>
#include <string.h>

#include "bitio.h"
#include "bitstream.h"
#include "fixed_groups.h"
#include "format.h"
#include "internal.h"

uint32_t mcgq_bitlen64(uint64_t x) {
  uint32_t bits = 0;
#if defined(__GNUC__)
  if (x) bits = 64u - (uint32_t)__builtin_clzll(x);
#else
  while (x) { ++bits; x >>= 1; }
#endif
  return bits;
}

/* The widest value decides B_g, the longest zero run B_RLE, and the token
 * count the length.  Every nonzero costs B_g bits and every run
 * B_g + B_RLE bits, so stream_bits = 64 + B_g*(nonzeros+runs) + B_RLE*runs.
 *
 * Zeros and nonzeros alternate at random in quantized gradients, so a branch
 * or a serial run counter per element would dominate.  Instead every 64
 * elements become one bit mask z (bit i set where g_int[i] == 0, built four
 * lanes at a time) and the runs are read off z with a few word operations:
 * zeros = popcount(z), run starts = popcount(z & ~(z << 1 | previous)),
 * runs that touch a word boundary are summed exactly through `open_run`, and
 * runs inside a word only need their bit length (all B_RLE needs), found by
 * halving: z & z >> 1 keeps the starts of runs >= 2, then >= 4, ... >= 32. */

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define MCGQ_TALLY_SSE2 1
#endif

static uint32_t magnitude(uint32_t v) {
  uint32_t sign = 0u - (v >> 31);
  return (v ^ sign) - sign;
}

static uint32_t popcount64(uint64_t x) {
#if defined(__GNUC__)
  return (uint32_t)__builtin_popcountll(x);
#else
  uint32_t c = 0;
  for (; x; x &= x - 1) ++c;
  return c;
#endif
}

/* Trailing / leading zero bits of a nonzero word. */
static uint32_t ctz64(uint64_t x) {
#if defined(__GNUC__)
  return (uint32_t)__builtin_ctzll(x);
#else
  uint32_t c = 0;
  for (; !(x & 1u); x >>= 1) ++c;
  return c;
#endif
}

static uint32_t clz64(uint64_t x) { return 64u - mcgq_bitlen64(x); }

#if defined(MCGQ_TALLY_SSE2)
static __m128i abs_epi32(__m128i v) {
  __m128i sign = _mm_srai_epi32(v, 31);
  return _mm_sub_epi32(_mm_xor_si128(v, sign), sign);
}
#endif

/* Zero mask of len <= 64 values (bit i <-> v[i] == 0); ORs |v| into *mag_or. */
#if defined(__GNUC__)
__attribute__((always_inline)) /* callers that drop mag_or skip its work */
#endif
static inline uint64_t zero_mask(const int32_t *v, uint32_t len,
                                 uint32_t *mag_or) {
  uint64_t z = 0;
  uint32_t i = 0, mags = 0;
#if defined(MCGQ_TALLY_SSE2)
  const __m128i zero = _mm_setzero_si128();
  __m128i acc = zero;
  for (; i + 16 <= len; i += 16) {
    __m128i a = _mm_loadu_si128((const __m128i *)(v + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(v + i + 4));
    __m128i c = _mm_loadu_si128((const __m128i *)(v + i + 8));
    __m128i d = _mm_loadu_si128((const __m128i *)(v + i + 12));
    acc = _mm_or_si128(acc, _mm_or_si128(_mm_or_si128(abs_epi32(a), abs_epi32(b)),
                                         _mm_or_si128(abs_epi32(c), abs_epi32(d))));
    /* Compare results are 0 / -1, which the saturating packs keep. */
    __m128i ab = _mm_packs_epi32(_mm_cmpeq_epi32(a, zero), _mm_cmpeq_epi32(b, zero));
    __m128i cd = _mm_packs_epi32(_mm_cmpeq_epi32(c, zero), _mm_cmpeq_epi32(d, zero));
    uint32_t bits = (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(ab, cd));
    z |= (uint64_t)bits << i;
  }
  uint32_t lanes[4];
  _mm_storeu_si128((__m128i *)lanes, acc);
  mags = lanes[0] | lanes[1] | lanes[2] | lanes[3];
#endif
  for (; i < len; ++i) {
    z |= (uint64_t)(v[i] == 0) << i;
    mags |= magnitude((uint32_t)v[i]);
  }
  *mag_or |= mags;
  return z;
}

/* Bit length of the longest run of set bits in z, when below 64. */
static uint32_t inner_run_bits(uint64_t z) {
  uint32_t bits = z != 0;
  for (uint32_t shift = 1; shift < 64; shift *= 2) {
    z &= z >> shift; /* bit i: a run of >= 2*shift starts at i */
    bits += z != 0;
  }
  return bits;
}

/* One word of w (1..64) elements. */
static inline void tally_word(mcgq_rle_tally_t *t, uint64_t z, uint32_t w) {
  const uint64_t all = w == 64 ? ~(uint64_t)0 : ((uint64_t)1 << w) - 1u;
  uint64_t before_zero = t->open_run != 0; /* element before bit 0 */
  t->zeros += popcount64(z);
  t->runs += popcount64(z & ~((z << 1) | before_zero));
  if (z == all) { /* the open run goes on through the word */
    t->open_run += w;
    return;
  }
  uint64_t closed = t->open_run + ctz64(~z);
  t->longest = closed > t->longest ? closed : t->longest;
  t->open_run = clz64(~(z << (64u - w))); /* zeros at the word's end */
  uint32_t inner = inner_run_bits(z);
  t->run_bits = inner > t->run_bits ? inner : t->run_bits;
}

void mcgq_rle_tally_init(mcgq_rle_tally_t *t) { memset(t, 0, sizeof *t); }

#if defined(MCGQ_TALLY_SSE2) && defined(__x86_64__) && \
    (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MCGQ_TALLY_AVX2 1

/* zero_mask of 64 values eight at a time (AVX2 has a 32-bit abs). */
__attribute__((target("avx2,popcnt,bmi,lzcnt")))
static inline uint64_t zero_mask64_avx2(const int32_t *v, uint32_t *mag_or) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i mags = zero;
  uint64_t z = 0;
  for (uint32_t i = 0; i < 64; i += 8) {
    __m256i x = _mm256_loadu_si256((const __m256i *)(v + i));
    mags = _mm256_or_si256(mags, _mm256_abs_epi32(x));
    uint32_t bits = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(x, zero)));
    z |= (uint64_t)bits << i;
  }
  __m128i m = _mm_or_si128(_mm256_castsi256_si128(mags), _mm256_extracti128_si256(mags, 1));
  m = _mm_or_si128(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm_or_si128(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
  *mag_or |= (uint32_t)_mm_cvtsi128_si32(m);
  return z;
}

/* mcgq_rle_tally_add for CPUs with AVX2, where popcount, tzcnt and lzcnt
 * are instructions too (baseline x86-64 calls a library routine for a
 * popcount).  Integer code: the same counts as the portable loop. */
__attribute__((target("avx2,popcnt,bmi,lzcnt")))
static void tally_add_avx2(mcgq_rle_tally_t *t, const int32_t *g_int,
                           uint64_t len) {
  uint64_t i = 0;
  for (; i + 64 <= len; i += 64)
    tally_word(t, zero_mask64_avx2(g_int + i, &t->mag_or), 64);
  if (i < len)
    tally_word(t, zero_mask(g_int + i, (uint32_t)(len - i), &t->mag_or),
               (uint32_t)(len - i));
}
#endif

void mcgq_rle_tally_add(mcgq_rle_tally_t *t, const int32_t *g_int,
                        uint64_t len) {
#if defined(MCGQ_TALLY_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) {
    tally_add_avx2(t, g_int, len);
    t->n += len;
    return;
  }
#endif
  for (uint64_t i = 0; i < len; i += 64) {
    uint32_t w = len - i < 64 ? (uint32_t)(len - i) : 64u;
    tally_word(t, zero_mask(g_int + i, w, &t->mag_or), w);
  }
  t->n += len;
}

static inline void tally_masks(mcgq_rle_tally_t *t, const uint64_t *zero_masks,
                               uint64_t len) {
  for (uint64_t i = 0; i < len; i += 64)
    tally_word(t, zero_masks[i / 64], len - i < 64 ? (uint32_t)(len - i) : 64u);
}

#if defined(MCGQ_TALLY_AVX2)
/* The same loop where popcount, tzcnt and lzcnt are instructions. */
__attribute__((target("avx2,popcnt,bmi,lzcnt")))
static void tally_masks_avx2(mcgq_rle_tally_t *t, const uint64_t *zero_masks,
                             uint64_t len) {
  tally_masks(t, zero_masks, len);
}
#endif

void mcgq_rle_tally_add_masks(mcgq_rle_tally_t *t, const uint64_t *zero_masks,
                              uint64_t len, uint32_t mag_or) {
#if defined(MCGQ_TALLY_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt"))
    tally_masks_avx2(t, zero_masks, len);
  else
#endif
    tally_masks(t, zero_masks, len);
  t->mag_or |= mag_or;
  t->n += len;
}

void mcgq_rle_tally_finish(const mcgq_rle_tally_t *t, uint32_t *bits_value,
                           uint32_t *bits_run, uint64_t *stream_bits) {
  uint64_t longest = t->open_run > t->longest ? t->open_run : t->longest;
  uint32_t br = mcgq_bitlen64(longest);
  br = t->run_bits > br ? t->run_bits : br;
  uint32_t bg = t->n == 0 ? 0u : 1u + mcgq_bitlen64(t->mag_or);
  uint64_t nonzeros = t->n - t->zeros;
  *bits_value = bg;
  *bits_run = br;
  *stream_bits = 64u + (uint64_t)bg * (nonzeros + t->runs) + (uint64_t)br * t->runs;
}

void mcgq_rle_measure(const int32_t *g_int, uint64_t n, uint32_t *bits_value,
                      uint32_t *bits_run, uint64_t *stream_bits) {
  mcgq_rle_tally_t t;
  mcgq_rle_tally_init(&t);
  mcgq_rle_tally_add(&t, g_int, n);
  mcgq_rle_tally_finish(&t, bits_value, bits_run, stream_bits);
}

/* ------------------------------------------------------------- encoding */

static void store_index_entry(uint8_t *index, uint64_t entries, uint64_t e,
                              uint64_t bit_offset, uint32_t run_offset) {
  mcgq_store_le64(index + 8u * e, bit_offset);
  mcgq_store_le32(index + 8u * entries + 4u * e, run_offset);
}

/* Index of the first nonzero in g_int[k..n), or n.  Zero runs are long at
 * small K, so they are skipped four values per compare. */
static uint64_t next_nonzero(const int32_t *g_int, uint64_t k, uint64_t n) {
#if defined(MCGQ_TALLY_SSE2)
  const __m128i zero = _mm_setzero_si128();
  for (; k + 4 <= n; k += 4) {
    __m128i v = _mm_loadu_si128((const __m128i *)(g_int + k));
    uint32_t zeros = (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, zero)));
    if (zeros != 0xfu) return k + ctz64(~(uint64_t)zeros);
  }
#endif
  while (k < n && g_int[k] == 0) ++k;
  return k;
}

/* A zero run's token: B_g zero bits then the length in B_RLE bits, which is
 * the length written in B_g + B_RLE bits (one put when that fits 32). */
static void put_run(mcgq_bitwriter_t *bw, uint64_t len, uint32_t bits_value,
                    uint32_t bits_run) {
  if (bits_value + bits_run <= 32) {
    mcgq_bw_put(bw, (uint32_t)len, bits_value + bits_run);
  } else {
    mcgq_bw_put(bw, 0, bits_value);
    mcgq_bw_put(bw, (uint32_t)len, bits_run);
  }
}

/* Writer state of one paper stream with its chunk index. */
typedef struct {
  mcgq_bitwriter_t bw;
  uint8_t *out;    /* stream start */
  uint8_t *index;
  uint64_t entries, e, boundary; /* next chunk start to record */
  uint32_t bits_value, bits_run, mask;
} rle_writer_t;

static uint64_t rw_position(const rle_writer_t *rw) {
  return (uint64_t)(rw->bw.out - rw->out) * 8u + rw->bw.fill;
}

/* Records the chunk starts before `end` that lie in the token [start, end)
 * at bit `pos`.  A long run may cover several; each points at it. */
static void rw_index(rle_writer_t *rw, uint64_t start, uint64_t end,
                     uint64_t pos) {
  const uint64_t chunk = (uint64_t)1 << MCGQ_CHUNK_LOG2;
  while (rw->boundary < end) {
    store_index_entry(rw->index, rw->entries, rw->e, pos,
                      (uint32_t)(rw->boundary - start));
    ++rw->e;
    rw->boundary = rw->e < rw->entries ? (rw->e + 1) * chunk : UINT64_MAX;
  }
}

/* Token by token from element k to n, for any widths. */
static void rw_tokens(rle_writer_t *rw, const int32_t *g_int, uint64_t k,
                      uint64_t n) {
  while (k < n) {
    const uint64_t start = k;
    const uint64_t pos = rw_position(rw);
    if (g_int[k] != 0) {
      mcgq_bw_put(&rw->bw, (uint32_t)g_int[k] & rw->mask, rw->bits_value);
      ++k;
    } else {
      /* Runs are maximal: one token for the whole run. */
      k = next_nonzero(g_int, k + 1, n);
      put_run(&rw->bw, k - start, rw->bits_value, rw->bits_run);
    }
    rw_index(rw, start, k, pos);
  }
}

/* mcgq_bw_put without the unpredictable flush branch: always stores the
 * oldest 32 pending bits at out, and advances only when 32 are complete.
 * A store of incomplete bits is rewritten by the next complete one at the
 * same address, so the caller keeps at least 4 bytes of the stream ahead. */
static inline void put_branchless(mcgq_bitwriter_t *bw, uint32_t v,
                                  uint32_t width) {
  bw->acc = (bw->acc << width) | v;
  uint32_t fill = bw->fill + width;
  uint32_t full = fill >= 32;
  uint32_t rest = fill - (full << 5);
  mcgq_store_be32(bw->out, (uint32_t)(bw->acc >> rest));
  bw->out += full << 2;
  bw->fill = rest;
}

/* Whole words of 64 elements while the stream has room ahead, without a
 * branch per token: each nonzero is written together with the zero run
 * before it (if any) as one put of (run << B_g | value), B_g or
 * 2*B_g + B_RLE bits wide (the caller checks that this fits 32).  Returns
 * the first element not yet written (the start of a pending zero run). */
static uint64_t rw_tokens_fast(rle_writer_t *rw, const int32_t *g_int,
                               uint64_t n, const uint8_t *fast_end) {
  const uint32_t bg = rw->bits_value, run_width = bg + rw->bits_run;
  uint64_t k = 0, base = 0;
  for (; base + 64 <= n && fast_end - rw->bw.out >= 264; base += 64) {
    uint32_t unused = 0;
    uint64_t nonzero = ~zero_mask(g_int + base, 64, &unused);
    while (nonzero) {
      uint64_t p = base + ctz64(nonzero);
      nonzero &= nonzero - 1;
      uint64_t run = p - k;
      uint32_t width = bg + (run != 0) * run_width;
      if (rw->boundary <= p) { /* chunk starts in the run or at p */
        uint64_t pos = rw_position(rw);
        if (run != 0) rw_index(rw, k, p, pos);
        rw_index(rw, p, p + 1, pos + width - bg);
      }
      put_branchless(&rw->bw, ((uint32_t)run << bg) | ((uint32_t)g_int[p] & rw->mask),
                     width);
      k = p + 1;
    }
  }
  return k;
}

void mcgq_rle_write(const int32_t *g_int, uint64_t n, uint32_t bits_value,
                    uint32_t bits_run, uint64_t stream_bits, uint8_t *out,
                    uint8_t *index) {
  rle_writer_t rw;
  mcgq_bw_init(&rw.bw, out);
  mcgq_bw_put(&rw.bw, bits_value, 32);
  mcgq_bw_put(&rw.bw, bits_run, 32);
  rw.out = out;
  rw.index = index;
  rw.entries = index ? mcgq_index_entries(MCGQ_ENCODING_RLE, n) : 0;
  rw.e = 0;
  rw.boundary = rw.entries ? (uint64_t)1 << MCGQ_CHUNK_LOG2 : UINT64_MAX;
  rw.bits_value = bits_value;
  rw.bits_run = bits_run;
  rw.mask = mcgq_bw_mask(bits_value);
  uint64_t k = 0;
  /* A fast word writes at most 64 tokens of <= 32 bits = 256 bytes.  With
   * 264 bytes of the stream left before it, 8 remain after it, so every
   * store of incomplete bits is rewritten by a complete one and none lands
   * past the stream (on the padding or the chunk index). */
  if (2 * bits_value + bits_run <= 32)
    k = rw_tokens_fast(&rw, g_int, n, out + mcgq_bits_to_bytes(stream_bits));
  rw_tokens(&rw, g_int, k, n);
  mcgq_bw_flush(&rw.bw);
}

/* Fixed width: as many values as fit 32 bits are joined into one token,
 * which is the same bit sequence (MSB-first) as writing them one by one,
 * and put without a branch while at least 16 bytes of the stream lie ahead
 * (see put_branchless).  Returns the first value not written. */
static inline uint64_t fixed_groups(mcgq_bitwriter_t *bw, const int32_t *g_int,
                                    uint64_t n, uint32_t bits_value,
                                    const uint8_t *end) {
  const uint32_t group = 32u / bits_value, width = group * bits_value;
  const uint32_t mask = mcgq_bw_mask(bits_value);
  uint64_t k = 0;
  for (; k + group <= n && end - bw->out >= 16; k += group) {
    /* Independent shifts (not token = token << w | v, a serial chain). */
    uint32_t token = 0;
    for (uint32_t i = 0; i < group; ++i)
      token |= ((uint32_t)g_int[k + i] & mask) << (width - bits_value * (i + 1));
    put_branchless(bw, token, width);
  }
  return k;
}

void mcgq_fixed_write(const int32_t *g_int, uint64_t n, uint32_t bits_value,
                      uint8_t *out) {
  mcgq_bitwriter_t bw;
  mcgq_bw_init(&bw, out);
  const uint8_t *end = out + mcgq_bits_to_bytes(n * bits_value);
  uint64_t k = 0;
  /* The common small widths with a constant width, so the compiler unrolls
   * the joining; the rest generic. */
  switch (bits_value) {
    case 0: break;
    case 2: k = fixed_groups(&bw, g_int, n, 2, end); break;
    case 3: k = fixed_groups(&bw, g_int, n, 3, end); break;
    case 4: k = fixed_groups(&bw, g_int, n, 4, end); break;
    case 5: k = fixed_groups(&bw, g_int, n, 5, end); break;
    case 6: k = fixed_groups(&bw, g_int, n, 6, end); break;
    case 8: k = fixed_groups(&bw, g_int, n, 8, end); break;
    default: k = fixed_groups(&bw, g_int, n, bits_value, end); break;
  }
  const uint32_t mask = mcgq_bw_mask(bits_value);
  for (; k < n; ++k) mcgq_bw_put(&bw, (uint32_t)g_int[k] & mask, bits_value);
  mcgq_bw_flush(&bw);
}

/* ------------------------------------------------------------- decoding */

/* Two's complement value of a `width`-bit field (1 <= width <= 32). */
static int32_t sign_extend(uint32_t t, uint32_t width) {
  uint32_t shift = 32u - width;
  /* Arithmetic right shift of the field moved to the top: what GCC, Clang
   * and MSVC do for signed >>, branch-free for random signs. */
  return (int32_t)(t << shift) >> shift;
}

/* Padding rules shared by both readers: the bits after the last token up to
 * the byte boundary are zero and the input ends at that byte. */
static mcgqResult_t check_padding(const char *who, mcgq_bitreader_t *br,
                                  size_t in_bytes) {
  uint64_t end = mcgq_br_position(br);
  uint32_t pad = (uint32_t)((8u - (end & 7u)) & 7u);
  uint32_t bits = 0;
  if (!mcgq_br_get(br, pad, &bits))
    return mcgq_fail(mcgqInternalError, "%s: padding past the input", who);
  if (bits != 0)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: nonzero padding bits after the last token (bit %" PRIu64 ")",
                     who, end);
  uint64_t used = mcgq_bits_to_bytes(end);
  if (used != in_bytes)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: %" PRIu64 " bytes beyond the padding byte (tokens past the "
                     "last element or trailing data)",
                     who, (uint64_t)in_bytes - used);
  return mcgqSuccess;
}

/* The header of a paper stream: B_g and B_RLE as section 1 limits them. */
static mcgqResult_t read_rle_header(const char *who, mcgq_bitreader_t *br,
                                    size_t in_bytes, uint64_t n, uint32_t *bg,
                                    uint32_t *brl) {
  if (!mcgq_br_get(br, 32, bg) || !mcgq_br_get(br, 32, brl))
    return mcgq_fail(mcgqCorruptStream,
                     "%s: stream of %zu bytes is shorter than its 64-bit header",
                     who, in_bytes);
  if (n == 0 && (*bg != 0 || *brl != 0))
    return mcgq_fail(mcgqCorruptStream,
                     "%s: empty layer needs B_g = B_RLE = 0, stream has B_g = %u, "
                     "B_RLE = %u", who, *bg, *brl);
  if (n > 0 && *bg == 0)
    return mcgq_fail(mcgqCorruptStream, "%s: B_g = 0 with n = %" PRIu64 " > 0",
                     who, n);
  if (*bg > 32)
    return mcgq_fail(mcgqCorruptStream, "%s: B_g = %u > 32", who, *bg);
  if (*brl > 32)
    return mcgq_fail(mcgqCorruptStream, "%s: B_RLE = %u > 32", who, *brl);
  return mcgqSuccess;
}

/* Walks the chunk index alongside the decoder: every chunk start must point
 * at the token that holds it, as the encoder writes it. */
static void index_check_init(mcgq_layer_reader_t *r, const uint8_t *index,
                             uint64_t n) {
  r->index = index;
  r->index_entries = index ? mcgq_index_entries(MCGQ_ENCODING_RLE, n) : 0;
  r->index_e = 0;
  r->index_boundary =
      r->index_entries ? (uint64_t)1 << MCGQ_CHUNK_LOG2 : UINT64_MAX;
}

static mcgqResult_t index_check_token(mcgq_layer_reader_t *r, uint64_t start,
                                      uint64_t end, uint64_t pos) {
  while (r->index_boundary < end) {
    uint64_t e = r->index_e;
    uint64_t bit_offset = mcgq_load_le64(r->index + 8u * e);
    uint32_t run_offset =
        mcgq_load_le32(r->index + 8u * r->index_entries + 4u * e);
    if (bit_offset != pos || run_offset != r->index_boundary - start)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: chunk index entry %" PRIu64 " is (bit %" PRIu64
                       ", run offset %u), the stream gives (bit %" PRIu64
                       ", run offset %" PRIu64 ")",
                       r->who, e, bit_offset, run_offset, pos,
                       r->index_boundary - start);
    ++r->index_e;
    r->index_boundary = r->index_e < r->index_entries
                            ? (r->index_e + 1) << MCGQ_CHUNK_LOG2
                            : UINT64_MAX;
  }
  return mcgqSuccess;
}

/* One zero-run token after its B_g zero bits: its length and bounds.  The
 * zeros themselves are already in the block (see mcgq_layer_reader_next).
 * br is the caller's copy of r->br (kept in registers by the token loop). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline mcgqResult_t read_run(const mcgq_layer_reader_t *r,
                                    mcgq_bitreader_t *br, uint64_t k,
                                    uint64_t *len) {
  uint32_t c = 0;
  if (!mcgq_br_get(br, r->bits_run, &c))
    return mcgq_fail(mcgqCorruptStream,
                     "%s: missing tokens: stream ends inside the run length at "
                     "element %" PRIu64 " of %" PRIu64, r->who, k, r->n);
  if (c == 0)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: zero run of length 0 at element %" PRIu64, r->who, k);
  if (c > r->n - k)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: zero run of %u elements at element %" PRIu64
                     " crosses n = %" PRIu64, r->who, c, k, r->n);
  *len = c;
  return mcgqSuccess;
}

mcgqResult_t mcgq_rle_reader_open(mcgq_layer_reader_t *r, const char *who,
                                  const uint8_t *in, size_t in_bytes,
                                  uint64_t n, const uint8_t *index) {
  memset(r, 0, sizeof *r);
  r->who = who;
  r->in_bytes = in_bytes;
  r->n = n;
  mcgq_br_init(&r->br, in, in_bytes);
  MCGQ_CHECK(read_rle_header(who, &r->br, in_bytes, n, &r->bits_value,
                             &r->bits_run));
  r->min_token = r->bits_value ? (uint32_t)1 << (r->bits_value - 1) : 0;
  index_check_init(r, index, n);
  return mcgqSuccess;
}

mcgqResult_t mcgq_fixed_reader_open(mcgq_layer_reader_t *r, const char *who,
                                    const uint8_t *in, size_t in_bytes,
                                    uint64_t n, uint32_t bits_value) {
  memset(r, 0, sizeof *r);
  if (bits_value > 32 || (n > 0 && bits_value == 0))
    return mcgq_fail(mcgqCorruptStream,
                     "%s: fixed width of %u bits for %" PRIu64 " values", who,
                     bits_value, n);
  r->who = who;
  r->in_bytes = in_bytes;
  r->n = n;
  r->fixed = 1;
  r->bits_value = bits_value;
  r->min_token = bits_value ? (uint32_t)1 << (bits_value - 1) : 0;
  mcgq_br_init(&r->br, in, in_bytes);
  index_check_init(r, NULL, n);
  return mcgqSuccess;
}

/* Paper tokens whose elements start in [base, stop).  A nonzero token is
 * one store; a run only moves k, since its zeros are in the block already
 * (so a run of any length costs what a nonzero costs, and a run that ends
 * past stop carries over into the next block by k alone).  The checks are
 * per token, in the order of the one-call reader.  The bit reader and the
 * counters live in locals for the loop (stores through block cannot then
 * force them back to memory every token); a token's start position, which
 * only the chunk index and the error details need, is recomputed there. */
static mcgqResult_t rle_tokens(mcgq_layer_reader_t *r, uint64_t base,
                               uint64_t stop, int32_t *block) {
  const uint32_t bg = r->bits_value, min_token = r->min_token;
  mcgq_bitreader_t br = r->br;
  uint64_t k = r->k, abs_sum = r->abs_sum, nonzeros = r->nonzeros;
  uint64_t longest = r->longest;
  uint32_t max_mag = r->max_mag;
  int prev_run = r->prev_run;
  mcgqResult_t res = mcgqSuccess;
  while (k < stop) {
    uint32_t t = 0;
    uint64_t len = 1;
    if (!mcgq_br_get(&br, bg, &t)) {
      res = mcgq_fail(mcgqCorruptStream,
                      "%s: missing tokens: stream ends at bit %" PRIu64
                      " after %" PRIu64 " of %" PRIu64 " elements",
                      r->who, mcgq_br_position(&br), k, r->n);
      break;
    }
    uint32_t token_bits = bg;
    if (t != 0) {
      if (t == min_token) {
        res = mcgq_fail(mcgqCorruptStream,
                        "%s: token -2^(B_g-1) (B_g = %u) at element %" PRIu64,
                        r->who, bg, k);
        break;
      }
      int32_t v = sign_extend(t, bg);
      uint32_t mag = magnitude((uint32_t)v);
      block[k - base] = v;
      max_mag = mag > max_mag ? mag : max_mag;
      abs_sum += mag;
      ++nonzeros;
      prev_run = 0;
    } else {
      if (prev_run) {
        res = mcgq_fail(mcgqCorruptStream,
                        "%s: two zero runs in a row at element %" PRIu64, r->who,
                        k);
        break;
      }
      res = read_run(r, &br, k, &len);
      if (res != mcgqSuccess) break;
      token_bits += r->bits_run;
      longest = len > longest ? len : longest;
      prev_run = 1;
    }
    if (r->index_boundary < k + len) {
      res = index_check_token(r, k, k + len, mcgq_br_position(&br) - token_bits);
      if (res != mcgqSuccess) break;
    }
    k += len;
  }
  r->br = br;
  r->k = k;
  r->abs_sum = abs_sum;
  r->nonzeros = nonzeros;
  r->longest = longest;
  r->max_mag = max_mag;
  r->prev_run = prev_run;
  return res;
}

/* The first element of block[0..count) holding -2^(bits-1), or count. */
static uint64_t first_min_value(const int32_t *block, uint64_t count,
                                uint32_t bits) {
  if (count == 0) return 0;
  const int32_t min_value = sign_extend((uint32_t)1 << (bits - 1), bits);
  uint64_t i = 0;
  while (i < count && block[i] != min_value) ++i;
  return i;
}

/* Up to `fit` values of bg bits from the top of buf (fit * bg <= 64), each
 * from its own shift of buf (no chain through a running buffer); the
 * arithmetic right shift sign-extends.  Inlined with a constant bg for the
 * common widths, so the shifts are immediates. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void extract_values(uint64_t buf, uint32_t bg, uint64_t fit,
                                  int32_t *out) {
  for (uint64_t j = 0; j < fit; ++j)
    out[j] = (int32_t)((int64_t)(buf << (j * bg)) >> (64u - bg));
}

/* Values [0, count) of bg bits into block; 0 when the input ends first,
 * with *done = the values stored. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int extract_block(mcgq_bitreader_t *br, uint32_t bg,
                                uint64_t count, int32_t *block,
                                uint64_t *done) {
  uint64_t i = 0;
  while (i < count) {
    mcgq_br_refill(br);
    uint64_t fit = br->avail / bg;
    if (fit == 0) {
      *done = i;
      return 0;
    }
    if (fit > count - i) fit = count - i;
    extract_values(br->buf, bg, fit, block + i);
    br->buf <<= fit * bg; /* < 64: fit * bg <= avail <= 63 */
    br->avail -= (uint32_t)(fit * bg);
    i += fit;
  }
  *done = count;
  return 1;
}

static int extract_any_width(mcgq_bitreader_t *br, uint32_t bg, uint64_t count,
                             int32_t *block, uint64_t *done) {
  switch (bg) {
    case 2: return extract_block(br, 2, count, block, done);
    case 3: return extract_block(br, 3, count, block, done);
    case 4: return extract_block(br, 4, count, block, done);
    case 5: return extract_block(br, 5, count, block, done);
    case 6: return extract_block(br, 6, count, block, done);
    case 8: return extract_block(br, 8, count, block, done);
    default: return extract_block(br, bg, count, block, done);
  }
}

/* What the reader tracks of fixed-width values besides the tally, over
 * block[0..count): OR and sum of |v|, and whether min_value occurs. */
static void value_stats(const int32_t *v, uint64_t count, int32_t min_value,
                        mcgq_fixed_group_stats_t *st) {
  uint32_t mag_or = 0, has_min = 0;
  uint64_t abs_sum = 0, j = 0;
#if defined(MCGQ_TALLY_SSE2)
  /* Four lanes; sums widened to two 64-bit lanes. */
  const __m128i zero = _mm_setzero_si128(), mins = _mm_set1_epi32(min_value);
  __m128i ors = zero, sum = zero, hit = zero;
  for (; j + 4 <= count; j += 4) {
    __m128i x = _mm_loadu_si128((const __m128i *)(v + j));
    __m128i mag = abs_epi32(x);
    ors = _mm_or_si128(ors, mag);
    sum = _mm_add_epi64(sum, _mm_add_epi64(_mm_unpacklo_epi32(mag, zero),
                                           _mm_unpackhi_epi32(mag, zero)));
    hit = _mm_or_si128(hit, _mm_cmpeq_epi32(x, mins));
  }
  uint32_t lanes[4];
  uint64_t halves[2];
  _mm_storeu_si128((__m128i *)lanes, ors);
  mag_or = lanes[0] | lanes[1] | lanes[2] | lanes[3];
  _mm_storeu_si128((__m128i *)halves, sum);
  abs_sum = halves[0] + halves[1];
  has_min = (uint32_t)_mm_movemask_epi8(hit) != 0;
#endif
  for (; j < count; ++j) {
    uint32_t mag = magnitude((uint32_t)v[j]);
    mag_or |= mag;
    abs_sum += mag;
    has_min |= v[j] == min_value;
  }
  st->mag_or |= mag_or;
  st->has_min |= has_min;
  st->abs_sum += abs_sum;
}

/* Values per call of the group kernel: the zero masks of one call sit on
 * the stack. */
#define GROUP_CALL_VALUES 2048u

/* The byte-aligned groups of eight at the start of block[0..count) through
 * the group kernel (fixed_groups.h), tallied from its zero masks; returns
 * the values done (a multiple of 8) and leaves the bit reader after them. */
static uint64_t read_groups(mcgq_layer_reader_t *r, uint64_t count,
                             int32_t *block, mcgq_fixed_group_stats_t *st) {
  const uint32_t bg = r->bits_value;
  const uint64_t pos = mcgq_br_position(&r->br);
  if (count < 64 || (pos & 7u) || !mcgq_fixed_groups_supported(bg)) return 0;
  const uint8_t *p = r->br.begin + pos / 8u;
  uint64_t done = 0;
  for (;;) {
    uint64_t masks[GROUP_CALL_VALUES / 64];
    uint64_t want = count - done < GROUP_CALL_VALUES ? count - done : GROUP_CALL_VALUES;
    uint64_t groups = want / 8u;
    if (groups == 0) break;
    mcgq_fixed_group_stats_t call = {0, 0, 0};
    uint64_t got = mcgq_fixed_groups(p, r->br.end, bg, groups, block + done, masks,
                                     &call);
    mcgq_rle_tally_add_masks(&r->tally, masks, 8u * got, call.mag_or);
    st->mag_or |= call.mag_or;
    st->has_min |= call.has_min;
    st->abs_sum += call.abs_sum;
    done += 8u * got;
    p += (uint64_t)bg * got;
    if (got < groups) break;
  }
  mcgq_br_seek(&r->br, p);
  return done;
}

/* Fixed-width values [base, base + count): byte-aligned groups of eight go
 * through the group kernel; the rest through the bit reader, where each
 * refill yields floor(avail / B_g) values with no test between them, and
 * the statistics, the tally and the -2^(B_g-1) test run over the stored
 * values afterwards (branch-free); only a failed test looks for the element
 * to name.  (The values are written, zeros too.) */
static mcgqResult_t fixed_values(mcgq_layer_reader_t *r, uint64_t base,
                                 uint64_t count, int32_t *block) {
  const uint32_t bg = r->bits_value;
  const int32_t min_value = sign_extend(r->min_token, bg);
  const uint64_t zeros_before = r->tally.zeros;
  mcgq_fixed_group_stats_t st = {0, 0, 0};
  const uint64_t grouped = read_groups(r, count, block, &st);
  uint64_t done = 0;
  if (!extract_any_width(&r->br, bg, count - grouped, block + grouped, &done)) {
    uint64_t at = first_min_value(block, grouped + done, bg); /* an earlier defect first */
    if (at < grouped + done)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: value -2^(B_g-1) (B_g = %u) at element %" PRIu64,
                       r->who, bg, base + at);
    return mcgq_fail(mcgqCorruptStream,
                     "%s: fixed-width stream ends at element %" PRIu64
                     " of %" PRIu64, r->who, base + grouped + done, r->n);
  }
  value_stats(block + grouped, count - grouped, min_value, &st);
  mcgq_rle_tally_add(&r->tally, block + grouped, count - grouped);
  if (st.has_min)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: value -2^(B_g-1) (B_g = %u) at element %" PRIu64,
                     r->who, bg, base + first_min_value(block, count, bg));
  r->max_mag |= st.mag_or;
  r->abs_sum += st.abs_sum;
  r->nonzeros += count - (r->tally.zeros - zeros_before);
  r->k = base + count;
  return mcgqSuccess;
}

mcgqResult_t mcgq_layer_reader_next(mcgq_layer_reader_t *r, uint64_t base,
                                    uint64_t count, int32_t *block) {
  if (r->fixed) return fixed_values(r, base, count, block);
  return rle_tokens(r, base, base + count, block);
}

mcgqResult_t mcgq_layer_reader_finish(mcgq_layer_reader_t *r,
                                      mcgq_decoded_t *info) {
  const uint32_t bg = r->bits_value;
  const uint32_t want_bg = r->n == 0 ? 0u : 1u + mcgq_bitlen64(r->max_mag);
  if (r->fixed) {
    if (bg != want_bg)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: fixed width B_g = %u but the values need B_g = %u",
                       r->who, bg, want_bg);
  } else {
    const uint32_t want_br = mcgq_bitlen64(r->longest);
    if (bg != want_bg)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: B_g = %u but the values need B_g = %u", r->who, bg,
                       want_bg);
    if (r->bits_run != want_br)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: B_RLE = %u but the longest zero run needs B_RLE = %u",
                       r->who, r->bits_run, want_br);
  }
  info->bit_length = mcgq_br_position(&r->br);
  MCGQ_CHECK(check_padding(r->who, &r->br, r->in_bytes));
  info->bits_value = bg;
  info->bits_run = r->bits_run;
  info->abs_sum = r->abs_sum;
  info->nonzeros = r->nonzeros;
  return mcgqSuccess;
}

mcgqResult_t mcgq_rle_read(const char *who, const uint8_t *in, size_t in_bytes,
                           uint64_t n, const uint8_t *index, int32_t *g_int,
                           mcgq_decoded_t *info) {
  mcgq_layer_reader_t r;
  MCGQ_CHECK(mcgq_rle_reader_open(&r, who, in, in_bytes, n, index));
  if (n > 0) memset(g_int, 0, (size_t)n * sizeof *g_int);
  MCGQ_CHECK(mcgq_layer_reader_next(&r, 0, n, g_int));
  return mcgq_layer_reader_finish(&r, info);
}

mcgqResult_t mcgq_fixed_read(const char *who, const uint8_t *in,
                             size_t in_bytes, uint64_t n, uint32_t bits_value,
                             int32_t *g_int, mcgq_decoded_t *info) {
  mcgq_layer_reader_t r;
  MCGQ_CHECK(mcgq_fixed_reader_open(&r, who, in, in_bytes, n, bits_value));
  MCGQ_CHECK(mcgq_layer_reader_next(&r, 0, n, g_int));
  return mcgq_layer_reader_finish(&r, info);
}

/* ------------------------------------------------------------ public API */

mcgqResult_t mcgqRleEncodeHost(const int32_t *g_int, uint64_t n, void *out,
                               size_t out_capacity, uint64_t *stream_bits) {
  static const char fn[] = "mcgqRleEncodeHost";
  if (!stream_bits)
    return mcgq_fail(mcgqInvalidArgument, "%s: stream_bits is NULL", fn);
  if (n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_fail(mcgqInvalidArgument, "%s: n = %" PRIu64 " exceeds 2^32 - 1",
                     fn, n);
  if (n > 0 && !g_int)
    return mcgq_fail(mcgqInvalidArgument, "%s: g_int is NULL", fn);
  uint32_t bg = 0, brl = 0;
  uint64_t bits = 0;
  mcgq_rle_measure(g_int, n, &bg, &brl, &bits);
  if (bg > 32)  /* only INT32_MIN needs 33 bits */
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: g_int holds INT32_MIN, which B_g <= 32 cannot code", fn);
  uint64_t bytes = mcgq_bits_to_bytes(bits);
  if (out) {
    if (out_capacity < bytes)
      return mcgq_fail(mcgqCapacityExceeded,
                       "%s: the stream needs %" PRIu64 " bytes, capacity is %zu",
                       fn, bytes, out_capacity);
    if (g_int && mcgq_ranges_overlap(g_int, (size_t)n * sizeof *g_int, out, bytes))
      return mcgq_fail(mcgqInvalidArgument, "%s: out overlaps g_int", fn);
    mcgq_rle_write(g_int, n, bg, brl, bits, (uint8_t *)out, NULL);
  }
  *stream_bits = bits;
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqRleDecodeHost(const void *in, size_t in_bytes, uint64_t n,
                               int32_t *g_int) {
  static const char fn[] = "mcgqRleDecodeHost";
  if (!in)
    return mcgq_fail(mcgqInvalidArgument, "%s: in is NULL", fn);
  if (n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_fail(mcgqInvalidArgument, "%s: n = %" PRIu64 " exceeds 2^32 - 1",
                     fn, n);
  if (n > 0 && !g_int)
    return mcgq_fail(mcgqInvalidArgument, "%s: g_int is NULL", fn);
  if (n > 0 && mcgq_ranges_overlap(in, in_bytes, g_int, (size_t)n * sizeof *g_int))
    return mcgq_fail(mcgqInvalidArgument, "%s: g_int overlaps in", fn);
  mcgq_decoded_t info;
  MCGQ_CHECK(mcgq_rle_read(fn, (const uint8_t *)in, in_bytes, n, NULL, g_int, &info));
  mcgq_clear_error();
  return mcgqSuccess;
}
