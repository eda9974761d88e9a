/*
 * comm.c - the communicator: layer table, collective checks and the step
 * protocol of DESIGN.md section 5 over a transport's three collectives.
 *
 * One host step, every rank in the same order:
 *   1. allgather of a fixed fingerprint of the layer table (count, every n,
 *      accumulation and dynamic-K modes, format version, capacity), of every
 *      layer's sampling settings (K or samples, dynamic-K parameters,
 *      checksum flag, dtype) and of the step counter: a mismatch is
 *      mcgqInvalidUsage on every rank before any payload moves.
 *   2. local two-phase encode, prepare only: nothing of the caller's changes.
 *   3. allgather of (status, message size) of every rank, then allreduce-max
 *      of a flag that also covers this rank's receive buffer: any failure on
 *      any rank (non-finite first) makes every rank return without touching
 *      a gradient, accumulator or K state.  Two collectives and not one,
 *      because a rank can only size its receive buffer after seeing the
 *      sizes, and an allocation failure there must be agreed as well.
 *   4. allgatherv of the messages, decode-and-average in rank order into
 *      scratch (every rank decodes the same bytes, so a decode failure is the
 *      same everywhere), then commit accumulators / K state and write grads.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "internal.h"

/* Flag of step 3: non-finite outranks every other failure, so that every
 * rank reports mcgqNonFinite when some rank saw NaN/Inf. */
#define MCGQ_FLAG_NONFINITE INT32_MAX

enum { FINGERPRINT_WORDS = 8 };
static const uint64_t kFingerprintMagic = 0x4d4347512d434f4dull; /* MCGQ-COM */

struct mcgqComm {
  const mcgq_transport_ops_t *ops;
  void *ctx;
  int rank, nranks;
  size_t capacity_per_rank; /* 0 = exact sizes */

  mcgqLayer_t *layers; /* copy of the caller's table */
  int count;
  uint64_t total_n;
  mcgqLayerStats_t *layer_stats;

  /* host-step scratch, sized at mcgqCommSetLayers (grown when a bound
   * grows, e.g. dynamic K) */
  mcgqLayerDesc_t *descs;
  float *average;
  void *send_buf;
  size_t send_capacity;
  void *recv_buf;
  size_t recv_capacity;
  uint64_t *rank_info;   /* 2 * nranks: status flag, message size */
  uint64_t *fingerprints; /* FINGERPRINT_WORDS * nranks */
  size_t *counts, *displs;
  const void **messages;

  char detail[MCGQ_COMM_DETAIL_BYTES];
};

mcgqResult_t mcgq_comm_fail(mcgqComm_t comm, mcgqResult_t status,
                            const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(comm->detail, sizeof comm->detail, fmt, ap);
  va_end(ap);
  return status;
}

/* A library call failed and left its detail in the thread-local buffer. */
static mcgqResult_t adopt_thread_detail(mcgqComm_t comm, mcgqResult_t status) {
  return mcgq_comm_fail(comm, status, "%s", mcgqGetLastErrorDetail());
}

const mcgqLayer_t *mcgq_comm_layers(mcgqComm_t comm, int *count) {
  if (count) *count = comm->count;
  return comm->layers;
}
uint64_t mcgq_comm_total_elements(mcgqComm_t comm) { return comm->total_n; }
mcgqLayerStats_t *mcgq_comm_layer_stats(mcgqComm_t comm) {
  return comm->layer_stats;
}
char *mcgq_comm_detail(mcgqComm_t comm) { return comm->detail; }

/* ------------------------------------------------------------ lifetime */

static void free_host_scratch(mcgqComm_t comm) {
  free(comm->descs);
  free(comm->average);
  free(comm->send_buf);
  free(comm->recv_buf);
  comm->descs = NULL;
  comm->average = NULL;
  comm->send_buf = comm->recv_buf = NULL;
  comm->send_capacity = comm->recv_capacity = 0;
}

/* The per-rank tables sized at creation (free(NULL) is fine). */
static void free_rank_tables(mcgqComm_t comm) {
  free(comm->rank_info);
  free(comm->fingerprints);
  free(comm->counts);
  free(comm->displs);
  free((void *)comm->messages);
}

