/*
 * comm_nccl.c - the NCCL transport of the communicator (inside libmcgq when
 * it is built with NCCL).  Gradients, accumulators and K state live in
 * device memory; the step runs on the caller's stream and the caller's
 * ncclComm_t, and allocates nothing (mcgqCommSetLayers sizes every buffer).
 *
 * Step (DESIGN.md section 5), after comm.c found the layer tables equal:
 *   1. back up accumulators and K state (device to device): the GPU encode
 *      commits a layer as soon as that layer is fine, so "no rank changes
 *      anything when some rank is non-finite" is kept by restoring them.
 *   2. mcgqEncodeAsync into the handle's send buffer.
 *   3. ncclAllGather of the message sizes; read the per-layer status words
 *      and the sizes on the host (one stream synchronization).
 *   4. ncclAllReduce(max) of a failure flag (non-finite outranks the rest):
 *      on failure every rank restores its backups and returns the same kind
 *      of status.
 *   5. grouped ncclSend/ncclRecv of the exact message sizes, then
 *      mcgqDecodeAverageAsync in rank order and copies into the grads.
 * ncclCommGetAsyncError is polled at each synchronization: mcgqNcclError.
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

#define FLAG_NONFINITE 0x7fffffff
#define SMALL_BYTES 64 /* per rank: the fingerprint and small arrays of comm.c */

typedef struct {
  ncclComm_t nccl;
  int rank, nranks;
  cudaStream_t stream;

  /* sized at set_layers */
  int count;
  uint64_t total_n, accum_n;
  size_t capacity; /* bytes of one rank's message */
  size_t temp_bytes;
  void *d_send, *d_recv, *d_temp;
  float *d_average, *d_accum_backup;
  mcgqKState_t *d_kstate_backup;
  mcgqLayerStats_t *d_stats;
  mcgqLayerDesc_t *descs; /* host */
  const void **d_in;      /* host array of device pointers, nranks */
  size_t *in_bytes;       /* host, nranks */

  /* sized at init */
  uint64_t *d_sizes; /* nranks; [rank] doubles as this rank's size_t */
  uint64_t *h_sizes;
  int32_t *d_flag;
  uint32_t *d_status;
  unsigned char *d_small; /* (nranks + 1) * SMALL_BYTES */
} nccl_transport_t;

/* CUDA and NCCL failures go through gpu/cuda_check.h, which writes the
 * detail once; the transport collectives hand it to comm.c through their
 * detail buffer, the step into the communicator's, both copied as is. */
static void detail_cuda(char *detail, size_t size, const char *what,
                        cudaError_t err) {
  mcgq_cuda_result((int)err, "mcgqCommStep", what);
  snprintf(detail, size, "%s", mcgqGetLastErrorDetail());
}

static void detail_nccl(char *detail, size_t size, const char *what,
                        ncclResult_t err) {
  mcgq_nccl_result((int)err, "mcgqCommStep", what);
  snprintf(detail, size, "%s", mcgqGetLastErrorDetail());
}

#define CUDA_TRY(call, what, comm)                                                   \
  do {                                                                               \
    mcgqResult_t r_ = mcgq_cuda_result((int)(call), "mcgqCommStep", (what));         \
    if (r_ != mcgqSuccess) return mcgq_comm_fail(comm, r_, "%s", mcgqGetLastErrorDetail()); \
  } while (0)
#define NCCL_TRY(call, what, comm)                                                   \
  do {                                                                               \
    mcgqResult_t r_ = mcgq_nccl_result((int)(call), "mcgqCommStep", (what));         \
    if (r_ != mcgqSuccess) return mcgq_comm_fail(comm, r_, "%s", mcgqGetLastErrorDetail()); \
  } while (0)

/* Waits for the stream, then asks NCCL whether a collective failed. */
static mcgqResult_t sync_and_poll(nccl_transport_t *t, char *detail,
                                  size_t size) {
  cudaError_t ce = cudaStreamSynchronize(t->stream);
  if (ce != cudaSuccess) {
    detail_cuda(detail, size, "cudaStreamSynchronize", ce);
    return mcgqCudaError;
  }
  ncclResult_t async = ncclSuccess;
  ncclResult_t ne = ncclCommGetAsyncError(t->nccl, &async);
  if (ne != ncclSuccess || async != ncclSuccess) {
    detail_nccl(detail, size, "ncclCommGetAsyncError",
                ne != ncclSuccess ? ne : async);
    return mcgqNcclError;
  }
  return mcgqSuccess;
}

