/* bitstream.c - the paper's run-length bitstream (section 3.4): sizing,
 * encoding with the chunk index, canonical decoding, and the fixed-width
 * alternative of the container (docs/FORMAT.md). */
#include <inttypes.h>
#include <string.h>

#include "bitio.h"
#include "bitstream.h"
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
 * Branch-free because zeros and nonzeros alternate at random in quantized
 * gradients (a branch per element would mispredict about half the time):
 * bitlen(max |v|) = bitlen(OR of all |v|), runs are counted at their first
 * zero, and only the longest run needs a serial pass (a masked counter).
 *
 * Counts of one block of at most 2^31 elements in 32-bit lanes, the shape
 * vectorizers handle.  `before` is the element preceding the block (any
 * nonzero for the first block), so a run that starts at element 0 counts. */
typedef struct { uint32_t mag_or, zeros, run_starts; } block_counts_t;

static uint32_t magnitude(uint32_t v) {
  uint32_t sign = 0u - (v >> 31);
  return (v ^ sign) - sign;
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize")))  /* -O2 of GCC < 12 does not */
#endif
static block_counts_t count_block(const int32_t *g_int, uint32_t len,
                                  int32_t before) {
  block_counts_t c = {0, 0, 0};
  if (len == 0) return c;
  c.mag_or = magnitude((uint32_t)g_int[0]);
  c.zeros = g_int[0] == 0;
  c.run_starts = (g_int[0] == 0) & (before != 0);
  for (uint32_t k = 1; k < len; ++k) {
    uint32_t v = (uint32_t)g_int[k];
    c.mag_or |= magnitude(v);
    c.zeros += v == 0;
    c.run_starts += (v == 0) & (g_int[k - 1] != 0);
  }
  return c;
}

void mcgq_rle_measure(const int32_t *g_int, uint64_t n, uint32_t *bits_value,
                      uint32_t *bits_run, uint64_t *stream_bits) {
  uint32_t mag_or = 0;
  uint64_t zeros = 0, runs = 0;
  const uint64_t block = (uint64_t)1 << 31;
  for (uint64_t b = 0; b < n; b += block) {
    uint64_t len = n - b < block ? n - b : block;
    block_counts_t c =
        count_block(g_int + b, (uint32_t)len, b == 0 ? 1 : g_int[b - 1]);
    mag_or |= c.mag_or;
    zeros += c.zeros;
    runs += c.run_starts;
  }
  uint64_t run = 0, longest = 0;
  for (uint64_t k = 0; k < n; ++k) {
    run = (run + 1) & (0 - (uint64_t)(g_int[k] == 0));
    longest = run > longest ? run : longest;
  }
  uint64_t nonzeros = n - zeros;
  uint32_t bg = n == 0 ? 0u : 1u + mcgq_bitlen64(mag_or);
  uint32_t br = mcgq_bitlen64(longest);
  *bits_value = bg;
  *bits_run = br;
  *stream_bits = 64u + (uint64_t)bg * (nonzeros + runs) + (uint64_t)br * runs;
}

/* ------------------------------------------------------------- encoding */

static void store_index_entry(uint8_t *index, uint64_t entries, uint64_t e,
                              uint64_t bit_offset, uint32_t run_offset) {
  mcgq_store_le64(index + 8u * e, bit_offset);
  mcgq_store_le32(index + 8u * entries + 4u * e, run_offset);
}

void mcgq_rle_write(const int32_t *g_int, uint64_t n, uint32_t bits_value,
                    uint32_t bits_run, uint8_t *out, uint8_t *index) {
  mcgq_bitwriter_t bw;
  mcgq_bw_init(&bw, out);
  mcgq_bw_put(&bw, bits_value, 32);
  mcgq_bw_put(&bw, bits_run, 32);
  const uint64_t entries = index ? mcgq_index_entries(MCGQ_ENCODING_RLE, n) : 0;
  const uint64_t chunk = (uint64_t)1 << MCGQ_CHUNK_LOG2;
  uint64_t e = 0;
  uint64_t boundary = entries ? chunk : UINT64_MAX;
  const uint32_t mask = mcgq_bw_mask(bits_value);
  uint64_t k = 0;
  while (k < n) {
    const uint64_t start = k;
    const uint64_t pos = (uint64_t)(bw.out - out) * 8u + bw.fill;
    if (g_int[k] != 0) {
      mcgq_bw_put(&bw, (uint32_t)g_int[k] & mask, bits_value);
      ++k;
    } else {
      /* Runs are maximal: one token for the whole run. */
      do ++k; while (k < n && g_int[k] == 0);
      mcgq_bw_put(&bw, 0, bits_value);
      mcgq_bw_put(&bw, (uint32_t)(k - start), bits_run);
    }
    /* A long run may cover several chunk starts; each points at it. */
    while (boundary < k) {
      store_index_entry(index, entries, e, pos, (uint32_t)(boundary - start));
      ++e;
      boundary = e < entries ? (e + 1) * chunk : UINT64_MAX;
    }
  }
  mcgq_bw_flush(&bw);
}

void mcgq_fixed_write(const int32_t *g_int, uint64_t n, uint32_t bits_value,
                      uint8_t *out) {
  mcgq_bitwriter_t bw;
  mcgq_bw_init(&bw, out);
  const uint32_t mask = mcgq_bw_mask(bits_value);
  for (uint64_t k = 0; k < n; ++k)
    mcgq_bw_put(&bw, (uint32_t)g_int[k] & mask, bits_value);
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
typedef struct {
  const uint8_t *index;
  uint64_t entries, e, boundary;
} index_check_t;

static void index_check_init(index_check_t *ic, const uint8_t *index,
                             uint64_t n) {
  ic->index = index;
  ic->entries = index ? mcgq_index_entries(MCGQ_ENCODING_RLE, n) : 0;
  ic->e = 0;
  ic->boundary = ic->entries ? (uint64_t)1 << MCGQ_CHUNK_LOG2 : UINT64_MAX;
}

static mcgqResult_t index_check_token(const char *who, index_check_t *ic,
                                      uint64_t start, uint64_t end,
                                      uint64_t pos) {
  while (ic->boundary < end) {
    uint64_t bit_offset = mcgq_load_le64(ic->index + 8u * ic->e);
    uint32_t run_offset =
        mcgq_load_le32(ic->index + 8u * ic->entries + 4u * ic->e);
    if (bit_offset != pos || run_offset != ic->boundary - start)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: chunk index entry %" PRIu64 " is (bit %" PRIu64
                       ", run offset %u), the stream gives (bit %" PRIu64
                       ", run offset %" PRIu64 ")",
                       who, ic->e, bit_offset, run_offset, pos,
                       ic->boundary - start);
    ++ic->e;
    ic->boundary = ic->e < ic->entries
                       ? (ic->e + 1) << MCGQ_CHUNK_LOG2
                       : UINT64_MAX;
  }
  return mcgqSuccess;
}

/* One zero-run token after its B_g zero bits: length, bounds, store. */
static mcgqResult_t read_run(const char *who, mcgq_bitreader_t *br,
                             uint32_t brl, uint64_t k, uint64_t n,
                             int32_t *g_int, uint64_t *len) {
  uint32_t c = 0;
  if (!mcgq_br_get(br, brl, &c))
    return mcgq_fail(mcgqCorruptStream,
                     "%s: missing tokens: stream ends inside the run length at "
                     "element %" PRIu64 " of %" PRIu64, who, k, n);
  if (c == 0)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: zero run of length 0 at element %" PRIu64, who, k);
  if (c > n - k)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: zero run of %u elements at element %" PRIu64
                     " crosses n = %" PRIu64, who, c, k, n);
  memset(g_int + k, 0, (size_t)c * sizeof *g_int);
  *len = c;
  return mcgqSuccess;
}

mcgqResult_t mcgq_rle_read(const char *who, const uint8_t *in, size_t in_bytes,
                           uint64_t n, const uint8_t *index, int32_t *g_int,
                           mcgq_decoded_t *info) {
  mcgq_bitreader_t br;
  mcgq_br_init(&br, in, in_bytes);
  uint32_t bg = 0, brl = 0;
  MCGQ_CHECK(read_rle_header(who, &br, in_bytes, n, &bg, &brl));
  index_check_t ic;
  index_check_init(&ic, index, n);
  uint32_t max_mag = 0;
  uint64_t longest = 0, abs_sum = 0, nonzeros = 0, k = 0;
  int prev_run = 0;
  const uint32_t min_token = bg ? (uint32_t)1 << (bg - 1) : 0;
  while (k < n) {
    const uint64_t pos = mcgq_br_position(&br);
    uint32_t t = 0;
    uint64_t len = 1;
    if (!mcgq_br_get(&br, bg, &t))
      return mcgq_fail(mcgqCorruptStream,
                       "%s: missing tokens: stream ends at bit %" PRIu64
                       " after %" PRIu64 " of %" PRIu64 " elements",
                       who, pos, k, n);
    if (t != 0) {
      if (t == min_token)
        return mcgq_fail(mcgqCorruptStream,
                         "%s: token -2^(B_g-1) (B_g = %u) at element %" PRIu64,
                         who, bg, k);
      int32_t v = sign_extend(t, bg);
      uint32_t mag = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
      g_int[k] = v;
      if (mag > max_mag) max_mag = mag;
      abs_sum += mag;
      ++nonzeros;
      prev_run = 0;
    } else {
      if (prev_run)
        return mcgq_fail(mcgqCorruptStream,
                         "%s: two zero runs in a row at element %" PRIu64, who, k);
      MCGQ_CHECK(read_run(who, &br, brl, k, n, g_int, &len));
      if (len > longest) longest = len;
      prev_run = 1;
    }
    if (ic.boundary < k + len)
      MCGQ_CHECK(index_check_token(who, &ic, k, k + len, pos));
    k += len;
  }
  const uint32_t want_bg = n == 0 ? 0u : 1u + mcgq_bitlen64(max_mag);
  const uint32_t want_br = mcgq_bitlen64(longest);
  if (bg != want_bg)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: B_g = %u but the values need B_g = %u", who, bg, want_bg);
  if (brl != want_br)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: B_RLE = %u but the longest zero run needs B_RLE = %u",
                     who, brl, want_br);
  info->bit_length = mcgq_br_position(&br);
  MCGQ_CHECK(check_padding(who, &br, in_bytes));
  info->bits_value = bg;
  info->bits_run = brl;
  info->abs_sum = abs_sum;
  info->nonzeros = nonzeros;
  return mcgqSuccess;
}

