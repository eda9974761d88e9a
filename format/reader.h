/* reader.h - the container reader of docs/FORMAT.md: the header and the
 * directory entries, every canonical-container rule that the directory can
 * decide, and the rules on a layer's decoded totals.  One definition for the
 * CPU decoder (host/stream/decode.c) and the GPU decoder (kernels/decode.cu), so the
 * two cannot disagree on what is canonical.
 *
 * The checks return an mcgq_rule: which rule a message breaks (MCGQ_RULE_OK
 * when none).  The device turns it into a status word (mcgq_rule_status);
 * the host also writes a message naming the rule and the offending fields.
 * Every offset is checked against the message size before anything reads
 * through it; nothing here allocates or loops over elements. */
#ifndef MCGQ_FORMAT_READER_H_
#define MCGQ_FORMAT_READER_H_

#include <stdint.h>
#include <string.h>

#include "format.h"

typedef enum {
  MCGQ_RULE_OK = 0,
  /* header */
  MCGQ_RULE_MAGIC,             /* bytes 0..3 are not 'MCGQ' */
  MCGQ_RULE_SHORT,             /* shorter than the 32-byte header */
  MCGQ_RULE_VERSION,           /* another format version */
  MCGQ_RULE_HEADER_FLAGS,      /* unknown header flags */
  MCGQ_RULE_LAYER_COUNT,       /* layer_count not in [1, 2^31) */
  MCGQ_RULE_HEADER_RESERVED,   /* reserved header field != 0 */
  MCGQ_RULE_TOTAL_BYTES,       /* total_bytes disagrees with the message size */
  MCGQ_RULE_DIRECTORY_FIT,     /* the directory does not fit */
  /* directory entry, on its own */
  MCGQ_RULE_CHUNK_LOG2,        /* chunk_log2 != 13 */
  MCGQ_RULE_ENTRY_RESERVED,    /* reserved entry field != 0 */
  MCGQ_RULE_N,                 /* n not in [1, 2^32 - 1] */
  MCGQ_RULE_ENCODING,          /* unknown encoding */
  MCGQ_RULE_LAYER_FLAGS,       /* unknown layer flags */
  MCGQ_RULE_FIXED_FLAG,        /* FIXED_WIDTH flag and encoding disagree */
  MCGQ_RULE_N_CODED,           /* n_coded inconsistent with n and CUT */
  MCGQ_RULE_SAMPLES,           /* samples > 2^31 - 1 */
  MCGQ_RULE_SCALE,             /* scale negative or not finite */
  MCGQ_RULE_ZERO_SCALE,        /* samples = 0 with a scale other than +0 */
  MCGQ_RULE_BITS_VALUE,        /* B_g > 32, or B_g = 0 <=> n_coded > 0 broken */
  MCGQ_RULE_FIXED_BITS_RUN,    /* fixed width with B_RLE != 0 */
  MCGQ_RULE_FIXED_LENGTH,      /* fixed width bit_length != n_coded * B_g */
  MCGQ_RULE_BITS_RUN,          /* B_RLE > 32 */
  MCGQ_RULE_RLE_SHORT,         /* RLE bit_length < the 64-bit stream header */
  MCGQ_RULE_RLE_LONGER,        /* RLE longer than fixed width (not canonical) */
  /* directory entry, in the message */
  MCGQ_RULE_OFFSET,            /* regions are not contiguous */
  MCGQ_RULE_REGION_END,        /* a region passes the message end */
  MCGQ_RULE_CRC_WITHOUT_FLAG,  /* a CRC without the header's CRC flag */
  MCGQ_RULE_CRC_MISMATCH,      /* CRC32C of the region differs */
  MCGQ_RULE_REGIONS_END,       /* the regions end before the message */
  MCGQ_RULE_TOTAL_N,           /* header total_n != the layers' sum */
  /* a layer's decoded totals */
  MCGQ_RULE_STREAM_BITS_VALUE, /* B_g != 1 + bitlen(max|g_int|) */
  MCGQ_RULE_STREAM_BITS_RUN,   /* B_RLE != bitlen(longest zero run) */
  MCGQ_RULE_SAMPLE_SUM,        /* sum |g_int| != samples (<= with CUT) */
  MCGQ_RULE_FIXED_NOT_SMALLER, /* fixed width where the paper stream is not longer */
  /* the decoded values */
  MCGQ_RULE_RANGE              /* the decode could overflow float32 (range.h) */
} mcgq_rule;

