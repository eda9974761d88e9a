/*
 * comm_nccl.c - the NCCL transport (inside libmcgq when it is built with
 * NCCL): the three collectives of comm_internal.h on the caller's
 * ncclComm_t and the step's stream.  The protocol is comm.c's; the codec is
 * the device codec (codec_device.c), so payloads stay in device memory.
 *
 * The step blocks of the all-gather step are gathered on the device
 * (allgather_device: the device codec writes this rank's block there and
 * reads all of them back in the step's one wait for its agreement); the
 * sharded modes' small blocks and the max-reduction take host memory,
 * staged through pinned host memory and a small device buffer, and their
 * completion is a host read.  The payload all-gather is
 * grouped ncclSend/ncclRecv of the gathered sizes (equal sizes in fixed
 * capacity) on device buffers, stream-ordered, no host wait; so is the
 * all-to-all of the sharded modes.
 *
 * Waiting never blocks blindly: the stream is polled with cudaStreamQuery,
 * NCCL's asynchronous error with ncclCommGetAsyncError, and past the step's
 * deadline the communicator is aborted with ncclCommAbort (peers that are
 * still in a collective get an error instead of hanging) and the call
 * returns mcgqTimeout.
 */
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "gpu/cuda_check.h"
#include "internal.h"
#include "mcgq_nccl.h"

static const char kFn[] = "mcgqCommStep";
enum { SMALL_BYTES = 128 }; /* largest host-staged block per rank */

typedef struct {
  ncclComm_t nccl;
  int rank, nranks;
  int aborted;
  unsigned char *h_stage; /* pinned, (nranks + 1) * SMALL_BYTES */
  unsigned char *d_stage; /* device, same size */
} nccl_transport_t;

static mcgqResult_t to_call(const mcgq_call_t *call, mcgqResult_t res) {
  if (res != mcgqSuccess)
    snprintf(call->detail, call->detail_size, "%s", mcgqGetLastErrorDetail());
  return res;
}

/* Waits until the stream has passed the enqueued collectives. */
static mcgqResult_t wait_for(nccl_transport_t *t, const mcgq_call_t *call,
                             const char *what) {
  for (;;) {
    cudaError_t err = cudaStreamQuery((cudaStream_t)call->stream);
    if (err == cudaSuccess) return mcgqSuccess;
    if (err != cudaErrorNotReady)
      return to_call(call, mcgq_cuda_result((int)err, kFn, what));
    ncclResult_t async = ncclSuccess;
    ncclResult_t ne = ncclCommGetAsyncError(t->nccl, &async);
    if (ne != ncclSuccess || (async != ncclSuccess && async != ncclInProgress))
      return to_call(call, mcgq_nccl_result((int)(ne != ncclSuccess ? ne : async),
                                            kFn, what));
    if (mcgq_call_expired(call)) {
      ncclCommAbort(t->nccl); /* frees the communicator; unblocks the stream */
      t->aborted = 1;
      return mcgq_call_timeout(call, what);
    }
  }
}

static mcgqResult_t refuse_if_aborted(const nccl_transport_t *t,
                                      const mcgq_call_t *call) {
  if (!t->aborted) return mcgqSuccess;
  snprintf(call->detail, call->detail_size,
           "%s: the NCCL communicator was aborted by a timeout", kFn);
  return mcgqInvalidUsage;
}

static mcgqResult_t enqueue_allgather(nccl_transport_t *t, const void *send,
                                      size_t bytes, cudaStream_t stream) {
  unsigned char *h_mine = t->h_stage + (size_t)t->nranks * SMALL_BYTES;
  unsigned char *d_mine = t->d_stage + (size_t)t->nranks * SMALL_BYTES;
  memcpy(h_mine, send, bytes);
  MCGQ_CUDA_CHECK(kFn, "staging the block",
                  cudaMemcpyAsync(d_mine, h_mine, bytes, cudaMemcpyHostToDevice, stream));
  MCGQ_NCCL_CHECK(kFn, "ncclAllGather",
                  ncclAllGather(d_mine, t->d_stage, bytes, ncclUint8, t->nccl, stream));
  MCGQ_CUDA_CHECK(kFn, "reading the blocks",
                  cudaMemcpyAsync(t->h_stage, t->d_stage, bytes * (size_t)t->nranks,
                                  cudaMemcpyDeviceToHost, stream));
  return mcgqSuccess;
}

