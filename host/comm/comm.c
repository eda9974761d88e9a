/*
 * comm.c - the communicator: layer table, settings and the one step
 * protocol of DESIGN.md section 5, over a transport's collectives and a
 * codec (comm_internal.h).  MPI, NCCL and the callback transport (the
 * PyTorch hook) all run this protocol; none has a step of its own.
 *
 * One step, every rank calling the same collectives in the same order:
 *   1. prepare: quantize and encode locally (codec); nothing of the
 *      caller's changes.  Fixed capacity: the message is exactly `capacity`
 *      bytes and the receive buffer (P * capacity) is reserved here.
 *   2. allgather of one small block per rank: fingerprint of the layer
 *      table, settings and step counter, this rank's status flag and
 *      message size.  Every rank sees every block, so every rank takes the
 *      same decision: a table mismatch (mcgqInvalidUsage) or any rank's
 *      failure (non-finite outranks the rest) ends the step on every rank
 *      with nothing changed.  A device codec on a transport that gathers
 *      device memory fills in its flag and size on the device and reads
 *      every block back with its own stats in one host wait (steps 1 and
 *      2 together: prepare_and_agree_on_device).
 *   3. exact sizes only: reserve the receive buffer for the gathered sizes
 *      and agree on that (allreduce-max of a flag: an allocation can fail
 *      on one rank alone), unless every rank's buffer, whose capacity each
 *      block carries, already holds them (the steady state: no
 *      collective).  Fixed capacity has no size exchange at all.
 *   4. allgatherv of the messages; decode-and-average in rank order into
 *      the gradients (every rank decodes the same bytes, so a decode
 *      failure, the range rule of docs/FORMAT.md 4 included, is every
 *      rank's and nobody commits).
 *   5. commit: accumulators and K state, the first write to either.
 * A collective that misses the step's deadline (mcgqCommSetTimeout) returns
 * mcgqTimeout: nothing was committed, and the handle is aborted.
 * The reduce-scatter and two-stage modes (comm_shard.c) share steps 1-3's
 * agreement and add their own exchanges after it.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_handle.h"
#include "internal.h"

/* Status flag of the agreement: non-finite outranks every other failure, so
 * that every rank reports mcgqNonFinite when some rank saw NaN/Inf. */
#define MCGQ_FLAG_NONFINITE INT32_MAX

enum {
  FINGERPRINT_WORDS = 8,
  BLOCK_FLAG = 8,
  BLOCK_SIZE = 9,
  BLOCK_RECV = 10, /* this rank's receive-buffer capacity (not compared) */
  BLOCK_WORDS = 11
};
static const uint64_t kFingerprintMagic = 0x4d4347512d434f4dull; /* MCGQ-COM */

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

/* ------------------------------------------------------------ lifetime */

static void free_rank_tables(mcgqComm_t comm) {
  free(comm->blocks);
  free(comm->counts);
  free(comm->displs);
  free(comm->in_bytes);
  free((void *)comm->messages);
}

