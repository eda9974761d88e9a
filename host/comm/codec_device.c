/*
 * codec_device.c - the device codec of the exchange: mcgqEncodeAsync and
 * mcgqDecodeAverageAsync on the step's stream, for transports whose payload
 * collectives take device memory (NCCL, callbacks with payload_on_device).
 *
 * Commit without backups: prepare runs the GPU encode with deferred state
 * (mcgq_encode_deferred_async, internal.h), which writes each layer's new
 * accumulator and K state into this codec's scratch (accum_next,
 * kstate_next) and only reads the live ones; the message and stats are the
 * in-place encode's bits.  commit is one kernel launch
 * (mcgq_encode_commit_async) that copies the scratch into the live state of
 * the layers whose status word is 0, driven by the encode's device layer
 * table, which therefore stays in the encode's own scratch (enc_temp) until
 * commit: the decode has a scratch of its own (dec_temp).  discard changes
 * nothing: the live state was never written.  So no rank writes an
 * accumulator or K state before every rank agreed (DESIGN.md section 5).
 * Host synchronisations per step: prepare reads the layer status words and
 * the size (one), decode_average its status word (one); commit none.
 * Buffers are sized at set_layers; only reserve may grow the receive buffer
 * (exact sizes, to the largest total seen; never P worst-case bounds up
 * front).
 */
#include "comm_internal.h"
#include "internal.h"

#ifdef MCGQ_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/cuda_check.h"

static const char kFn[] = "mcgqCommStep";

typedef struct {
  mcgq_codec_t base;
  int nranks, count;
  uint64_t total_n;
  size_t bound, enc_temp_bytes, dec_temp_bytes, recv_capacity;
  void *d_send, *d_recv;
  void *d_enc_temp;           /* the encode's table lives here until commit */
  void *d_dec_temp;
  float *d_average;
  float *d_accum_next;        /* new accumulators, back to back (deferred) */
  mcgqKState_t *d_kstate_next; /* new K states, one per layer (deferred) */
  mcgq_state_out_t *outs;     /* host: each layer's slots in the two above */
  mcgqLayerStats_t *d_stats;
  size_t *d_size;
  uint32_t *d_status;
  mcgqLayerStats_t *h_stats;  /* pinned */
  size_t *h_size;             /* pinned */
  uint32_t *h_status;         /* pinned */
  const mcgqLayerDesc_t *descs;
  int prepared;               /* the scratch holds an uncommitted update */
} device_codec_t;

static device_codec_t *dev(mcgq_codec_t *c) { return (device_codec_t *)c; }

static mcgqResult_t to_call(const mcgq_call_t *call, mcgqResult_t res) {
  if (res != mcgqSuccess)
    snprintf(call->detail, call->detail_size, "%s", mcgqGetLastErrorDetail());
  return res;
}

/* Waits for the stream by polling, so a deadline holds here too. */
static mcgqResult_t wait_stream(const mcgq_call_t *call) {
  for (;;) {
    cudaError_t err = cudaStreamQuery((cudaStream_t)call->stream);
    if (err == cudaSuccess) return mcgqSuccess;
    if (err != cudaErrorNotReady)
      return to_call(call, mcgq_cuda_result((int)err, kFn, "waiting for the step"));
    if (mcgq_call_expired(call)) return mcgq_call_timeout(call, "the device codec");
  }
}

static void free_buffers(device_codec_t *d) {
  cudaFree(d->d_send);
  cudaFree(d->d_recv);
  cudaFree(d->d_enc_temp);
  cudaFree(d->d_dec_temp);
  cudaFree(d->d_average);
  cudaFree(d->d_accum_next);
  cudaFree(d->d_kstate_next);
  cudaFree(d->d_stats);
  cudaFreeHost(d->h_stats);
  free(d->outs);
  d->d_send = d->d_recv = d->d_enc_temp = d->d_dec_temp = NULL;
  d->d_average = d->d_accum_next = NULL;
  d->d_kstate_next = NULL;
  d->d_stats = NULL;
  d->h_stats = NULL;
  d->outs = NULL;
  d->recv_capacity = 0;
  d->prepared = 0;
}

