/* decode.c - the host decoder of the wire container (docs/FORMAT.md):
 * inspection, integers, dequantized floats, and decode-and-average of P
 * messages in rank order (DESIGN.md 2, averaging).
 *
 * Every input byte is hostile.  The header and the whole directory are
 * validated (and CRCs checked when present) before any payload is decoded;
 * every offset is checked against the message size before it is used; the
 * only allocation is one reader state per rank of the caller's nranks (never
 * a header's claim; g_int lives in a stack block of DECODE_BLOCK elements);
 * time is linear in the message size plus n. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/bitstream.h"
#include "cpu/dequantize.h"
#include "internal.h"
#include "range.h"
#include "reader.h"

typedef struct {
  const uint8_t *msg;
  size_t bytes;
  uint32_t flags, layer_count;
  uint64_t total_n;
} msg_header_t;

/* A directory entry as format/reader.h reads it. */
typedef mcgq_entry_fields dir_entry_t;

/* ----------------------------------------------- rules broken, in words */

/* The message of a header rule (format/reader.h decided which). */
static mcgqResult_t header_failure(const char *who, mcgq_rule rule, const uint8_t *in,
                                   size_t in_bytes, const mcgq_header_fields *f) {
  const mcgqResult_t status = mcgq_rule_status(rule);
  switch (rule) {
    case MCGQ_RULE_MAGIC:
      return mcgq_fail(status, "%s: bad magic %02x %02x %02x %02x (expected 'MCGQ')", who,
                       in[0], in[1], in[2], in[3]);
    case MCGQ_RULE_SHORT:
      return mcgq_fail(status, "%s: message of %zu bytes is shorter than the 32-byte header",
                       who, in_bytes);
    case MCGQ_RULE_VERSION:
      return mcgq_fail(status, "%s: format version %u, this library reads version %u", who,
                       f->version, (unsigned)MCGQ_FORMAT_VERSION);
    case MCGQ_RULE_HEADER_FLAGS:
      return mcgq_fail(status, "%s: unknown header flags 0x%04x", who, f->flags);
    case MCGQ_RULE_LAYER_COUNT:
      return mcgq_fail(status, "%s: layer_count = %u is not in [1, 2^31)", who,
                       f->layer_count);
    case MCGQ_RULE_HEADER_RESERVED:
      return mcgq_fail(status, "%s: reserved header field is not 0", who);
    case MCGQ_RULE_TOTAL_BYTES:
      return mcgq_fail(status, "%s: header total_bytes = %" PRIu64 " but the message has "
                       "%zu bytes (truncated or padded)", who, f->total_bytes, in_bytes);
    case MCGQ_RULE_DIRECTORY_FIT:
      return mcgq_fail(status, "%s: the directory of %u layers does not fit in %zu bytes",
                       who, f->layer_count, in_bytes);
    default:
      return mcgq_fail(mcgqInternalError, "%s: header rule %d", who, (int)rule);
  }
}