static mcgqResult_t create_codec(const mcgq_transport_ops_t *ops, int nranks,
                                 mcgq_codec_t **codec) {
  return ops->payload_on_device ? mcgq_codec_device_create(nranks, codec)
                                : mcgq_codec_host_create(codec);
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
    comm->blocks = calloc(BLOCK_WORDS * p, sizeof(uint64_t));
    comm->counts = calloc(p, sizeof(size_t));
    comm->displs = calloc(p, sizeof(size_t));
    comm->in_bytes = calloc(p, sizeof(size_t));
    comm->messages = calloc(p, sizeof(void *));
  }
  if (!comm || !comm->blocks || !comm->counts || !comm->displs ||
      !comm->in_bytes || !comm->messages) {
    if (comm) free_rank_tables(comm);
    free(comm);
    ops->destroy(ctx);
    return mcgq_fail(mcgqOutOfMemory, "%s: cannot allocate the handle", fn);
  }
  mcgqResult_t res = create_codec(ops, nranks, &comm->codec);
  if (res != mcgqSuccess) {
    free_rank_tables(comm);
    free(comm);
    ops->destroy(ctx);
    return res; /* the codec left its detail */
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
  /* After a timeout a collective the peers never completed may still write
   * the exchange buffers (MPI cannot cancel a collective), so an aborted
   * handle leaves them, and the transport's state, allocated. */
  mcgq_node_destroy(comm, comm->node); /* keeps its buffers when aborted */
  if (!comm->aborted) {
    mcgq_shard_plan_destroy(comm, comm->plan);
    comm->codec->ops->destroy(comm->codec);
    free_rank_tables(comm);
  }
  comm->ops->destroy(comm->ctx);
  free(comm->layer_ids);
  free(comm->layers);
  free(comm->layer_stats);
  free(comm->descs);
  free(comm);
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqCommGetRank(mcgqComm_t comm, int *rank, int *nranks) {
  if (!comm || !rank || !nranks)
    return mcgq_fail(mcgqInvalidArgument,
                     "mcgqCommGetRank: comm, rank or nranks is NULL");
  if (comm->node) { /* node-major: rank = node index * node size + local rank */
    mcgq_node_global_rank(comm, rank, nranks);
    return mcgqSuccess;
  }
  *rank = comm->rank;
  *nranks = comm->nranks;
  return mcgqSuccess;
}

const char *mcgqCommGetLastError(mcgqComm_t comm) {
  return comm ? comm->detail : "mcgqCommGetLastError: comm is NULL";
}

/* Header and directory of the smallest message: what a capacity must hold. */
static uint64_t directory_bytes(int count) {
  return 32u + 56u * (uint64_t)(count > 0 ? count : 1);
}

mcgqResult_t mcgqCommSetCapacity(mcgqComm_t comm, size_t bytes_per_rank) {
  static const char fn[] = "mcgqCommSetCapacity";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  comm->detail[0] = '\0';
  if (bytes_per_rank != 0 && !comm->codec->ops->can_cut)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: the %s codec of this %s communicator cannot cut "
                          "layers to a fixed capacity yet; use exact sizes "
                          "(bytes_per_rank = 0)",
                          fn, comm->codec->ops->name, comm->ops->name);
  if (bytes_per_rank % 8 != 0 ||
      (bytes_per_rank != 0 && bytes_per_rank > SIZE_MAX / (size_t)comm->nranks))
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: bytes_per_rank = %zu must be a multiple of 8 "
                          "(messages are 8-byte aligned) and nranks times it "
                          "must fit size_t",
                          fn, bytes_per_rank);
  comm->capacity = bytes_per_rank;
  return mcgqSuccess;
}

mcgqResult_t mcgqCommSetTimeout(mcgqComm_t comm, double seconds) {
  static const char fn[] = "mcgqCommSetTimeout";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  comm->detail[0] = '\0';
  if (!(seconds >= 0.0) || seconds > 1e9)
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: seconds = %g is not in [0, 1e9] (0 = no timeout)",
                          fn, seconds);
  comm->timeout_s = seconds;
  return mcgqSuccess;
}

mcgqResult_t mcgqCommSetExchangeMode(mcgqComm_t comm, int32_t mode) {
  static const char fn[] = "mcgqCommSetExchangeMode";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  comm->detail[0] = '\0';
  if (mode != MCGQ_EXCHANGE_ALL_GATHER && mode != MCGQ_EXCHANGE_TWO_STAGE &&
      mode != MCGQ_EXCHANGE_REDUCE_SCATTER)
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: mode = %d is not MCGQ_EXCHANGE_ALL_GATHER (0), "
                          "TWO_STAGE (1) or REDUCE_SCATTER (2)",
                          fn, (int)mode);
  if (mode == MCGQ_EXCHANGE_REDUCE_SCATTER && comm->node)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: a hierarchical communicator returns the whole "
                          "average on every rank; use MCGQ_EXCHANGE_ALL_GATHER or "
                          "TWO_STAGE for its cross-node step (a sharded result "
                          "over nodes and local ranks is not defined yet)",
                          fn);
  if (mode != MCGQ_EXCHANGE_ALL_GATHER) {
    if (!comm->ops->alltoallv || !comm->codec->ops->prepare_messages)
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: the %s transport with the %s codec has no "
                            "sharded exchange (%s); use MCGQ_EXCHANGE_ALL_GATHER",
                            fn, comm->ops->name, comm->codec->ops->name,
                            !comm->ops->alltoallv
                                ? "no all-to-all: a callback transport needs "
                                  "the alltoallv callback"
                                : "the codec has no sharded messages");
    if (comm->nranks > MCGQ_MAX_SHARDED_RANKS)
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: %d ranks exceed the sharded modes' limit of %d "
                            "(the random words of mcgq.h)",
                            fn, comm->nranks, MCGQ_MAX_SHARDED_RANKS);
  }
  if (mode == comm->mode) return mcgqSuccess; /* keeps the owner state */
  mcgq_shard_plan_t *plan = NULL;
  if (mode != MCGQ_EXCHANGE_ALL_GATHER && comm->count > 0) {
    int32_t was = comm->mode;
    comm->mode = mode; /* the plan allocates what this mode needs */
    mcgqResult_t res = mcgq_shard_plan_create(comm, comm->layers, comm->count, &plan);
    comm->mode = was;
    MCGQ_CHECK(res);
  }
  mcgq_shard_plan_destroy(comm, comm->plan);
  comm->plan = plan;
  comm->mode = mode;
  return mcgqSuccess;
}