static mcgqResult_t allocate(device_codec_t *d, const mcgqLayer_t *layers,
                             int count, uint64_t total_n) {
  static const char fn[] = "mcgqCommSetLayers";
  mcgqLayerDesc_t *descs = calloc((size_t)count, sizeof *descs);
  if (!descs) return mcgq_fail(mcgqOutOfMemory, "%s: no host memory", fn);
  uint64_t accum_n = 0;
  for (int i = 0; i < count; ++i) {
    mcgqLayerDescInit(&descs[i]);
    descs[i].g = layers[i].grad;
    descs[i].accum = layers[i].accum;
    descs[i].kstate = layers[i].kstate;
    descs[i].n = layers[i].n;
    descs[i].cfg = layers[i].cfg;
    if (layers[i].accum) accum_n += layers[i].n;
  }
  size_t enc_temp = 0, dec_temp = 0;
  mcgqResult_t res = mcgqEncodeGetMaxOutputSize(descs, count, &d->bound);
  if (res == mcgqSuccess) res = mcgqEncodeGetTempSize(descs, count, &enc_temp);
  free(descs);
  if (res == mcgqSuccess)
    res = mcgqDecodeAverageGetTempSize(d->nranks, total_n, d->bound, &dec_temp);
  MCGQ_CHECK(res);
  d->enc_temp_bytes = enc_temp;
  d->dec_temp_bytes = dec_temp;
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc(&d->d_send, d->bound));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc(&d->d_enc_temp, enc_temp + 1));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc(&d->d_dec_temp, dec_temp + 1));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc",
                  cudaMalloc((void **)&d->d_average, total_n * sizeof(float)));
  if (accum_n)
    MCGQ_CUDA_CHECK(fn, "cudaMalloc",
                    cudaMalloc((void **)&d->d_accum_next, accum_n * sizeof(float)));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc",
                  cudaMalloc((void **)&d->d_kstate_next,
                             (size_t)count * sizeof(mcgqKState_t)));
  d->outs = calloc((size_t)count, sizeof *d->outs);
  if (!d->outs) return mcgq_fail(mcgqOutOfMemory, "%s: no host memory", fn);
  float *slot = d->d_accum_next;
  for (int i = 0; i < count; ++i) {
    if (layers[i].accum) {
      d->outs[i].accum_out = slot;
      slot += layers[i].n;
    }
    if (layers[i].kstate) d->outs[i].kstate_out = &d->d_kstate_next[i];
  }
  /* stats, then the size and the decode status in one allocation */
  size_t stats_bytes = (size_t)count * sizeof(mcgqLayerStats_t);
  size_t small = stats_bytes + sizeof(size_t) + sizeof(uint32_t);
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc((void **)&d->d_stats, small));
  MCGQ_CUDA_CHECK(fn, "cudaMallocHost", cudaMallocHost((void **)&d->h_stats, small));
  d->d_size = (size_t *)(void *)((char *)d->d_stats + stats_bytes);
  d->d_status = (uint32_t *)(void *)(d->d_size + 1);
  d->h_size = (size_t *)(void *)((char *)d->h_stats + stats_bytes);
  d->h_status = (uint32_t *)(void *)(d->h_size + 1);
  return mcgqSuccess;
}

static mcgqResult_t device_set_layers(mcgq_codec_t *c, const mcgqLayer_t *layers,
                                      int count, uint64_t total_n, char *detail,
                                      size_t detail_size) {
  device_codec_t *d = dev(c);
  free_buffers(d);
  d->count = count;
  d->total_n = total_n;
  mcgqResult_t res = count > 0 ? allocate(d, layers, count, total_n) : mcgqSuccess;
  if (res != mcgqSuccess) {
    snprintf(detail, detail_size, "%s", mcgqGetLastErrorDetail());
    free_buffers(d);
    d->count = 0;
  }
  return res;
}

static mcgqResult_t encode(device_codec_t *d, const mcgq_call_t *call) {
  cudaStream_t stream = (cudaStream_t)call->stream;
  MCGQ_CHECK(mcgq_encode_deferred_async(d->descs, d->count, d->outs, d->d_send,
                                        d->bound, d->d_size, d->d_stats,
                                        d->d_enc_temp, d->enc_temp_bytes,
                                        call->stream));
  d->prepared = 1;
  size_t small = (size_t)d->count * sizeof(mcgqLayerStats_t) + sizeof(size_t);
  MCGQ_CUDA_CHECK(kFn, "reading the encode status",
                  cudaMemcpyAsync(d->h_stats, d->d_stats, small,
                                  cudaMemcpyDeviceToHost, stream));
  return mcgqSuccess;
}

/* The live state was never written: dropping the scratch is all. */
static void device_discard(mcgq_codec_t *c, const mcgq_call_t *call) {
  (void)call;
  dev(c)->prepared = 0;
}

static mcgqResult_t device_prepare(mcgq_codec_t *c, const mcgqLayerDesc_t *descs,
                                   int count, size_t capacity,
                                   const mcgq_call_t *call, const void **send,
                                   size_t *send_bytes, mcgqLayerStats_t *stats) {
  device_codec_t *d = dev(c);
  if (capacity != 0 || count != d->count) {
    snprintf(call->detail, call->detail_size,
             "%s: internal: device codec asked for capacity %zu, %d layers", kFn,
             capacity, count);
    return mcgqInternalError;
  }
  d->descs = descs;
  mcgqResult_t res = to_call(call, encode(d, call));
  if (res == mcgqSuccess) res = wait_stream(call);
  if (res == mcgqSuccess) {
    memcpy(stats, d->h_stats, (size_t)count * sizeof *stats);
    for (int i = 0; i < count && res == mcgqSuccess; ++i)
      if (stats[i].status != mcgqSuccess) {
        res = (mcgqResult_t)stats[i].status;
        snprintf(call->detail, call->detail_size, "%s: layers[%d]: %s", kFn, i,
                 mcgqGetErrorString(res));
      }
  }
  if (res != mcgqSuccess) {
    device_discard(c, call);
    return res;
  }
  *send = d->d_send;
  *send_bytes = *d->h_size;
  return mcgqSuccess;
}