mcgqResult_t mcgq_comm_create(const mcgq_transport_ops_t *ops, void *ctx,
                              int rank, int nranks, mcgqComm_t *out) {
  static const char fn[] = "mcgqCommInit";
  if (!ops || !out || nranks < 1 || rank < 0 || rank >= nranks) {
    if (ops && ops->destroy) ops->destroy(ctx);
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: bad transport (rank %d of %d)", fn, rank, nranks);
  }
  mcgqComm_t comm = calloc(1, sizeof *comm);
  size_t p = (size_t)nranks;
  if (comm) {
    comm->rank_info = calloc(2 * p, sizeof(uint64_t));
    comm->fingerprints = calloc(FINGERPRINT_WORDS * p, sizeof(uint64_t));
    comm->counts = calloc(p, sizeof(size_t));
    comm->displs = calloc(p, sizeof(size_t));
    comm->messages = calloc(p, sizeof(void *));
  }
  if (!comm || !comm->rank_info || !comm->fingerprints || !comm->counts ||
      !comm->displs || !comm->messages) {
    if (comm) {
      free_rank_tables(comm);
      free(comm);
    }
    ops->destroy(ctx);
    return mcgq_fail(mcgqOutOfMemory, "%s: cannot allocate the handle", fn);
  }
  comm->ops = ops;
  comm->ctx = ctx;
  comm->rank = rank;
  comm->nranks = nranks;
  *out = comm;
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqCommDestroy(mcgqComm_t comm) {
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "mcgqCommDestroy: comm is NULL");
  if (comm->ops->destroy) comm->ops->destroy(comm->ctx);
  free_host_scratch(comm);
  free(comm->layers);
  free(comm->layer_stats);
  free_rank_tables(comm);
  free(comm);
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqCommGetRank(mcgqComm_t comm, int *rank, int *nranks) {
  if (!comm || !rank || !nranks)
    return mcgq_fail(mcgqInvalidArgument,
                     "mcgqCommGetRank: comm, rank or nranks is NULL");
  *rank = comm->rank;
  *nranks = comm->nranks;
  return mcgqSuccess;
}

const char *mcgqCommGetLastError(mcgqComm_t comm) {
  return comm ? comm->detail : "mcgqCommGetLastError: comm is NULL";
}

mcgqResult_t mcgqCommSetCapacity(mcgqComm_t comm, size_t bytes_per_rank) {
  if (!comm)
    return mcgq_fail(mcgqInvalidArgument, "mcgqCommSetCapacity: comm is NULL");
  comm->detail[0] = '\0';
  comm->capacity_per_rank = bytes_per_rank;
  return mcgqSuccess;
}

mcgqResult_t mcgqCommGetLayerStats(mcgqComm_t comm, mcgqLayerStats_t *stats,
                                   int count) {
  if (!comm)
    return mcgq_fail(mcgqInvalidArgument, "mcgqCommGetLayerStats: comm is NULL");
  if (!stats || count < 0 || count > comm->count)
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "mcgqCommGetLayerStats: stats is NULL or count = %d "
                          "is not in [0, %d]",
                          count, comm->count);
  if (count > 0) memcpy(stats, comm->layer_stats, (size_t)count * sizeof *stats);
  return mcgqSuccess;
}

/* ------------------------------------------------------------ layer table */

/* Checks one registered layer without reading memory the layer points to
 * (device memory on an NCCL communicator). */
static mcgqResult_t check_layer(mcgqComm_t comm, const mcgqLayer_t *l, int i) {
  static const char fn[] = "mcgqCommSetLayers";
  if (l->struct_size < sizeof(mcgqLayer_t))
    return mcgq_comm_fail(comm, mcgqUnsupportedVersion,
                          "%s: layers[%d].struct_size = %u is below "
                          "sizeof(mcgqLayer_t) = %u",
                          fn, i, (unsigned)l->struct_size,
                          (unsigned)sizeof(mcgqLayer_t));
  if (!l->grad)
    return mcgq_comm_fail(comm, mcgqInvalidArgument, "%s: layers[%d].grad is NULL",
                          fn, i);
  if (l->n == 0 || l->n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: layers[%d].n = %llu is not in [1, 2^32-1]", fn, i,
                          (unsigned long long)l->n);
  mcgqResult_t res = mcgq_check_config(fn, &l->cfg);
  if (res != mcgqSuccess) return adopt_thread_detail(comm, res);
  int wants_accum = l->cfg.accumulate != MCGQ_ACCUM_NONE;
  if (wants_accum != (l->accum != NULL))
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: layers[%d].accum must be %s with accumulate = %d",
                          fn, i, wants_accum ? "non-NULL" : "NULL",
                          (int)l->cfg.accumulate);
  if ((l->cfg.dynamic_k != 0) != (l->kstate != NULL))
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: layers[%d].kstate must be %s with dynamic_k = %d",
                          fn, i, l->cfg.dynamic_k ? "non-NULL" : "NULL",
                          (int)l->cfg.dynamic_k);
  return mcgqSuccess;
}