/* The message of a directory-entry rule for layer i. */
static mcgqResult_t entry_failure(const char *who, uint32_t i, mcgq_rule rule,
                                  const msg_header_t *h, uint64_t expected_offset,
                                  const dir_entry_t *e) {
  const mcgqResult_t status = mcgq_rule_status(rule);
  const uint64_t fixed_bits = e->n_coded * e->bits_value;
  switch (rule) {
    case MCGQ_RULE_CHUNK_LOG2:
      return mcgq_fail(status, "%s: layer %u: chunk_log2 = %u, version 1 uses %u", who, i,
                       e->chunk_log2, (unsigned)MCGQ_CHUNK_LOG2);
    case MCGQ_RULE_ENTRY_RESERVED:
      return mcgq_fail(status, "%s: layer %u: reserved field is not 0", who, i);
    case MCGQ_RULE_N:
      return mcgq_fail(status, "%s: layer %u: n = %" PRIu64 " is not in [1, 2^32-1]", who,
                       i, e->n);
    case MCGQ_RULE_ENCODING:
      return mcgq_fail(status, "%s: layer %u: unknown encoding %u", who, i, e->encoding);
    case MCGQ_RULE_LAYER_FLAGS:
      return mcgq_fail(status, "%s: layer %u: unknown layer flags 0x%04x", who, i,
                       e->flags);
    case MCGQ_RULE_FIXED_FLAG:
      return mcgq_fail(status, "%s: layer %u: FIXED_WIDTH flag and encoding %u disagree",
                       who, i, e->encoding);
    case MCGQ_RULE_N_CODED:
      return mcgq_fail(status, "%s: layer %u: n_coded = %" PRIu64 " with n = %" PRIu64
                       " and CUT = %d", who, i, e->n_coded, e->n, mcgq_entry_is_cut(e));
    case MCGQ_RULE_SAMPLES:
      return mcgq_fail(status, "%s: layer %u: samples = %" PRIu64 " exceeds 2^31-1", who,
                       i, e->samples);
    case MCGQ_RULE_SCALE:
      return mcgq_fail(status, "%s: layer %u: scale bits 0x%08x are negative or not "
                       "finite", who, i, e->scale_bits);
    case MCGQ_RULE_ZERO_SCALE:
      return mcgq_fail(status, "%s: layer %u: all-zero layer (samples = 0) with scale %g "
                       "!= +0", who, i, (double)e->scale);
    case MCGQ_RULE_BITS_VALUE:
      return mcgq_fail(status, "%s: layer %u: bits_value = %u with n_coded = %" PRIu64,
                       who, i, e->bits_value, e->n_coded);
    case MCGQ_RULE_FIXED_BITS_RUN:
      return mcgq_fail(status, "%s: layer %u: fixed width with bits_run = %u != 0", who,
                       i, e->bits_run);
    case MCGQ_RULE_FIXED_LENGTH:
      return mcgq_fail(status, "%s: layer %u: fixed width bit_length = %" PRIu64
                       ", n_coded * B_g = %" PRIu64, who, i, e->bit_length, fixed_bits);
    case MCGQ_RULE_BITS_RUN:
      return mcgq_fail(status, "%s: layer %u: bits_run = %u > 32", who, i, e->bits_run);
    case MCGQ_RULE_RLE_SHORT:
      return mcgq_fail(status, "%s: layer %u: RLE bit_length = %" PRIu64
                       " is shorter than the 64-bit stream header", who, i, e->bit_length);
    case MCGQ_RULE_RLE_LONGER:
      return mcgq_fail(status, "%s: layer %u: RLE stream of %" PRIu64 " bits where fixed "
                       "width takes %" PRIu64 " (not canonical)", who, i, e->bit_length,
                       fixed_bits);
    case MCGQ_RULE_OFFSET:
      return mcgq_fail(status, "%s: layer %u: byte_offset = %" PRIu64 ", regions are "
                       "contiguous so it must be %" PRIu64, who, i, e->byte_offset,
                       expected_offset);
    case MCGQ_RULE_REGION_END:
      return mcgq_fail(status, "%s: layer %u: region of %" PRIu64 " bytes at offset %"
                       PRIu64 " passes the message end %zu", who, i, e->region_bytes,
                       e->byte_offset, h->bytes);
    case MCGQ_RULE_CRC_WITHOUT_FLAG:
      return mcgq_fail(status, "%s: layer %u: crc32c = 0x%08x without the header's CRC "
                       "flag", who, i, e->crc);
    default:
      return mcgq_fail(mcgqInternalError, "%s: layer %u: directory rule %d", who, i,
                       (int)rule);
  }
}

/* -------------------------------------------------------- header, directory */

static mcgqResult_t parse_header(const char *who, const uint8_t *in,
                                 size_t in_bytes, msg_header_t *h) {
  mcgq_header_fields f;
  mcgq_rule rule = mcgq_read_header(in, in_bytes, 1, &f);
  if (rule != MCGQ_RULE_OK) return header_failure(who, rule, in, in_bytes, &f);
  h->msg = in;
  h->bytes = in_bytes;
  h->flags = f.flags;
  h->layer_count = f.layer_count;
  h->total_n = f.total_n;
  return mcgqSuccess;
}

static mcgqResult_t check_crc(const char *who, const msg_header_t *h,
                              uint32_t i, const dir_entry_t *e) {
  if (!(h->flags & MCGQ_HDR_FLAG_CRC32C)) return mcgqSuccess;
  uint32_t got = mcgq_crc32c(0, h->msg + e->byte_offset, (size_t)e->region_bytes);
  if (got != e->crc)
    return mcgq_fail(mcgqCorruptStream, "%s: layer %u: CRC32C mismatch (directory "
                     "0x%08x, region 0x%08x)", who, i, e->crc, got);
  return mcgqSuccess;
}

