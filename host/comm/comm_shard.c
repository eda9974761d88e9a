/*
 * comm_shard.c - the sharded steps of the communicator (mcgq.h, "exchange
 * modes"): the compressed reduce-scatter and the two-stage all-reduce built
 * on it.  They run over the same seams as the all-gather step of comm.c (a
 * transport's collectives, a codec's prepare/decode/commit) and keep its
 * agreement: the block all-gather of comm.c checks the layer tables, the
 * settings, the mode and the step counter, and decides any rank's failure
 * alike on every rank, before any payload moves.
 *
 * Reduce-scatter, after that agreement:
 *   1. an all-gather of every rank's row of message sizes (P words: its
 *      message to each owner), so every rank knows the whole P x P matrix,
 *      checks it alike and reserves an agreed receive buffer;
 *   2. the all-to-all of the shard messages;
 *   3. the owner decode-averages its P messages in rank order into staging
 *      (not the gradients: only this rank read these bytes, so a defect here
 *      is this rank's alone);
 *   4. a max-reduction of the decode status: every rank commits or none.
 * Two-stage continues from 3 instead: each owner re-encodes its averaged
 * shards with the owner-side accumulator, and one all-gather of a small
 * block carries both the step-3 status and the new message's size (one
 * collective instead of two); the owner messages are all-gathered and
 * decoded one by one into a staged copy of the whole gradient.  Every rank
 * decodes those same bytes, so a defect there is every rank's.  Only then
 * are gradients written and accumulators committed: a failure anywhere
 * leaves gradients, accumulators (per rank and owner-side) untouched.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "comm_handle.h"
#include "internal.h"

/* Bytes a rank may send or receive in one all-to-all: MPI counts are int,
 * and checking it here, alike on every rank from the gathered sizes, keeps
 * a transport from failing on one rank while its peers wait. */
#define MCGQ_SHARD_MAX_RANK_BYTES ((uint64_t)INT_MAX)

struct mcgq_shard_plan {
  int nranks, rank;
  /* Stage 1: the shards of every owner, owner-major: owner j's are
   * [first[j], first[j+1]), in layer order, empty shards left out. */
  int *first;              /* nranks + 1 */
  int *layer_of;           /* first[nranks]: the layer of each shard */
  uint64_t *begin;         /* first[nranks]: its first element in the layer */
  mcgqLayerDesc_t *descs;  /* first[nranks]: shard views of grad and accum */
  mcgqLayerStats_t *stats; /* first[nranks] */
  /* This rank's shards (owner = rank): decoded into `averaged`. */
  mcgqLayer_t *own;        /* own_count: grad -> averaged */
  int own_count;
  uint64_t own_n;
  float *averaged;         /* own_n, codec memory */
  /* Two-stage only (NULL otherwise). */
  float *owner_accum;        /* own_n, codec memory, zeroed at creation */
  float *gathered;           /* total_n, codec memory: the whole average */
  mcgqLayer_t *gathered_layers; /* first[nranks]: shard -> gathered */
  mcgqLayerDesc_t *descs2;   /* own_count: averaged + owner_accum */
  mcgqLayerStats_t *stats2;  /* own_count */
  uint64_t *layer_offset;    /* layer count: start of each layer in gathered */
  /* Exchange tables. */
  size_t *sizes;           /* nranks: this rank's message to each owner */
  uint64_t *size_matrix;   /* nranks * nranks: row r = rank r's sizes */
  size_t *send_displs, *recv_counts, *recv_displs; /* nranks each */
  uint64_t *blocks2;       /* 2 * nranks: two-stage status and size */
  uint64_t *recv_totals;   /* nranks: what each rank receives in stage 1 */
};

