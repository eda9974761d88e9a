/* container_reference.c - the wire container of docs/FORMAT.md 2 (header,
 * directory, regions with chunk index, CRC32C) and the host encode that
 * mcgqEncodeHost specifies (mcgq.h): per layer K, accumulation, quantize,
 * dynamic K, encoding choice; all layers or none.  Written from the spec's
 * tables with its own little-endian stores, independently of format/format.h. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcgq_reference.h"

#define HEADER_BYTES 32u
#define DIRECTORY_ENTRY_BYTES 56u
#define CHUNK_LOG2 13u
#define ENCODING_RLE 0u
#define ENCODING_FIXED 1u

/* ------------------------------------------------------------ CRC32C */

uint32_t mcgq_ref_crc32c(const void *data, size_t bytes) {
  const uint8_t *p = (const uint8_t *)data;
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < bytes; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) /* reflected: shift right */
      crc = (crc & 1u) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  return crc ^ 0xffffffffu;
}

/* ------------------------------------------------- little-endian fields */

static void store_le(uint8_t *p, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t align8(uint64_t bytes) { return (bytes + 7u) / 8u * 8u; }

/* ------------------------------------------------------ one layer */

typedef struct {
  const mcgqLayerDesc_t *desc;
  double k;               /* K used (stats) */
  uint64_t N;
  const float *x;         /* what is sampled: g, or ag */
  float *g32;             /* a 16-bit g widened to float32 */
  float *ag;              /* accum + g (accumulated layers) */
  int32_t *g_int;
  mcgq_ref_layer_t quantized;
  mcgq_ref_rle_size_t rle;
  mcgqKState_t kstate;    /* the state after this step (dynamic K) */
  double w1;              /* -1 unless dynamic K */
  uint32_t encoding;
  uint64_t bit_length, index_entries, region_bytes;
  uint64_t *bit_offsets;  /* chunk index scratch, index_entries + 1 each */
  uint32_t *run_offsets;
} layer_t;

/* K of the layer (the K state's for Alg 3), then N. */
static mcgqResult_t resolve_layer(const mcgqLayerDesc_t *d, layer_t *w) {
  const mcgqLayerConfig_t *cfg = &d->cfg;
  if (!d->g || (cfg->accumulate != MCGQ_ACCUM_NONE) != (d->accum != NULL) ||
      (cfg->dynamic_k != 0) != (d->kstate != NULL) ||
      (cfg->dtype != MCGQ_DTYPE_F32 && cfg->dtype != MCGQ_DTYPE_BF16 &&
       cfg->dtype != MCGQ_DTYPE_F16))
    return mcgqInvalidArgument;
  double k = cfg->dynamic_k ? d->kstate->k : cfg->k;
  mcgqResult_t res = mcgq_ref_samples(d->n, k, cfg->samples, &w->N);
  if (res != mcgqSuccess) return res;
  w->desc = d;
  w->k = cfg->samples ? (double)w->N / (double)d->n : k;
  return mcgqSuccess;
}

/* FORMAT.md 2, choice: fixed width iff n * B_g < paper stream bits.  The
 * chunk index has C - 1 entries for RLE with C = ceil(n / 2^j) > 1. */
static void choose_encoding(layer_t *w) {
  const uint64_t n = w->desc->n;
  const uint64_t fixed_bits = n * w->rle.bits_value;
  const uint64_t chunks = (n + (1u << CHUNK_LOG2) - 1u) >> CHUNK_LOG2;
  w->encoding = fixed_bits < w->rle.bits ? ENCODING_FIXED : ENCODING_RLE;
  w->bit_length = w->encoding == ENCODING_FIXED ? fixed_bits : w->rle.bits;
  w->index_entries = (w->encoding == ENCODING_RLE && chunks > 1) ? chunks - 1 : 0;
  w->region_bytes = align8((w->bit_length + 7u) / 8u) + 8u * w->index_entries +
                    align8(4u * w->index_entries);
}

/* Value k of a 16-bit input as float32, by the formats' definitions
 * (mcgq.h MCGQ_DTYPE_*): bf16 is a float32's upper half; binary16 is
 * (-1)^s 2^(e-15) (1 + f/1024), or 2^-14 f/1024 when e = 0.  Both are exact. */
static float widen_value(const uint16_t *g, int32_t dtype, uint64_t k) {
  const uint16_t h = g[k];
  if (dtype == MCGQ_DTYPE_BF16) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int e = (h >> 10) & 31, f = h & 1023;
  if (e == 31) return f ? NAN : sign * INFINITY;
  if (e == 0) return sign * ldexpf((float)f, -24);
  return sign * ldexpf((float)(1024 + f), e - 25);
}

/* Accumulate, quantize, size, Alg 3, choose: all into private scratch. */
static mcgqResult_t compute_layer(layer_t *w) {
  const mcgqLayerDesc_t *d = w->desc;
  const uint64_t n = d->n;
  w->g_int = (int32_t *)malloc((size_t)n * sizeof *w->g_int);
  if (!w->g_int) return mcgqOutOfMemory;
  w->x = (const float *)d->g;
  if (d->cfg.dtype != MCGQ_DTYPE_F32) {
    w->g32 = (float *)malloc((size_t)n * sizeof *w->g32);
    if (!w->g32) return mcgqOutOfMemory;
    for (uint64_t k = 0; k < n; ++k) w->g32[k] = widen_value((const uint16_t *)d->g, d->cfg.dtype, k);
    w->x = w->g32;
  }
  if (d->cfg.accumulate != MCGQ_ACCUM_NONE) {
    w->ag = (float *)malloc((size_t)n * sizeof *w->ag);
    if (!w->ag) return mcgqOutOfMemory;
    mcgq_ref_accumulate(w->x, d->accum, n, w->ag);
    w->x = w->ag;
  }
  const int damped = d->cfg.accumulate == MCGQ_ACCUM_RESIDUAL;
  mcgqResult_t res =
      mcgq_ref_quantize(w->x, n, w->N, d->u, damped, w->g_int, &w->quantized);
  if (res != mcgqSuccess) return res;
  res = mcgq_ref_rle_size(w->g_int, n, &w->rle);
  if (res != mcgqSuccess) return res;
  w->w1 = -1.0;
  if (d->cfg.dynamic_k) {
    w->w1 = mcgq_ref_w1(w->x, w->g_int, n);
    if (w->w1 < 0.0) return mcgqOutOfMemory;
    w->kstate = *d->kstate;
    mcgq_ref_k_update(&d->cfg, &w->kstate, w->w1);
  }
  choose_encoding(w);
  /* Index scratch now, so writing the message cannot fail half way. */
  w->bit_offsets = (uint64_t *)calloc((size_t)w->index_entries + 1, sizeof *w->bit_offsets);
  w->run_offsets = (uint32_t *)calloc((size_t)w->index_entries + 1, sizeof *w->run_offsets);
  return w->bit_offsets && w->run_offsets ? mcgqSuccess : mcgqOutOfMemory;
}

/* ------------------------------------------------------------ writing */

/* Stream (zero-padded to 8 bytes), then for RLE the u64 bit offsets and
 * the u32 run offsets (zero-padded to 8).  The region is zero already. */
static mcgqResult_t write_region(const layer_t *w, uint8_t *region) {
  const uint64_t n = w->desc->n, entries = w->index_entries;
  if (w->encoding == ENCODING_FIXED) {
    mcgq_ref_fixed_encode(w->g_int, n, w->rle.bits_value, region);
    return mcgqSuccess;
  }
  uint64_t bits = 0;
  mcgqResult_t res =
      mcgq_ref_rle_encode(w->g_int, n, region, (size_t)w->region_bytes, &bits,
                          entries ? w->bit_offsets : NULL, w->run_offsets);
  if (res != mcgqSuccess) return res; /* sized above: cannot happen */
  uint8_t *index = region + align8((bits + 7u) / 8u);
  for (uint64_t e = 0; e < entries; ++e) {
    store_le(index + 8u * e, w->bit_offsets[e], 8);
    store_le(index + 8u * entries + 4u * e, w->run_offsets[e], 4);
  }
  return mcgqSuccess;
}

/* FORMAT.md 2, directory entry: n, n_coded (= n, no CUT here), samples,
 * bit_length, byte_offset, scale, crc32c, encoding, B_g, B_RLE (0 for
 * fixed width), chunk_log2, layer_flags, reserved. */
static void write_entry(const layer_t *w, uint64_t offset, uint32_t crc,
                        uint8_t *e) {
  uint32_t scale_bits;
  memcpy(&scale_bits, &w->quantized.scale, sizeof scale_bits);
  const int fixed = w->encoding == ENCODING_FIXED;
  store_le(e + 0, w->desc->n, 8);
  store_le(e + 8, w->desc->n, 8);
  store_le(e + 16, w->quantized.samples, 8);
  store_le(e + 24, w->bit_length, 8);
  store_le(e + 32, offset, 8);
  store_le(e + 40, scale_bits, 4);
  store_le(e + 44, crc, 4);
  e[48] = (uint8_t)w->encoding;
  e[49] = (uint8_t)w->rle.bits_value;
  e[50] = (uint8_t)(fixed ? 0u : w->rle.bits_run);
  e[51] = (uint8_t)CHUNK_LOG2;
  store_le(e + 52, fixed ? 1u : 0u, 2); /* FIXED_WIDTH flag */
  store_le(e + 54, 0, 2);
}

/* Header: magic, version 1, flags (CRC32C), layer_count, reserved,
 * total_bytes, total_n. */
static void write_header(uint8_t *msg, int count, int crc, uint64_t total_bytes,
                         uint64_t total_n) {
  msg[0] = 'M';
  msg[1] = 'C';
  msg[2] = 'G';
  msg[3] = 'Q';
  store_le(msg + 4, 1, 2);
  store_le(msg + 6, crc ? 1u : 0u, 2);
  store_le(msg + 8, (uint64_t)count, 4);
  store_le(msg + 12, 0, 4);
  store_le(msg + 16, total_bytes, 8);
  store_le(msg + 24, total_n, 8);
}

/* The CRC flag is one per message, so it is set when any layer asks for a
 * checksum and then covers every layer (the library's documented policy). */
static mcgqResult_t write_message(const layer_t *layers, int count,
                                  uint8_t *msg, uint64_t total) {
  int crc = 0;
  uint64_t total_n = 0;
  for (int i = 0; i < count; ++i) {
    crc |= layers[i].desc->cfg.checksum != 0;
    total_n += layers[i].desc->n;
  }
  memset(msg, 0, (size_t)total);
  write_header(msg, count, crc, total, total_n);
  uint64_t offset = HEADER_BYTES + DIRECTORY_ENTRY_BYTES * (uint64_t)count;
  for (int i = 0; i < count; ++i) {
    mcgqResult_t res = write_region(&layers[i], msg + offset);
    if (res != mcgqSuccess) return res;
    uint32_t sum = crc ? mcgq_ref_crc32c(msg + offset, (size_t)layers[i].region_bytes) : 0;
    write_entry(&layers[i], offset, sum,
                msg + HEADER_BYTES + DIRECTORY_ENTRY_BYTES * (uint64_t)i);
    offset += layers[i].region_bytes;
  }
  return mcgqSuccess;
}

/* ------------------------------------------------------------ results */

static void fill_stats(const layer_t *w, mcgqLayerStats_t *st) {
  memset(st, 0, sizeof *st);
  st->n = w->desc->n;
  st->samples = w->quantized.samples;
  st->k = w->k;
  st->scale = w->quantized.scale;
  st->bits_value = w->rle.bits_value;
  st->bits_run = w->rle.bits_run;
  st->status = mcgqSuccess;
  st->stream_bits = w->rle.bits;
  st->wire_bytes = w->region_bytes + DIRECTORY_ENTRY_BYTES;
  st->nonzeros = w->rle.nonzeros;
  st->w1 = w->w1;
  st->flags = w->encoding == ENCODING_FIXED ? MCGQ_LAYER_FLAG_FIXED_WIDTH : 0u;
}

/* After a successful write: Alg 4 / residual on the caller's accumulators
 * and the new K states. */
static void commit(const layer_t *layers, int count) {
  for (int i = 0; i < count; ++i) {
    const layer_t *w = &layers[i];
    const mcgqLayerDesc_t *d = w->desc;
    if (d->cfg.accumulate == MCGQ_ACCUM_RESET)
      mcgq_ref_commit_reset(d->accum, w->ag, w->g_int, d->n);
    if (d->cfg.accumulate == MCGQ_ACCUM_RESIDUAL)
      mcgq_ref_commit_residual(d->accum, w->ag, w->g_int, w->quantized.scale, d->n);
    if (d->cfg.dynamic_k) *d->kstate = w->kstate;
  }
}

static void mark_failed(mcgqLayerStats_t *stats, int count, int failed,
                        mcgqResult_t res) {
  if (!stats) return;
  memset(stats, 0, (size_t)count * sizeof *stats);
  for (int i = 0; i < count; ++i) stats[i].w1 = -1.0;
  if (failed >= 0) stats[failed].status = (uint32_t)res;
}

/* Compute every layer, size the message, write it, then commit. */
static mcgqResult_t encode_layers(layer_t *layers, int count, void *out,
                                  size_t out_capacity, size_t *out_bytes,
                                  mcgqLayerStats_t *stats) {
  uint64_t total = HEADER_BYTES + DIRECTORY_ENTRY_BYTES * (uint64_t)count;
  for (int i = 0; i < count; ++i) {
    mcgqResult_t res = compute_layer(&layers[i]);
    if (res != mcgqSuccess) {
      mark_failed(stats, count, i, res);
      return res;
    }
    total += layers[i].region_bytes;
  }
  if (total > out_capacity) { /* the status names the first layer past it */
    uint64_t end = HEADER_BYTES + DIRECTORY_ENTRY_BYTES * (uint64_t)count;
    int first = 0;
    while (first < count && end + layers[first].region_bytes <= out_capacity)
      end += layers[first++].region_bytes;
    mark_failed(stats, count, first < count ? first : 0, mcgqCapacityExceeded);
    return mcgqCapacityExceeded;
  }
  mcgqResult_t res = write_message(layers, count, (uint8_t *)out, total);
  if (res != mcgqSuccess) return res;
  commit(layers, count);
  for (int i = 0; stats && i < count; ++i) fill_stats(&layers[i], &stats[i]);
  *out_bytes = (size_t)total;
  return mcgqSuccess;
}

mcgqResult_t mcgq_ref_encode(const mcgqLayerDesc_t *layers, int count,
                             void *out, size_t out_capacity, size_t *out_bytes,
                             mcgqLayerStats_t *stats) {
  if (!layers || count < 1 || !out || !out_bytes) return mcgqInvalidArgument;
  layer_t *work = (layer_t *)calloc((size_t)count, sizeof *work);
  if (!work) return mcgqOutOfMemory;
  mcgqResult_t res = mcgqSuccess;
  for (int i = 0; i < count && res == mcgqSuccess; ++i)
    res = resolve_layer(&layers[i], &work[i]);
  if (res == mcgqSuccess)
    res = encode_layers(work, count, out, out_capacity, out_bytes, stats);
  for (int i = 0; i < count; ++i) {
    free(work[i].g_int);
    free(work[i].g32);
    free(work[i].ag);
    free(work[i].bit_offsets);
    free(work[i].run_offsets);
  }
  free(work);
  return res;
}
