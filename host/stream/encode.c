/* encode.c - the host encoder: quantize every layer of a descriptor table
 * (DESIGN.md 2, CPU reference) and write one container message
 * (docs/FORMAT.md 2), all or nothing.
 *
 * Two phases (internal.h): prepare computes everything into private scratch
 * and writes the message; commit applies the accumulator and K-state
 * updates.  Keeping every layer's g_int until the whole size is known lets a
 * capacity failure leave even the output buffer untouched.
 *
 * Checksums: the message flag CRC32C is set when any layer asks for one
 * (cfg.checksum); the flag then covers every layer, because FORMAT.md has a
 * single message-level flag. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* posix_memalign, madvise */
#endif
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/bitstream.h"
#include "format.h"
#include "internal.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

typedef struct {
  const mcgqLayerDesc_t *desc;
  uint64_t n, N;
  uint64_t n_coded;        /* n, or fewer when a fixed capacity cut the layer */
  int32_t *g_int;          /* n values (zero past n_coded once cut) */
  const float *g;          /* the layer's g as float32 (desc->g, or widened) */
  float *widened;          /* g of a bf16/fp16 layer widened to float32 */
  float *ag;               /* accum + g, accumulated layers only */
  mcgqKState_t kstate;     /* the new state of a dynamic-K layer */
  mcgqLayerStats_t stats;
  uint32_t encoding;
  uint64_t bit_length;     /* of the chosen encoding */
  uint64_t region_bytes;
} layer_work_t;

struct mcgq_host_encode {
  int count;
  layer_work_t *layers;
};

void mcgq_host_encode_release(mcgq_host_encode_t *enc) {
  if (!enc) return;
  if (enc->layers) {
    for (int i = 0; i < enc->count; ++i) {
      free(enc->layers[i].g_int);
      free(enc->layers[i].widened);
      free(enc->layers[i].ag);
    }
    free(enc->layers);
  }
  free(enc);
}

/* ------------------------------------------------------------- sizing */

mcgqResult_t mcgqEncodeGetMaxOutputSize(const mcgqLayerDesc_t *layers,
                                        int count, size_t *bytes) {
  static const char fn[] = "mcgqEncodeGetMaxOutputSize";
  if (!layers) return mcgq_fail(mcgqInvalidArgument, "%s: layers is NULL", fn);
  if (!bytes) return mcgq_fail(mcgqInvalidArgument, "%s: bytes is NULL", fn);
  if (count < 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: count = %d is not >= 1", fn, count);
  uint64_t total = mcgq_regions_start((uint64_t)count);
  for (int i = 0; i < count; ++i) {
    const mcgqLayerDesc_t *d = mcgq_desc_at(layers, i);
    if (!d || d->struct_size < sizeof(mcgqLayerDesc_t))
      return mcgq_fail(mcgqUnsupportedVersion,
                       "%s: layers[%d].struct_size is smaller than "
                       "sizeof(mcgqLayerDesc_t) = %zu (use mcgqLayerDescInit)",
                       fn, i, sizeof(mcgqLayerDesc_t));
    if (d->n == 0 || d->n > MCGQ_MAX_LAYER_ELEMENTS)
      return mcgq_fail(mcgqInvalidArgument,
                       "%s: layers[%d].n = %" PRIu64 " is not in [1, 2^32-1]",
                       fn, i, d->n);
    uint64_t region = mcgq_max_region_bytes(d->n);
    if (total > UINT64_MAX - region || total + region > (uint64_t)SIZE_MAX)
      return mcgq_fail(mcgqInvalidArgument,
                       "%s: the bound exceeds size_t at layer %d", fn, i);
    total += region;
  }
  *bytes = (size_t)total;
  mcgq_clear_error();
  return mcgqSuccess;
}

/* ------------------------------------------------------------ prepare */

/* Re-labels the detail of a failed internal step with the entry point and
 * the layer, so the caller learns which layer to look at. */
static mcgqResult_t fail_layer(const char *fn, int i, mcgqResult_t res) {
  char inner[256];
  snprintf(inner, sizeof inner, "%s", mcgqGetLastErrorDetail());
  return mcgq_fail(res, "%s: layers[%d]: %s", fn, i, inner);
}

/* Scratch of n values, released with free().  Large blocks come fresh from
 * the kernel on every call (malloc maps them), and faulting 64 MiB in 4 KiB
 * pages costs more CPU time than copying it; so on Linux large scratch is
 * aligned to 2 MiB and marked for transparent huge pages (only advice: the
 * contents and results are the same either way). */
static void *alloc_values(uint64_t n, size_t size) {
  if (n > SIZE_MAX / size) return NULL;
  size_t bytes = (size_t)n * size;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const size_t huge = (size_t)1 << 21;
  if (bytes >= 4 * huge && bytes <= SIZE_MAX - huge) {
    size_t rounded = (bytes + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, rounded) != 0) return NULL;
    (void)madvise(p, rounded, MADV_HUGEPAGE);
    return p;
  }
#endif
  return malloc(bytes);
}