/* ------------------------------------------------ collectives of comm.c */

static mcgqResult_t nccl_allgather(void *ctx, const void *send, void *recv,
                                   size_t bytes, char *detail, size_t size) {
  nccl_transport_t *t = ctx;
  if (bytes > SMALL_BYTES) {
    snprintf(detail, size, "mcgqCommStep: internal: %zu-byte allgather", bytes);
    return mcgqInternalError;
  }
  unsigned char *d_mine = t->d_small + (size_t)t->nranks * SMALL_BYTES;
  cudaError_t ce = cudaMemcpyAsync(d_mine, send, bytes, cudaMemcpyHostToDevice,
                                   t->stream);
  if (ce != cudaSuccess) {
    detail_cuda(detail, size, "cudaMemcpyAsync", ce);
    return mcgqCudaError;
  }
  ncclResult_t ne =
      ncclAllGather(d_mine, t->d_small, bytes, ncclUint8, t->nccl, t->stream);
  if (ne != ncclSuccess) {
    detail_nccl(detail, size, "ncclAllGather", ne);
    return mcgqNcclError;
  }
  ce = cudaMemcpyAsync(recv, t->d_small, bytes * (size_t)t->nranks,
                       cudaMemcpyDeviceToHost, t->stream);
  if (ce != cudaSuccess) {
    detail_cuda(detail, size, "cudaMemcpyAsync", ce);
    return mcgqCudaError;
  }
  return sync_and_poll(t, detail, size);
}

static mcgqResult_t nccl_allgatherv(void *ctx, const void *send,
                                    size_t send_bytes, void *recv,
                                    const size_t *counts, const size_t *displs,
                                    char *detail, size_t size) {
  (void)ctx, (void)send, (void)send_bytes, (void)recv, (void)counts, (void)displs;
  snprintf(detail, size, "mcgqCommStep: internal: host allgatherv on NCCL");
  return mcgqInternalError; /* the NCCL step moves payloads itself */
}

static mcgqResult_t allreduce_max_device(nccl_transport_t *t, int32_t *value,
                                         char *detail, size_t size) {
  cudaError_t ce = cudaMemcpyAsync(t->d_flag, value, sizeof *value,
                                   cudaMemcpyHostToDevice, t->stream);
  ncclResult_t ne = ncclSuccess;
  if (ce == cudaSuccess)
    ne = ncclAllReduce(t->d_flag, t->d_flag, 1, ncclInt32, ncclMax, t->nccl,
                       t->stream);
  if (ce == cudaSuccess && ne == ncclSuccess)
    ce = cudaMemcpyAsync(value, t->d_flag, sizeof *value, cudaMemcpyDeviceToHost,
                         t->stream);
  if (ce != cudaSuccess) {
    detail_cuda(detail, size, "cudaMemcpyAsync", ce);
    return mcgqCudaError;
  }
  if (ne != ncclSuccess) {
    detail_nccl(detail, size, "ncclAllReduce", ne);
    return mcgqNcclError;
  }
  return sync_and_poll(t, detail, size);
}

static mcgqResult_t nccl_allreduce_max(void *ctx, int32_t *value, char *detail,
                                       size_t size) {
  return allreduce_max_device(ctx, value, detail, size);
}

static void nccl_set_stream(void *ctx, mcgqStream_t stream) {
  ((nccl_transport_t *)ctx)->stream = (cudaStream_t)stream;
}

/* ------------------------------------------------------------ buffers */

static void free_layer_buffers(nccl_transport_t *t) {
  cudaFree(t->d_send);
  cudaFree(t->d_recv);
  cudaFree(t->d_temp);
  cudaFree(t->d_average);
  cudaFree(t->d_accum_backup);
  cudaFree(t->d_kstate_backup);
  cudaFree(t->d_stats);
  free(t->descs);
  t->d_send = t->d_recv = t->d_temp = NULL;
  t->d_average = t->d_accum_backup = NULL;
  t->d_kstate_backup = NULL;
  t->d_stats = NULL;
  t->descs = NULL;
  t->count = 0;
}

