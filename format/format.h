/*
 * format.h - the wire container of docs/FORMAT.md (version 1): field
 * offsets, little-endian helpers, region sizes and the output-size bound.
 *
 * Plain C, header-only (static inline), usable from host .c files and from
 * CUDA .cu files (the functions are then __host__ __device__), so the CPU
 * reference and the GPU paths compute every size the same way.
 */
#ifndef MCGQ_FORMAT_H_
#define MCGQ_FORMAT_H_

#include <stddef.h>
#include <stdint.h>

#include "hd.h"
#include "mcgq.h" /* MCGQ_FORMAT_VERSION */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ header */
#define MCGQ_HEADER_BYTES 32u
#define MCGQ_MAGIC0 0x4du /* 'M' */
#define MCGQ_MAGIC1 0x43u /* 'C' */
#define MCGQ_MAGIC2 0x47u /* 'G' */
#define MCGQ_MAGIC3 0x51u /* 'Q' */
#define MCGQ_HDR_MAGIC 0
#define MCGQ_HDR_VERSION 4
#define MCGQ_HDR_FLAGS 6
#define MCGQ_HDR_LAYER_COUNT 8
#define MCGQ_HDR_RESERVED 12
#define MCGQ_HDR_TOTAL_BYTES 16
#define MCGQ_HDR_TOTAL_N 24
#define MCGQ_HDR_FLAG_CRC32C 1u

/* ---------------------------------------------------- directory entry */
#define MCGQ_DIR_BYTES 56u
#define MCGQ_DIR_N 0
#define MCGQ_DIR_N_CODED 8
#define MCGQ_DIR_SAMPLES 16
#define MCGQ_DIR_BIT_LENGTH 24
#define MCGQ_DIR_BYTE_OFFSET 32
#define MCGQ_DIR_SCALE 40
#define MCGQ_DIR_CRC32C 44
#define MCGQ_DIR_ENCODING 48
#define MCGQ_DIR_BITS_VALUE 49
#define MCGQ_DIR_BITS_RUN 50
#define MCGQ_DIR_CHUNK_LOG2 51
#define MCGQ_DIR_LAYER_FLAGS 52
#define MCGQ_DIR_RESERVED 54

#define MCGQ_ENCODING_RLE 0u
#define MCGQ_ENCODING_FIXED 1u
#define MCGQ_DIR_FLAG_FIXED_WIDTH 1u /* == MCGQ_LAYER_FLAG_FIXED_WIDTH */
#define MCGQ_DIR_FLAG_CUT 2u         /* == MCGQ_LAYER_FLAG_CUT */

/* Chunk index granularity of version 1: one entry every 2^13 elements. */
#define MCGQ_CHUNK_LOG2 13u
#define MCGQ_RLE_HEADER_BITS 64u

/* ------------------------------------------------- little-endian access */
static inline MCGQ_HD uint16_t mcgq_load_le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline MCGQ_HD uint32_t mcgq_load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline MCGQ_HD uint64_t mcgq_load_le64(const uint8_t *p) {
  return (uint64_t)mcgq_load_le32(p) | ((uint64_t)mcgq_load_le32(p + 4) << 32);
}
static inline MCGQ_HD void mcgq_store_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline MCGQ_HD void mcgq_store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline MCGQ_HD void mcgq_store_le64(uint8_t *p, uint64_t v) {
  mcgq_store_le32(p, (uint32_t)v);
  mcgq_store_le32(p + 4, (uint32_t)(v >> 32));
}

/* ------------------------------------------------------------- sizes */
static inline MCGQ_HD uint64_t mcgq_align8(uint64_t bytes) {
  return (bytes + 7u) & ~(uint64_t)7u;
}
/* ceil(bits / 8) without overflowing near 2^64. */
static inline MCGQ_HD uint64_t mcgq_bits_to_bytes(uint64_t bits) {
  return (bits >> 3) + ((bits & 7u) != 0);
}
/* C = ceil(n_coded / 2^j): chunks of a layer. */
static inline MCGQ_HD uint64_t mcgq_chunk_count(uint64_t n_coded) {
  return (n_coded >> MCGQ_CHUNK_LOG2) +
         ((n_coded & (((uint64_t)1 << MCGQ_CHUNK_LOG2) - 1u)) != 0);
}
/* Entries of an RLE layer's chunk index (C - 1, 0 when C <= 1); fixed-width
 * layers have none. */
static inline MCGQ_HD uint64_t mcgq_index_entries(uint32_t encoding,
                                                  uint64_t n_coded) {
  uint64_t c = mcgq_chunk_count(n_coded);
  return (encoding == MCGQ_ENCODING_RLE && c > 1) ? c - 1 : 0;
}
/* Bytes of the stream part of a region (zero-padded to a multiple of 8). */
static inline MCGQ_HD uint64_t mcgq_stream_part_bytes(uint64_t bit_length) {
  return mcgq_align8(mcgq_bits_to_bytes(bit_length));
}
/* Bytes of the chunk index part: u64 bit offsets, then u32 run offsets
 * padded to a multiple of 8. */
static inline MCGQ_HD uint64_t mcgq_index_part_bytes(uint64_t entries) {
  return 8u * entries + mcgq_align8(4u * entries);
}
/* Bytes of a whole region.  bit_length must be <= 32 * n_coded (+64), which
 * callers check first, so nothing here overflows for n_coded < 2^32. */