/* The K of a layer as stats report it: the dynamic state's, the config's,
 * or N/n when N was given directly. */
static double layer_k(const mcgqLayerDesc_t *d, uint64_t N) {
  if (d->cfg.samples != 0) return (double)N / (double)d->n;
  return d->cfg.dynamic_k ? d->kstate->k : d->cfg.k;
}

/* Canonical choice of FORMAT.md 2: fixed width iff strictly smaller. */
static void choose_encoding(layer_work_t *w) {
  const mcgqLayerStats_t *st = &w->stats;
  uint64_t fixed_bits = w->n_coded * st->bits_value;
  if (fixed_bits < st->stream_bits) {
    w->encoding = MCGQ_ENCODING_FIXED;
    w->bit_length = fixed_bits;
    w->stats.flags = MCGQ_LAYER_FLAG_FIXED_WIDTH;
  } else {
    w->encoding = MCGQ_ENCODING_RLE;
    w->bit_length = st->stream_bits;
    w->stats.flags = 0;
  }
  w->region_bytes = mcgq_region_bytes(w->encoding, w->n_coded, w->bit_length);
  w->stats.wire_bytes = w->region_bytes + MCGQ_DIR_BYTES;
}

/* Dynamic K (Alg 3): W1 of this step and the updated state, on a copy. */
static mcgqResult_t next_kstate(const char *fn, int i, layer_work_t *w,
                                const float *x) {
  const mcgqLayerDesc_t *d = w->desc;
  double d_now = mcgq_w1_ref(x, w->g_int, w->n);
  if (d_now < 0.0)
    return mcgq_fail(mcgqOutOfMemory,
                     "%s: layers[%d]: no memory for the W1 sort of %" PRIu64
                     " values", fn, i, w->n);
  w->stats.w1 = d_now;
  w->kstate = *d->kstate;
  mcgqResult_t res = mcgqKStateUpdate(&d->cfg, &w->kstate, d_now);
  return res == mcgqSuccess ? res : fail_layer(fn, i, res);
}

/* An accumulated layer quantizes ag = accum + g, so the quantizer's "g[k] is
 * not finite" would blame g[k] when the sum overflowed: name the input that
 * is not finite, or the overflow with both (finite) operands. */
