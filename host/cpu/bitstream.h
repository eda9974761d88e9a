/*
 * bitstream.h - coders of one layer's values (bitstream.c), shared by the
 * container encoder (encode.c) and decoder (decode.c).  Not installed.
 *
 * Writers trust their caller (sizes measured and capacity checked before);
 * readers treat their input as hostile and accept only canonical streams
 * (docs/FORMAT.md section 1), naming the defect in the error detail.
 */
#ifndef MCGQ_BITSTREAM_H_
#define MCGQ_BITSTREAM_H_

#include <stdint.h>
#include <stddef.h>

#include "bitio.h"
#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a reader found in a valid stream. */
typedef struct {
  uint32_t bits_value;  /* B_g */
  uint32_t bits_run;    /* B_RLE (0 for fixed width) */
  uint64_t bit_length;  /* bits up to the last token (RLE: header incl.) */
  uint64_t abs_sum;     /* sum of |g_int| */
  uint64_t nonzeros;
} mcgq_decoded_t;

/* mcgq_rle_measure in pieces, so a producer can measure each block of
 * g_int while it is still in cache: init, add the blocks in order (any
 * lengths), finish.  Gives exactly what mcgq_rle_measure gives on the whole
 * array; nonzeros = n - zeros. */
typedef struct {
  uint64_t n;         /* elements added */
  uint64_t zeros;
  uint64_t runs;      /* maximal zero runs */
  uint64_t open_run;  /* zeros at the end of what was added so far */
  uint64_t longest;   /* longest run that crossed or ended at a word end */
  uint32_t mag_or;    /* OR of |g_int| */
  uint32_t run_bits;  /* bit length of the longest run inside one word */
} mcgq_rle_tally_t;

void mcgq_rle_tally_init(mcgq_rle_tally_t *t);
void mcgq_rle_tally_add(mcgq_rle_tally_t *t, const int32_t *g_int,
                        uint64_t len);
/* The same as mcgq_rle_tally_add for values already reduced to their zero
 * masks (bit i of zero_masks[w] set where value 64w + i is 0; len values,
 * a last partial word in its low bits) and the OR of their magnitudes. */
void mcgq_rle_tally_add_masks(mcgq_rle_tally_t *t, const uint64_t *zero_masks,
                              uint64_t len, uint32_t mag_or);
void mcgq_rle_tally_finish(const mcgq_rle_tally_t *t, uint32_t *bits_value,
                           uint32_t *bits_run, uint64_t *stream_bits);

/* Paper stream of g_int[0..n) with the B_g/B_RLE/stream_bits of
 * mcgq_rle_measure:
 * writes ceil(stream_bits/8) bytes at out.  index, when not NULL, receives
 * the chunk index of docs/FORMAT.md 2 (mcgq_index_entries(RLE, n) entries:
 * u64 bit offsets, then u32 run offsets, little-endian, padding not
 * written). */
void mcgq_rle_write(const int32_t *g_int, uint64_t n, uint32_t bits_value,
                    uint32_t bits_run, uint64_t stream_bits, uint8_t *out,
                    uint8_t *index);

/* Fixed width: n values of bits_value bits, two's complement, MSB-first,
 * zero-padded to a whole byte (ceil(n*bits_value/8) bytes). */
void mcgq_fixed_write(const int32_t *g_int, uint64_t n, uint32_t bits_value,
                      uint8_t *out);

/* Canonical decode of a paper stream of exactly n elements occupying exactly
 * in_bytes bytes.  index, when not NULL, is a chunk index that must equal
 * the one the encoder would write.  `who` prefixes the error detail
 * ("mcgqDecodeHost: layer 3").  g_int may hold partial output on failure. */
mcgqResult_t mcgq_rle_read(const char *who, const uint8_t *in, size_t in_bytes,
                           uint64_t n, const uint8_t *index, int32_t *g_int,
                           mcgq_decoded_t *info);

/* Canonical decode of n fixed-width values of bits_value bits from
 * in_bytes = ceil(n*bits_value/8) bytes (the caller checks that size). */
mcgqResult_t mcgq_fixed_read(const char *who, const uint8_t *in,
                             size_t in_bytes, uint64_t n, uint32_t bits_value,
                             int32_t *g_int, mcgq_decoded_t *info);

/* The two readers above in pieces, so a consumer (dequantize, average of
 * several ranks) can take each block of g_int while it is in L1 instead of
 * materializing the layer: open, read the blocks in order, finish.  The
 * checks, their order and their details are those of the one-call readers
 * (which are open + one block of n + finish).  Zero elements are not
 * written: the block must hold zeros on entry. */
typedef struct {
  const char *who;
  mcgq_bitreader_t br;
  size_t in_bytes;
  uint64_t n;
  uint64_t k;            /* element where the next token starts */
  const uint8_t *index;  /* RLE chunk index or NULL */
  uint64_t index_entries, index_e, index_boundary;
  uint32_t bits_value, bits_run, min_token;
  int fixed;
  int prev_run;
  uint32_t max_mag;      /* RLE: max |g_int|; fixed: OR of |g_int| */
  uint64_t longest, abs_sum, nonzeros;
  /* Fixed width: the paper-stream tally of the values read so far, for the
   * container's canonical-choice check (mcgq_rle_tally_finish). */
  mcgq_rle_tally_t tally;
} mcgq_layer_reader_t;

mcgqResult_t mcgq_rle_reader_open(mcgq_layer_reader_t *r, const char *who,
                                  const uint8_t *in, size_t in_bytes,
                                  uint64_t n, const uint8_t *index);
mcgqResult_t mcgq_fixed_reader_open(mcgq_layer_reader_t *r, const char *who,
                                    const uint8_t *in, size_t in_bytes,
                                    uint64_t n, uint32_t bits_value);
/* Elements [base, base + count) into block[0..count), which holds zeros;
 * base is where the previous call ended (0 first), base + count <= n. */
mcgqResult_t mcgq_layer_reader_next(mcgq_layer_reader_t *r, uint64_t base,
                                    uint64_t count, int32_t *block);
/* After the last block: widths against the values, padding, info. */
mcgqResult_t mcgq_layer_reader_finish(mcgq_layer_reader_t *r,
                                      mcgq_decoded_t *info);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_BITSTREAM_H_ */