mcgqResult_t mcgq_fixed_read(const char *who, const uint8_t *in,
                             size_t in_bytes, uint64_t n, uint32_t bits_value,
                             int32_t *g_int, mcgq_decoded_t *info) {
  if (bits_value > 32 || (n > 0 && bits_value == 0))
    return mcgq_fail(mcgqCorruptStream,
                     "%s: fixed width of %u bits for %" PRIu64 " values", who,
                     bits_value, n);
  mcgq_bitreader_t br;
  mcgq_br_init(&br, in, in_bytes);
  const uint32_t min_token = bits_value ? (uint32_t)1 << (bits_value - 1) : 0;
  uint32_t mag_or = 0;
  uint64_t abs_sum = 0, zeros = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t t = 0;
    if (!mcgq_br_get(&br, bits_value, &t))
      return mcgq_fail(mcgqCorruptStream,
                       "%s: fixed-width stream ends at element %" PRIu64
                       " of %" PRIu64, who, k, n);
    if (t == min_token)
      return mcgq_fail(mcgqCorruptStream,
                       "%s: value -2^(B_g-1) (B_g = %u) at element %" PRIu64,
                       who, bits_value, k);
    int32_t v = sign_extend(t, bits_value);
    uint32_t mag = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    g_int[k] = v;
    mag_or |= mag;
    abs_sum += mag;
    zeros += t == 0;
  }
  const uint32_t want_bg = n == 0 ? 0u : 1u + mcgq_bitlen64(mag_or);
  if (bits_value != want_bg)
    return mcgq_fail(mcgqCorruptStream,
                     "%s: fixed width B_g = %u but the values need B_g = %u",
                     who, bits_value, want_bg);
  info->bit_length = mcgq_br_position(&br);
  MCGQ_CHECK(check_padding(who, &br, in_bytes));
  info->bits_value = bits_value;
  info->bits_run = 0;
  info->abs_sum = abs_sum;
  info->nonzeros = n - zeros;
  return mcgqSuccess;
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
    mcgq_rle_write(g_int, n, bg, brl, (uint8_t *)out, NULL);
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