mcgqResult_t mcgqCommGetExchangeMode(mcgqComm_t comm, int32_t *mode) {
  if (!comm || !mode)
    return mcgq_fail(mcgqInvalidArgument,
                     "mcgqCommGetExchangeMode: comm or mode is NULL");
  *mode = comm->mode;
  return mcgqSuccess;
}

/* The owner state exists only in two-stage mode with a table registered. */
static mcgqResult_t owner_state_check(mcgqComm_t comm, const char *fn,
                                      const void *buffer, uint64_t elements) {
  uint64_t have = comm->plan ? mcgq_shard_owner_elements(comm->plan) : 0;
  if (comm->mode != MCGQ_EXCHANGE_TWO_STAGE || !comm->plan)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: owner-side accumulators exist only in "
                          "MCGQ_EXCHANGE_TWO_STAGE mode with layers registered",
                          fn);
  if (elements != have || (!buffer && have > 0))
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: elements = %llu but this rank's owner state holds "
                          "%llu floats (mcgqCommGetOwnerStateSize), or the "
                          "buffer is NULL",
                          fn, (unsigned long long)elements,
                          (unsigned long long)have);
  return mcgqSuccess;
}

mcgqResult_t mcgqCommGetOwnerStateSize(mcgqComm_t comm, uint64_t *elements) {
  if (!comm || !elements)
    return mcgq_fail(mcgqInvalidArgument,
                     "mcgqCommGetOwnerStateSize: comm or elements is NULL");
  *elements = comm->mode == MCGQ_EXCHANGE_TWO_STAGE && comm->plan
                  ? mcgq_shard_owner_elements(comm->plan)
                  : 0;
  return mcgqSuccess;
}

mcgqResult_t mcgqCommGetOwnerState(mcgqComm_t comm, float *state,
                                   uint64_t elements) {
  static const char fn[] = "mcgqCommGetOwnerState";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  MCGQ_CHECK(owner_state_check(comm, fn, state, elements));
  return mcgq_shard_owner_copy(comm, state, NULL);
}

mcgqResult_t mcgqCommSetOwnerState(mcgqComm_t comm, const float *state,
                                   uint64_t elements) {
  static const char fn[] = "mcgqCommSetOwnerState";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  MCGQ_CHECK(owner_state_check(comm, fn, state, elements));
  return mcgq_shard_owner_copy(comm, NULL, state);
}

mcgqResult_t mcgqCommGetLayerStats(mcgqComm_t comm, mcgqLayerStats_t *stats,
                                   int count) {
  if (!comm)
    return mcgq_fail(mcgqInvalidArgument, "mcgqCommGetLayerStats: comm is NULL");
  const int registered = comm->node ? mcgq_node_layer_count(comm->node) : comm->count;
  if (!stats || count < 0 || count > registered)
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "mcgqCommGetLayerStats: stats is NULL or count = %d "
                          "is not in [0, %d]",
                          count, registered);
  if (comm->node) {
    mcgq_node_layer_stats(comm, stats, count);
    return mcgqSuccess;
  }
  if (count > 0) memcpy(stats, comm->layer_stats, (size_t)count * sizeof *stats);
  return mcgqSuccess;
}

/* ------------------------------------------------------------ layer table */

/* Checks one registered layer without reading memory the layer points to
 * (device memory on a device communicator). */
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
  if (l->cfg.dtype != MCGQ_DTYPE_F32 && comm->node)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: layers[%d].cfg.dtype = %d: a hierarchical "
                          "communicator takes float32 gradients only (its node "
                          "stage averages float32)", fn, i, (int)l->cfg.dtype);
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
  if (!copy)
    return mcgq_comm_fail(comm, mcgqOutOfMemory, "%s: cannot copy %d layers", fn,
                          count);
  for (int i = 0; i < count; ++i) {
    copy[i] = *layer_at(layers, i, stride);
    copy[i].struct_size = (uint32_t)sizeof(mcgqLayer_t);
  }
  /* Hierarchical: the caller's table stays with the node stage, and the
   * cross-node step registers this rank's share of it. */
  if (comm->node) return mcgq_node_set_layers(comm, copy, count, total_n);
  return mcgq_comm_install_table(comm, copy, count, total_n);
}