/* Entry i, validated against the message; *offset advances past it. */
static mcgqResult_t read_entry(const char *who, const msg_header_t *h,
                               uint32_t i, uint64_t *offset, dir_entry_t *e) {
  mcgq_header_fields f;
  f.flags = h->flags;
  f.total_bytes = h->bytes;
  mcgq_load_entry(h->msg, i, e);
  mcgq_rule rule = mcgq_check_entry(e);
  if (rule == MCGQ_RULE_OK) rule = mcgq_check_entry_region(&f, *offset, e);
  if (rule != MCGQ_RULE_OK) return entry_failure(who, i, rule, h, *offset, e);
  *offset += e->region_bytes;
  return mcgqSuccess;
}

/* Header and the whole directory; CRCs of every layer (crc_layer < 0), of
 * one layer (crc_layer = its index) or of none (crc_layer > count). */
static mcgqResult_t parse_message(const char *who, const void *in,
                                  size_t in_bytes, int64_t crc_layer,
                                  msg_header_t *h) {
  MCGQ_CHECK(parse_header(who, (const uint8_t *)in, in_bytes, h));
  uint64_t offset = mcgq_regions_start(h->layer_count), sum_n = 0;
  for (uint32_t i = 0; i < h->layer_count; ++i) {
    dir_entry_t e;
    MCGQ_CHECK(read_entry(who, h, i, &offset, &e));
    sum_n += e.n;
    if (crc_layer < 0 || crc_layer == (int64_t)i)
      MCGQ_CHECK(check_crc(who, h, i, &e));
  }
  mcgq_header_fields f;
  f.total_bytes = h->bytes;
  f.total_n = h->total_n;
  switch (mcgq_check_directory_end(&f, offset, sum_n)) {
    case MCGQ_RULE_OK: return mcgqSuccess;
    case MCGQ_RULE_REGIONS_END:
      return mcgq_fail(mcgqCorruptStream, "%s: the regions end at byte %" PRIu64
                       ", the message at %zu", who, offset, in_bytes);
    default:
      return mcgq_fail(mcgqCorruptStream, "%s: header total_n = %" PRIu64
                       ", the layers hold %" PRIu64, who, h->total_n, sum_n);
  }
}

/* --------------------------------------------------------------- payload */

static mcgqResult_t check_zero_bytes(const char *who, const uint8_t *p,
                                     uint64_t bytes, const char *what) {
  for (uint64_t b = 0; b < bytes; ++b)
    if (p[b] != 0)
      return mcgq_fail(mcgqCorruptStream, "%s: nonzero %s", who, what);
  return mcgqSuccess;
}

/* The canonical choice of FORMAT.md 2, checked on the decoded values (for
 * fixed width: their paper-stream size, tallied block by block). */
static mcgqResult_t check_choice(const char *who, const dir_entry_t *e,
                                 const mcgq_rle_tally_t *tally) {
  uint64_t fixed_bits = e->n_coded * e->bits_value;
  if (e->encoding == MCGQ_ENCODING_RLE) {
    if (fixed_bits < e->bit_length)
      return mcgq_fail(mcgqCorruptStream, "%s: RLE where fixed width is smaller",
                       who);
    return mcgqSuccess;
  }
  uint32_t bg = 0, br = 0;
  uint64_t paper_bits = 0;
  mcgq_rle_tally_finish(tally, &bg, &br, &paper_bits);
  if (!(fixed_bits < paper_bits))
    return mcgq_fail(mcgqCorruptStream, "%s: fixed width of %" PRIu64 " bits where "
                     "the paper stream takes %" PRIu64 " (not canonical)", who,
                     fixed_bits, paper_bits);
  return mcgqSuccess;
}

static mcgqResult_t check_decoded(const char *who, const dir_entry_t *e,
                                  const mcgq_decoded_t *d) {
  if (d->bits_value != e->bits_value || d->bits_run != e->bits_run)
    return mcgq_fail(mcgqCorruptStream, "%s: stream has B_g = %u, B_RLE = %u, the "
                     "directory %u, %u", who, d->bits_value, d->bits_run,
                     e->bits_value, e->bits_run);
  if (d->bit_length != e->bit_length)
    return mcgq_fail(mcgqCorruptStream, "%s: stream ends at bit %" PRIu64
                     ", the directory says %" PRIu64, who, d->bit_length,
                     e->bit_length);
  int cut = (e->flags & MCGQ_DIR_FLAG_CUT) != 0;
  if (cut ? d->abs_sum > e->samples : d->abs_sum != e->samples)
    return mcgq_fail(mcgqCorruptStream, "%s: sum |g_int| = %" PRIu64
                     " does not match samples = %" PRIu64, who, d->abs_sum,
                     e->samples);
  return mcgqSuccess;
}

