/*
 * comm_node.c - the hierarchical step (mcgq.h, "hierarchical exchange"):
 * reduce within the node uncompressed, exchange compressed across nodes,
 * gather back within the node.
 *
 * A hierarchical communicator is an ordinary communicator over the
 * cross-node transport (its rank is the node index, its nranks the number
 * of nodes) plus this node stage over a second transport that joins the
 * local ranks of one node.  The caller's layer table stays here; the
 * communicator registers this local rank's share of it, so the cross-node
 * step is the all-gather or two-stage step of comm.c / comm_shard.c,
 * unchanged, on pieces of layers.
 *
 * Shares: the caller's layers, concatenated in table order, are cut at
 * floor(l T / L) for l = 1..L-1 (T elements, L local ranks); local rank l
 * owns [floor(l T / L), floor((l+1) T / L)).  The node stage moves float32
 * and only needs balance by element count, so it cuts the concatenation
 * at L-1 points and keeps all other layers whole for the compressor (one
 * max and one scale per layer, as in DESIGN 2); a layer across a cut
 * becomes two pieces, each a layer of its share's table.
 *
 * One step, every rank calling the same collectives in the same order:
 *   1. node all-gather of a block (the caller's table, settings, mode,
 *      step, node layout): a mismatch inside a node is refused by all its
 *      local ranks alike;
 *   2. node reduction: every local rank flattens its gradients, an
 *      all-to-all gives local rank l every rank's copy of share l, and
 *      local rank l sums them itself, in local rank order,
 *        acc = 0; for r in 0..L-1: acc += g_r[k];  share[k] = acc / (float)L
 *      (float32 adds and one IEEE division).  MPI_Reduce_scatter would be
 *      shorter, but MPI leaves the order of a reduction to the
 *      implementation (and to the message size), so its bits could differ
 *      between runs, libraries and ranks; this order is fixed;
 *   3. the cross-node step on the share (comm.c), up to but not including
 *      its commit.  A failure of stages 1-2 enters that step's agreement as
 *      this rank's status, so the same local rank of every other node fails
 *      too.  A NaN (or a node sum that overflows) shows up in the share of
 *      one local rank and fails that rank's cross-node group;
 *   4. node max-reduction of the outcome: every node holds one member of
 *      every cross-node group, so after it every rank of the job knows
 *      whether any group failed (non-finite outranks the rest, as in the
 *      flat step) and nobody commits alone;
 *   5. node all-gather of the averaged shares (into the flat staging), then
 *      the cross step's commit (this rank's accumulator and K state of its
 *      share) and the copy into the caller's gradients.
 * The caller's gradients are read in 2 and written only in 5; the
 * accumulators are written only by the commit in 5.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_handle.h"
#include "internal.h"

enum { NODE_BLOCK_WORDS = 10, NODE_BLOCK_FLAG = 9 };
static const uint64_t kNodeMagic = 0x4d4347512d4e4f44ull; /* MCGQ-NOD */
static const uint64_t kGolden = 0x9e3779b97f4a7c15ull;

struct mcgq_node {
  const mcgq_transport_ops_t *ops; /* joins the local ranks of this node */
  void *ctx;
  int rank, nranks; /* local rank, ranks per node */

  /* The caller's table (the communicator registers this rank's share). */
  mcgqLayer_t *layers;
  int count;
  uint64_t total_n;
  uint64_t *bounds;     /* nranks + 1: the shares in the concatenation */
  int *piece_layer;     /* per piece of this rank's share: its layer */
  uint64_t *piece_begin; /* and its first element in that layer */
  int pieces;

  /* Staging, host memory (the node transport moves host memory). */
  float *flat;  /* total_n: the flattened gradient, then the gathered average */
  float *inbox; /* nranks * own: every local rank's copy of this share */
  float *share; /* own: the node mean of this share, then its average */
  size_t *send_counts, *send_displs, *recv_counts, *recv_displs; /* nranks */
  uint64_t *blocks; /* NODE_BLOCK_WORDS * nranks */
};