mcgqResult_t mcgqShardRange(uint64_t n, int nranks, int shard, uint64_t *begin,
                            uint64_t *end) {
  if (!begin || !end || nranks < 1 || shard < 0 || shard >= nranks ||
      n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_fail(mcgqInvalidArgument,
                     "mcgqShardRange: shard %d of %d ranks, n = %llu (at most "
                     "2^32-1), or a NULL output",
                     shard, nranks, (unsigned long long)n);
  /* n < 2^32 and nranks < 2^31: the products fit 64 bits exactly */
  *begin = (uint64_t)shard * n / (uint64_t)nranks;
  *end = ((uint64_t)shard + 1) * n / (uint64_t)nranks;
  mcgq_clear_error();
  return mcgqSuccess;
}

static uint64_t shard_begin(uint64_t n, int nranks, int j) {
  return (uint64_t)j * n / (uint64_t)nranks;
}

/* ------------------------------------------------------------ the plan */

void mcgq_shard_plan_destroy(mcgqComm_t comm, mcgq_shard_plan_t *plan) {
  if (!plan) return;
  const mcgq_codec_ops_t *codec = comm->codec->ops;
  codec->release(comm->codec, plan->averaged);
  codec->release(comm->codec, plan->owner_accum);
  codec->release(comm->codec, plan->gathered);
  free(plan->first);
  free(plan->layer_of);
  free(plan->begin);
  free(plan->descs);
  free(plan->stats);
  free(plan->own);
  free(plan->gathered_layers);
  free(plan->descs2);
  free(plan->stats2);
  free(plan->layer_offset);
  free(plan->sizes);
  free(plan->size_matrix);
  free(plan->send_displs);
  free(plan->recv_counts);
  free(plan->recv_displs);
  free(plan->blocks2);
  free(plan->recv_totals);
  free(plan);
}

/* What the sharded modes cannot do yet, refused when the table or the mode
 * is set (every rank registers the same table, so every rank refuses). */
static mcgqResult_t check_shardable(mcgqComm_t comm, const mcgqLayer_t *layers,
                                    int count) {
  for (int i = 0; i < count; ++i) {
    if (layers[i].cfg.dynamic_k)
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "mcgqComm: layers[%d] uses dynamic K, which the "
                            "sharded exchange modes do not support yet (one K "
                            "state per layer, but P shards of it)",
                            i);
    if (layers[i].cfg.dtype != MCGQ_DTYPE_F32)
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "mcgqComm: layers[%d].cfg.dtype = %d: the sharded "
                            "exchange modes take float32 gradients only (their "
                            "owners re-encode float32 averages)",
                            i, (int)layers[i].cfg.dtype);
  }
  return mcgqSuccess;
}

static int alloc_tables(mcgq_shard_plan_t *p, int count, int shards) {
  size_t P = (size_t)p->nranks, S = (size_t)(shards > 0 ? shards : 1);
  p->first = calloc(P + 1, sizeof *p->first);
  p->layer_of = calloc(S, sizeof *p->layer_of);
  p->begin = calloc(S, sizeof *p->begin);
  p->descs = calloc(S, sizeof *p->descs);
  p->stats = calloc(S, sizeof *p->stats);
  p->layer_offset = calloc((size_t)(count > 0 ? count : 1), sizeof *p->layer_offset);
  p->sizes = calloc(P, sizeof *p->sizes);
  p->size_matrix = calloc(P * P, sizeof *p->size_matrix);
  p->send_displs = calloc(P, sizeof *p->send_displs);
  p->recv_counts = calloc(P, sizeof *p->recv_counts);
  p->recv_displs = calloc(P, sizeof *p->recv_displs);
  p->blocks2 = calloc(2 * P, sizeof *p->blocks2);
  p->recv_totals = calloc(P, sizeof *p->recv_totals);
  return p->first && p->layer_of && p->begin && p->descs && p->stats &&
         p->layer_offset && p->sizes && p->size_matrix && p->send_displs &&
         p->recv_counts && p->recv_displs && p->blocks2 && p->recv_totals;
}

/* Owner-major list of the non-empty shards and their views of the caller's
 * gradients and accumulators (u is set at each step). */