mcgqResult_t mcgq_comm_install_table(mcgqComm_t comm, mcgqLayer_t *copy,
                                     int count, uint64_t total_n) {
  static const char fn[] = "mcgqCommSetLayers";
  size_t slots = (size_t)(count > 0 ? count : 1);
  mcgqLayerStats_t *stats = calloc(slots, sizeof *stats);
  mcgqLayerDesc_t *descs = calloc(slots, sizeof *descs);
  if (!stats || !descs) {
    free(copy);
    free(stats);
    free(descs);
    return mcgq_comm_fail(comm, mcgqOutOfMemory, "%s: cannot copy %d layers", fn,
                          count);
  }
  /* The plan first: it refuses what the mode cannot do before the codec
   * replaces its buffers (the codec's table must stay the registered one). */
  mcgq_shard_plan_t *plan = NULL;
  mcgqResult_t res = mcgqSuccess;
  if (comm->mode != MCGQ_EXCHANGE_ALL_GATHER)
    res = mcgq_shard_plan_create(comm, copy, count, &plan);
  if (res == mcgqSuccess) {
    res = comm->codec->ops->set_layers(comm->codec, copy, count, total_n,
                                       comm->detail, sizeof comm->detail);
    if (res != mcgqSuccess) mcgq_shard_plan_destroy(comm, plan);
  }
  if (res != mcgqSuccess) { /* the old table stays registered */
    free(copy);
    free(stats);
    free(descs);
    return res;
  }
  mcgq_shard_plan_destroy(comm, comm->plan);
  comm->plan = plan;
  free(comm->layers);
  free(comm->layer_stats);
  free(comm->descs);
  free(comm->layer_ids); /* a new table numbers its layers by position */
  comm->layer_ids = NULL;
  comm->layers = copy;
  comm->layer_stats = stats;
  comm->descs = descs;
  comm->count = count;
  comm->total_n = total_n;
  return mcgqSuccess;
}

static int compare_ids(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

mcgqResult_t mcgqCommSetLayerIds(mcgqComm_t comm, const uint32_t *ids, int count) {
  static const char fn[] = "mcgqCommSetLayerIds";
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "%s: comm is NULL", fn);
  comm->detail[0] = '\0';
  if (comm->node)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: a hierarchical communicator numbers its layers by "
                          "position (its cross-node table is this rank's share)",
                          fn);
  if (!ids) {
    if (count != 0)
      return mcgq_comm_fail(comm, mcgqInvalidArgument,
                            "%s: ids is NULL with count = %d (NULL, 0 goes back "
                            "to the table positions)", fn, count);
    free(comm->layer_ids);
    comm->layer_ids = NULL;
    return mcgqSuccess;
  }
  if (count != comm->count)
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: count = %d but %d layers are registered "
                          "(mcgqCommSetLayers first)", fn, count, comm->count);
  uint32_t *copy = malloc((size_t)(count > 0 ? count : 1) * sizeof *copy);
  uint32_t *sorted = malloc((size_t)(count > 0 ? count : 1) * sizeof *sorted);
  if (!copy || !sorted) {
    free(copy);
    free(sorted);
    return mcgq_comm_fail(comm, mcgqOutOfMemory, "%s: cannot copy %d ids", fn, count);
  }
  memcpy(copy, ids, (size_t)count * sizeof *copy);
  memcpy(sorted, ids, (size_t)count * sizeof *sorted);
  qsort(sorted, (size_t)count, sizeof *sorted, compare_ids);
  for (int i = 1; i < count; ++i) {
    if (sorted[i] != sorted[i - 1]) continue;
    uint32_t dup = sorted[i];
    int first = -1, second = -1;
    for (int j = 0; j < count && second < 0; ++j) {
      if (ids[j] != dup) continue;
      if (first < 0) first = j;
      else second = j;
    }
    free(copy);
    free(sorted);
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "%s: ids[%d] = ids[%d] = %u: two layers would sample "
                          "with the same random words", fn, first, second,
                          (unsigned)dup);
  }
  free(sorted);
  free(comm->layer_ids);
  comm->layer_ids = copy;
  return mcgqSuccess;
}