static const mcgqLayer_t *layer_at(const mcgqLayer_t *layers, int i,
                                   size_t stride) {
  return (const mcgqLayer_t *)((const char *)layers + (size_t)i * stride);
}

/* Host scratch of the host step: descriptors and the averaged output. */
static mcgqResult_t alloc_host_scratch(mcgqComm_t comm, int count,
                                       uint64_t total_n,
                                       mcgqLayerDesc_t **descs, float **avg) {
  *descs = calloc((size_t)(count > 0 ? count : 1), sizeof **descs);
  *avg = total_n <= SIZE_MAX / sizeof(float)
             ? malloc((size_t)(total_n > 0 ? total_n : 1) * sizeof(float))
             : NULL;
  if (!*descs || !*avg) {
    free(*descs);
    free(*avg);
    return mcgq_comm_fail(comm, mcgqOutOfMemory,
                          "mcgqCommSetLayers: cannot allocate scratch for %llu "
                          "elements",
                          (unsigned long long)total_n);
  }
  return mcgqSuccess;
}

mcgqResult_t mcgqCommSetLayers(mcgqComm_t comm, const mcgqLayer_t *layers,
                               int count) {
  static const char fn[] = "mcgqCommSetLayers";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  comm->detail[0] = '\0';
  if (count < 0 || (count > 0 && !layers))
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: count = %d with layers %s", fn, count,
                          layers ? "given" : "NULL");
  size_t stride = count > 0 ? layers->struct_size : sizeof(mcgqLayer_t);
  uint64_t total_n = 0;
  for (int i = 0; i < count; ++i) {
    if (i > 0 && stride < sizeof(mcgqLayer_t)) break; /* reported at i = 0 */
    MCGQ_CHECK(check_layer(comm, layer_at(layers, i, stride), i));
    total_n += layer_at(layers, i, stride)->n; /* < 2^31 * 2^32: no overflow */
  }
  mcgqLayer_t *copy = calloc((size_t)(count > 0 ? count : 1), sizeof *copy);
  mcgqLayerStats_t *stats = calloc((size_t)(count > 0 ? count : 1), sizeof *stats);
  mcgqLayerDesc_t *descs = NULL;
  float *avg = NULL;
  mcgqResult_t res = mcgqSuccess;
  if (!copy || !stats) {
    res = mcgq_comm_fail(comm, mcgqOutOfMemory, "%s: cannot copy %d layers", fn,
                         count);
    goto fail;
  }
  if (!comm->ops->step)
    MCGQ_CHECK_GOTO(alloc_host_scratch(comm, count, total_n, &descs, &avg), res,
                    fail);
  for (int i = 0; i < count; ++i) {
    copy[i] = *layer_at(layers, i, stride);
    copy[i].struct_size = (uint32_t)sizeof(mcgqLayer_t);
  }
  /* Swap in the new table; the old one stays valid until here. */
  mcgqLayer_t *old_layers = comm->layers;
  mcgqLayerStats_t *old_stats = comm->layer_stats;
  int old_count = comm->count;
  uint64_t old_total = comm->total_n;
  comm->layers = copy;
  comm->layer_stats = stats;
  comm->count = count;
  comm->total_n = total_n;
  if (comm->ops->set_layers) {
    res = comm->ops->set_layers(comm->ctx, comm);
    if (res != mcgqSuccess) {
      comm->layers = old_layers;
      comm->layer_stats = old_stats;
      comm->count = old_count;
      comm->total_n = old_total;
      goto fail;
    }
  }
  free(old_layers);
  free(old_stats);
  if (!comm->ops->step) {
    free(comm->descs);
    free(comm->average);
    comm->descs = descs;
    comm->average = avg;
  }
  return mcgqSuccess;