static void fill_shards(mcgq_shard_plan_t *p, const mcgqLayer_t *layers, int count) {
  int s = 0;
  for (int j = 0; j < p->nranks; ++j) {
    p->first[j] = s;
    for (int i = 0; i < count; ++i) {
      const mcgqLayer_t *l = &layers[i];
      uint64_t lo = shard_begin(l->n, p->nranks, j);
      uint64_t hi = shard_begin(l->n, p->nranks, j + 1);
      if (hi == lo) continue;
      mcgqLayerDesc_t *d = &p->descs[s];
      mcgqLayerDescInit(d);
      d->g = (const float *)l->grad + lo;
      d->accum = l->accum ? l->accum + lo : NULL;
      d->n = hi - lo;
      d->cfg = l->cfg;
      p->layer_of[s] = i;
      p->begin[s] = lo;
      ++s;
    }
  }
  p->first[p->nranks] = s;
  uint64_t offset = 0;
  for (int i = 0; i < count; ++i) {
    p->layer_offset[i] = offset;
    offset += layers[i].n;
  }
}

static mcgqResult_t alloc_floats(mcgqComm_t comm, uint64_t n, float **out) {
  if (n > SIZE_MAX / sizeof(float))
    return mcgq_comm_fail(comm, mcgqOutOfMemory,
                          "mcgqComm: %llu floats of staging exceed size_t",
                          (unsigned long long)n);
  void *ptr = NULL;
  MCGQ_CHECK(comm->codec->ops->alloc(comm->codec, (size_t)n * sizeof(float), &ptr,
                                     comm->detail, sizeof comm->detail));
  *out = ptr;
  return mcgqSuccess;
}

/* This rank's shards: the reduce-scatter's output table (into staging) and,
 * two-stage, the second encode's input (staging + owner accumulator). */
static mcgqResult_t fill_own(mcgqComm_t comm, mcgq_shard_plan_t *p,
                             const mcgqLayer_t *layers) {
  const int first = p->first[p->rank];
  p->own_count = p->first[p->rank + 1] - first;
  size_t slots = (size_t)(p->own_count > 0 ? p->own_count : 1);
  p->own = calloc(slots, sizeof *p->own);
  if (!p->own) return mcgq_comm_fail(comm, mcgqOutOfMemory, "mcgqComm: no host memory");
  p->own_n = 0;
  for (int s = 0; s < p->own_count; ++s) p->own_n += p->descs[first + s].n;
  MCGQ_CHECK(alloc_floats(comm, p->own_n, &p->averaged));
  uint64_t off = 0;
  for (int s = 0; s < p->own_count; ++s) {
    p->own[s] = layers[p->layer_of[first + s]];
    p->own[s].grad = p->averaged + off;
    p->own[s].accum = NULL;
    p->own[s].n = p->descs[first + s].n;
    off += p->own[s].n;
  }
  return mcgqSuccess;
}

/* Two-stage: owner-side accumulator, the second encode's descriptors and
 * the table that decodes every owner's message into `gathered`. */
static mcgqResult_t fill_two_stage(mcgqComm_t comm, mcgq_shard_plan_t *p,
                                   const mcgqLayer_t *layers, uint64_t total_n) {
  const int shards = p->first[p->nranks];
  size_t own_slots = (size_t)(p->own_count > 0 ? p->own_count : 1);
  p->gathered_layers = calloc((size_t)(shards > 0 ? shards : 1), sizeof *p->gathered_layers);
  p->descs2 = calloc(own_slots, sizeof *p->descs2);
  p->stats2 = calloc(own_slots, sizeof *p->stats2);
  if (!p->gathered_layers || !p->descs2 || !p->stats2)
    return mcgq_comm_fail(comm, mcgqOutOfMemory, "mcgqComm: no host memory");
  MCGQ_CHECK(alloc_floats(comm, p->own_n, &p->owner_accum));
  MCGQ_CHECK(alloc_floats(comm, total_n, &p->gathered));
  for (int s = 0; s < shards; ++s) {
    const int i = p->layer_of[s];
    p->gathered_layers[s] = layers[i];
    p->gathered_layers[s].grad = p->gathered + p->layer_offset[i] + p->begin[s];
    p->gathered_layers[s].accum = NULL;
    p->gathered_layers[s].n = p->descs[s].n;
  }
  uint64_t off = 0;
  for (int s = 0; s < p->own_count; ++s) {
    const mcgqLayer_t *own = &p->own[s];
    mcgqLayerDesc_t *d = &p->descs2[s];
    mcgqLayerDescInit(d);
    d->g = own->grad;
    d->accum = own->cfg.accumulate != MCGQ_ACCUM_NONE ? p->owner_accum + off : NULL;
    d->n = own->n;
    d->cfg = own->cfg;
    off += own->n;
  }
  return mcgqSuccess;
}

