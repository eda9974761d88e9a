/*
 * comm_internal.h - the two seams of the exchange (not installed).
 *
 * The step protocol of DESIGN.md section 5 is written once, in comm.c.  It
 * runs over two interfaces, so that MPI, NCCL and a framework's own
 * collectives (the PyTorch hook, through mcgqCommInitCallbacks) are
 * transports and not protocols, and the CPU and GPU codecs are backends:
 *
 *   transport  moves bytes, nothing else: an all-gather of a small block
 *              (host memory), an all-gather of the payloads of different
 *              sizes (host or device memory, as the transport declares), a
 *              max-reduction of one int32 (host memory) and, for the sharded
 *              modes (comm_shard.c), an all-to-all of payloads of different
 *              sizes.
 *   codec      prepare (quantize and encode, nothing of the caller's
 *              changes), reserve (the receive buffer), decode_average
 *              (straight into the registered gradients), commit (accumulators
 *              and K state), discard (drop what prepare computed).
 *
 * Rules every transport keeps, so that no rank hangs and every rank decides
 * alike: every collective is called by every rank in the same order with
 * arguments that are equal on all ranks (sizes are gathered before they are
 * used); a collective that cannot finish before call->deadline returns
 * mcgqTimeout and leaves the transport aborted (it refuses every later
 * call); a failure that is not a timeout is reported as mcgqMpiError /
 * mcgqNcclError / mcgqCudaError with the detail written into call->detail.
 *
 * libmcgq_mpi is a separate shared library and libmcgq exports only its
 * API, so mcgq_comm_create is exported (MCGQ_API) although it is not part of
 * the public header: it is the one door through which a transport library
 * builds a communicator.
 */
#ifndef MCGQ_COMM_INTERNAL_H_
#define MCGQ_COMM_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MCGQ_COMM_DETAIL_BYTES 512

/* What every collective of one step shares. */
typedef struct {
  mcgqStream_t stream; /* the step's stream (device transports) */
  double deadline;     /* mcgq_clock_seconds() limit; 0 = wait forever */
  char *detail;        /* receives a message on failure */
  size_t detail_size;
} mcgq_call_t;

typedef struct mcgq_transport_ops {
  const char *name;       /* "MPI", "NCCL", "callbacks" */
  int payload_on_device;  /* allgatherv's buffers are device memory */
  /* recv (nranks * bytes, host) receives every rank's `bytes` bytes in rank
   * order; send is host memory. */
  mcgqResult_t (*allgather)(void *ctx, const void *send, void *recv,
                            size_t bytes, const mcgq_call_t *call);
  /* Rank r contributes counts[r] bytes (send_bytes == counts[rank]); they
   * land at recv + displs[r].  counts and displs (host) are equal on every
   * rank; send and recv are device memory iff payload_on_device. */
  mcgqResult_t (*allgatherv)(void *ctx, const void *send, size_t send_bytes,
                             void *recv, const size_t *counts,
                             const size_t *displs, const mcgq_call_t *call);
  /* *value (host) becomes the maximum over ranks. */
  mcgqResult_t (*allreduce_max_int)(void *ctx, int32_t *value,
                                    const mcgq_call_t *call);
  /* Frees ctx (never the caller's communicator). */
  void (*destroy)(void *ctx);
  /* Sharded modes (reduce-scatter, two-stage); NULL: the transport has none
   * and those modes are refused with mcgqInvalidUsage.  This rank sends
   * send_counts[j] bytes at send + send_displs[j] to rank j and receives
   * recv_counts[r] bytes from rank r at recv + recv_displs[r] (its own part,
   * j == r == rank, is copied).  The four arrays are host memory and this
   * rank's own, but they agree pairwise (rank r's send_counts[j] equals rank
   * j's recv_counts[r]) because all come from sizes gathered before; send
   * and recv are device memory iff payload_on_device. */
  mcgqResult_t (*alltoallv)(void *ctx, const void *send, const size_t *send_counts,
                            const size_t *send_displs, void *recv,
                            const size_t *recv_counts, const size_t *recv_displs,
                            const mcgq_call_t *call);
  /* allgather on device memory, stream-ordered (no host wait unless the
   * call has a deadline); NULL: the transport gathers host blocks only.
   * With a device codec it lets the step's block go from the encode to the
   * all-gather without a host read (comm.c, gather_exchange_device). */
  mcgqResult_t (*allgather_device)(void *ctx, const void *send, void *recv,
                                   size_t bytes, const mcgq_call_t *call);
} mcgq_transport_ops_t;