static inline MCGQ_HD uint64_t mcgq_region_bytes(uint32_t encoding,
                                                 uint64_t n_coded,
                                                 uint64_t bit_length) {
  return mcgq_stream_part_bytes(bit_length) +
         mcgq_index_part_bytes(mcgq_index_entries(encoding, n_coded));
}
/* Where the regions start: after the header and the directory. */
static inline MCGQ_HD uint64_t mcgq_regions_start(uint64_t layer_count) {
  return MCGQ_HEADER_BYTES + MCGQ_DIR_BYTES * layer_count;
}

/* Largest region a layer of n elements can need (FORMAT.md 2, size bound).
 * Why it holds: N < 2^31 bounds every |g_int| by 2^31 - 1, so B_g <= 32.
 * The encoder takes fixed width (n*B_g bits) unless the paper stream is at
 * most n*B_g bits, so the stream never exceeds n*B_g <= 32n bits = 4n bytes,
 * padded to align8(4n).  Only an RLE layer carries an index, at most
 * 8(C-1) + align8(4(C-1)) bytes with C = ceil(n / 2^13). */
static inline MCGQ_HD uint64_t mcgq_max_region_bytes(uint64_t n) {
  return mcgq_align8(4u * n) +
         mcgq_index_part_bytes(mcgq_index_entries(MCGQ_ENCODING_RLE, n));
}

/* ------------------------------------------------------------ writers
 * The CPU encoder and the GPU container stage both write the header and the
 * directory through these, so the two paths emit the same bytes by
 * construction. */
static inline MCGQ_HD void mcgq_write_header(uint8_t *msg, uint32_t layer_count,
                                             int crc32c, uint64_t total_bytes,
                                             uint64_t total_n) {
  for (unsigned b = 0; b < MCGQ_HEADER_BYTES; ++b) msg[b] = 0;
  msg[MCGQ_HDR_MAGIC + 0] = MCGQ_MAGIC0;
  msg[MCGQ_HDR_MAGIC + 1] = MCGQ_MAGIC1;
  msg[MCGQ_HDR_MAGIC + 2] = MCGQ_MAGIC2;
  msg[MCGQ_HDR_MAGIC + 3] = MCGQ_MAGIC3;
  mcgq_store_le16(msg + MCGQ_HDR_VERSION, MCGQ_FORMAT_VERSION);
  mcgq_store_le16(msg + MCGQ_HDR_FLAGS, (uint16_t)(crc32c ? MCGQ_HDR_FLAG_CRC32C : 0u));
  mcgq_store_le32(msg + MCGQ_HDR_LAYER_COUNT, layer_count);
  mcgq_store_le64(msg + MCGQ_HDR_TOTAL_BYTES, total_bytes);
  mcgq_store_le64(msg + MCGQ_HDR_TOTAL_N, total_n);
}

/* What an encoder knows of a layer's directory entry; the writer derives
 * the rest (fixed width: B_RLE 0 and the FIXED_WIDTH flag; chunk_log2). */
typedef struct {
  uint64_t n, n_coded, samples, bit_length, byte_offset;
  uint32_t scale_bits; /* the float32 scale's bit pattern */
  uint32_t crc32c;     /* 0 without the message's CRC flag */
  uint32_t encoding;   /* MCGQ_ENCODING_* */
  uint32_t bits_value, bits_run;
} mcgq_dir_entry_t;

static inline MCGQ_HD void mcgq_write_dir_entry(uint8_t *e, const mcgq_dir_entry_t *d) {
  const int fixed = d->encoding == MCGQ_ENCODING_FIXED;
  for (unsigned b = 0; b < MCGQ_DIR_BYTES; ++b) e[b] = 0;
  mcgq_store_le64(e + MCGQ_DIR_N, d->n);
  mcgq_store_le64(e + MCGQ_DIR_N_CODED, d->n_coded);
  mcgq_store_le64(e + MCGQ_DIR_SAMPLES, d->samples);
  mcgq_store_le64(e + MCGQ_DIR_BIT_LENGTH, d->bit_length);
  mcgq_store_le64(e + MCGQ_DIR_BYTE_OFFSET, d->byte_offset);
  mcgq_store_le32(e + MCGQ_DIR_SCALE, d->scale_bits);
  mcgq_store_le32(e + MCGQ_DIR_CRC32C, d->crc32c);
  e[MCGQ_DIR_ENCODING] = (uint8_t)d->encoding;
  e[MCGQ_DIR_BITS_VALUE] = (uint8_t)d->bits_value;
  e[MCGQ_DIR_BITS_RUN] = (uint8_t)(fixed ? 0u : d->bits_run);
  e[MCGQ_DIR_CHUNK_LOG2] = (uint8_t)MCGQ_CHUNK_LOG2;
  mcgq_store_le16(e + MCGQ_DIR_LAYER_FLAGS,
                  (uint16_t)(fixed ? MCGQ_DIR_FLAG_FIXED_WIDTH : 0u));
}

/* Start of layer i's directory entry. */
static inline MCGQ_HD uint8_t *mcgq_dir_entry_at(uint8_t *msg, uint64_t i) {
  return msg + MCGQ_HEADER_BYTES + i * MCGQ_DIR_BYTES;
}

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_FORMAT_H_ */