/* ------------------------------------------------- step block: agreement */

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
uint64_t mcgq_table_hash(const mcgqLayer_t *layers, int count) {
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
uint64_t mcgq_config_hash(const mcgqLayer_t *layers, int count) {
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

/* This rank's block: the fingerprint of what the message layout and the
 * sampling depend on (a mismatch is a caller error, reported before any
 * payload moves), then this rank's status flag and message size. */
static void fill_block(const mcgqComm_t comm, uint64_t step, int32_t flag,
                       size_t msg_bytes, uint64_t *block) {
  block[0] = kFingerprintMagic;
  /* the mode in the high half: the all-gather block stays as it was */
  block[1] = MCGQ_FORMAT_VERSION | (uint64_t)(uint32_t)comm->mode << 32;
  block[2] = (uint64_t)comm->count;
  block[3] = comm->total_n;
  block[4] = mcgq_table_hash(comm->layers, comm->count);
  block[5] = (uint64_t)comm->capacity;
  block[6] = mcgq_config_hash(comm->layers, comm->count);
  for (int i = 0; i < comm->count; ++i) { /* the ids pick the random words */
    uint64_t id = mcgq_comm_layer_id(comm, i);
    block[6] = fnv1a_words(block[6], &id, 1);
  }
  if (comm->node) { /* a cross-node group joins the same local rank of each node */
    uint64_t layout[2] = {(uint64_t)mcgq_node_local_rank(comm->node),
                          (uint64_t)mcgq_node_local_size(comm->node)};
    block[6] = fnv1a_words(block[6], layout, 2);
  }
  block[7] = step;
  block[BLOCK_FLAG] = (uint64_t)(uint32_t)flag;
  block[BLOCK_SIZE] = flag == 0 ? (uint64_t)msg_bytes : 0;
  block[BLOCK_RECV] = (uint64_t)comm->codec->ops->recv_capacity(comm->codec);
}

/* A step without a registered table (every rank's own check). */
static mcgqResult_t refuse_empty_table(mcgqComm_t comm) {
  return mcgq_comm_fail(comm, mcgqInvalidUsage,
                        "mcgqCommStep: no layers registered (mcgqCommSetLayers)");
}

/* Every rank compares its fingerprint with every other's; when they are
 * not all equal, every rank finds one that differs from its own, so all
 * ranks refuse the step together. */
static mcgqResult_t check_tables_agree(mcgqComm_t comm) {
  static const char fn[] = "mcgqCommStep";
  const uint64_t *mine = comm->blocks + (size_t)comm->rank * BLOCK_WORDS;
  const size_t fp_bytes = FINGERPRINT_WORDS * sizeof(uint64_t);
  for (int r = 0; r < comm->nranks; ++r) {
    const uint64_t *theirs = comm->blocks + (size_t)r * BLOCK_WORDS;
    if (memcmp(theirs, mine, fp_bytes) == 0) continue;
    if (theirs[0] == mine[0] && theirs[1] >> 32 != mine[1] >> 32)
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: exchange modes differ: rank %d uses mode %u, "
                            "rank %d mode %u (mcgqCommSetExchangeMode)",
                            fn, r, (unsigned)(theirs[1] >> 32), comm->rank,
                            (unsigned)(mine[1] >> 32));
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
                            "checksum flag, dtype or id), or, hierarchical, their local "
                            "ranks or node sizes differ (the cross communicator must "
                            "join the same local rank of every node)",
                            fn, r, comm->rank);
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: step counters differ: rank %d is at step %llu, rank %d "
                          "at step %llu",
                          fn, r, (unsigned long long)theirs[7], comm->rank,
                          (unsigned long long)mine[7]);
  }
  return comm->count == 0 ? refuse_empty_table(comm) : mcgqSuccess;
}

/* ------------------------------------------------------------ the step */

int32_t mcgq_comm_status_flag(mcgqResult_t res) {
  return res == mcgqNonFinite ? MCGQ_FLAG_NONFINITE : (int32_t)res;
}

mcgqResult_t mcgq_comm_flag_status(int32_t flag) {
  return flag == MCGQ_FLAG_NONFINITE ? mcgqNonFinite : (mcgqResult_t)flag;
}

static int32_t status_flag(mcgqResult_t res) { return mcgq_comm_status_flag(res); }

static void fill_descs(mcgqComm_t comm, uint64_t step, uint64_t seed) {
  for (int i = 0; i < comm->count; ++i) {
    const mcgqLayer_t *l = &comm->layers[i];
    mcgqLayerDesc_t *d = &comm->descs[i];
    mcgqLayerDescInit(d);
    d->u = mcgqRandomWord(seed, step, mcgq_comm_layer_id(comm, i),
                          (uint32_t)comm->rank);
    d->g = l->grad;
    d->accum = l->accum;
    d->kstate = l->kstate;
    d->n = l->n;
    d->cfg = l->cfg;
  }
}

/* Step 1: this rank's message, and with fixed capacity the receive buffer
 * too (its size is known before anything is gathered). */