/* One layer's region read block by block: the stream reader (which also
 * tallies fixed-width values for check_choice) and the layer's entry. */
typedef struct {
  const char *who;
  const msg_header_t *h;
  dir_entry_t e;
  mcgq_layer_reader_t reader;
} layer_walk_t;

static mcgqResult_t walk_open(layer_walk_t *w, const char *who,
                              const msg_header_t *h, const dir_entry_t *e) {
  w->who = who;
  w->h = h;
  w->e = *e;
  const uint8_t *region = h->msg + e->byte_offset;
  size_t stream_bytes = (size_t)mcgq_bits_to_bytes(e->bit_length);
  uint64_t entries = mcgq_index_entries(e->encoding, e->n_coded);
  if (e->encoding == MCGQ_ENCODING_RLE)
    return mcgq_rle_reader_open(&w->reader, who, region, stream_bytes, e->n_coded,
                                entries ? region + mcgq_align8(stream_bytes) : NULL);
  return mcgq_fixed_reader_open(&w->reader, who, region, stream_bytes, e->n_coded,
                                e->bits_value);
}

/* Elements [base, base + count) of the layer (of n, zeros past n_coded)
 * into block; base continues the last call.  The zeros that the paper
 * reader skips and the tail past n_coded are set here; a fixed-width block
 * is written whole by its reader. */
static mcgqResult_t walk_block(layer_walk_t *w, uint64_t base, uint64_t count,
                               int32_t *block) {
  if (w->e.encoding == MCGQ_ENCODING_RLE || base + count > w->e.n_coded)
    memset(block, 0, (size_t)count * sizeof *block);
  if (base >= w->e.n_coded) return mcgqSuccess;
  uint64_t coded = w->e.n_coded - base < count ? w->e.n_coded - base : count;
  return mcgq_layer_reader_next(&w->reader, base, coded, block);
}

/* After the last block: the stream's end, padding, the directory's claims
 * and the canonical encoding choice. */
static mcgqResult_t walk_close(layer_walk_t *w) {
  const dir_entry_t *e = &w->e;
  const uint8_t *region = w->h->msg + e->byte_offset;
  uint64_t stream_bytes = mcgq_bits_to_bytes(e->bit_length);
  uint64_t stream_part = mcgq_align8(stream_bytes);
  uint64_t entries = mcgq_index_entries(e->encoding, e->n_coded);
  mcgq_decoded_t d;
  MCGQ_CHECK(mcgq_layer_reader_finish(&w->reader, &d));
  MCGQ_CHECK(check_zero_bytes(w->who, region + stream_bytes,
                              stream_part - stream_bytes, "stream padding"));
  MCGQ_CHECK(check_zero_bytes(w->who, region + stream_part + 12u * entries,
                              mcgq_index_part_bytes(entries) - 12u * entries,
                              "chunk index padding"));
  MCGQ_CHECK(check_decoded(w->who, e, &d));
  return check_choice(w->who, e, &w->reader.tally);
}

/* Decodes one layer's region into g_int[0..n) (elements past n_coded = 0). */
static mcgqResult_t decode_layer(const char *who, const msg_header_t *h,
                                 const dir_entry_t *e, int32_t *g_int) {
  layer_walk_t w;
  MCGQ_CHECK(walk_open(&w, who, h, e));
  MCGQ_CHECK(walk_block(&w, 0, e->n, g_int));
  return walk_close(&w);
}

/* Elements per block of the float decoders: 8 KiB of int32 that stays in
 * L1 with the output tile (P of them in decode-and-average), while a block
 * is still long enough that the per-block work (a memset, a call per rank)
 * is small against the elements. */
#define DECODE_BLOCK 2048

/* Entry i of an already parsed message (cannot fail then). */
static void entry_at(const msg_header_t *h, uint32_t i, dir_entry_t *e) {
  mcgq_load_entry(h->msg, i, e);
}