/* The codec of a communicator: host memory (codec_host.c, the CPU encoder
 * and decoder) or device memory (codec_device.c, the GPU path). */
typedef struct mcgq_codec mcgq_codec_t;
typedef struct mcgq_codec_ops {
  const char *name;
  int can_cut; /* fixed-capacity mode is supported */
  /* A new layer table (allocation happens here, or in reserve). */
  mcgqResult_t (*set_layers)(mcgq_codec_t *codec, const mcgqLayer_t *layers,
                             int count, uint64_t total_n, char *detail,
                             size_t detail_size);
  /* Quantizes and encodes descs into the codec's send buffer: capacity 0
   * gives the exact message, otherwise exactly `capacity` bytes (layers
   * cut to fit, zero padding).  Nothing of the caller's changes.  stats
   * (host, count entries) receive this rank's per-layer results. */
  mcgqResult_t (*prepare)(mcgq_codec_t *codec, const mcgqLayerDesc_t *descs,
                          int count, size_t capacity, const mcgq_call_t *call,
                          const void **send, size_t *send_bytes,
                          mcgqLayerStats_t *stats);
  /* A receive buffer of `bytes` bytes (memory of the codec's kind).  It
   * only grows (until the next set_layers): a reserve of at most
   * recv_capacity() bytes allocates nothing and cannot fail. */
  mcgqResult_t (*reserve)(mcgq_codec_t *codec, size_t bytes, void **recv,
                          const mcgq_call_t *call);
  size_t (*recv_capacity)(const mcgq_codec_t *codec);
  /* Decode-and-average of the gathered messages in rank order into the
   * layers' grads.  in_bytes: what arrived from each rank; padded = 1
   * (fixed capacity): a message may be shorter, its header has its size.  Every rank decodes
   * the same bytes, so a failure here is every rank's: the grads are then
   * left as they were. */
  mcgqResult_t (*decode_average)(mcgq_codec_t *codec, const void *const *in,
                                 const size_t *in_bytes, int padded,
                                 int nranks, const mcgqLayer_t *layers,
                                 int count, const mcgq_call_t *call);
  /* Applies (commit) or drops (discard) what the last prepare computed. */
  mcgqResult_t (*commit)(mcgq_codec_t *codec, const mcgq_call_t *call);
  void (*discard)(mcgq_codec_t *codec, const mcgq_call_t *call);
  void (*destroy)(mcgq_codec_t *codec);

  /* Sharded modes (comm_shard.c); NULL in a codec without them (those modes
   * are then refused with mcgqInvalidUsage). */
  /* Encodes `messages` messages back to back into the send buffer: message
   * m holds descs[first[m], first[m+1]) (an empty range is a 0-byte
   * message) and sizes[m] receives its bytes; stats has first[messages]
   * entries.  Nothing of the caller's changes.  Successive prepares before
   * one commit or discard accumulate (the two-stage step prepares twice):
   * commit applies them all.  Each prepare reuses the send buffer, so the
   * previous messages must have been sent. */
  mcgqResult_t (*prepare_messages)(mcgq_codec_t *codec,
                                   const mcgqLayerDesc_t *descs, const int *first,
                                   int messages, const mcgq_call_t *call,
                                   const void **send, size_t *sizes,
                                   mcgqLayerStats_t *stats);
  /* Zero-filled memory of the codec's kind (the sharded steps' staging and
   * the owner-side accumulators); release(NULL) is fine. */
  mcgqResult_t (*alloc)(mcgq_codec_t *codec, size_t bytes, void **ptr,
                        char *detail, size_t detail_size);
  void (*release)(mcgq_codec_t *codec, void *ptr);
  /* Copies bytes; `direction` says which side is host memory. */
  mcgqResult_t (*copy)(mcgq_codec_t *codec, void *dst, const void *src,
                       size_t bytes, int direction, const mcgq_call_t *call);

  /* The agreement on device (NULL in a host codec), used with a transport
   * that has allgather_device, all-gather mode, exact sizes:
   *   prepare_async   prepare without reading anything back: the stats
   *                   and size are only enqueued for the host;
   *   stage_block     *block (device) = this rank's block `mine` (host,
   *                   `words` words); when `prepared`, its words
   *                   flag_word and flag_word + 1 become the status flag
   *                   and message size of the prepared encode, computed
   *                   on the device; *gathered: device room for every
   *                   rank's block;
   *   read_blocks     the gathered blocks into `blocks` (host), waiting
   *                   once for them and for what prepare_async enqueued;
   *                   when `prepared`, *local, *send_bytes and stats are
   *                   then the prepare's results (as prepare returns them;
   *                   a failure's detail in call->detail). */
  mcgqResult_t (*prepare_async)(mcgq_codec_t *codec, const mcgqLayerDesc_t *descs,
                                int count, const mcgq_call_t *call,
                                const void **send);
  mcgqResult_t (*stage_block)(mcgq_codec_t *codec, const uint64_t *mine, int words,
                              int prepared, int flag_word, int nranks, void **block,
                              void **gathered, const mcgq_call_t *call);
  mcgqResult_t (*read_blocks)(mcgq_codec_t *codec, const void *gathered,
                              uint64_t *blocks, size_t bytes, int prepared,
                              mcgqResult_t *local, size_t *send_bytes,
                              mcgqLayerStats_t *stats, const mcgq_call_t *call);
} mcgq_codec_ops_t;