static mcgqResult_t fail_nonfinite_sum(const char *fn, int i, const layer_work_t *w) {
  const mcgqLayerDesc_t *d = w->desc;
  uint64_t k = 0;
  while (k < w->n && isfinite(w->ag[k])) ++k;
  if (k == w->n || !d->accum) return fail_layer(fn, i, mcgqNonFinite);
  const unsigned long long at = (unsigned long long)k;
  const double g = w->g[k], a = d->accum[k];
  if (!isfinite(g))
    return mcgq_fail(mcgqNonFinite, "%s: layers[%d]: g[%llu] = %g is not finite",
                     fn, i, at, g);
  if (!isfinite(a))
    return mcgq_fail(mcgqNonFinite, "%s: layers[%d]: accum[%llu] = %g is not finite",
                     fn, i, at, a);
  return mcgq_fail(mcgqNonFinite, "%s: layers[%d]: accum[%llu] + g[%llu] overflowed "
                   "to %g (accum[%llu] = %g, g[%llu] = %g)", fn, i, at, at,
                   (double)w->ag[k], at, a, at, g);
}

/* Accumulate, quantize, measure one layer into its private scratch. */
static mcgqResult_t compute_layer(const char *fn, int i, layer_work_t *w) {
  const mcgqLayerDesc_t *d = w->desc;
  w->g = (const float *)d->g;
  if (d->cfg.dtype != MCGQ_DTYPE_F32) { /* quantized from the exact float32 values */
    w->widened = (float *)alloc_values(w->n, sizeof(float));
    if (!w->widened)
      return mcgq_fail(mcgqOutOfMemory, "%s: layers[%d]: no memory to widen %" PRIu64
                       " 16-bit values", fn, i, w->n);
    mcgq_widen(d->g, d->cfg.dtype, w->n, w->widened);
    w->g = w->widened;
  }
  const float *x = w->g;
  w->g_int = (int32_t *)alloc_values(w->n, sizeof(int32_t));
  if (!w->g_int)
    return mcgq_fail(mcgqOutOfMemory, "%s: layers[%d]: no memory for %" PRIu64
                     " counts", fn, i, w->n);
  if (d->cfg.accumulate != MCGQ_ACCUM_NONE) {
    w->ag = (float *)alloc_values(w->n, sizeof(float));
    if (!w->ag)
      return mcgq_fail(mcgqOutOfMemory, "%s: layers[%d]: no memory for %" PRIu64
                       " accumulated values", fn, i, w->n);
    mcgq_accum_add(w->g, d->accum, w->n, w->ag);
    x = w->ag;
  }
  int damped = d->cfg.accumulate == MCGQ_ACCUM_RESIDUAL;
  mcgqResult_t res =
      mcgq_quantize_ref(x, w->n, w->N, d->u, damped, w->g_int, &w->stats);
  if (res == mcgqNonFinite && w->ag) return fail_nonfinite_sum(fn, i, w);
  if (res != mcgqSuccess) return fail_layer(fn, i, res);
  w->stats.k = layer_k(d, w->N);
  w->stats.w1 = -1.0;
  if (d->cfg.dynamic_k) MCGQ_CHECK(next_kstate(fn, i, w, x));
  w->n_coded = w->n;
  choose_encoding(w); /* the quantizer measured the stream (stats) */
  return mcgqSuccess;
}