static void fill_descs(nccl_transport_t *t, const mcgqLayer_t *layers,
                       uint64_t step, uint64_t seed) {
  for (int i = 0; i < t->count; ++i) {
    mcgqLayerDesc_t *d = &t->descs[i];
    mcgqLayerDescInit(d);
    d->u = mcgqRandomWord(seed, step, (uint32_t)i, (uint32_t)t->rank);
    d->g = layers[i].grad;
    d->accum = layers[i].accum;
    d->kstate = layers[i].kstate;
    d->n = layers[i].n;
    d->cfg = layers[i].cfg;
  }
}

/* Sizes every buffer of a step for the new table (allocation happens here,
 * never in the step). */
static mcgqResult_t nccl_set_layers(void *ctx, mcgqComm_t comm) {
  static const char fn[] = "mcgqCommSetLayers";
  nccl_transport_t *t = ctx;
  int count = 0;
  const mcgqLayer_t *layers = mcgq_comm_layers(comm, &count);
  free_layer_buffers(t);
  if (count == 0) return mcgqSuccess;
  t->descs = calloc((size_t)count, sizeof *t->descs);
  if (!t->descs)
    return mcgq_comm_fail(comm, mcgqOutOfMemory, "%s: no host memory", fn);
  t->count = count;
  t->total_n = mcgq_comm_total_elements(comm);
  t->accum_n = 0;
  for (int i = 0; i < count; ++i)
    if (layers[i].accum) t->accum_n += layers[i].n;
  fill_descs(t, layers, 0, 0);
  size_t enc_temp = 0, dec_temp = 0;
  mcgqResult_t res = mcgqEncodeGetMaxOutputSize(t->descs, count, &t->capacity);
  if (res == mcgqSuccess) res = mcgqEncodeGetTempSize(t->descs, count, &enc_temp);
  if (res == mcgqSuccess)
    res = mcgqDecodeAverageGetTempSize(t->nranks, t->total_n, t->capacity,
                                       &dec_temp);
  if (res != mcgqSuccess) {
    free_layer_buffers(t);
    return mcgq_comm_fail(comm, res, "%s", mcgqGetLastErrorDetail());
  }
  t->temp_bytes = enc_temp > dec_temp ? enc_temp : dec_temp;
  cudaError_t ce = cudaMalloc(&t->d_send, t->capacity);
  if (ce == cudaSuccess)
    ce = cudaMalloc(&t->d_recv, t->capacity * (size_t)t->nranks);
  if (ce == cudaSuccess) ce = cudaMalloc(&t->d_temp, t->temp_bytes ? t->temp_bytes : 1);
  if (ce == cudaSuccess)
    ce = cudaMalloc((void **)&t->d_average, t->total_n * sizeof(float));
  if (ce == cudaSuccess && t->accum_n)
    ce = cudaMalloc((void **)&t->d_accum_backup, t->accum_n * sizeof(float));
  if (ce == cudaSuccess)
    ce = cudaMalloc((void **)&t->d_kstate_backup, (size_t)count * sizeof(mcgqKState_t));
  if (ce == cudaSuccess)
    ce = cudaMalloc((void **)&t->d_stats, (size_t)count * sizeof(mcgqLayerStats_t));
  if (ce != cudaSuccess) {
    free_layer_buffers(t);
    return mcgq_comm_fail(comm, ce == cudaErrorMemoryAllocation ? mcgqOutOfMemory
                                                                : mcgqCudaError,
                          "%s: cudaMalloc: %s", fn, cudaGetErrorString(ce));
  }
  return mcgqSuccess;
}

/* ------------------------------------------------------------ the step */