static mcgqResult_t nccl_allgather(void *ctx, const void *send, void *recv,
                                   size_t bytes, const mcgq_call_t *call) {
  nccl_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  if (bytes > SMALL_BYTES) { /* equal on every rank: all return here */
    snprintf(call->detail, call->detail_size, "%s: internal: %zu-byte block", kFn,
             bytes);
    return mcgqInternalError;
  }
  MCGQ_CHECK(to_call(call, enqueue_allgather(t, send, bytes, (cudaStream_t)call->stream)));
  MCGQ_CHECK(wait_for(t, call, "ncclAllGather of the step blocks"));
  memcpy(recv, t->h_stage, bytes * (size_t)t->nranks);
  return mcgqSuccess;
}

/* The step blocks, already on the device (the device codec put them
 * there): one ncclAllGather, stream-ordered like nccl_allgatherv; the
 * codec's read of the gathered blocks is the step's host wait. */
static mcgqResult_t nccl_allgather_device(void *ctx, const void *send, void *recv,
                                          size_t bytes, const mcgq_call_t *call) {
  nccl_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  ncclResult_t ne = ncclAllGather(send, recv, bytes, ncclUint8, t->nccl,
                                  (cudaStream_t)call->stream);
  if (ne != ncclSuccess)
    return to_call(call, mcgq_nccl_result((int)ne, kFn, "ncclAllGather of the step blocks"));
  if (call->deadline <= 0.0) return mcgqSuccess;
  return wait_for(t, call, "ncclAllGather of the step blocks");
}

static mcgqResult_t enqueue_exchange(nccl_transport_t *t, const void *send,
                                     size_t send_bytes, void *recv,
                                     const size_t *counts, const size_t *displs,
                                     cudaStream_t stream) {
  unsigned char *base = recv;
  MCGQ_CUDA_CHECK(kFn, "copying this rank's message",
                  cudaMemcpyAsync(base + displs[t->rank], send, send_bytes,
                                  cudaMemcpyDeviceToDevice, stream));
  MCGQ_NCCL_CHECK(kFn, "ncclGroupStart", ncclGroupStart());
  ncclResult_t ne = ncclSuccess;
  for (int r = 0; r < t->nranks && ne == ncclSuccess; ++r) {
    if (r == t->rank) continue;
    ne = ncclSend(send, send_bytes, ncclUint8, r, t->nccl, stream);
    if (ne == ncclSuccess)
      ne = ncclRecv(base + displs[r], counts[r], ncclUint8, r, t->nccl, stream);
  }
  ncclResult_t end = ncclGroupEnd(); /* always closes the group */
  MCGQ_NCCL_CHECK(kFn, "ncclSend/ncclRecv of the messages", ne);
  MCGQ_NCCL_CHECK(kFn, "ncclGroupEnd", end);
  return mcgqSuccess;
}

/* Stream-ordered: the decode that follows on the same stream sees the
 * messages, so without a timeout nothing waits on the host here.  With a
 * timeout the transport waits for the exchange itself, because only it can
 * abort the communicator when a peer never sends. */
static mcgqResult_t nccl_allgatherv(void *ctx, const void *send, size_t send_bytes,
                                    void *recv, const size_t *counts,
                                    const size_t *displs, const mcgq_call_t *call) {
  nccl_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  MCGQ_CHECK(to_call(call, enqueue_exchange(t, send, send_bytes, recv, counts, displs,
                                            (cudaStream_t)call->stream)));
  if (call->deadline <= 0.0) return mcgqSuccess;
  return wait_for(t, call, "ncclSend/ncclRecv of the messages");
}

/* Grouped ncclSend/ncclRecv of the shard messages; this rank's own part is
 * a device copy.  Zero-byte parts are skipped on both ends alike (rank r's
 * send count to j is j's receive count from r). */
static mcgqResult_t enqueue_alltoallv(nccl_transport_t *t, const void *send,
                                      const size_t *send_counts,
                                      const size_t *send_displs, void *recv,
                                      const size_t *recv_counts,
                                      const size_t *recv_displs,
                                      cudaStream_t stream) {
  const unsigned char *out = send;
  unsigned char *in = recv;
  if (send_counts[t->rank] > 0)
    MCGQ_CUDA_CHECK(kFn, "copying this rank's own shard",
                    cudaMemcpyAsync(in + recv_displs[t->rank], out + send_displs[t->rank],
                                    send_counts[t->rank], cudaMemcpyDeviceToDevice,
                                    stream));
  MCGQ_NCCL_CHECK(kFn, "ncclGroupStart", ncclGroupStart());
  ncclResult_t ne = ncclSuccess;
  for (int r = 0; r < t->nranks && ne == ncclSuccess; ++r) {
    if (r == t->rank) continue;
    if (send_counts[r] > 0)
      ne = ncclSend(out + send_displs[r], send_counts[r], ncclUint8, r, t->nccl, stream);
    if (ne == ncclSuccess && recv_counts[r] > 0)
      ne = ncclRecv(in + recv_displs[r], recv_counts[r], ncclUint8, r, t->nccl, stream);
  }
  ncclResult_t end = ncclGroupEnd(); /* always closes the group */
  MCGQ_NCCL_CHECK(kFn, "ncclSend/ncclRecv of the shard messages", ne);
  MCGQ_NCCL_CHECK(kFn, "ncclGroupEnd", end);
  return mcgqSuccess;
}