fail:
  free(copy);
  free(stats);
  free(descs);
  free(avg);
  return res;
}

/* ------------------------------------------------------------ step 1 */

/* FNV-1a of 64-bit words, continued from h. */
static uint64_t fnv1a_words(uint64_t h, const uint64_t *words, size_t count) {
  const unsigned char *b = (const unsigned char *)words;
  for (size_t j = 0; j < count * sizeof *words; ++j) {
    h ^= b[j];
    h *= 1099511628211ull;
  }
  return h;
}

static uint64_t double_bits(double x) {
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  return b;
}

/* The layer table's shape: what the message layout depends on. */
static uint64_t table_hash(const mcgqLayer_t *layers, int count) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < count; ++i) {
    uint64_t words[3] = {layers[i].n, (uint64_t)(uint32_t)layers[i].cfg.accumulate,
                         (uint64_t)(layers[i].cfg.dynamic_k != 0)};
    h = fnv1a_words(h, words, 3);
  }
  return h;
}

/* Every layer's sampling settings: the same K (or N) on every rank, or the
 * same dynamic-K parameters (each rank's K state then evolves from its own
 * gradients), the same checksum flag and input type.  The GPU algorithm is
 * left out: both give the same bytes. */
static uint64_t config_hash(const mcgqLayer_t *layers, int count) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < count; ++i) {
    const mcgqLayerConfig_t *c = &layers[i].cfg;
    const int dynamic = c->dynamic_k != 0;
    uint64_t words[7] = {dynamic ? 0 : double_bits(c->k), dynamic ? 0 : c->samples,
                         dynamic ? double_bits(c->k_min) : 0,
                         dynamic ? double_bits(c->k_max) : 0,
                         dynamic ? double_bits(c->delta_k) : 0,
                         (uint64_t)(c->checksum != 0), (uint64_t)(uint32_t)c->dtype};
    h = fnv1a_words(h, words, 7);
  }
  return h;
}

static mcgqResult_t check_tables_agree(mcgqComm_t comm, uint64_t step) {
  static const char fn[] = "mcgqCommStep";
  uint64_t mine[FINGERPRINT_WORDS] = {
      kFingerprintMagic, MCGQ_FORMAT_VERSION, (uint64_t)comm->count,
      comm->total_n, table_hash(comm->layers, comm->count),
      (uint64_t)comm->capacity_per_rank, config_hash(comm->layers, comm->count), step};
  mcgqResult_t res = comm->ops->allgather(comm->ctx, mine, comm->fingerprints,
                                          sizeof mine, comm->detail,
                                          sizeof comm->detail);
  if (res != mcgqSuccess) return res;
  for (int r = 0; r < comm->nranks; ++r) {
    const uint64_t *theirs = comm->fingerprints + (size_t)r * FINGERPRINT_WORDS;
    if (memcmp(theirs, mine, sizeof mine) == 0) continue;
    if (theirs[0] != mine[0] || theirs[1] != mine[1])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: rank %d runs another mcgq format version", fn, r);
    if (theirs[2] != mine[2] || theirs[3] != mine[3])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: layer tables differ: rank %d registered %llu "
                            "layers / %llu elements, rank %d %llu / %llu",
                            fn, r, (unsigned long long)theirs[2],
                            (unsigned long long)theirs[3], comm->rank,
                            (unsigned long long)mine[2], (unsigned long long)mine[3]);
    if (theirs[4] != mine[4])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: layer tables differ between rank %d and rank %d "
                            "(a layer's n, accumulation or dynamic-K mode)",
                            fn, r, comm->rank);
    if (theirs[5] != mine[5])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: fixed capacity differs: rank %d %llu bytes, rank "
                            "%d %llu",
                            fn, r, (unsigned long long)theirs[5], comm->rank,
                            (unsigned long long)mine[5]);
    if (theirs[6] != mine[6])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: layer settings differ between rank %d and rank %d "
                            "(a layer's K or samples, dynamic-K k_min/k_max/delta_k, "
                            "checksum flag or dtype)",
                            fn, r, comm->rank);
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: step counters differ: rank %d is at step %llu, rank %d "
                          "at step %llu",
                          fn, r, (unsigned long long)theirs[7], comm->rank,
                          (unsigned long long)mine[7]);
  }
  if (comm->count == 0)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: no layers registered (mcgqCommSetLayers)", fn);
  return mcgqSuccess;
}