int mcgq_node_local_rank(const mcgq_node_t *node) { return node->rank; }
int mcgq_node_local_size(const mcgq_node_t *node) { return node->nranks; }
int mcgq_node_layer_count(const mcgq_node_t *node) { return node->count; }

void mcgq_node_global_rank(const mcgqComm_t comm, int *rank, int *nranks) {
  *rank = comm->rank * comm->node->nranks + comm->node->rank;
  *nranks = comm->nranks * comm->node->nranks;
}

static uint64_t own_elements(const mcgq_node_t *node) {
  return node->bounds ? node->bounds[node->rank + 1] - node->bounds[node->rank] : 0;
}

/* floor(l T / L) without the 128-bit product: T = q L + r gives
 * l q + floor(l r / L), and l r < 2^62. */
static uint64_t share_bound(uint64_t total_n, int nranks, int l) {
  const uint64_t L = (uint64_t)nranks, q = total_n / L, r = total_n % L;
  return (uint64_t)l * q + (uint64_t)l * r / L;
}

/* The staging and tables of one layer table (free_tables undoes it). */
typedef struct {
  mcgqLayer_t *layers;
  int count;
  uint64_t total_n;
  uint64_t *bounds;
  int *piece_layer;
  uint64_t *piece_begin;
  int pieces;
  float *flat, *inbox, *share;
} node_tables_t;

static void free_tables(node_tables_t *t) {
  free(t->layers);
  free(t->bounds);
  free(t->piece_layer);
  free(t->piece_begin);
  free(t->flat);
  free(t->inbox);
  free(t->share);
}

/* The node stage's per-rank tables and the stage itself (NULL is fine). */
static void free_node_stage(mcgq_node_t *node) {
  if (!node) return;
  free(node->send_counts);
  free(node->send_displs);
  free(node->recv_counts);
  free(node->recv_displs);
  free(node->blocks);
  free(node);
}

void mcgq_node_destroy(mcgqComm_t comm, mcgq_node_t *node) {
  if (!node) return;
  node->ops->destroy(node->ctx);
  /* A node collective that timed out may still write the staging. */
  if (!comm->aborted) {
    node_tables_t t = {node->layers, node->count, node->total_n, node->bounds,
                       node->piece_layer, node->piece_begin, node->pieces,
                       node->flat, node->inbox, node->share};
    free_tables(&t);
  }
  free_node_stage(node);
}

mcgqResult_t mcgq_comm_create_hierarchical(
    const mcgq_transport_ops_t *cross_ops, void *cross_ctx, int node_index,
    int nodes, const mcgq_transport_ops_t *node_ops, void *node_ctx,
    int local_rank, int local_size, mcgqComm_t *out) {
  static const char fn[] = "mcgqCommInitHierarchical";
  if (!node_ops || local_size < 1 || local_rank < 0 || local_rank >= local_size ||
      node_ops->payload_on_device || !node_ops->alltoallv) {
    if (node_ops && node_ops->destroy) node_ops->destroy(node_ctx);
    if (cross_ops && cross_ops->destroy) cross_ops->destroy(cross_ctx);
    return mcgq_fail(node_ops && (node_ops->payload_on_device || !node_ops->alltoallv)
                         ? mcgqInvalidUsage
                         : mcgqInvalidArgument,
                     "%s: the node transport must move host memory and have an "
                     "all-to-all (local rank %d of %d)",
                     fn, local_rank, local_size);
  }
  if ((uint64_t)nodes * (uint64_t)local_size > INT_MAX) {
    node_ops->destroy(node_ctx);
    if (cross_ops && cross_ops->destroy) cross_ops->destroy(cross_ctx);
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: %d nodes of %d ranks exceed 2^31-1 ranks", fn, nodes,
                     local_size);
  }
  mcgq_node_t *node = calloc(1, sizeof *node);
  size_t L = (size_t)local_size;
  if (node) {
    node->send_counts = calloc(L, sizeof(size_t));
    node->send_displs = calloc(L, sizeof(size_t));
    node->recv_counts = calloc(L, sizeof(size_t));
    node->recv_displs = calloc(L, sizeof(size_t));
    node->blocks = calloc(L * NODE_BLOCK_WORDS, sizeof(uint64_t));
  }
  if (!node || !node->send_counts || !node->send_displs || !node->recv_counts ||
      !node->recv_displs || !node->blocks) {
    free_node_stage(node);
    node_ops->destroy(node_ctx);
    if (cross_ops && cross_ops->destroy) cross_ops->destroy(cross_ctx);
    return mcgq_fail(mcgqOutOfMemory, "%s: cannot allocate the node stage", fn);
  }
  node->ops = node_ops;
  node->ctx = node_ctx;
  node->rank = local_rank;
  node->nranks = local_size;
  mcgqComm_t comm = NULL;
  mcgqResult_t res = mcgq_comm_create(cross_ops, cross_ctx, node_index, nodes, &comm);
  if (res != mcgqSuccess) { /* the cross transport is destroyed already */
    comm = NULL;
    node_ops->destroy(node_ctx);
    free_node_stage(node);
    return res;
  }
  comm->node = node;
  *out = comm;
  return mcgqSuccess;
}