/* Direction 0: live -> backup; 1: backup -> live. */
static mcgqResult_t copy_state(nccl_transport_t *t, mcgqComm_t comm,
                               const mcgqLayer_t *layers, int restore) {
  float *backup = t->d_accum_backup;
  for (int i = 0; i < t->count; ++i) {
    if (layers[i].accum) {
      size_t bytes = (size_t)layers[i].n * sizeof(float);
      CUDA_TRY(cudaMemcpyAsync(restore ? layers[i].accum : backup,
                               restore ? backup : layers[i].accum, bytes,
                               cudaMemcpyDeviceToDevice, t->stream),
               "backup of accumulators", comm);
      backup += layers[i].n;
    }
    if (layers[i].kstate)
      CUDA_TRY(cudaMemcpyAsync(restore ? layers[i].kstate : &t->d_kstate_backup[i],
                               restore ? &t->d_kstate_backup[i] : layers[i].kstate,
                               sizeof(mcgqKState_t), cudaMemcpyDeviceToDevice,
                               t->stream),
               "backup of K state", comm);
  }
  return mcgqSuccess;
}

/* Encodes, gathers the sizes and reads the status words; returns this rank's
 * contribution to the agreement (mcgqSuccess or the first layer failure). */
static mcgqResult_t encode_and_size(nccl_transport_t *t, mcgqComm_t comm,
                                    mcgqLayerStats_t *h_stats, int ready) {
  uint64_t *d_mine = &t->d_sizes[t->rank];
  /* size_t and uint64_t are the same width on every platform CUDA supports */
  mcgqResult_t launch =
      ready ? mcgqEncodeAsync(t->descs, t->count, t->d_send, t->capacity,
                              (size_t *)(void *)d_mine, t->d_stats, t->d_temp,
                              t->temp_bytes, t->stream)
            : mcgq_fail(mcgqInvalidUsage,
                        "mcgqCommStep: the last mcgqCommSetLayers failed on "
                        "this rank; register the layers again");
  if (launch != mcgqSuccess) {
    /* Still take part in the size exchange and the agreement below, so the
     * other ranks are not left waiting in a collective. */
    mcgq_comm_fail(comm, launch, "%s", mcgqGetLastErrorDetail());
    CUDA_TRY(cudaMemsetAsync(d_mine, 0, sizeof *d_mine, t->stream),
             "cudaMemsetAsync", comm);
  }
  NCCL_TRY(ncclAllGather(d_mine, t->d_sizes, 1, ncclUint64, t->nccl, t->stream),
           "ncclAllGather of sizes", comm);
  if (ready)
    CUDA_TRY(cudaMemcpyAsync(h_stats, t->d_stats,
                             (size_t)t->count * sizeof(mcgqLayerStats_t),
                             cudaMemcpyDeviceToHost, t->stream),
             "cudaMemcpyAsync", comm);
  CUDA_TRY(cudaMemcpyAsync(t->h_sizes, t->d_sizes,
                           (size_t)t->nranks * sizeof(uint64_t),
                           cudaMemcpyDeviceToHost, t->stream),
           "cudaMemcpyAsync", comm);
  char *detail = mcgq_comm_detail(comm);
  mcgqResult_t res = sync_and_poll(t, detail, MCGQ_COMM_DETAIL_BYTES);
  if (res != mcgqSuccess) return res;
  if (launch != mcgqSuccess) return launch;
  for (int i = 0; i < t->count; ++i)
    if (h_stats[i].status != mcgqSuccess)
      return mcgq_comm_fail(comm, (mcgqResult_t)h_stats[i].status,
                            "mcgqCommStep: layer %d: %s", i,
                            mcgqGetErrorString((mcgqResult_t)h_stats[i].status));
  for (int r = 0; r < t->nranks; ++r)
    if (t->h_sizes[r] > t->capacity)
      return mcgq_comm_fail(comm, mcgqCapacityExceeded,
                            "mcgqCommStep: rank %d sends %llu bytes, more than "
                            "this rank's bound %zu (layer configs differ?)",
                            r, (unsigned long long)t->h_sizes[r], t->capacity);
  return mcgqSuccess;
}