/* The status a broken rule gives: a newer version is unsupported, a range
 * overflow a range error, everything else a corrupt stream. */
static inline MCGQ_HD mcgqResult_t mcgq_rule_status(mcgq_rule rule) {
  switch (rule) {
    case MCGQ_RULE_OK: return mcgqSuccess;
    case MCGQ_RULE_VERSION: return mcgqUnsupportedVersion;
    case MCGQ_RULE_RANGE: return mcgqRangeError;
    default: return mcgqCorruptStream;
  }
}

/* ------------------------------------------------------------- header */

typedef struct {
  uint32_t version, flags, layer_count, reserved;
  uint64_t total_bytes, total_n;
} mcgq_header_fields;

/* The 32-byte header of a message of in_bytes readable bytes.  With exact,
 * total_bytes must equal in_bytes (a host message of known size); without,
 * it must fit in them (a device buffer of the caller's capacity).  On
 * MCGQ_RULE_OK the directory lies inside total_bytes. */
static inline MCGQ_HD mcgq_rule mcgq_read_header(const uint8_t *in, uint64_t in_bytes,
                                                 int exact, mcgq_header_fields *h) {
  if (in_bytes >= 4 && (in[0] != MCGQ_MAGIC0 || in[1] != MCGQ_MAGIC1 ||
                        in[2] != MCGQ_MAGIC2 || in[3] != MCGQ_MAGIC3))
    return MCGQ_RULE_MAGIC;
  if (in_bytes < MCGQ_HEADER_BYTES) return MCGQ_RULE_SHORT;
  h->version = mcgq_load_le16(in + MCGQ_HDR_VERSION);
  h->flags = mcgq_load_le16(in + MCGQ_HDR_FLAGS);
  h->layer_count = mcgq_load_le32(in + MCGQ_HDR_LAYER_COUNT);
  h->reserved = mcgq_load_le32(in + MCGQ_HDR_RESERVED);
  h->total_bytes = mcgq_load_le64(in + MCGQ_HDR_TOTAL_BYTES);
  h->total_n = mcgq_load_le64(in + MCGQ_HDR_TOTAL_N);
  if (h->version != MCGQ_FORMAT_VERSION) return MCGQ_RULE_VERSION;
  if (h->flags & ~MCGQ_HDR_FLAG_CRC32C) return MCGQ_RULE_HEADER_FLAGS;
  if (h->layer_count == 0 || h->layer_count > (uint32_t)MCGQ_MAX_LAYERS)
    return MCGQ_RULE_LAYER_COUNT;
  if (h->reserved != 0) return MCGQ_RULE_HEADER_RESERVED;
  if (exact ? h->total_bytes != in_bytes : h->total_bytes > in_bytes)
    return MCGQ_RULE_TOTAL_BYTES;
  if (mcgq_regions_start(h->layer_count) > h->total_bytes) return MCGQ_RULE_DIRECTORY_FIT;
  return MCGQ_RULE_OK;
}

/* ----------------------------------------------------------- directory */

typedef struct {
  uint64_t n, n_coded, samples, bit_length, byte_offset;
  uint64_t region_bytes; /* derived by mcgq_check_entry_region */
  float scale;
  uint32_t scale_bits, crc, encoding, bits_value, bits_run, flags;
  uint32_t chunk_log2, reserved;
} mcgq_entry_fields;