/* ------------------------------------------------------------ layer table */

/* This rank's share as a layer table: the pieces of the caller's layers
 * that fall in [bounds[rank], bounds[rank+1]), their grads in the share
 * staging, their accumulators (and K state) the caller's, at the piece's
 * place in the layer.  Error feedback thus stays per rank, on the part of
 * the layer this rank compresses. */
static mcgqResult_t build_pieces(mcgqComm_t comm, const mcgq_node_t *node,
                                 node_tables_t *t, mcgqLayer_t **pieces_out) {
  const uint64_t lo = t->bounds[node->rank], hi = t->bounds[node->rank + 1];
  int pieces = 0;
  uint64_t offset = 0;
  for (int i = 0; i < t->count; ++i) {
    uint64_t a = offset, b = offset + t->layers[i].n;
    if (b > lo && a < hi) ++pieces;
    offset = b;
  }
  mcgqLayer_t *table = calloc((size_t)pieces, sizeof *table);
  t->piece_layer = calloc((size_t)pieces, sizeof *t->piece_layer);
  t->piece_begin = calloc((size_t)pieces, sizeof *t->piece_begin);
  if (!table || !t->piece_layer || !t->piece_begin) {
    free(table);
    return mcgq_comm_fail(comm, mcgqOutOfMemory,
                          "mcgqCommSetLayers: cannot allocate the share table");
  }
  int p = 0;
  offset = 0;
  for (int i = 0; i < t->count; ++i) {
    const mcgqLayer_t *l = &t->layers[i];
    uint64_t a = offset, b = offset + l->n;
    offset = b;
    if (!(b > lo && a < hi)) continue;
    uint64_t from = a > lo ? a : lo, to = b < hi ? b : hi;
    table[p] = *l;
    table[p].grad = t->share + (from - lo);
    table[p].accum = l->accum ? l->accum + (from - a) : NULL;
    table[p].n = to - from;
    t->piece_layer[p] = i;
    t->piece_begin[p] = from - a;
    ++p;
  }
  t->pieces = pieces;
  *pieces_out = table;
  return mcgqSuccess;
}