static mcgqResult_t exchange_payloads(nccl_transport_t *t, mcgqComm_t comm) {
  NCCL_TRY(ncclGroupStart(), "ncclGroupStart", comm);
  for (int r = 0; r < t->nranks; ++r) {
    if (r == t->rank) continue;
    unsigned char *slot = (unsigned char *)t->d_recv + (size_t)r * t->capacity;
    NCCL_TRY(ncclSend(t->d_send, (size_t)t->h_sizes[t->rank], ncclUint8, r,
                      t->nccl, t->stream),
             "ncclSend", comm);
    NCCL_TRY(ncclRecv(slot, (size_t)t->h_sizes[r], ncclUint8, r, t->nccl,
                      t->stream),
             "ncclRecv", comm);
  }
  NCCL_TRY(ncclGroupEnd(), "ncclGroupEnd", comm);
  for (int r = 0; r < t->nranks; ++r) {
    t->d_in[r] = r == t->rank ? t->d_send
                              : (unsigned char *)t->d_recv + (size_t)r * t->capacity;
    t->in_bytes[r] = (size_t)t->h_sizes[r];
  }
  return mcgqSuccess;
}

static mcgqResult_t decode_into_grads(nccl_transport_t *t, mcgqComm_t comm,
                                      const mcgqLayer_t *layers) {
  mcgqResult_t res = mcgqDecodeAverageAsync(t->d_in, t->in_bytes, t->nranks,
                                            t->d_average, t->total_n,
                                            t->d_status, t->d_temp,
                                            t->temp_bytes, t->stream);
  if (res != mcgqSuccess)
    return mcgq_comm_fail(comm, res, "%s", mcgqGetLastErrorDetail());
  uint32_t status = 0;
  CUDA_TRY(cudaMemcpyAsync(&status, t->d_status, sizeof status,
                           cudaMemcpyDeviceToHost, t->stream),
           "cudaMemcpyAsync", comm);
  res = sync_and_poll(t, mcgq_comm_detail(comm), MCGQ_COMM_DETAIL_BYTES);
  if (res != mcgqSuccess) return res;
  /* Every rank decoded the same bytes, so this failure is everyone's. */
  if (status != 0)
    return mcgq_comm_fail(comm, (mcgqResult_t)status,
                          "mcgqCommStep: decode of the gathered messages: %s",
                          mcgqGetErrorString((mcgqResult_t)status));
  const float *src = t->d_average;
  for (int i = 0; i < t->count; ++i) {
    CUDA_TRY(cudaMemcpyAsync(layers[i].grad, src, (size_t)layers[i].n * sizeof(float),
                             cudaMemcpyDeviceToDevice, t->stream),
             "cudaMemcpyAsync of the average", comm);
    src += layers[i].n;
  }
  return mcgqSuccess;
}

static void fill_step_stats(const nccl_transport_t *t,
                            const mcgqLayerStats_t *h_stats,
                            mcgqStepStats_t *stats) {
  if (!stats) return;
  double paper_bits = 0.0;
  for (int i = 0; i < t->count; ++i)
    paper_bits += (double)h_stats[i].stream_bits + 32.0;
  uint64_t sent = t->h_sizes[t->rank];
  stats->bytes_sent = sent;
  stats->elements = t->total_n;
  stats->paper_ratio = paper_bits > 0 ? 32.0 * (double)t->total_n / paper_bits : 0;
  stats->wire_ratio = sent > 0 ? 4.0 * (double)t->total_n / (double)sent : 0;
}

