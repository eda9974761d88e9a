/*
 * comm_handle.h - the communicator's state, shared by the files that run
 * its steps (not installed): comm.c (handle, layer table, agreement and the
 * all-gather step) and comm_shard.c (the reduce-scatter and two-stage
 * steps).  Both run over the seams of comm_internal.h and share one
 * agreement: the block all-gather that checks the layer tables and settings
 * and decides failures alike on every rank.
 */
#ifndef MCGQ_COMM_HANDLE_H_
#define MCGQ_COMM_HANDLE_H_

#include "comm_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The sharded steps' plan for one (layer table, P, rank): comm_shard.c. */
typedef struct mcgq_shard_plan mcgq_shard_plan_t;
/* The node stage of a hierarchical communicator: comm_node.c. */
typedef struct mcgq_node mcgq_node_t;

struct mcgqComm {
  const mcgq_transport_ops_t *ops;
  void *ctx;
  mcgq_codec_t *codec;
  int rank, nranks;
  int32_t mode;     /* MCGQ_EXCHANGE_ALL_GATHER / TWO_STAGE / REDUCE_SCATTER */
  size_t capacity;  /* bytes per rank and step; 0 = exact sizes */
  double timeout_s; /* 0 = wait forever */
  int aborted;      /* a collective timed out: the handle refuses steps */

  mcgqLayer_t *layers; /* copy of the caller's table */
  int count;
  uint32_t *layer_ids; /* mcgqCommSetLayerIds; NULL: the table positions */
  uint64_t total_n;
  mcgqLayerStats_t *layer_stats;
  mcgqLayerDesc_t *descs;
  mcgq_shard_plan_t *plan; /* sharded modes only, else NULL */
  /* Hierarchical only, else NULL.  Then ops/ctx/rank/nranks are the
   * cross-node transport (rank = node index), and layers is this rank's
   * share of the caller's table, which the node stage keeps. */
  mcgq_node_t *node;

  /* Between mcgq_comm_exchange and mcgq_comm_finish of one step. */
  int step_prepared; /* the codec holds a prepared message to discard */
  int caps_gathered; /* blocks hold this step's receive capacities */
  size_t step_sent;  /* bytes this rank sent */

  /* per-rank tables, sized at creation */
  uint64_t *blocks; /* BLOCK_WORDS * nranks */
  size_t *counts, *displs, *in_bytes;
  const void **messages;

  char detail[MCGQ_COMM_DETAIL_BYTES];
};

/* The id layer i samples with (mcgqRandomWord's layer word). */
static inline uint32_t mcgq_comm_layer_id(const struct mcgqComm *comm, int i) {
  return comm->layer_ids ? comm->layer_ids[i] : (uint32_t)i;
}

/* Records a message in the handle and returns status. */
mcgqResult_t mcgq_comm_fail(mcgqComm_t comm, mcgqResult_t status,
                            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The agreement of every step (comm.c): all-gather of one block per rank
 * (fingerprint of table, settings, mode and step; `local`'s status flag;
 * send_bytes), then the same decision on every rank. */
mcgqResult_t mcgq_comm_agree(mcgqComm_t comm, const mcgq_call_t *call,
                             uint64_t step, mcgqResult_t local,
                             size_t send_bytes, mcgqStepStats_t *stats);

/* Receive buffer of counts[0..nranks) bytes laid out back to back
 * (displs[] filled here), agreed by a max-reduction: one rank's failed
 * allocation fails the step on every rank.  needs: what each rank
 * reserves in this call (nranks entries), known alike on every rank; NULL
 * when the counts are the same on every rank (each needs their sum).  When
 * every rank's buffer already holds its need (the capacities its block
 * carried in this step's agreement), all skip the reduction alike. */
mcgqResult_t mcgq_comm_reserve_agreed(mcgqComm_t comm, const mcgq_call_t *call,
                                      const uint64_t *needs, const size_t *counts,
                                      size_t *displs, void **recv);

/* 1 when a status flag gathered in an agreement is the non-finite one. */
int32_t mcgq_comm_status_flag(mcgqResult_t res);
mcgqResult_t mcgq_comm_flag_status(int32_t flag);

/* comm.c.  Registers a validated table (takes ownership of `copy`, freed
 * on failure, when the old table stays). */
mcgqResult_t mcgq_comm_install_table(mcgqComm_t comm, mcgqLayer_t *copy,
                                     int count, uint64_t total_n);
/* Fingerprints of a table's shape and of its sampling settings. */
uint64_t mcgq_table_hash(const mcgqLayer_t *layers, int count);
uint64_t mcgq_config_hash(const mcgqLayer_t *layers, int count);

/* A step in two halves, so that a hierarchical step can agree within the
 * node between them: exchange runs everything up to the commit (for a
 * sharded mode, writes into the registered grads included); `injected` !=
 * success is a failure found before the step that this rank enters into
 * the agreement instead of preparing.  finish commits when res is success,
 * else drops what was prepared; it returns res or the commit's failure. */
mcgqResult_t mcgq_comm_exchange(mcgqComm_t comm, const mcgq_call_t *call,
                                uint64_t step, uint64_t seed,
                                mcgqResult_t injected, mcgqStepStats_t *stats);
mcgqResult_t mcgq_comm_finish(mcgqComm_t comm, const mcgq_call_t *call,
                              mcgqResult_t res, mcgqStepStats_t *stats);

/* comm_shard.c.  A plan for `layers` on this rank (owner-side accumulators
 * zeroed); refuses what the sharded modes cannot do yet. */
mcgqResult_t mcgq_shard_plan_create(mcgqComm_t comm, const mcgqLayer_t *layers,
                                    int count, mcgq_shard_plan_t **plan);
void mcgq_shard_plan_destroy(mcgqComm_t comm, mcgq_shard_plan_t *plan);
/* The two halves of a step in comm->mode (REDUCE_SCATTER or TWO_STAGE). */
mcgqResult_t mcgq_shard_exchange(mcgqComm_t comm, const mcgq_call_t *call,
                                 uint64_t step, uint64_t seed,
                                 mcgqResult_t injected, mcgqStepStats_t *stats);
mcgqResult_t mcgq_shard_finish(mcgqComm_t comm, const mcgq_call_t *call,
                               mcgqResult_t res, mcgqStepStats_t *stats);
/* Owner-side accumulators of the two-stage mode (host copies). */
uint64_t mcgq_shard_owner_elements(const mcgq_shard_plan_t *plan);
mcgqResult_t mcgq_shard_owner_copy(mcgqComm_t comm, float *host_out,
                                   const float *host_in);

/* comm_node.c: the hierarchical step (mcgq.h, "hierarchical exchange"). */
mcgqResult_t mcgq_node_set_layers(mcgqComm_t comm, mcgqLayer_t *copy, int count,
                                  uint64_t total_n);
mcgqResult_t mcgq_node_step(mcgqComm_t comm, const mcgq_call_t *call,
                            uint64_t step, uint64_t seed, mcgqStepStats_t *stats);
void mcgq_node_destroy(mcgqComm_t comm, mcgq_node_t *node); /* NULL is fine */
int mcgq_node_local_rank(const mcgq_node_t *node);
int mcgq_node_local_size(const mcgq_node_t *node);
int mcgq_node_layer_count(const mcgq_node_t *node);
void mcgq_node_global_rank(const mcgqComm_t comm, int *rank, int *nranks);
void mcgq_node_layer_stats(const mcgqComm_t comm, mcgqLayerStats_t *stats,
                           int count);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_COMM_HANDLE_H_ */