static mcgqResult_t alloc_staging(mcgqComm_t comm, const mcgq_node_t *node,
                                  node_tables_t *t) {
  const uint64_t own = t->bounds[node->rank + 1] - t->bounds[node->rank];
  /* every node collective counts bytes of the flat buffer: its bytes must
   * fit an int (MPI) and size_t */
  if (t->total_n > (uint64_t)INT_MAX / sizeof(float))
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "mcgqCommSetLayers: %llu elements exceed the "
                          "hierarchical exchange's limit of %llu per "
                          "communicator (the node stage moves float32 in one "
                          "collective of int byte counts)",
                          (unsigned long long)t->total_n,
                          (unsigned long long)((uint64_t)INT_MAX / sizeof(float)));
  t->flat = malloc((size_t)t->total_n * sizeof(float));
  t->inbox = malloc((size_t)own * (size_t)node->nranks * sizeof(float));
  t->share = calloc((size_t)own, sizeof(float));
  if (!t->flat || !t->inbox || !t->share)
    return mcgq_comm_fail(comm, mcgqOutOfMemory,
                          "mcgqCommSetLayers: cannot allocate the node "
                          "stage's staging (%llu + %d x %llu floats)",
                          (unsigned long long)t->total_n, node->nranks,
                          (unsigned long long)own);
  return mcgqSuccess;
}

mcgqResult_t mcgq_node_set_layers(mcgqComm_t comm, mcgqLayer_t *copy, int count,
                                  uint64_t total_n) {
  mcgq_node_t *node = comm->node;
  node_tables_t t = {copy, count, total_n, NULL, NULL, NULL, 0, NULL, NULL, NULL};
  if (count > 0 && total_n < (uint64_t)node->nranks) {
    free_tables(&t);
    return mcgq_comm_fail(comm, mcgqInvalidArgument,
                          "mcgqCommSetLayers: %llu elements in all cannot give "
                          "each of the %d local ranks of a node a non-empty share",
                          (unsigned long long)total_n, node->nranks);
  }
  mcgqResult_t res = mcgqSuccess;
  mcgqLayer_t *pieces = NULL;
  t.bounds = calloc((size_t)node->nranks + 1, sizeof *t.bounds);
  if (!t.bounds)
    res = mcgq_comm_fail(comm, mcgqOutOfMemory, "mcgqCommSetLayers: no host memory");
  if (res == mcgqSuccess && count > 0) {
    for (int l = 0; l <= node->nranks; ++l)
      t.bounds[l] = share_bound(total_n, node->nranks, l);
    res = alloc_staging(comm, node, &t);
    if (res == mcgqSuccess) res = build_pieces(comm, node, &t, &pieces);
  }
  const uint64_t own = count > 0 ? t.bounds[node->rank + 1] - t.bounds[node->rank] : 0;
  /* installs the share (and frees `pieces` on failure) */
  if (res == mcgqSuccess)
    res = mcgq_comm_install_table(comm, pieces, t.pieces, own);
  if (res != mcgqSuccess) { /* the old table stays registered */
    free_tables(&t);
    return res;
  }
  node_tables_t old = {node->layers, node->count, node->total_n, node->bounds,
                       node->piece_layer, node->piece_begin, node->pieces,
                       node->flat, node->inbox, node->share};
  free_tables(&old);
  node->layers = t.layers;
  node->count = t.count;
  node->total_n = t.total_n;
  node->bounds = t.bounds;
  node->piece_layer = t.piece_layer;
  node->piece_begin = t.piece_begin;
  node->pieces = t.pieces;
  node->flat = t.flat;
  node->inbox = t.inbox;
  node->share = t.share;
  return mcgqSuccess;
}

void mcgq_node_layer_stats(const mcgqComm_t comm, mcgqLayerStats_t *stats,
                           int count) {
  const mcgq_node_t *node = comm->node;
  memset(stats, 0, (size_t)count * sizeof *stats);
  for (int p = 0; p < node->pieces; ++p)
    if (node->piece_layer[p] < count) stats[node->piece_layer[p]] = comm->layer_stats[p];
}

/* ------------------------------------------------------------ the step */