static mcgqResult_t prepare_local(mcgqComm_t comm, const mcgq_call_t *call,
                                  uint64_t step, uint64_t seed,
                                  const void **send, size_t *send_bytes,
                                  void **recv) {
  if (comm->count == 0) return refuse_empty_table(comm);
  if (comm->capacity != 0 && comm->capacity < directory_bytes(comm->count))
    return mcgq_comm_fail(comm, mcgqCapacityExceeded,
                          "mcgqCommStep: a fixed capacity of %zu bytes cannot "
                          "hold the header and directory of %d layers (%llu "
                          "bytes)",
                          comm->capacity, comm->count,
                          (unsigned long long)directory_bytes(comm->count));
  fill_descs(comm, step, seed);
  const mcgq_codec_ops_t *codec = comm->codec->ops;
  MCGQ_CHECK(codec->prepare(comm->codec, comm->descs, comm->count, comm->capacity,
                            call, send, send_bytes, comm->layer_stats));
  if (comm->capacity == 0) return mcgqSuccess;
  mcgqResult_t res = codec->reserve(comm->codec, comm->capacity * (size_t)comm->nranks,
                                    recv, call);
  if (res != mcgqSuccess) codec->discard(comm->codec, call);
  return res;
}

/* Step 2, a failure on some rank: every rank returns the same status. */
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
    int32_t f = (int32_t)comm->blocks[(size_t)r * BLOCK_WORDS + BLOCK_FLAG];
    if (f != 0 && (f == agreed || status != mcgqNonFinite))
      used += (size_t)snprintf(ranks + used, sizeof ranks - used, " %d", r);
  }
  return mcgq_comm_fail(comm, status,
                        "mcgqCommStep: %s on %s%s; no rank changed its "
                        "gradients, accumulators or K state",
                        mcgqGetErrorString(status),
                        comm->node ? "the ranks of this local rank on node(s)"
                                   : "rank(s)",
                        ranks[0] ? ranks : " ?");
}

/* Step 2 once the blocks are gathered: the decision, the same on every
 * rank. */
static mcgqResult_t decide(mcgqComm_t comm, mcgqResult_t local,
                           mcgqStepStats_t *stats) {
  MCGQ_CHECK(check_tables_agree(comm));
  comm->caps_gathered = 1;
  int32_t agreed = 0;
  for (int r = 0; r < comm->nranks; ++r) {
    int32_t f = (int32_t)comm->blocks[(size_t)r * BLOCK_WORDS + BLOCK_FLAG];
    if (f > agreed) agreed = f;
  }
  if (agreed != 0) return agreed_failure(comm, local, agreed, stats);
  return mcgqSuccess;
}

/* Step 2: gather the blocks, then decide. */
mcgqResult_t mcgq_comm_agree(mcgqComm_t comm, const mcgq_call_t *call,
                             uint64_t step, mcgqResult_t local,
                             size_t send_bytes, mcgqStepStats_t *stats) {
  uint64_t mine[BLOCK_WORDS];
  fill_block(comm, step, status_flag(local), send_bytes, mine);
  comm->caps_gathered = 0;
  MCGQ_CHECK(comm->ops->allgather(comm->ctx, mine, comm->blocks, sizeof mine, call));
  return decide(comm, local, stats);
}

/* 1 when every rank's receive buffer already holds what it reserves now:
 * the capacities are the ones the blocks of this step's agreement carried
 * (buffers only grow), the needs are known alike on every rank, so every
 * rank finds the same answer. */
static int buffers_hold(const mcgqComm_t comm, const uint64_t *needs, uint64_t sum) {
  if (!comm->caps_gathered) return 0;
  for (int r = 0; r < comm->nranks; ++r) {
    const uint64_t cap = comm->blocks[(size_t)r * BLOCK_WORDS + BLOCK_RECV];
    if (cap == 0 || (needs ? needs[r] : sum) > cap) return 0;
  }
  return 1;
}

mcgqResult_t mcgq_comm_reserve_agreed(mcgqComm_t comm, const mcgq_call_t *call,
                                      const uint64_t *needs, const size_t *counts,
                                      size_t *displs, void **recv) {
  size_t sum = 0;
  int overflow = 0;
  for (int r = 0; r < comm->nranks; ++r) {
    overflow |= counts[r] > SIZE_MAX - sum;
    displs[r] = sum;
    sum += overflow ? 0 : counts[r];
  }
  /* Every buffer holds its messages: nothing is allocated, nothing can
   * fail, and no rank needs the max-reduction. */
  if (!overflow && buffers_hold(comm, needs, sum)) {
    mcgqResult_t res = comm->codec->ops->reserve(comm->codec, sum, recv, call);
    if (res != mcgqSuccess) /* a codec that broke the only-grows rule */
      return mcgq_comm_fail(comm, mcgqInternalError,
                            "mcgqCommStep: internal: a %zu-byte reserve failed "
                            "within the capacity this rank reported",
                            sum);
    return mcgqSuccess;
  }
  mcgqResult_t local =
      overflow ? mcgq_comm_fail(comm, mcgqOutOfMemory,
                                "mcgqCommStep: the messages exceed size_t")
               : comm->codec->ops->reserve(comm->codec, sum, recv, call);
  int32_t flag = status_flag(local);
  MCGQ_CHECK(comm->ops->allreduce_max_int(comm->ctx, &flag, call));
  if (flag == 0) return mcgqSuccess;
  if (local != mcgqSuccess) return local;
  return mcgq_comm_fail(comm, (mcgqResult_t)flag,
                        "mcgqCommStep: another rank could not reserve its "
                        "receive buffer (%s); no rank changed anything",
                        mcgqGetErrorString((mcgqResult_t)flag));
}