/* copy's direction: between two buffers of the codec's kind, from host
 * memory into the codec's, from the codec's into host memory. */
enum { MCGQ_COPY_CODEC = 0, MCGQ_COPY_FROM_HOST = 1, MCGQ_COPY_TO_HOST = 2 };

struct mcgq_codec {
  const mcgq_codec_ops_t *ops;
};

/* Creates the codec of the memory kind a transport declares (device: NULL
 * with mcgqInvalidUsage in a build without CUDA). */
mcgqResult_t mcgq_codec_host_create(mcgq_codec_t **codec);
mcgqResult_t mcgq_codec_device_create(int nranks, mcgq_codec_t **codec);

/* Builds a communicator over a transport; takes ownership of ctx (destroyed
 * through ops->destroy, also when this call fails). */
MCGQ_API mcgqResult_t mcgq_comm_create(const mcgq_transport_ops_t *ops,
                                       void *ctx, int rank, int nranks,
                                       mcgqComm_t *comm);

/* Builds a hierarchical communicator (comm_node.c): the cross-node
 * transport (this rank is node `node_index` of `nodes`) and the node
 * transport (local rank `local_rank` of `local_size`; host memory, with an
 * all-to-all).  Takes ownership of both contexts (destroyed also when this
 * call fails). */
MCGQ_API mcgqResult_t mcgq_comm_create_hierarchical(
    const mcgq_transport_ops_t *cross_ops, void *cross_ctx, int node_index,
    int nodes, const mcgq_transport_ops_t *node_ops, void *node_ctx,
    int local_rank, int local_size, mcgqComm_t *comm);

/* Monotonic clock in seconds (deadlines of the collectives). */
static inline double mcgq_clock_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 when the call has a deadline and it has passed. */
static inline int mcgq_call_expired(const mcgq_call_t *call) {
  return call->deadline > 0.0 && mcgq_clock_seconds() > call->deadline;
}

/* Fills call->detail and returns mcgqTimeout: `what` did not finish. */
static inline mcgqResult_t mcgq_call_timeout(const mcgq_call_t *call,
                                             const char *what) {
  snprintf(call->detail, call->detail_size,
           "mcgqCommStep: %s did not complete before the communicator's "
           "timeout (a peer stopped calling?); the communicator is aborted",
           what);
  return mcgqTimeout;
}

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_COMM_INTERNAL_H_ */