static mcgqResult_t check_prepare_args(const char *fn,
                                       const mcgqLayerDesc_t *layers, int count,
                                       void *out, size_t *out_bytes,
                                       mcgq_host_encode_t **enc) {
  if (!enc) return mcgq_fail(mcgqInternalError, "%s: enc is NULL", fn);
  if (!layers) return mcgq_fail(mcgqInvalidArgument, "%s: layers is NULL", fn);
  if (count < 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: count = %d is not >= 1", fn, count);
  if (!out) return mcgq_fail(mcgqInvalidArgument, "%s: out is NULL", fn);
  if (!out_bytes)
    return mcgq_fail(mcgqInvalidArgument, "%s: out_bytes is NULL", fn);
  return mcgqSuccess;
}

/* Every descriptor is valid and none of its buffers overlaps the output. */
static mcgqResult_t check_layers(const char *fn, const mcgqLayerDesc_t *layers,
                                 int count, const void *out,
                                 size_t out_capacity, layer_work_t *work) {
  for (int i = 0; i < count; ++i) {
    const mcgqLayerDesc_t *d = mcgq_desc_at(layers, i);
    MCGQ_CHECK(mcgq_check_desc(fn, d, i, &work[i].N));
    size_t bytes = (size_t)d->n * sizeof(float);
    if (mcgq_ranges_overlap(out, out_capacity, d->g,
                            (size_t)d->n * mcgq_dtype_bytes(d->cfg.dtype)) ||
        mcgq_ranges_overlap(out, out_capacity, d->accum, bytes) ||
        mcgq_ranges_overlap(out, out_capacity, d->kstate, sizeof(mcgqKState_t)))
      return mcgq_fail(mcgqInvalidArgument,
                       "%s: out overlaps the buffers of layers[%d]", fn, i);
    work[i].desc = d;
    work[i].n = d->n;
  }
  return mcgqSuccess;
}

/* ------------------------------------------------------------ the cut
 * Fixed capacity (DESIGN.md 5): a layer that does not fit is cut at an
 * element boundary, n_coded < n (FORMAT.md 2, flag CUT), and what follows
 * it is cut too (to n_coded = 0 when nothing fits).  The coded prefix is
 * encoded as a layer of its own would be (its own B_g, B_RLE and canonical
 * choice), so every decoder's checks hold; the tail's counts are cleared
 * here, so commit keeps the tail in the accumulator (nothing is lost in the
 * accumulated modes) and a decoder sees |g_int| summing to at most N.
 * Region bytes never shrink when the prefix grows (tokens, B_g, B_RLE and
 * chunk count only grow), so the longest prefix that fits is found by
 * bisection: O(n log n) on the rare cut layer only. */

/* Encoding of the prefix g_int[0, m) as the canonical choice makes it. */
static void measure_prefix(layer_work_t *w, uint64_t m) {
  w->n_coded = m;
  if (m == 0) { /* FORMAT.md 2: an empty CUT layer is fixed width, B_g = 0 */
    w->stats.bits_value = 0;
    w->stats.bits_run = 0;
    w->stats.stream_bits = 0;
    w->encoding = MCGQ_ENCODING_FIXED;
    w->bit_length = 0;
    w->stats.flags = MCGQ_LAYER_FLAG_FIXED_WIDTH;
    w->region_bytes = 0;
    w->stats.wire_bytes = MCGQ_DIR_BYTES;
    return;
  }
  mcgq_rle_measure(w->g_int, m, &w->stats.bits_value, &w->stats.bits_run,
                   &w->stats.stream_bits);
  choose_encoding(w);
}

static void cut_layer(layer_work_t *w, uint64_t room) {
  uint64_t lo = 0, hi = w->n - 1; /* the answer is in [lo, hi] */
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo + 1) / 2;
    measure_prefix(w, mid);
    if (w->region_bytes <= room) lo = mid;
    else hi = mid - 1;
  }
  measure_prefix(w, lo);
  uint64_t nonzeros = 0;
  for (uint64_t k = 0; k < lo; ++k) nonzeros += w->g_int[k] != 0;
  memset(w->g_int + lo, 0, (size_t)(w->n - lo) * sizeof *w->g_int);
  w->stats.nonzeros = nonzeros;
  w->stats.flags |= MCGQ_LAYER_FLAG_CUT;
}

/* Message size, or CapacityExceeded naming the first layer that does not
 * fit (its stats status says so too).  With `cut`, out_capacity is a fixed
 * capacity: layers are cut to fit, and only a capacity below the header and
 * directory fails. */