/* Step 3, exact sizes: where every rank's message lands, and an agreed
 * receive buffer. */
static mcgqResult_t reserve_exact(mcgqComm_t comm, const mcgq_call_t *call,
                                  void **recv) {
  for (int r = 0; r < comm->nranks; ++r) {
    uint64_t size = comm->blocks[(size_t)r * BLOCK_WORDS + BLOCK_SIZE];
    comm->counts[r] = size > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)size;
  }
  return mcgq_comm_reserve_agreed(comm, call, NULL, comm->counts, comm->displs, recv);
}

static void fixed_layout(mcgqComm_t comm) {
  for (int r = 0; r < comm->nranks; ++r) {
    comm->counts[r] = comm->capacity;
    comm->displs[r] = (size_t)r * comm->capacity;
  }
}

/* Step 4: the payloads, then decode-and-average into the gradients. */
static mcgqResult_t exchange_and_decode(mcgqComm_t comm, const mcgq_call_t *call,
                                        const void *send, size_t send_bytes,
                                        void *recv) {
  MCGQ_CHECK(comm->ops->allgatherv(comm->ctx, send, send_bytes, recv, comm->counts,
                                   comm->displs, call));
  for (int r = 0; r < comm->nranks; ++r) {
    comm->messages[r] = (const char *)recv + comm->displs[r];
    comm->in_bytes[r] = comm->counts[r];
  }
  return comm->codec->ops->decode_average(comm->codec, comm->messages,
                                          comm->in_bytes, comm->capacity != 0,
                                          comm->nranks,
                                          comm->layers, comm->count, call);
}

static void fill_stats(const mcgqComm_t comm, size_t send_bytes,
                       mcgqStepStats_t *stats) {
  if (!stats) return;
  double paper_bits = 0.0;
  int cut = 0;
  for (int i = 0; i < comm->count; ++i) {
    paper_bits += (double)comm->layer_stats[i].stream_bits + 32.0;
    cut += (comm->layer_stats[i].flags & MCGQ_LAYER_FLAG_CUT) != 0;
  }
  stats->bytes_sent = send_bytes;
  stats->elements = comm->total_n;
  stats->paper_ratio = paper_bits > 0 ? 32.0 * (double)comm->total_n / paper_bits : 0;
  stats->wire_ratio =
      send_bytes > 0 ? 4.0 * (double)comm->total_n / (double)send_bytes : 0;
  stats->layers_cut = cut;
}

/* A device codec on a transport that gathers device memory, exact sizes:
 * steps 1 and 2 with one host wait instead of two.  The encode's status
 * flag and size go into this rank's block on the device (the block's other
 * words are the host's), the blocks are gathered on the device, and one
 * wait brings back every rank's block together with this rank's stats. */
static int agree_on_device(const mcgqComm_t comm) {
  return comm->ops->allgather_device && comm->codec->ops->stage_block &&
         comm->capacity == 0;
}

static mcgqResult_t prepare_and_agree_on_device(mcgqComm_t comm, const mcgq_call_t *call,
                                                uint64_t step, uint64_t seed,
                                                mcgqResult_t injected, const void **send,
                                                size_t *send_bytes,
                                                mcgqStepStats_t *stats) {
  const mcgq_codec_ops_t *codec = comm->codec->ops;
  mcgqResult_t local = injected;
  if (local == mcgqSuccess && comm->count == 0) local = refuse_empty_table(comm);
  if (local == mcgqSuccess) {
    fill_descs(comm, step, seed);
    local = codec->prepare_async(comm->codec, comm->descs, comm->count, call, send);
  }
  const int prepared = local == mcgqSuccess;
  comm->step_prepared = prepared;
  uint64_t mine[BLOCK_WORDS];
  fill_block(comm, step, status_flag(local), 0, mine); /* flag, size: device */
  comm->caps_gathered = 0;
  void *d_mine = NULL, *d_all = NULL;
  MCGQ_CHECK(codec->stage_block(comm->codec, mine, BLOCK_WORDS, prepared, BLOCK_FLAG,
                                comm->nranks, &d_mine, &d_all, call));
  MCGQ_CHECK(comm->ops->allgather_device(comm->ctx, d_mine, d_all, sizeof mine, call));
  MCGQ_CHECK(codec->read_blocks(comm->codec, d_all, comm->blocks,
                                sizeof mine * (size_t)comm->nranks, prepared, &local,
                                send_bytes, comm->layer_stats, call));
  comm->step_prepared = local == mcgqSuccess; /* a failed prepare was dropped */
  comm->step_sent = *send_bytes;
  return decide(comm, local, stats);
}