static void layer_label(char *buf, size_t size, const char *fn, int rank,
                        uint32_t layer) {
  if (rank < 0)
    snprintf(buf, size, "%s: layer %u", fn, layer);
  else
    snprintf(buf, size, "%s: rank %d: layer %u", fn, rank, layer);
}

/* FORMAT.md 4's range rule over the P messages' entries of every layer,
 * checked before anything is written. */
static mcgqResult_t check_range(const char *fn, const msg_header_t *hs, int nranks) {
  for (uint32_t i = 0; i < hs[0].layer_count; ++i) {
    double bound = 0.0;
    for (int r = 0; r < nranks; ++r) {
      dir_entry_t e;
      entry_at(&hs[r], i, &e);
      bound += mcgq_range_bound(e.scale, e.bits_value);
    }
    if (!mcgq_range_ok(bound, (uint32_t)nranks))
      return mcgq_fail(mcgqRangeError,
                       "%s: layer %u: sum over %d message(s) of scale * (2^(B_g-1) - 1) "
                       "= %g exceeds %g: the decoded values could overflow float32 "
                       "(docs/FORMAT.md, range rule)",
                       fn, i, nranks, bound, mcgq_range_limit((uint32_t)nranks));
  }
  return mcgqSuccess;
}

/* ------------------------------------------------------------ public API */

static mcgqResult_t check_input(const char *fn, const void *in) {
  if (!in) return mcgq_fail(mcgqInvalidArgument, "%s: in is NULL", fn);
  return mcgqSuccess;
}

