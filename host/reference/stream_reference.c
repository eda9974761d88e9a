/* stream_reference.c - the paper's run-length bitstream (section 3.4 of the
 * paper, DESIGN.md 3, docs/FORMAT.md 1) and the container's fixed-width
 * coding (FORMAT.md 2), written one bit at a time, MSB-first. */
#include <stdint.h>
#include <string.h>

#include "mcgq_reference.h"

#define CHUNK_ELEMENTS 8192u /* 2^j with j = 13, FORMAT.md version 1 */

/* bitlen(x) = floor(log2 x) + 1, bitlen(0) = 0, counted in integers. */
static uint32_t bitlen(uint64_t x) {
  uint32_t bits = 0;
  while (x != 0) {
    ++bits;
    x >>= 1;
  }
  return bits;
}

static uint64_t magnitude(int32_t v) {
  return v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
}

/* ------------------------------------------------------------ sizes */

/* Length of the maximal zero run starting at k (g_int[k] == 0). */
static uint64_t zero_run(const int32_t *g_int, uint64_t k, uint64_t n) {
  uint64_t end = k;
  while (end < n && g_int[end] == 0) ++end;
  return end - k;
}

mcgqResult_t mcgq_ref_rle_size(const int32_t *g_int, uint64_t n,
                               mcgq_ref_rle_size_t *size) {
  uint64_t max_mag = 0, longest = 0, nonzeros = 0, runs = 0;
  for (uint64_t k = 0; k < n;) {
    if (g_int[k] != 0) {
      if (magnitude(g_int[k]) > max_mag) max_mag = magnitude(g_int[k]);
      ++nonzeros;
      ++k;
    } else {
      uint64_t len = zero_run(g_int, k, n);
      if (len > longest) longest = len;
      ++runs;
      k += len;
    }
  }
  /* B_g = 1 + bitlen(max|g_int|): an all-zero layer gets 1, n = 0 gets 0. */
  uint32_t bits_value = n == 0 ? 0u : 1u + bitlen(max_mag);
  if (bits_value > 32) return mcgqInvalidArgument; /* INT32_MIN */
  size->bits_value = bits_value;
  size->bits_run = bitlen(longest); /* no zeros: 0 */
  size->nonzeros = nonzeros;
  /* 32-bit B_g, 32-bit B_RLE, B_g per nonzero, B_g + B_RLE per run. */
  size->bits = 64u + (uint64_t)bits_value * nonzeros +
               (uint64_t)(bits_value + size->bits_run) * runs;
  return mcgqSuccess;
}

/* ---------------------------------------------------------- bit writer */

/* Stream bit `pos` is bit 7 - pos%8 of byte pos/8 (MSB-first). */
typedef struct {
  uint8_t *bytes;
  uint64_t pos;
} bit_writer_t;

/* The low `width` bits of v, most significant first (width <= 32). */
static void put_bits(bit_writer_t *w, uint32_t v, uint32_t width) {
  for (uint32_t i = width; i > 0; --i) {
    uint32_t bit = (v >> (i - 1)) & 1u;
    if (bit) w->bytes[w->pos / 8] |= (uint8_t)(0x80u >> (w->pos % 8));
    ++w->pos;
  }
}

/* -------------------------------------------------------------- RLE */

/* FORMAT.md 2: for every chunk start c * 2^j (c >= 1) inside the token
 * [start, end) that begins at stream bit `pos`, the index holds that bit
 * position and how many of the token's elements come before it. */
static void record_chunk_starts(uint64_t start, uint64_t end, uint64_t pos,
                                uint64_t *bit_offsets, uint32_t *run_offsets) {
  if (!bit_offsets) return;
  for (uint64_t k = start; k < end; ++k) {
    if (k == 0 || k % CHUNK_ELEMENTS != 0) continue;
    uint64_t c = k / CHUNK_ELEMENTS;
    bit_offsets[c - 1] = pos;
    run_offsets[c - 1] = (uint32_t)(k - start);
  }
}

/* Tokens: a nonzero as its B_g-bit two's complement; a maximal zero run as
 * B_g zero bits and then its length in B_RLE bits. */
static void put_tokens(bit_writer_t *w, const int32_t *g_int, uint64_t n,
                       const mcgq_ref_rle_size_t *size, uint64_t *bit_offsets,
                       uint32_t *run_offsets) {
  const uint64_t mask = ((uint64_t)1 << size->bits_value) - 1u;
  for (uint64_t k = 0; k < n;) {
    uint64_t start = k, pos = w->pos;
    if (g_int[k] != 0) {
      put_bits(w, (uint32_t)((uint64_t)(int64_t)g_int[k] & mask), size->bits_value);
      k += 1;
    } else {
      uint64_t len = zero_run(g_int, k, n);
      put_bits(w, 0, size->bits_value);
      put_bits(w, (uint32_t)len, size->bits_run);
      k += len;
    }
    record_chunk_starts(start, k, pos, bit_offsets, run_offsets);
  }
}

mcgqResult_t mcgq_ref_rle_encode(const int32_t *g_int, uint64_t n, void *out,
                                 size_t out_capacity, uint64_t *bits,
                                 uint64_t *bit_offsets, uint32_t *run_offsets) {
  mcgq_ref_rle_size_t size;
  mcgqResult_t res = mcgq_ref_rle_size(g_int, n, &size);
  if (res != mcgqSuccess) return res;
  uint64_t bytes = (size.bits + 7u) / 8u;
  if (bytes > out_capacity) return mcgqCapacityExceeded;
  bit_writer_t w = {(uint8_t *)out, 0};
  memset(w.bytes, 0, (size_t)bytes); /* padding bits stay zero */
  put_bits(&w, size.bits_value, 32);
  put_bits(&w, size.bits_run, 32);
  put_tokens(&w, g_int, n, &size, bit_offsets, run_offsets);
  *bits = w.pos;
  return mcgqSuccess;
}

/* -------------------------------------------------------- fixed width */

void mcgq_ref_fixed_encode(const int32_t *g_int, uint64_t n,
                           uint32_t bits_value, void *out) {
  const uint64_t mask = ((uint64_t)1 << bits_value) - 1u;
  bit_writer_t w = {(uint8_t *)out, 0};
  memset(w.bytes, 0, (size_t)((n * bits_value + 7u) / 8u));
  for (uint64_t k = 0; k < n; ++k)
    put_bits(&w, (uint32_t)((uint64_t)(int64_t)g_int[k] & mask), bits_value);
}