/* Steps 1-4 of the all-gather step; `injected` != success stands for a
 * failure found before the step (the hierarchical step's node stage): this
 * rank then prepares nothing and enters the agreement with that status, so
 * its peers refuse the step with it. */
static mcgqResult_t gather_exchange(mcgqComm_t comm, const mcgq_call_t *call,
                                    uint64_t step, uint64_t seed,
                                    mcgqResult_t injected, mcgqStepStats_t *stats) {
  const void *send = NULL;
  void *recv = NULL;
  size_t send_bytes = 0;
  mcgqResult_t res;
  if (agree_on_device(comm)) {
    res = prepare_and_agree_on_device(comm, call, step, seed, injected, &send,
                                      &send_bytes, stats);
  } else {
    mcgqResult_t local = injected;
    if (local == mcgqSuccess)
      local = prepare_local(comm, call, step, seed, &send, &send_bytes, &recv);
    comm->step_prepared = local == mcgqSuccess;
    comm->step_sent = send_bytes;
    res = mcgq_comm_agree(comm, call, step, local, send_bytes, stats);
  }
  if (res == mcgqSuccess) {
    if (comm->capacity == 0) res = reserve_exact(comm, call, &recv);
    else fixed_layout(comm);
  }
  if (res == mcgqSuccess) res = exchange_and_decode(comm, call, send, send_bytes, recv);
  return res;
}

mcgqResult_t mcgq_comm_exchange(mcgqComm_t comm, const mcgq_call_t *call,
                                uint64_t step, uint64_t seed,
                                mcgqResult_t injected, mcgqStepStats_t *stats) {
  return comm->mode == MCGQ_EXCHANGE_ALL_GATHER
             ? gather_exchange(comm, call, step, seed, injected, stats)
             : mcgq_shard_exchange(comm, call, step, seed, injected, stats);
}

/* Step 5, or dropping what step 1 computed when the step failed. */
mcgqResult_t mcgq_comm_finish(mcgqComm_t comm, const mcgq_call_t *call,
                              mcgqResult_t res, mcgqStepStats_t *stats) {
  if (comm->mode != MCGQ_EXCHANGE_ALL_GATHER)
    return mcgq_shard_finish(comm, call, res, stats);
  if (res == mcgqSuccess) res = comm->codec->ops->commit(comm->codec, call);
  else if (comm->step_prepared) comm->codec->ops->discard(comm->codec, call);
  comm->step_prepared = 0;
  if (res == mcgqSuccess) fill_stats(comm, comm->step_sent, stats);
  return res;
}

mcgqResult_t mcgqCommStep(mcgqComm_t comm, uint64_t step, uint64_t seed,
                          mcgqStream_t stream, mcgqStepStats_t *stats) {
  if (!comm) return mcgq_fail(mcgqInvalidArgument, "mcgqCommStep: comm is NULL");
  comm->detail[0] = '\0';
  if (stats) memset(stats, 0, sizeof *stats);
  if (comm->aborted)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "mcgqCommStep: the communicator was aborted by a "
                          "timeout; destroy it (and the %s communicator under "
                          "it) and create a new one",
                          comm->ops->name);
  mcgq_call_t call;
  call.stream = stream;
  call.deadline = comm->timeout_s > 0 ? mcgq_clock_seconds() + comm->timeout_s : 0.0;
  call.detail = comm->detail;
  call.detail_size = sizeof comm->detail;
  mcgqResult_t res;
  if (comm->node) {
    res = mcgq_node_step(comm, &call, step, seed, stats);
  } else {
    res = mcgq_comm_exchange(comm, &call, step, seed, mcgqSuccess, stats);
    res = mcgq_comm_finish(comm, &call, res, stats);
  }
  if (res == mcgqTimeout) comm->aborted = 1;
  return res;
}