/* Entry i of a message whose header was read (the directory is in bounds). */
static inline MCGQ_HD void mcgq_load_entry(const uint8_t *msg, uint64_t i,
                                           mcgq_entry_fields *e) {
  const uint8_t *p = msg + MCGQ_HEADER_BYTES + i * MCGQ_DIR_BYTES;
  e->n = mcgq_load_le64(p + MCGQ_DIR_N);
  e->n_coded = mcgq_load_le64(p + MCGQ_DIR_N_CODED);
  e->samples = mcgq_load_le64(p + MCGQ_DIR_SAMPLES);
  e->bit_length = mcgq_load_le64(p + MCGQ_DIR_BIT_LENGTH);
  e->byte_offset = mcgq_load_le64(p + MCGQ_DIR_BYTE_OFFSET);
  e->scale_bits = mcgq_load_le32(p + MCGQ_DIR_SCALE);
  memcpy(&e->scale, &e->scale_bits, sizeof e->scale);
  e->crc = mcgq_load_le32(p + MCGQ_DIR_CRC32C);
  e->encoding = p[MCGQ_DIR_ENCODING];
  e->bits_value = p[MCGQ_DIR_BITS_VALUE];
  e->bits_run = p[MCGQ_DIR_BITS_RUN];
  e->chunk_log2 = p[MCGQ_DIR_CHUNK_LOG2];
  e->flags = mcgq_load_le16(p + MCGQ_DIR_LAYER_FLAGS);
  e->reserved = mcgq_load_le16(p + MCGQ_DIR_RESERVED);
  e->region_bytes = mcgq_region_bytes(e->encoding, e->n_coded, e->bit_length);
}

static inline MCGQ_HD int mcgq_entry_is_cut(const mcgq_entry_fields *e) {
  return (e->flags & MCGQ_DIR_FLAG_CUT) != 0;
}

/* The rules an entry must meet on its own: sizes, flags, scale, widths and
 * lengths.  Afterwards its region size cannot overflow. */
static inline MCGQ_HD mcgq_rule mcgq_check_entry(const mcgq_entry_fields *e) {
  if (e->chunk_log2 != MCGQ_CHUNK_LOG2) return MCGQ_RULE_CHUNK_LOG2;
  if (e->reserved != 0) return MCGQ_RULE_ENTRY_RESERVED;
  if (e->n == 0 || e->n > MCGQ_MAX_LAYER_ELEMENTS) return MCGQ_RULE_N;
  if (e->encoding > MCGQ_ENCODING_FIXED) return MCGQ_RULE_ENCODING;
  if (e->flags & ~(MCGQ_DIR_FLAG_FIXED_WIDTH | MCGQ_DIR_FLAG_CUT)) return MCGQ_RULE_LAYER_FLAGS;
  if (((e->flags & MCGQ_DIR_FLAG_FIXED_WIDTH) != 0) != (e->encoding == MCGQ_ENCODING_FIXED))
    return MCGQ_RULE_FIXED_FLAG;
  if (mcgq_entry_is_cut(e) ? e->n_coded >= e->n : e->n_coded != e->n) return MCGQ_RULE_N_CODED;
  if (e->samples > MCGQ_MAX_SAMPLES) return MCGQ_RULE_SAMPLES;
  if ((e->scale_bits & 0x80000000u) || (e->scale_bits & 0x7f800000u) == 0x7f800000u)
    return MCGQ_RULE_SCALE;
  if (e->samples == 0 && e->scale_bits != 0) return MCGQ_RULE_ZERO_SCALE;
  if (e->bits_value > 32 || (e->n_coded > 0) != (e->bits_value > 0)) return MCGQ_RULE_BITS_VALUE;
  const uint64_t fixed_bits = e->n_coded * e->bits_value;
  if (e->encoding == MCGQ_ENCODING_FIXED) {
    if (e->bits_run != 0) return MCGQ_RULE_FIXED_BITS_RUN;
    if (e->bit_length != fixed_bits) return MCGQ_RULE_FIXED_LENGTH;
    return MCGQ_RULE_OK;
  }
  if (e->bits_run > 32) return MCGQ_RULE_BITS_RUN;
  if (e->bit_length < MCGQ_RLE_HEADER_BITS) return MCGQ_RULE_RLE_SHORT;
  if (e->bit_length > fixed_bits) return MCGQ_RULE_RLE_LONGER;
  return MCGQ_RULE_OK;
}