mcgqResult_t mcgq_shard_plan_create(mcgqComm_t comm, const mcgqLayer_t *layers,
                                    int count, mcgq_shard_plan_t **out) {
  *out = NULL;
  MCGQ_CHECK(check_shardable(comm, layers, count));
  mcgq_shard_plan_t *p = calloc(1, sizeof *p);
  if (!p) return mcgq_comm_fail(comm, mcgqOutOfMemory, "mcgqComm: no host memory");
  p->nranks = comm->nranks;
  p->rank = comm->rank;
  int shards = 0;
  uint64_t total_n = 0;
  for (int i = 0; i < count; ++i) {
    total_n += layers[i].n;
    /* min(n, P) shards are non-empty; the count must fit an int */
    uint64_t nonempty = layers[i].n < (uint64_t)p->nranks ? layers[i].n
                                                          : (uint64_t)p->nranks;
    if (nonempty > (uint64_t)(INT_MAX - shards)) {
      mcgq_shard_plan_destroy(comm, p);
      return mcgq_comm_fail(comm, mcgqInvalidArgument,
                            "mcgqComm: %d layers over %d ranks make more than "
                            "2^31-1 shards",
                            count, comm->nranks);
    }
    shards += (int)nonempty;
  }
  mcgqResult_t res = mcgqSuccess;
  if (!alloc_tables(p, count, shards))
    res = mcgq_comm_fail(comm, mcgqOutOfMemory, "mcgqComm: cannot allocate the "
                                                "shard tables of %d layers", count);
  if (res == mcgqSuccess) {
    fill_shards(p, layers, count);
    res = fill_own(comm, p, layers);
  }
  if (res == mcgqSuccess && comm->mode == MCGQ_EXCHANGE_TWO_STAGE)
    res = fill_two_stage(comm, p, layers, total_n);
  if (res != mcgqSuccess) {
    mcgq_shard_plan_destroy(comm, p);
    return res;
  }
  *out = p;
  return mcgqSuccess;
}

uint64_t mcgq_shard_owner_elements(const mcgq_shard_plan_t *plan) {
  return plan && plan->owner_accum ? plan->own_n : 0;
}

mcgqResult_t mcgq_shard_owner_copy(mcgqComm_t comm, float *host_out,
                                   const float *host_in) {
  mcgq_shard_plan_t *p = comm->plan;
  size_t bytes = (size_t)p->own_n * sizeof(float);
  mcgq_call_t call = {NULL, 0.0, comm->detail, sizeof comm->detail};
  if (bytes == 0) return mcgqSuccess;
  if (host_out)
    return comm->codec->ops->copy(comm->codec, host_out, p->owner_accum, bytes,
                                  MCGQ_COPY_TO_HOST, &call);
  return comm->codec->ops->copy(comm->codec, p->owner_accum, host_in, bytes,
                                MCGQ_COPY_FROM_HOST, &call);
}

/* ------------------------------------------------------------ stage 1 */

/* Checks that are the same on every rank (the table and capacity were
 * compared in the agreement), so a refusal here is every rank's. */
static mcgqResult_t check_step(mcgqComm_t comm) {
  if (comm->count == 0 || !comm->plan)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "mcgqCommStep: no layers registered (mcgqCommSetLayers)");
  if (comm->capacity != 0)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "mcgqCommStep: fixed capacity (mcgqCommSetCapacity) is "
                          "not supported in the sharded exchange modes yet; set "
                          "it to 0");
  return mcgqSuccess;
}

/* Encodes one message per owner; nothing of the caller's changes. */
static mcgqResult_t prepare_stage1(mcgqComm_t comm, const mcgq_call_t *call,
                                   uint64_t step, uint64_t seed, const void **send) {
  mcgq_shard_plan_t *p = comm->plan;
  const uint32_t P = (uint32_t)p->nranks;
  for (int j = 0; j < p->nranks; ++j)
    for (int s = p->first[j]; s < p->first[j + 1]; ++s)
      p->descs[s].u = mcgqRandomWord(seed, step, mcgq_comm_layer_id(comm, p->layer_of[s]),
                                     (uint32_t)p->rank * P + (uint32_t)j);
  return comm->codec->ops->prepare_messages(comm->codec, p->descs, p->first,
                                            p->nranks, call, send, p->sizes,
                                            p->stats);
}