mcgqResult_t mcgqMessageGetInfo(const void *in, size_t in_bytes,
                                mcgqMessageInfo_t *info) {
  static const char fn[] = "mcgqMessageGetInfo";
  MCGQ_CHECK(check_input(fn, in));
  if (!info) return mcgq_fail(mcgqInvalidArgument, "%s: info is NULL", fn);
  msg_header_t h;
  MCGQ_CHECK(parse_message(fn, in, in_bytes, -1, &h));
  memset(info, 0, sizeof *info);
  info->format_version = MCGQ_FORMAT_VERSION;
  info->flags = h.flags;
  info->layer_count = h.layer_count;
  info->total_n = h.total_n;
  info->total_bytes = in_bytes;
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqMessageGetLayer(const void *in, size_t in_bytes,
                                 uint32_t index, mcgqMessageLayer_t *layer) {
  static const char fn[] = "mcgqMessageGetLayer";
  MCGQ_CHECK(check_input(fn, in));
  if (!layer) return mcgq_fail(mcgqInvalidArgument, "%s: layer is NULL", fn);
  msg_header_t h;
  MCGQ_CHECK(parse_message(fn, in, in_bytes, (int64_t)index, &h));
  if (index >= h.layer_count)
    return mcgq_fail(mcgqInvalidArgument, "%s: index %u, the message has %u layers",
                     fn, index, h.layer_count);
  dir_entry_t e;
  entry_at(&h, index, &e);
  memset(layer, 0, sizeof *layer);
  layer->n = e.n;
  layer->n_coded = e.n_coded;
  layer->samples = e.samples;
  layer->scale = e.scale;
  layer->encoding = e.encoding;
  layer->bits_value = e.bits_value;
  layer->bits_run = e.bits_run;
  layer->flags = e.flags;
  layer->stream_bits = e.bit_length;
  layer->byte_offset = e.byte_offset;
  layer->byte_size = e.region_bytes;
  mcgq_clear_error();
  return mcgqSuccess;
}

/* Parses a message whose total_n must be the caller's n. */
static mcgqResult_t parse_for_decode(const char *fn, const char *who,
                                     const void *in, size_t in_bytes,
                                     uint64_t n, msg_header_t *h) {
  MCGQ_CHECK(parse_message(who, in, in_bytes, -1, h));
  if (h->total_n != n)
    return mcgq_fail(mcgqInvalidArgument, "%s: n = %" PRIu64 " but the message "
                     "holds %" PRIu64 " elements", fn, n, h->total_n);
  return mcgqSuccess;
}

mcgqResult_t mcgqDecodeIntsHost(const void *in, size_t in_bytes, int32_t *g_int,
                                uint64_t n, float *scales,
                                uint32_t scales_count) {
  static const char fn[] = "mcgqDecodeIntsHost";
  MCGQ_CHECK(check_input(fn, in));
  if (!g_int) return mcgq_fail(mcgqInvalidArgument, "%s: g_int is NULL", fn);
  msg_header_t h;
  MCGQ_CHECK(parse_for_decode(fn, fn, in, in_bytes, n, &h));
  if (scales && scales_count != h.layer_count)
    return mcgq_fail(mcgqInvalidArgument, "%s: scales_count = %u, the message has "
                     "%u layers", fn, scales_count, h.layer_count);
  if (mcgq_ranges_overlap(in, in_bytes, g_int, (size_t)n * sizeof *g_int) ||
      (scales && mcgq_ranges_overlap(in, in_bytes, scales,
                                     (size_t)scales_count * sizeof *scales)))
    return mcgq_fail(mcgqInvalidArgument, "%s: an output overlaps in", fn);
  uint64_t at = 0;
  for (uint32_t i = 0; i < h.layer_count; ++i) {
    dir_entry_t e;
    char who[96];
    entry_at(&h, i, &e);
    layer_label(who, sizeof who, fn, -1, i);
    MCGQ_CHECK(decode_layer(who, &h, &e, g_int + at));
    if (scales) scales[i] = e.scale;
    at += e.n;
  }
  mcgq_clear_error();
  return mcgqSuccess;
}

/* --------------------------------------------------------- typed output
 * The float32 results of a block go straight into a float32 output, or into
 * a float tile that is narrowed once into a bf16 / binary16 output
 * (format/dtype.h, round to nearest even). */
typedef struct {
  void *base;
  int32_t dtype; /* MCGQ_DTYPE_* */
} typed_out_t;

/* Where the float32 results of elements [at, at + count) are computed. */
static float *result_tile(const typed_out_t *o, uint64_t at, float *tile) {
  return o->dtype == MCGQ_DTYPE_F32 ? (float *)o->base + at : tile;
}

/* Stores a tile's results into a 16-bit output (nothing for float32:
 * result_tile computed them in place). */
static void store_tile(const typed_out_t *o, uint64_t at, const float *tile,
                       uint64_t count) {
  if (o->dtype != MCGQ_DTYPE_F32)
    mcgq_narrow(tile, o->dtype, count, (uint16_t *)o->base + at);
}

/* Layer by layer, block by block: g_int lives only in one L1 block. */
static mcgqResult_t decode_floats(const char *fn, const msg_header_t *h,
                                  const typed_out_t *o) {
  int32_t block[DECODE_BLOCK];
  float tile[DECODE_BLOCK];
  uint64_t at = 0;
  for (uint32_t i = 0; i < h->layer_count; ++i) {
    dir_entry_t e;
    char who[96];
    layer_walk_t w;
    entry_at(h, i, &e);
    layer_label(who, sizeof who, fn, -1, i);
    MCGQ_CHECK(walk_open(&w, who, h, &e));
    for (uint64_t base = 0; base < e.n; base += DECODE_BLOCK) {
      uint64_t count = e.n - base < DECODE_BLOCK ? e.n - base : DECODE_BLOCK;
      MCGQ_CHECK(walk_block(&w, base, count, block));
      mcgq_dequantize_store(result_tile(o, at + base, tile), block, count, e.scale);
      store_tile(o, at + base, tile, count);
    }
    MCGQ_CHECK(walk_close(&w));
    at += e.n;
  }
  return mcgqSuccess;
}

static mcgqResult_t decode_typed(const char *fn, const void *in, size_t in_bytes,
                                 void *out, int32_t out_dtype, uint64_t n) {
  MCGQ_CHECK(check_input(fn, in));
  if (!out) return mcgq_fail(mcgqInvalidArgument, "%s: out is NULL", fn);
  MCGQ_CHECK(mcgq_check_dtype(fn, "out_dtype", out_dtype));
  msg_header_t h;
  MCGQ_CHECK(parse_for_decode(fn, fn, in, in_bytes, n, &h));
  if (mcgq_ranges_overlap(in, in_bytes, out, (size_t)n * mcgq_dtype_bytes(out_dtype)))
    return mcgq_fail(mcgqInvalidArgument, "%s: out overlaps in", fn);
  MCGQ_CHECK(check_range(fn, &h, 1));
  const typed_out_t o = {out, out_dtype};
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  mcgqResult_t res = decode_floats(fn, &h, &o);
  mcgq_fpenv_leave(&env);
  if (res == mcgqSuccess) mcgq_clear_error();
  return res;
}

mcgqResult_t mcgqDecodeHost(const void *in, size_t in_bytes, float *out, uint64_t n) {
  return decode_typed("mcgqDecodeHost", in, in_bytes, out, MCGQ_DTYPE_F32, n);
}

mcgqResult_t mcgqDecodeHostTyped(const void *in, size_t in_bytes, void *out,
                                 int32_t out_dtype, uint64_t n) {
  return decode_typed("mcgqDecodeHostTyped", in, in_bytes, out, out_dtype, n);
}

/* ------------------------------------------------------ decode-and-average */

static mcgqResult_t check_average_args(const char *fn, const void *const *in,
                                       const size_t *in_bytes, int nranks,
                                       const void *out) {
  if (!in || !in_bytes)
    return mcgq_fail(mcgqInvalidArgument, "%s: in or in_bytes is NULL", fn);
  if (nranks < 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: nranks = %d is not >= 1", fn, nranks);
  if (!out) return mcgq_fail(mcgqInvalidArgument, "%s: out is NULL", fn);
  for (int r = 0; r < nranks; ++r)
    if (!in[r])
      return mcgq_fail(mcgqInvalidArgument, "%s: in[%d] is NULL", fn, r);
  return mcgqSuccess;
}

/* Every rank's message: valid, the caller's n, rank 0's layer table. */
static mcgqResult_t parse_ranks(const char *fn, const void *const *in,
                                const size_t *in_bytes, int nranks,
                                const void *out, size_t out_bytes, uint64_t n,
                                msg_header_t *hs) {
  for (int r = 0; r < nranks; ++r) {
    char who[96];
    snprintf(who, sizeof who, "%s: rank %d", fn, r);
    MCGQ_CHECK(parse_for_decode(fn, who, in[r], in_bytes[r], n, &hs[r]));
    if (mcgq_ranges_overlap(in[r], in_bytes[r], out, out_bytes))
      return mcgq_fail(mcgqInvalidArgument, "%s: out overlaps in[%d]", fn, r);
    if (hs[r].layer_count != hs[0].layer_count)
      return mcgq_fail(mcgqCorruptStream, "%s: rank %d has %u layers, rank 0 has %u",
                       fn, r, hs[r].layer_count, hs[0].layer_count);
    for (uint32_t i = 0; i < hs[0].layer_count && r > 0; ++i) {
      dir_entry_t a, b;
      entry_at(&hs[0], i, &a);
      entry_at(&hs[r], i, &b);
      if (a.n != b.n)
        return mcgq_fail(mcgqCorruptStream, "%s: rank %d: layer %u has n = %" PRIu64
                         ", rank 0's has %" PRIu64, fn, r, i, b.n, a.n);
    }
  }
  return mcgqSuccess;
}

/* Layer i of every rank decoded alone, in rank order, with no output:
 * after a failure of the tiled decode, this finds the error a rank-by-rank
 * decode reports (the lowest corrupt rank, its first defect), so the detail
 * does not depend on how far the tiles had come. */
static mcgqResult_t first_failure(const char *fn, const msg_header_t *hs,
                                  int nranks, uint32_t i, mcgqResult_t found) {
  int32_t block[DECODE_BLOCK];
  for (int r = 0; r < nranks; ++r) {
    dir_entry_t e;
    char who[96];
    layer_walk_t w;
    entry_at(&hs[r], i, &e);
    layer_label(who, sizeof who, fn, r, i);
    mcgqResult_t res = walk_open(&w, who, &hs[r], &e);
    for (uint64_t base = 0; res == mcgqSuccess && base < e.n; base += DECODE_BLOCK) {
      uint64_t count = e.n - base < DECODE_BLOCK ? e.n - base : DECODE_BLOCK;
      res = walk_block(&w, base, count, block);
    }
    if (res == mcgqSuccess) res = walk_close(&w);
    if (res != mcgqSuccess) return res;
  }
  return found; /* not reached: the tiled decode read the same bytes */
}

/* Layer i of all ranks, tile by tile: each rank's block of the tile is
 * decoded and folded into the output tile while both are in L1, so g_int
 * is never materialized and out is written once.  Per element this is
 * DESIGN.md 2 exactly: acc = fmaf(scale_r, g_int_r, acc) in rank order from
 * acc = +0 (rank 0 as fmaf(scale_0, g, +0)), then out = acc / P. */
static mcgqResult_t average_layer(const char *fn, const msg_header_t *hs,
                                  int nranks, uint32_t i, const typed_out_t *o,
                                  uint64_t at, layer_walk_t *walks, char (*who)[96]) {
  int32_t block[DECODE_BLOCK];
  float tile[DECODE_BLOCK];
  const float P = (float)nranks;
  uint64_t n = 0;
  for (int r = 0; r < nranks; ++r) {
    dir_entry_t e;
    entry_at(&hs[r], i, &e);
    n = e.n;
    layer_label(who[r], sizeof who[r], fn, r, i);
    MCGQ_CHECK(walk_open(&walks[r], who[r], &hs[r], &e));
  }
  for (uint64_t base = 0; base < n; base += DECODE_BLOCK) {
    uint64_t count = n - base < DECODE_BLOCK ? n - base : DECODE_BLOCK;
    float *acc = result_tile(o, at + base, tile);
    for (int r = 0; r < nranks; ++r) {
      MCGQ_CHECK(walk_block(&walks[r], base, count, block));
      if (r == 0)
        mcgq_dequantize_first(acc, block, count, walks[r].e.scale);
      else
        mcgq_dequantize_accumulate(acc, block, count, walks[r].e.scale);
    }
    mcgq_dequantize_divide(acc, count, P);
    store_tile(o, at + base, tile, count);
  }
  for (int r = 0; r < nranks; ++r) MCGQ_CHECK(walk_close(&walks[r]));
  return mcgqSuccess;
}

static mcgqResult_t average_layers(const char *fn, const msg_header_t *hs,
                                   int nranks, const typed_out_t *o, layer_walk_t *walks,
                                   char (*who)[96]) {
  uint64_t at = 0;
  for (uint32_t i = 0; i < hs[0].layer_count; ++i) {
    dir_entry_t e;
    entry_at(&hs[0], i, &e);
    mcgqResult_t res = average_layer(fn, hs, nranks, i, o, at, walks, who);
    if (res != mcgqSuccess) return first_failure(fn, hs, nranks, i, res);
    at += e.n;
  }
  return mcgqSuccess;
}

static mcgqResult_t average_typed(const char *fn, const void *const *in,
                                  const size_t *in_bytes, int nranks, void *out,
                                  int32_t out_dtype, uint64_t n) {
  MCGQ_CHECK(check_average_args(fn, in, in_bytes, nranks, out));
  MCGQ_CHECK(mcgq_check_dtype(fn, "out_dtype", out_dtype));
  const typed_out_t o = {out, out_dtype};
  msg_header_t *hs = (msg_header_t *)calloc((size_t)nranks, sizeof *hs);
  if (!hs) return mcgq_fail(mcgqOutOfMemory, "%s: no memory for %d headers", fn,
                            nranks);
  /* Per rank: its reader state and its error label. */
  layer_walk_t *walks = NULL;
  char (*who)[96] = NULL;
  mcgqResult_t res = parse_ranks(fn, in, in_bytes, nranks, out,
                                 (size_t)n * mcgq_dtype_bytes(out_dtype), n, hs);
  if (res == mcgqSuccess) res = check_range(fn, hs, nranks);
  if (res == mcgqSuccess) {
    walks = (layer_walk_t *)calloc((size_t)nranks, sizeof *walks);
    who = (char (*)[96])calloc((size_t)nranks, sizeof *who);
    if (!walks || !who)
      res = mcgq_fail(mcgqOutOfMemory, "%s: no memory for %d readers", fn, nranks);
  }
  if (res == mcgqSuccess) {
    mcgq_fpenv_t env;
    mcgq_fpenv_enter(&env);
    res = average_layers(fn, hs, nranks, &o, walks, who);
    mcgq_fpenv_leave(&env);
  }
  free(who);
  free(walks);
  free(hs);
  if (res == mcgqSuccess) mcgq_clear_error();
  return res;
}

mcgqResult_t mcgqDecodeAverageHost(const void *const *in, const size_t *in_bytes,
                                   int nranks, float *out, uint64_t n) {
  return average_typed("mcgqDecodeAverageHost", in, in_bytes, nranks, out,
                       MCGQ_DTYPE_F32, n);
}

mcgqResult_t mcgqDecodeAverageHostTyped(const void *const *in, const size_t *in_bytes,
                                        int nranks, void *out, int32_t out_dtype,
                                        uint64_t n) {
  return average_typed("mcgqDecodeAverageHostTyped", in, in_bytes, nranks, out,
                       out_dtype, n);
}