static void fill_node_block(const mcgqComm_t comm, uint64_t step, int32_t flag,
                            uint64_t *block) {
  const mcgq_node_t *node = comm->node;
  block[0] = kNodeMagic;
  block[1] = MCGQ_FORMAT_VERSION | (uint64_t)(uint32_t)comm->mode << 32;
  block[2] = (uint64_t)node->count;
  block[3] = node->total_n;
  block[4] = mcgq_table_hash(node->layers, node->count);
  block[5] = mcgq_config_hash(node->layers, node->count) ^ (uint64_t)comm->capacity;
  block[6] = step;
  block[7] = (uint64_t)(uint32_t)comm->rank << 32 | (uint32_t)comm->nranks;
  block[8] = (uint64_t)(uint32_t)node->nranks;
  block[NODE_BLOCK_FLAG] = (uint64_t)(uint32_t)flag;
}

/* Stage 1: the same decision on every local rank of the node. */
static mcgqResult_t agree_in_node(mcgqComm_t comm, const mcgq_call_t *call,
                                  uint64_t step) {
  static const char fn[] = "mcgqCommStep";
  mcgq_node_t *node = comm->node;
  uint64_t mine[NODE_BLOCK_WORDS];
  int32_t flag = node->count == 0 ? (int32_t)mcgqInvalidUsage : 0;
  fill_node_block(comm, step, flag, mine);
  MCGQ_CHECK(node->ops->allgather(node->ctx, mine, node->blocks, sizeof mine, call));
  for (int r = 0; r < node->nranks; ++r) {
    const uint64_t *theirs = node->blocks + (size_t)r * NODE_BLOCK_WORDS;
    if (theirs[0] != mine[0] || theirs[1] != mine[1])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: local rank %d of this node runs another mcgq "
                            "format or exchange mode than local rank %d",
                            fn, r, node->rank);
    if (theirs[2] != mine[2] || theirs[3] != mine[3] || theirs[4] != mine[4])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: layer tables differ within a node: local rank %d "
                            "registered %llu layers / %llu elements, local rank "
                            "%d %llu / %llu (or a layer's n or mode differs)",
                            fn, r, (unsigned long long)theirs[2],
                            (unsigned long long)theirs[3], node->rank,
                            (unsigned long long)mine[2], (unsigned long long)mine[3]);
    if (theirs[5] != mine[5])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: layer settings or fixed capacity differ between "
                            "local ranks %d and %d of a node",
                            fn, r, node->rank);
    if (theirs[6] != mine[6])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: step counters differ within a node: local rank "
                            "%d is at step %llu, local rank %d at step %llu",
                            fn, r, (unsigned long long)theirs[6], node->rank,
                            (unsigned long long)mine[6]);
    if (theirs[7] != mine[7] || theirs[8] != mine[8])
      return mcgq_comm_fail(comm, mcgqInvalidUsage,
                            "%s: the node layout is inconsistent: local rank %d "
                            "is node %u of %u, local rank %d node %u of %u (each "
                            "rank of a node communicator must be the same rank "
                            "of its cross-node communicator)",
                            fn, r, (unsigned)(theirs[7] >> 32), (unsigned)theirs[7],
                            node->rank, (unsigned)(mine[7] >> 32), (unsigned)mine[7]);
  }
  if (flag != 0)
    return mcgq_comm_fail(comm, mcgqInvalidUsage,
                          "%s: no layers registered (mcgqCommSetLayers)", fn);
  return mcgqSuccess;
}

/* Stage 2: the node mean of this rank's share, summed in local rank order. */
static mcgqResult_t reduce_in_node(mcgqComm_t comm, const mcgq_call_t *call) {
  mcgq_node_t *node = comm->node;
  const int L = node->nranks;
  const uint64_t own = own_elements(node);
  uint64_t offset = 0;
  for (int i = 0; i < node->count; ++i) {
    memcpy(node->flat + offset, node->layers[i].grad,
           (size_t)node->layers[i].n * sizeof(float));
    offset += node->layers[i].n;
  }
  for (int j = 0; j < L; ++j) {
    node->send_displs[j] = (size_t)node->bounds[j] * sizeof(float);
    node->send_counts[j] = (size_t)(node->bounds[j + 1] - node->bounds[j]) * sizeof(float);
    node->recv_displs[j] = (size_t)j * (size_t)own * sizeof(float);
    node->recv_counts[j] = (size_t)own * sizeof(float);
  }
  MCGQ_CHECK(node->ops->alltoallv(node->ctx, node->flat, node->send_counts,
                                  node->send_displs, node->inbox, node->recv_counts,
                                  node->recv_displs, call));
  const float divisor = (float)L;
  for (uint64_t k = 0; k < own; ++k) {
    float acc = 0.0f;
    for (int r = 0; r < L; ++r) acc += node->inbox[(size_t)r * own + k];
    node->share[k] = acc / divisor;
  }
  return mcgqSuccess;
}