/* ------------------------------------------------------------ host step */

static mcgqResult_t ensure_buffer(void **buf, size_t *capacity, size_t need) {
  if (need <= *capacity) return mcgqSuccess;
  void *grown = realloc(*buf, need);
  if (!grown) return mcgqOutOfMemory;
  *buf = grown;
  *capacity = need;
  return mcgqSuccess;
}

static void fill_descs(mcgqComm_t comm, uint64_t step, uint64_t seed) {
  for (int i = 0; i < comm->count; ++i) {
    const mcgqLayer_t *l = &comm->layers[i];
    mcgqLayerDesc_t *d = &comm->descs[i];
    mcgqLayerDescInit(d);
    d->u = mcgqRandomWord(seed, step, (uint32_t)i, (uint32_t)comm->rank);
    d->g = l->grad;
    d->accum = l->accum;
    d->kstate = l->kstate;
    d->n = l->n;
    d->cfg = l->cfg;
  }
}

/* Step 2: sizes the send buffer and prepares the encode; the status is what
 * this rank contributes to the agreement. */
static mcgqResult_t prepare_local(mcgqComm_t comm, size_t *msg_bytes,
                                  mcgq_host_encode_t **enc) {
  static const char fn[] = "mcgqCommStep";
  size_t bound = 0;
  mcgqResult_t res = mcgqEncodeGetMaxOutputSize(comm->descs, comm->count, &bound);
  if (res != mcgqSuccess) return adopt_thread_detail(comm, res);
  if (ensure_buffer(&comm->send_buf, &comm->send_capacity, bound) != mcgqSuccess)
    return mcgq_comm_fail(comm, mcgqOutOfMemory,
                          "%s: cannot allocate a %zu-byte send buffer", fn, bound);
  res = mcgq_host_encode_prepare(fn, comm->descs, comm->count, comm->send_buf,
                                 comm->send_capacity, msg_bytes,
                                 comm->layer_stats, enc);
  if (res != mcgqSuccess) return adopt_thread_detail(comm, res);
  return mcgqSuccess;
}

static int32_t status_flag(mcgqResult_t res) {
  return res == mcgqNonFinite ? MCGQ_FLAG_NONFINITE : (int32_t)res;
}

/* Step 3, second half: every rank learns that some rank failed. */
static mcgqResult_t agreed_failure(mcgqComm_t comm, mcgqResult_t local,
                                   int32_t agreed, mcgqStepStats_t *stats) {
  mcgqResult_t status =
      agreed == MCGQ_FLAG_NONFINITE ? mcgqNonFinite : (mcgqResult_t)agreed;
  if (status == mcgqNonFinite && stats) stats->found_nonfinite = 1;
  if (local != mcgqSuccess && (local == status || status != mcgqNonFinite))
    return local; /* this rank's own detail is already recorded */
  char ranks[160] = "";
  size_t used = 0;
  for (int r = 0; r < comm->nranks && used + 12 < sizeof ranks; ++r) {
    int32_t f = (int32_t)comm->rank_info[2 * (size_t)r];
    if (f != 0 && (f == agreed || status != mcgqNonFinite))
      used += (size_t)snprintf(ranks + used, sizeof ranks - used, " %d", r);
  }
  return mcgq_comm_fail(comm, status,
                        "mcgqCommStep: %s on rank(s)%s; no rank changed its "
                        "gradients, accumulators or K state",
                        mcgqGetErrorString(status), ranks[0] ? ranks : " ?");
}