static uint64_t bytes_to_others(const mcgq_shard_plan_t *p) {
  uint64_t sum = 0;
  for (int j = 0; j < p->nranks; ++j)
    if (j != p->rank) sum += p->sizes[j];
  return sum;
}

/* Every rank's sizes, checked alike on every rank against the all-to-all's
 * limit, then this rank's receive layout and an agreed buffer. */
static mcgqResult_t gather_sizes(mcgqComm_t comm, const mcgq_call_t *call,
                                 void **recv) {
  mcgq_shard_plan_t *p = comm->plan;
  const int P = p->nranks;
  uint64_t *mine = malloc((size_t)P * sizeof *mine);
  if (!mine) return mcgq_comm_fail(comm, mcgqOutOfMemory, "mcgqCommStep: no host memory");
  for (int j = 0; j < P; ++j) mine[j] = p->sizes[j];
  mcgqResult_t res = comm->ops->allgather(comm->ctx, mine, p->size_matrix,
                                          (size_t)P * sizeof *mine, call);
  free(mine);
  MCGQ_CHECK(res);
  for (int r = 0; r < P; ++r) {
    uint64_t out = 0, in = 0;
    for (int j = 0; j < P; ++j) {
      out += p->size_matrix[(size_t)r * P + j];
      in += p->size_matrix[(size_t)j * P + r];
    }
    p->recv_totals[r] = in; /* what rank r reserves */
    if (out > MCGQ_SHARD_MAX_RANK_BYTES || in > MCGQ_SHARD_MAX_RANK_BYTES)
      return mcgq_comm_fail(comm, mcgqCapacityExceeded,
                            "mcgqCommStep: rank %d would send %llu and receive "
                            "%llu bytes of shard messages, over the limit of "
                            "%llu per rank and step; register fewer elements "
                            "per communicator",
                            r, (unsigned long long)out, (unsigned long long)in,
                            (unsigned long long)MCGQ_SHARD_MAX_RANK_BYTES);
  }
  size_t offset = 0;
  for (int j = 0; j < P; ++j) {
    p->send_displs[j] = offset;
    offset += p->sizes[j];
    p->recv_counts[j] = (size_t)p->size_matrix[(size_t)j * P + p->rank];
  }
  return mcgq_comm_reserve_agreed(comm, call, p->recv_totals, p->recv_counts,
                                  p->recv_displs, recv);
}

/* This rank's P shard messages, rank order, decode-averaged into staging.
 * An owner without shards receives nothing and decodes nothing. */
static mcgqResult_t decode_own(mcgqComm_t comm, const mcgq_call_t *call,
                               const void *recv) {
  mcgq_shard_plan_t *p = comm->plan;
  if (p->own_count == 0) return mcgqSuccess;
  for (int r = 0; r < p->nranks; ++r) {
    comm->messages[r] = (const char *)recv + p->recv_displs[r];
    comm->in_bytes[r] = p->recv_counts[r];
  }
  return comm->codec->ops->decode_average(comm->codec, comm->messages,
                                          comm->in_bytes, 0, p->nranks, p->own,
                                          p->own_count, call);
}

/* A status every rank has learnt (max of the flags): this rank's own
 * detail when it is the failing one, else a message naming the stage. */
static mcgqResult_t agreed_status(mcgqComm_t comm, mcgqResult_t local,
                                  int32_t agreed, const char *stage,
                                  mcgqStepStats_t *stats) {
  if (agreed == 0) return mcgqSuccess;
  mcgqResult_t status = mcgq_comm_flag_status(agreed);
  if (status == mcgqNonFinite && stats) stats->found_nonfinite = 1;
  if (local == status) return local;
  return mcgq_comm_fail(comm, status,
                        "mcgqCommStep: %s failed on another rank (%s); no rank "
                        "changed its gradients, accumulators or owner state",
                        stage, mcgqGetErrorString(status));
}