static mcgqResult_t device_reserve(mcgq_codec_t *c, size_t bytes, void **recv,
                                   const mcgq_call_t *call) {
  device_codec_t *d = dev(c);
  if (bytes > d->recv_capacity) {
    /* exact sizes: the buffer grows to the largest step seen */
    cudaFree(d->d_recv);
    d->d_recv = NULL;
    d->recv_capacity = 0;
    cudaError_t err = cudaMalloc(&d->d_recv, bytes);
    if (err != cudaSuccess) {
      snprintf(call->detail, call->detail_size,
               "%s: cannot allocate a %zu-byte receive buffer: %s", kFn, bytes,
               cudaGetErrorString(err));
      return err == cudaErrorMemoryAllocation ? mcgqOutOfMemory : mcgqCudaError;
    }
    d->recv_capacity = bytes;
  }
  *recv = d->d_recv;
  return mcgqSuccess;
}

static mcgqResult_t decode(device_codec_t *d, const void *const *in,
                           const size_t *in_bytes, int nranks,
                           const mcgq_call_t *call) {
  MCGQ_CHECK(mcgqDecodeAverageAsync(in, in_bytes, nranks, d->d_average, d->total_n,
                                    d->d_status, d->d_dec_temp, d->dec_temp_bytes,
                                    call->stream));
  MCGQ_CUDA_CHECK(kFn, "reading the decode status",
                  cudaMemcpyAsync(d->h_status, d->d_status, sizeof *d->h_status,
                                  cudaMemcpyDeviceToHost, (cudaStream_t)call->stream));
  return mcgqSuccess;
}

static mcgqResult_t write_grads(device_codec_t *d, const mcgqLayer_t *layers,
                                int count, cudaStream_t stream) {
  const float *src = d->d_average;
  for (int i = 0; i < count; ++i) {
    MCGQ_CUDA_CHECK(kFn, "writing the average",
                    cudaMemcpyAsync(layers[i].grad, src, (size_t)layers[i].n * 4,
                                    cudaMemcpyDeviceToDevice, stream));
    src += layers[i].n;
  }
  return mcgqSuccess;
}

static mcgqResult_t device_decode_average(mcgq_codec_t *c, const void *const *in,
                                          const size_t *in_bytes, int padded,
                                          int nranks, const mcgqLayer_t *layers,
                                          int count, const mcgq_call_t *call) {
  (void)padded; /* the device decoder reads each message's size itself */
  device_codec_t *d = dev(c);
  MCGQ_CHECK(to_call(call, decode(d, in, in_bytes, nranks, call)));
  MCGQ_CHECK(wait_stream(call));
  if (*d->h_status != 0) { /* the same bytes everywhere: every rank's failure */
    snprintf(call->detail, call->detail_size,
             "%s: decode of the gathered messages: %s", kFn,
             mcgqGetErrorString((mcgqResult_t)*d->h_status));
    return (mcgqResult_t)*d->h_status;
  }
  return to_call(call, write_grads(d, layers, count, (cudaStream_t)call->stream));
}

/* One launch: the scratch state of the layers that succeeded into the live
 * accumulators and K states, after the decode on the step's stream. */
static mcgqResult_t device_commit(mcgq_codec_t *c, const mcgq_call_t *call) {
  device_codec_t *d = dev(c);
  if (!d->prepared) return mcgqSuccess;
  d->prepared = 0;
  return to_call(call, mcgq_encode_commit_async(d->descs, d->count, d->d_enc_temp,
                                                d->enc_temp_bytes, call->stream));
}

static void device_destroy(mcgq_codec_t *c) {
  device_codec_t *d = dev(c);
  if (!d) return;
  free_buffers(d);
  free(d);
}

/* No sharded modes yet (NULL): mcgqCommSetExchangeMode refuses them on a
 * device communicator with mcgqInvalidUsage. */
static const mcgq_codec_ops_t kDeviceCodec = {
    "device",      0,           device_set_layers, device_prepare, device_reserve,
    device_decode_average, device_commit, device_discard, device_destroy,
    NULL,          NULL,        NULL,              NULL};

mcgqResult_t mcgq_codec_device_create(int nranks, mcgq_codec_t **codec) {
  device_codec_t *d = calloc(1, sizeof *d);
  if (!d) return mcgq_fail(mcgqOutOfMemory, "mcgqCommInit: no host memory");
  d->base.ops = &kDeviceCodec;
  d->nranks = nranks;
  *codec = &d->base;
  return mcgqSuccess;
}

#else /* !MCGQ_HAVE_CUDA */

mcgqResult_t mcgq_codec_device_create(int nranks, mcgq_codec_t **codec) {
  (void)nranks;
  *codec = NULL;
  return mcgq_fail(mcgqInvalidUsage,
                   "mcgqCommInit: payloads in device memory need libmcgq built "
                   "with CUDA");
}

#endif /* MCGQ_HAVE_CUDA */