/* Stage 5's collective: every local rank's averaged share into `flat`. */
static mcgqResult_t gather_in_node(mcgqComm_t comm, const mcgq_call_t *call) {
  mcgq_node_t *node = comm->node;
  for (int j = 0; j < node->nranks; ++j) {
    node->recv_displs[j] = (size_t)node->bounds[j] * sizeof(float);
    node->recv_counts[j] = (size_t)(node->bounds[j + 1] - node->bounds[j]) * sizeof(float);
  }
  return node->ops->allgatherv(node->ctx, node->share,
                               node->recv_counts[node->rank], node->flat,
                               node->recv_counts, node->recv_displs, call);
}

static void write_gradients(mcgq_node_t *node) {
  uint64_t offset = 0;
  for (int i = 0; i < node->count; ++i) {
    memcpy(node->layers[i].grad, node->flat + offset,
           (size_t)node->layers[i].n * sizeof(float));
    offset += node->layers[i].n;
  }
}

/* Stage 4: the outcome of every cross-node group, agreed in the node. */
static mcgqResult_t agree_outcome(mcgqComm_t comm, const mcgq_call_t *call,
                                  mcgqResult_t cross, mcgqStepStats_t *stats) {
  mcgq_node_t *node = comm->node;
  int32_t flag = mcgq_comm_status_flag(cross);
  MCGQ_CHECK(node->ops->allreduce_max_int(node->ctx, &flag, call));
  if (flag == 0) return mcgqSuccess;
  mcgqResult_t status = mcgq_comm_flag_status(flag);
  if (status == mcgqNonFinite && stats) stats->found_nonfinite = 1;
  if (cross == status) return cross; /* this rank's detail is recorded */
  return mcgq_comm_fail(comm, status,
                        "mcgqCommStep: %s in the cross-node step of another local "
                        "rank of this node; no rank changed its gradients, "
                        "accumulators or owner state",
                        mcgqGetErrorString(status));
}

/* The cross-node step of local rank l draws its random words with
 * seed ^ (l * golden ratio), so that the shares of one node are sampled
 * independently; local rank 0 keeps the caller's seed (one rank per node
 * is then exactly the flat exchange). */
static uint64_t share_seed(uint64_t seed, int local_rank) {
  return seed ^ ((uint64_t)local_rank * kGolden);
}

mcgqResult_t mcgq_node_step(mcgqComm_t comm, const mcgq_call_t *call,
                            uint64_t step, uint64_t seed, mcgqStepStats_t *stats) {
  mcgq_node_t *node = comm->node;
  mcgqResult_t local = agree_in_node(comm, call, step);
  if (local == mcgqSuccess) local = reduce_in_node(comm, call);
  if (local == mcgqTimeout) return local; /* the node transport is aborted */
  mcgqResult_t res = mcgq_comm_exchange(comm, call, step,
                                        share_seed(seed, node->rank), local, stats);
  /* Every rank reaches the node agreement, whatever happened above (a peer
   * that timed out across nodes still reports here), so no local rank
   * waits for one that left. */
  mcgqResult_t agreed = agree_outcome(comm, call, res, stats);
  if (agreed == mcgqSuccess) agreed = gather_in_node(comm, call);
  res = mcgq_comm_finish(comm, call, agreed, stats);
  if (res != mcgqSuccess) return res;
  write_gradients(node);
  if (stats) stats->elements = node->total_n;
  return mcgqSuccess;
}