/* ------------------------------------------------------------ stage 2 */

/* Two-stage: re-encode, gather status and sizes (one collective), gather
 * the owner messages and decode each alone into `gathered`. */
static mcgqResult_t run_stage2(mcgqComm_t comm, const mcgq_call_t *call,
                               uint64_t step, uint64_t seed,
                               mcgqResult_t decoded, size_t *sent,
                               mcgqStepStats_t *stats) {
  mcgq_shard_plan_t *p = comm->plan;
  const int P = p->nranks;
  mcgqResult_t local = decoded;
  const void *send = NULL;
  size_t bytes = 0;
  if (local == mcgqSuccess && p->own_count > 0) {
    const uint32_t word = (uint32_t)P * (uint32_t)P + (uint32_t)p->rank;
    const int first[2] = {0, p->own_count};
    for (int s = 0; s < p->own_count; ++s)
      p->descs2[s].u = mcgqRandomWord(seed, step,
                                      mcgq_comm_layer_id(comm, p->layer_of[p->first[p->rank] + s]),
                                      word);
    local = comm->codec->ops->prepare_messages(comm->codec, p->descs2, first, 1, call,
                                               &send, &bytes, p->stats2);
  }
  uint64_t block[2] = {(uint64_t)(uint32_t)mcgq_comm_status_flag(local),
                       local == mcgqSuccess ? (uint64_t)bytes : 0};
  MCGQ_CHECK(comm->ops->allgather(comm->ctx, block, p->blocks2, sizeof block, call));
  int32_t agreed = 0;
  for (int r = 0; r < P; ++r) {
    int32_t f = (int32_t)p->blocks2[2 * (size_t)r];
    if (f > agreed) agreed = f;
  }
  MCGQ_CHECK(agreed_status(comm, local, agreed,
                           decoded != mcgqSuccess ? "decoding a shard"
                                                  : "the owner's re-encode",
                           stats));
  for (int r = 0; r < P; ++r) comm->counts[r] = (size_t)p->blocks2[2 * (size_t)r + 1];
  void *recv = NULL;
  MCGQ_CHECK(mcgq_comm_reserve_agreed(comm, call, NULL, comm->counts, comm->displs,
                                      &recv));
  MCGQ_CHECK(comm->ops->allgatherv(comm->ctx, send, bytes, recv, comm->counts,
                                   comm->displs, call));
  *sent = bytes;
  for (int j = 0; j < P; ++j) {
    int shards = p->first[j + 1] - p->first[j];
    if (shards == 0) continue;
    const void *msg = (const char *)recv + comm->displs[j];
    MCGQ_CHECK(comm->codec->ops->decode_average(comm->codec, &msg, &comm->counts[j],
                                                0, 1, p->gathered_layers + p->first[j],
                                                shards, call));
  }
  return mcgqSuccess;
}

/* ------------------------------------------------------------ results */

/* The first writes to the caller's gradients: this rank's averaged shards
 * (reduce-scatter) or the whole gathered average (two-stage). */
static mcgqResult_t write_gradients(mcgqComm_t comm, const mcgq_call_t *call) {
  mcgq_shard_plan_t *p = comm->plan;
  const mcgq_codec_ops_t *codec = comm->codec->ops;
  if (comm->mode == MCGQ_EXCHANGE_TWO_STAGE) {
    for (int i = 0; i < comm->count; ++i)
      MCGQ_CHECK(codec->copy(comm->codec, comm->layers[i].grad,
                             p->gathered + p->layer_offset[i],
                             (size_t)comm->layers[i].n * sizeof(float),
                             MCGQ_COPY_CODEC, call));
    return mcgqSuccess;
  }
  const int first = p->first[p->rank];
  for (int s = 0; s < p->own_count; ++s)
    MCGQ_CHECK(codec->copy(comm->codec,
                           (float *)comm->layers[p->layer_of[first + s]].grad +
                               p->begin[first + s],
                           p->own[s].grad, (size_t)p->own[s].n * sizeof(float),
                           MCGQ_COPY_CODEC, call));
  return mcgqSuccess;
}

