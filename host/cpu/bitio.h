/*
 * bitio.h - MSB-first bit writer and reader of the paper's bitstream (stream
 * bit 0 is the most significant bit of byte 0).  Internal, header-only.
 *
 * The writer trusts its caller: the encoder measures the exact stream length
 * first and checks the capacity once, so the inner loop has no bounds test.
 * The reader distrusts its input: every read is bounds-checked against the
 * end of the buffer and reports exhaustion instead of reading past it.
 */
#ifndef MCGQ_BITIO_H_
#define MCGQ_BITIO_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One 4-byte store where the compiler knows the byte swap idiom. */
static inline void mcgq_store_be32(uint8_t *p, uint32_t word) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  word = __builtin_bswap32(word);
  memcpy(p, &word, 4);
#else
  p[0] = (uint8_t)(word >> 24);
  p[1] = (uint8_t)(word >> 16);
  p[2] = (uint8_t)(word >> 8);
  p[3] = (uint8_t)word;
#endif
}

/* ------------------------------------------------------------- writer
 * acc holds `fill` pending bits in its low end (older bits higher).  It is
 * drained 32 bits at a time whenever fill reaches 32, so fill < 32 before a
 * put and a put of w <= 32 bits always fits the 64-bit accumulator. */
typedef struct {
  uint8_t *out;  /* next byte to write */
  uint64_t acc;
  uint32_t fill;
} mcgq_bitwriter_t;

static inline void mcgq_bw_init(mcgq_bitwriter_t *bw, uint8_t *out) {
  bw->out = out;
  bw->acc = 0;
  bw->fill = 0;
}

/* Mask of the low `width` bits (width <= 32), for callers to hoist. */
static inline uint32_t mcgq_bw_mask(uint32_t width) {
  return (uint32_t)((((uint64_t)1) << width) - 1u);
}

/* Appends v, which must be < 2^width (width <= 32; mask with mcgq_bw_mask
 * first where it may not be). */
static inline void mcgq_bw_put(mcgq_bitwriter_t *bw, uint32_t v,
                               uint32_t width) {
  bw->acc = (bw->acc << width) | v;
  bw->fill += width;
  if (bw->fill >= 32) {
    mcgq_store_be32(bw->out, (uint32_t)(bw->acc >> (bw->fill - 32)));
    bw->out += 4;
    bw->fill -= 32;
  }
}

/* Writes the pending bits, zero-padded to a whole byte.  Returns the pointer
 * past the last byte written. */
static inline uint8_t *mcgq_bw_flush(mcgq_bitwriter_t *bw) {
  uint32_t fill = bw->fill;
  while (fill >= 8) {
    *bw->out++ = (uint8_t)(bw->acc >> (fill - 8));
    fill -= 8;
  }
  if (fill > 0) *bw->out++ = (uint8_t)(bw->acc << (8 - fill));
  bw->fill = 0;
  return bw->out;
}

/* ------------------------------------------------------------- reader
 * buf holds `avail` unread bits at its top end (next bit = bit 63). */
typedef struct {
  const uint8_t *next;  /* next byte not yet in buf */
  const uint8_t *end;
  const uint8_t *begin;
  uint64_t buf;
  uint32_t avail;
} mcgq_bitreader_t;

static inline void mcgq_br_init(mcgq_bitreader_t *br, const uint8_t *in,
                                size_t bytes) {
  br->next = in;
  br->begin = in;
  br->end = in + bytes;
  br->buf = 0;
  br->avail = 0;
}

/* Tops buf up to at least 56 bits and at most 63, or to all the input that
 * is left (so a caller may consume everything buffered with one shift). */
static inline void mcgq_br_refill(mcgq_bitreader_t *br) {
  if (br->end - br->next >= 8) {
    /* Load 8 bytes big-endian, keep the whole bytes that fit. */
    const uint8_t *p = br->next;
    uint64_t w = ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) |
                 ((uint64_t)p[2] << 40) | ((uint64_t)p[3] << 32) |
                 ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
                 ((uint64_t)p[6] << 8) | (uint64_t)p[7];
    br->buf |= w >> br->avail;
    br->next += (63u - br->avail) >> 3;
    br->avail |= 56u;
    return;
  }
  while (br->avail < 56 && br->next < br->end) {
    br->buf |= (uint64_t)*br->next++ << (56 - br->avail);
    br->avail += 8;
  }
}

/* Reads `width` (<= 32) bits into *v.  Returns 0 when the input ends first
 * (nothing is consumed then). */
static inline int mcgq_br_get(mcgq_bitreader_t *br, uint32_t width,
                              uint32_t *v) {
  if (width == 0) {
    *v = 0;
    return 1;
  }
  if (br->avail < width) {
    mcgq_br_refill(br);
    if (br->avail < width) return 0;
  }
  *v = (uint32_t)(br->buf >> (64u - width));
  br->buf <<= width;
  br->avail -= width;
  return 1;
}

/* Moves the reader to byte p of its input (begin <= p <= end), dropping
 * whatever was buffered: for a caller that consumed whole bytes itself. */
static inline void mcgq_br_seek(mcgq_bitreader_t *br, const uint8_t *p) {
  br->next = p;
  br->buf = 0;
  br->avail = 0;
}

/* Bits consumed so far from the start of the input. */
static inline uint64_t mcgq_br_position(const mcgq_bitreader_t *br) {
  return (uint64_t)(br->next - br->begin) * 8u - br->avail;
}

#endif /* MCGQ_BITIO_H_ */