static mcgqResult_t message_size(const char *fn, mcgq_host_encode_t *enc,
                                 size_t out_capacity, int cut,
                                 mcgqLayerStats_t *stats, uint64_t *total) {
  uint64_t end = mcgq_regions_start((uint64_t)enc->count);
  if (cut && end > (uint64_t)out_capacity)
    return mcgq_fail(mcgqCapacityExceeded,
                     "%s: a fixed capacity of %zu bytes cannot hold the header "
                     "and directory of %d layers (%" PRIu64 " bytes)",
                     fn, out_capacity, enc->count, end);
  for (int i = 0; i < enc->count; ++i) {
    uint64_t region = enc->layers[i].region_bytes;
    int fits = end <= (uint64_t)out_capacity &&
               region <= (uint64_t)out_capacity - end;
    if (!fits && cut) {
      cut_layer(&enc->layers[i], (uint64_t)out_capacity - end);
      region = enc->layers[i].region_bytes;
    } else if (!fits) {
      if (stats) stats[i].status = mcgqCapacityExceeded;
      return mcgq_fail(mcgqCapacityExceeded,
                       "%s: layers[%d] does not fit: the message needs more than "
                       "%zu bytes (mcgqEncodeGetMaxOutputSize gives a bound)",
                       fn, i, out_capacity);
    }
    end += region;
  }
  *total = end;
  return mcgqSuccess;
}

/* -------------------------------------------------------------- write */

/* Stream, zero padding to 8 bytes, then (RLE) the chunk index. */
static void write_region(const layer_work_t *w, uint8_t *region) {
  const mcgqLayerStats_t *st = &w->stats;
  uint64_t stream_bytes = mcgq_bits_to_bytes(w->bit_length);
  uint64_t stream_part = mcgq_align8(stream_bytes);
  memset(region + stream_bytes, 0, (size_t)(stream_part - stream_bytes));
  if (w->encoding == MCGQ_ENCODING_FIXED) {
    mcgq_fixed_write(w->g_int, w->n_coded, st->bits_value, region);
    return;
  }
  uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, w->n_coded);
  uint8_t *index = region + stream_part;
  mcgq_rle_write(w->g_int, w->n_coded, st->bits_value, st->bits_run, w->bit_length,
                 region, entries ? index : NULL);
  uint64_t runs_end = 12u * entries;
  memset(index + runs_end, 0,
         (size_t)(mcgq_index_part_bytes(entries) - runs_end));
}

static void write_directory_entry(const layer_work_t *w, uint64_t offset,
                                  uint32_t crc, uint8_t *entry) {
  mcgq_dir_entry_t d;
  d.n = w->n;
  d.n_coded = w->n_coded;
  d.samples = w->stats.samples;
  d.bit_length = w->bit_length;
  d.byte_offset = offset;
  memcpy(&d.scale_bits, &w->stats.scale, sizeof d.scale_bits);
  d.crc32c = crc;
  d.encoding = w->encoding;
  d.bits_value = w->stats.bits_value;
  d.bits_run = w->stats.bits_run;
  mcgq_write_dir_entry(entry, &d);
  if (w->n_coded < w->n) { /* the writer derives FIXED_WIDTH only */
    uint8_t *flags = entry + MCGQ_DIR_LAYER_FLAGS;
    flags[0] = (uint8_t)(flags[0] | MCGQ_DIR_FLAG_CUT);
  }
}

static void write_message(const mcgq_host_encode_t *enc, uint8_t *msg,
                          uint64_t total) {
  int crc = 0;
  uint64_t total_n = 0;
  for (int i = 0; i < enc->count; ++i) {
    crc |= enc->layers[i].desc->cfg.checksum != 0;
    total_n += enc->layers[i].n;
  }
  mcgq_write_header(msg, (uint32_t)enc->count, crc, total, total_n);
  uint64_t offset = mcgq_regions_start((uint64_t)enc->count);
  for (int i = 0; i < enc->count; ++i) {
    const layer_work_t *w = &enc->layers[i];
    write_region(w, msg + offset);
    uint32_t sum = crc ? mcgq_crc32c(0, msg + offset, (size_t)w->region_bytes) : 0;
    write_directory_entry(w, offset, sum, mcgq_dir_entry_at(msg, (uint64_t)i));
    offset += w->region_bytes;
  }
}