/* Per layer, this rank's first encode summed over the layer's shards. */
static void fill_stats(mcgqComm_t comm, size_t sent, mcgqStepStats_t *stats) {
  mcgq_shard_plan_t *p = comm->plan;
  memset(comm->layer_stats, 0, (size_t)comm->count * sizeof *comm->layer_stats);
  double paper_bits = 0.0;
  uint64_t message_bytes = 0;
  for (int s = 0; s < p->first[p->nranks]; ++s) {
    const mcgqLayerStats_t *x = &p->stats[s];
    mcgqLayerStats_t *y = &comm->layer_stats[p->layer_of[s]];
    y->n += x->n;
    y->samples += x->samples;
    y->k = x->k;
    y->scale = x->scale;
    y->stream_bits += x->stream_bits;
    y->wire_bytes += x->wire_bytes;
    y->nonzeros += x->nonzeros;
    y->w1 = -1.0;
    y->flags |= x->flags;
    paper_bits += (double)x->stream_bits + 32.0;
  }
  for (int j = 0; j < p->nranks; ++j) message_bytes += p->sizes[j];
  if (!stats) return;
  stats->bytes_sent = sent;
  stats->elements = comm->total_n;
  stats->paper_ratio = paper_bits > 0 ? 32.0 * (double)comm->total_n / paper_bits : 0;
  stats->wire_ratio =
      message_bytes > 0 ? 4.0 * (double)comm->total_n / (double)message_bytes : 0;
  stats->layers_cut = 0;
}

/* Everything up to the commit: the agreement, the exchanges, the agreed
 * decode status and the writes into the gradients (the caller's, or the
 * hierarchical step's staging).  `injected` != success: a failure found
 * before the step, entered into the agreement as this rank's status. */
mcgqResult_t mcgq_shard_exchange(mcgqComm_t comm, const mcgq_call_t *call,
                                 uint64_t step, uint64_t seed,
                                 mcgqResult_t injected, mcgqStepStats_t *stats) {
  const void *send = NULL;
  void *recv = NULL;
  mcgqResult_t local = injected;
  if (local == mcgqSuccess) local = check_step(comm);
  if (local == mcgqSuccess) local = prepare_stage1(comm, call, step, seed, &send);
  size_t sent = local == mcgqSuccess ? (size_t)bytes_to_others(comm->plan) : 0;
  comm->step_prepared = 1; /* discard is harmless after a failed prepare */
  mcgqResult_t res = mcgq_comm_agree(comm, call, step, local, sent, stats);
  if (res == mcgqSuccess) res = gather_sizes(comm, call, &recv);
  if (res == mcgqSuccess)
    res = comm->ops->alltoallv(comm->ctx, send, comm->plan->sizes,
                               comm->plan->send_displs, recv,
                               comm->plan->recv_counts, comm->plan->recv_displs, call);
  if (res == mcgqSuccess) {
    mcgqResult_t decoded = decode_own(comm, call, recv);
    if (comm->mode == MCGQ_EXCHANGE_TWO_STAGE) {
      size_t sent2 = 0;
      res = run_stage2(comm, call, step, seed, decoded, &sent2, stats);
      sent += sent2;
    } else {
      int32_t flag = mcgq_comm_status_flag(decoded);
      res = comm->ops->allreduce_max_int(comm->ctx, &flag, call);
      if (res == mcgqSuccess)
        res = agreed_status(comm, decoded, flag, "decoding a shard", stats);
    }
  }
  comm->step_sent = sent;
  if (res == mcgqSuccess) res = write_gradients(comm, call);
  return res;
}

mcgqResult_t mcgq_shard_finish(mcgqComm_t comm, const mcgq_call_t *call,
                               mcgqResult_t res, mcgqStepStats_t *stats) {
  if (res == mcgqSuccess) res = comm->codec->ops->commit(comm->codec, call);
  else if (comm->step_prepared) comm->codec->ops->discard(comm->codec, call);
  comm->step_prepared = 0;
  if (res == mcgqSuccess) fill_stats(comm, comm->step_sent, stats);
  return res;
}