static mcgqResult_t nccl_step(void *ctx, mcgqComm_t comm, uint64_t step,
                              uint64_t seed, mcgqStream_t stream,
                              mcgqStepStats_t *stats) {
  nccl_transport_t *t = ctx;
  t->stream = (cudaStream_t)stream;
  int count = 0;
  const mcgqLayer_t *layers = mcgq_comm_layers(comm, &count);
  mcgqLayerStats_t *h_stats = mcgq_comm_layer_stats(comm);
  char *detail = mcgq_comm_detail(comm);
  /* Not ready: a failed mcgqCommSetLayers left this rank without buffers;
   * it still takes part in the collectives so that every rank fails. */
  int ready = t->count == count && t->count > 0;
  if (ready) {
    fill_descs(t, layers, step, seed);
    MCGQ_CHECK(copy_state(t, comm, layers, 0));
  }
  mcgqResult_t local = encode_and_size(t, comm, h_stats, ready);
  /* Even a CUDA/NCCL failure is agreed: the collective below fails fast on
   * a broken device or communicator, and otherwise keeps peers from hanging. */
  int32_t flag = local == mcgqNonFinite ? FLAG_NONFINITE : (int32_t)local;
  mcgqResult_t agreed = allreduce_max_device(t, &flag, detail, MCGQ_COMM_DETAIL_BYTES);
  if (agreed != mcgqSuccess) {
    if (ready) copy_state(t, comm, layers, 1); /* best effort: device may be gone */
    return agreed;
  }
  if (flag != 0) {
    if (ready) MCGQ_CHECK(copy_state(t, comm, layers, 1));
    mcgqResult_t status = flag == FLAG_NONFINITE ? mcgqNonFinite : (mcgqResult_t)flag;
    if (status == mcgqNonFinite && stats) stats->found_nonfinite = 1;
    if (local != mcgqSuccess && (local == status || status != mcgqNonFinite))
      return local;
    return mcgq_comm_fail(comm, status,
                          "mcgqCommStep: %s on another rank; no rank changed its "
                          "gradients, accumulators or K state",
                          mcgqGetErrorString(status));
  }
  mcgqResult_t res = exchange_payloads(t, comm);
  if (res == mcgqSuccess) res = decode_into_grads(t, comm, layers);
  if (res != mcgqSuccess) {
    copy_state(t, comm, layers, 1);
    return res;
  }
  fill_step_stats(t, h_stats, stats);
  return mcgqSuccess;
}

static void nccl_destroy(void *ctx) {
  nccl_transport_t *t = ctx;
  if (!t) return;
  free_layer_buffers(t);
  cudaFree(t->d_sizes);
  cudaFree(t->d_flag);
  cudaFree(t->d_status);
  cudaFree(t->d_small);
  free(t->h_sizes);
  free((void *)t->d_in);
  free(t->in_bytes);
  free(t);
}

static const mcgq_transport_ops_t kNcclOps = {
    "NCCL",    nccl_allgather,  nccl_allgatherv, nccl_allreduce_max,
    nccl_step, nccl_set_layers, nccl_set_stream, nccl_destroy};

mcgqResult_t mcgqCommInitNccl(mcgqComm_t *comm, ncclComm_t nccl) {
  static const char fn[] = "mcgqCommInitNccl";
  if (!comm || !nccl)
    return mcgq_fail(mcgqInvalidArgument, "%s: comm or nccl is NULL", fn);
  int rank = 0, nranks = 0;
  ncclResult_t ne = ncclCommUserRank(nccl, &rank);
  if (ne == ncclSuccess) ne = ncclCommCount(nccl, &nranks);
  if (ne != ncclSuccess)
    return mcgq_fail(mcgqNcclError, "%s: %s", fn, ncclGetErrorString(ne));
  nccl_transport_t *t = calloc(1, sizeof *t);
  if (!t) return mcgq_fail(mcgqOutOfMemory, "%s: no host memory", fn);
  t->nccl = nccl;
  t->rank = rank;
  t->nranks = nranks;
  size_t p = (size_t)nranks;
  t->h_sizes = calloc(p, sizeof *t->h_sizes);
  t->d_in = calloc(p, sizeof *t->d_in);
  t->in_bytes = calloc(p, sizeof *t->in_bytes);
  cudaError_t ce = cudaMalloc((void **)&t->d_sizes, p * sizeof(uint64_t));
  if (ce == cudaSuccess) ce = cudaMalloc((void **)&t->d_flag, sizeof(int32_t));
  if (ce == cudaSuccess) ce = cudaMalloc((void **)&t->d_status, sizeof(uint32_t));
  if (ce == cudaSuccess) ce = cudaMalloc((void **)&t->d_small, (p + 1) * SMALL_BYTES);
  if (ce != cudaSuccess || !t->h_sizes || !t->d_in || !t->in_bytes) {
    nccl_destroy(t);
    if (ce != cudaSuccess)
      return mcgq_fail(ce == cudaErrorMemoryAllocation ? mcgqOutOfMemory : mcgqCudaError,
                       "%s: cudaMalloc: %s", fn, cudaGetErrorString(ce));
    return mcgq_fail(mcgqOutOfMemory, "%s: no host memory", fn);
  }
  return mcgq_comm_create(&kNcclOps, t, rank, nranks, comm);
}