static mcgqResult_t prepare_pinned(const char *fn, mcgq_host_encode_t *enc,
                                   const mcgqLayerDesc_t *layers,
                                   void *out, size_t out_capacity, int cut,
                                   size_t *out_bytes, mcgqLayerStats_t *stats) {
  MCGQ_CHECK(check_layers(fn, layers, enc->count, out, out_capacity, enc->layers));
  for (int i = 0; i < enc->count; ++i) {
    mcgqResult_t res = compute_layer(fn, i, &enc->layers[i]);
    if (res != mcgqSuccess) {
      if (stats) stats[i].status = (uint32_t)res;
      return res;
    }
  }
  uint64_t total = 0;
  MCGQ_CHECK(message_size(fn, enc, out_capacity, cut, stats, &total));
  write_message(enc, (uint8_t *)out, total);
  if (stats)
    for (int i = 0; i < enc->count; ++i) stats[i] = enc->layers[i].stats;
  *out_bytes = (size_t)total;
  return mcgqSuccess;
}

static void reset_stats(mcgqLayerStats_t *stats, int count) {
  if (!stats) return;
  memset(stats, 0, (size_t)count * sizeof *stats);
  for (int i = 0; i < count; ++i) stats[i].w1 = -1.0;
}

mcgqResult_t mcgq_host_encode_prepare(const char *fn,
                                      const mcgqLayerDesc_t *layers, int count,
                                      void *out, size_t out_capacity,
                                      int cut, size_t *out_bytes,
                                      mcgqLayerStats_t *stats,
                                      mcgq_host_encode_t **enc) {
  MCGQ_CHECK(check_prepare_args(fn, layers, count, out, out_bytes, enc));
  *enc = NULL;
  reset_stats(stats, count);
  mcgq_host_encode_t *e = (mcgq_host_encode_t *)calloc(1, sizeof *e);
  layer_work_t *work = (layer_work_t *)calloc((size_t)count, sizeof *work);
  if (!e || !work) {
    free(e);
    free(work);
    return mcgq_fail(mcgqOutOfMemory, "%s: no memory for %d layers", fn, count);
  }
  e->count = count;
  e->layers = work;
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  mcgqResult_t res =
      prepare_pinned(fn, e, layers, out, out_capacity, cut, out_bytes, stats);
  mcgq_fpenv_leave(&env);
  if (res != mcgqSuccess) {
    mcgq_host_encode_release(e);
    return res;
  }
  *enc = e;
  return mcgqSuccess;
}

/* ------------------------------------------------------------- commit */

void mcgq_host_encode_commit(mcgq_host_encode_t *enc) {
  if (!enc) return;
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  for (int i = 0; i < enc->count; ++i) {
    const layer_work_t *w = &enc->layers[i];
    const mcgqLayerDesc_t *d = w->desc;
    if (d->cfg.accumulate != MCGQ_ACCUM_NONE)
      mcgq_accum_commit(d->cfg.accumulate, d->accum, w->ag, w->g_int,
                        w->stats.scale, w->n);
    if (d->cfg.dynamic_k) *d->kstate = w->kstate;
  }
  mcgq_fpenv_leave(&env);
}

mcgqResult_t mcgqEncodeHost(const mcgqLayerDesc_t *layers, int count,
                            void *out, size_t out_capacity, size_t *out_bytes,
                            mcgqLayerStats_t *stats) {
  static const char fn[] = "mcgqEncodeHost";
  mcgq_host_encode_t *enc = NULL;
  MCGQ_CHECK(mcgq_host_encode_prepare(fn, layers, count, out, out_capacity, 0,
                                      out_bytes, stats, &enc));
  mcgq_host_encode_commit(enc);
  mcgq_host_encode_release(enc);
  mcgq_clear_error();
  return mcgqSuccess;
}