/* Step 3: (status, size) of every rank, the receive buffer, the flag. */
static mcgqResult_t agree(mcgqComm_t comm, mcgqResult_t local, size_t msg_bytes,
                          size_t *total, mcgqStepStats_t *stats) {
  uint64_t mine[2] = {(uint64_t)(uint32_t)status_flag(local),
                      local == mcgqSuccess ? (uint64_t)msg_bytes : 0};
  mcgqResult_t res = comm->ops->allgather(comm->ctx, mine, comm->rank_info,
                                          sizeof mine, comm->detail,
                                          sizeof comm->detail);
  if (res != mcgqSuccess) return res;
  int32_t flag = status_flag(local);
  size_t sum = 0;
  for (int r = 0; r < comm->nranks; ++r) {
    uint64_t size = comm->rank_info[2 * (size_t)r + 1];
    if (size > SIZE_MAX - sum) size = SIZE_MAX - sum; /* caught below */
    comm->counts[r] = (size_t)size;
    comm->displs[r] = sum;
    sum += (size_t)size;
  }
  if (flag == 0 && (sum == SIZE_MAX ||
                    ensure_buffer(&comm->recv_buf, &comm->recv_capacity,
                                  sum > 0 ? sum : 1) != mcgqSuccess)) {
    local = mcgq_comm_fail(comm, mcgqOutOfMemory,
                           "mcgqCommStep: cannot allocate a %zu-byte receive "
                           "buffer",
                           sum);
    flag = status_flag(local);
  }
  res = comm->ops->allreduce_max_int(comm->ctx, &flag, comm->detail,
                                     sizeof comm->detail);
  if (res != mcgqSuccess) return res;
  if (flag != 0) return agreed_failure(comm, local, flag, stats);
  *total = sum;
  return mcgqSuccess;
}

static void fill_stats(const mcgqComm_t comm, size_t msg_bytes,
                       mcgqStepStats_t *stats) {
  if (!stats) return;
  double paper_bits = 0.0;
  for (int i = 0; i < comm->count; ++i)
    paper_bits += (double)comm->layer_stats[i].stream_bits + 32.0;
  stats->bytes_sent = msg_bytes;
  stats->elements = comm->total_n;
  stats->paper_ratio = paper_bits > 0 ? 32.0 * (double)comm->total_n / paper_bits : 0;
  stats->wire_ratio = msg_bytes > 0 ? 4.0 * (double)comm->total_n / (double)msg_bytes : 0;
}

/* Step 4 after the agreement: exchange, decode, then commit and write. */
static mcgqResult_t exchange_and_apply(mcgqComm_t comm, size_t msg_bytes,
                                       mcgq_host_encode_t *enc) {
  mcgqResult_t res = comm->ops->allgatherv(comm->ctx, comm->send_buf, msg_bytes,
                                           comm->recv_buf, comm->counts,
                                           comm->displs, comm->detail,
                                           sizeof comm->detail);
  if (res != mcgqSuccess) return res;
  for (int r = 0; r < comm->nranks; ++r)
    comm->messages[r] = (const char *)comm->recv_buf + comm->displs[r];
  res = mcgqDecodeAverageHost(comm->messages, comm->counts, comm->nranks,
                              comm->average, comm->total_n);
  if (res != mcgqSuccess) return adopt_thread_detail(comm, res);
  mcgq_host_encode_commit(enc);
  const float *src = comm->average;
  for (int i = 0; i < comm->count; ++i) {
    memcpy(comm->layers[i].grad, src, (size_t)comm->layers[i].n * sizeof(float));
    src += comm->layers[i].n;
  }
  return mcgqSuccess;
}

static mcgqResult_t host_step(mcgqComm_t comm, uint64_t step, uint64_t seed,
                              mcgqStepStats_t *stats) {
  fill_descs(comm, step, seed);
  size_t msg_bytes = 0, total = 0;
  mcgq_host_encode_t *enc = NULL;
  mcgqResult_t local = prepare_local(comm, &msg_bytes, &enc);
  mcgqResult_t res = agree(comm, local, msg_bytes, &total, stats);
  if (res == mcgqSuccess) res = exchange_and_apply(comm, msg_bytes, enc);
  mcgq_host_encode_release(enc);
  if (res == mcgqSuccess) fill_stats(comm, msg_bytes, stats);
  return res;
}

mcgqResult_t mcgqCommStep(mcgqComm_t comm, uint64_t step, uint64_t seed,
                          mcgqStream_t stream, mcgqStepStats_t *stats) {
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "mcgqCommStep: comm is NULL");
  comm->detail[0] = '\0';
  if (stats) memset(stats, 0, sizeof *stats);
  if (comm->ops->set_stream) comm->ops->set_stream(comm->ctx, stream);
  MCGQ_CHECK(check_tables_agree(comm, step));
  if (comm->capacity_per_rank != 0 && !comm->ops->step)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "mcgqCommStep: fixed-capacity mode is not implemented "
                          "on the %s transport yet",
                          comm->ops->name);
  if (comm->ops->step)
    return comm->ops->step(comm->ctx, comm, step, seed, stream, stats);
  return host_step(comm, step, seed, stats);
}