/* Stream-ordered like nccl_allgatherv. */
static mcgqResult_t nccl_alltoallv(void *ctx, const void *send,
                                   const size_t *send_counts,
                                   const size_t *send_displs, void *recv,
                                   const size_t *recv_counts,
                                   const size_t *recv_displs,
                                   const mcgq_call_t *call) {
  nccl_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  MCGQ_CHECK(to_call(call, enqueue_alltoallv(t, send, send_counts, send_displs, recv,
                                             recv_counts, recv_displs,
                                             (cudaStream_t)call->stream)));
  if (call->deadline <= 0.0) return mcgqSuccess;
  return wait_for(t, call, "ncclSend/ncclRecv of the shard messages");
}

static mcgqResult_t enqueue_max(nccl_transport_t *t, int32_t value,
                                cudaStream_t stream) {
  int32_t *h = (int32_t *)(void *)t->h_stage;
  int32_t *d = (int32_t *)(void *)t->d_stage;
  *h = value;
  MCGQ_CUDA_CHECK(kFn, "staging the flag",
                  cudaMemcpyAsync(d, h, sizeof *h, cudaMemcpyHostToDevice, stream));
  MCGQ_NCCL_CHECK(kFn, "ncclAllReduce",
                  ncclAllReduce(d, d, 1, ncclInt32, ncclMax, t->nccl, stream));
  MCGQ_CUDA_CHECK(kFn, "reading the flag",
                  cudaMemcpyAsync(h, d, sizeof *h, cudaMemcpyDeviceToHost, stream));
  return mcgqSuccess;
}

static mcgqResult_t nccl_allreduce_max(void *ctx, int32_t *value,
                                       const mcgq_call_t *call) {
  nccl_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  MCGQ_CHECK(to_call(call, enqueue_max(t, *value, (cudaStream_t)call->stream)));
  MCGQ_CHECK(wait_for(t, call, "ncclAllReduce of the agreement flag"));
  *value = *(const int32_t *)(const void *)t->h_stage;
  return mcgqSuccess;
}

static void nccl_destroy(void *ctx) {
  nccl_transport_t *t = ctx;
  if (!t) return;
  cudaFreeHost(t->h_stage);
  cudaFree(t->d_stage);
  free(t);
}

static const mcgq_transport_ops_t kNcclOps = {
    "NCCL", 1, nccl_allgather, nccl_allgatherv, nccl_allreduce_max, nccl_destroy,
    nccl_alltoallv, nccl_allgather_device};

static mcgqResult_t create_transport(ncclComm_t nccl, nccl_transport_t *t) {
  static const char fn[] = "mcgqCommInitNccl";
  MCGQ_NCCL_CHECK(fn, "ncclCommUserRank", ncclCommUserRank(nccl, &t->rank));
  MCGQ_NCCL_CHECK(fn, "ncclCommCount", ncclCommCount(nccl, &t->nranks));
  size_t bytes = ((size_t)t->nranks + 1) * SMALL_BYTES;
  MCGQ_CUDA_CHECK(fn, "cudaMallocHost", cudaMallocHost((void **)&t->h_stage, bytes));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc((void **)&t->d_stage, bytes));
  t->nccl = nccl;
  return mcgqSuccess;
}

mcgqResult_t mcgqCommInitNccl(mcgqComm_t *comm, ncclComm_t nccl) {
  static const char fn[] = "mcgqCommInitNccl";
  if (!comm || !nccl)
    return mcgq_fail(mcgqInvalidArgument, "%s: comm or nccl is NULL", fn);
  nccl_transport_t *t = calloc(1, sizeof *t);
  if (!t) return mcgq_fail(mcgqOutOfMemory, "%s: no host memory", fn);
  mcgqResult_t res = create_transport(nccl, t);
  if (res != mcgqSuccess) {
    nccl_destroy(t);
    return res;
  }
  return mcgq_comm_create(&kNcclOps, t, t->rank, t->nranks, comm);
}