/* An entry that met mcgq_check_entry, placed in the message: right after the
 * previous region (expected_offset), inside total_bytes, and with a CRC only
 * under the header's CRC flag. */
static inline MCGQ_HD mcgq_rule mcgq_check_entry_region(const mcgq_header_fields *h,
                                                        uint64_t expected_offset,
                                                        const mcgq_entry_fields *e) {
  if (e->byte_offset != expected_offset) return MCGQ_RULE_OFFSET;
  if (e->region_bytes > h->total_bytes - e->byte_offset) return MCGQ_RULE_REGION_END;
  if (!(h->flags & MCGQ_HDR_FLAG_CRC32C) && e->crc != 0) return MCGQ_RULE_CRC_WITHOUT_FLAG;
  return MCGQ_RULE_OK;
}

/* After the last entry: the regions fill the message and the layers sum to
 * the header's total_n. */
static inline MCGQ_HD mcgq_rule mcgq_check_directory_end(const mcgq_header_fields *h,
                                                         uint64_t regions_end,
                                                         uint64_t sum_n) {
  if (regions_end != h->total_bytes) return MCGQ_RULE_REGIONS_END;
  if (sum_n != h->total_n) return MCGQ_RULE_TOTAL_N;
  return MCGQ_RULE_OK;
}

/* ------------------------------------------------- a layer's decoded totals */

/* What decoding a layer's tokens found; the decoders gather it per token or
 * per chunk and check it once per layer. */
typedef struct {
  uint32_t max_magnitude; /* max |g_int| */
  uint32_t longest_run;   /* longest zero run (RLE) */
  uint64_t abs_sum;       /* sum |g_int| */
  uint64_t nonzeros, runs;
} mcgq_layer_totals;

/* Bits of the paper's stream (FORMAT.md 1) with these widths and tokens. */
static inline MCGQ_HD uint64_t mcgq_paper_stream_bits(uint32_t bits_value, uint32_t bits_run,
                                                      uint64_t nonzeros, uint64_t runs) {
  return MCGQ_RLE_HEADER_BITS + (uint64_t)bits_value * (nonzeros + runs) +
         (uint64_t)bits_run * runs;
}

static inline MCGQ_HD uint32_t mcgq_bitlen32(uint32_t x) {
  uint32_t bits = 0;
  while (x) {
    ++bits;
    x >>= 1;
  }
  return bits;
}

/* The widths are the smallest that hold the values (FORMAT.md 1), the
 * sample count adds up, and the encoding is the canonical choice
 * (FORMAT.md 2: fixed width only where it is strictly smaller). */
static inline MCGQ_HD mcgq_rule mcgq_check_layer_totals(const mcgq_entry_fields *e,
                                                        const mcgq_layer_totals *t) {
  if (e->n_coded > 0 && e->bits_value != 1u + mcgq_bitlen32(t->max_magnitude))
    return MCGQ_RULE_STREAM_BITS_VALUE;
  const uint32_t bits_run = mcgq_bitlen32(t->longest_run);
  if (e->encoding == MCGQ_ENCODING_RLE && e->bits_run != bits_run)
    return MCGQ_RULE_STREAM_BITS_RUN;
  if (mcgq_entry_is_cut(e) ? t->abs_sum > e->samples : t->abs_sum != e->samples)
    return MCGQ_RULE_SAMPLE_SUM;
  if (e->encoding == MCGQ_ENCODING_FIXED &&
      !(e->n_coded * e->bits_value <
        mcgq_paper_stream_bits(e->bits_value, bits_run, t->nonzeros, t->runs)))
    return MCGQ_RULE_FIXED_NOT_SMALLER;
  return MCGQ_RULE_OK;
}

#endif /* MCGQ_FORMAT_READER_H_ */
