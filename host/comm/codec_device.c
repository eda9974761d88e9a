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
 * Host synchronisations per step: two.  With a transport that gathers
 * device memory (allgather_device: NCCL, device callbacks that give it),
 * prepare_async reads nothing back, stage_block writes this rank's step
 * block on the device (the host's words, then the status flag and size
 * from the encode's stats: kernels/agreement.cu) and read_blocks waits
 * once for every rank's block and this rank's stats; otherwise prepare
 * waits for the stats and the host-block all-gather waits again.  Then
 * decode_average reads its status word (one); commit none.
 *
 * Sharded modes (comm_shard.c): prepare_messages encodes each owner's
 * message with deferred accumulators into a staging buffer (each at its
 * bound-spaced offset, as sizes are known only afterwards), reads the
 * stats and sizes back (one synchronisation) and packs the messages back
 * to back for the all-to-all; commit then copies the deferred
 * accumulators over the live ones, one copy per contiguous live range
 * (the shards of a layer are adjacent: one copy per layer, one for the
 * owner-side accumulator).  Staging and owner state are device memory.
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
#include "launch.h"

static const char kFn[] = "mcgqCommStep";
enum { kBlockRoom = 128 }; /* bytes per agreement block, at most */

/* One accumulator range that a sharded prepare updated in scratch: commit
 * copies scratch[offset, offset + n) of d_defer over live[0, n). */
typedef struct {
  float *live;
  size_t offset;
  uint64_t n;
} deferred_range_t;

/* What prepare_messages needs beyond the all-gather step's buffers, grown
 * on demand (the sizes settle after the first step of a mode):
 *   stage     the messages, each at a bound-spaced offset (encoded before
 *             their sizes are known), then packed back to back into packed;
 *   temp      the encodes' scratch (one message at a time);
 *   stats     per shard descriptor, then one size per message (device and
 *             pinned host);
 *   defer     the new accumulators of every prepare since the last commit
 *             or discard (the two-stage step prepares twice), with the
 *             live ranges they replace and per descriptor its output slot. */
typedef struct {
  void *d_stage, *d_packed, *d_temp;
  size_t stage_capacity, packed_capacity, temp_capacity;
  mcgqLayerStats_t *d_stats, *h_stats;
  size_t stats_capacity;      /* bytes of each */
  float *d_defer;
  size_t defer_capacity, defer_used; /* floats */
  deferred_range_t *ranges;
  int range_count, range_slots;
  mcgq_state_out_t *outs;
  int out_slots;
  size_t *offsets;            /* messages + 1 stage offsets */
  int offset_slots;
} shard_buffers_t;

typedef struct {
  mcgq_codec_t base;
  int nranks, count;
  int32_t dtype;              /* of every grad of the table (MCGQ_DTYPE_*) */
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
  /* The agreement on device (stage_block, read_blocks): this rank's block
   * after the gathered ones, device and pinned host, each
   * (nranks + 1) * kBlockRoom bytes, allocated at first use. */
  unsigned char *d_blocks, *h_blocks;
  int block_in_flight; /* staged, not yet read back (a step failed between) */
  shard_buffers_t shard;      /* the sharded modes' (prepare_messages) */
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
  cudaFree(d->d_blocks);
  cudaFreeHost(d->h_blocks);
  d->d_blocks = d->h_blocks = NULL;
  d->d_send = d->d_recv = d->d_enc_temp = d->d_dec_temp = NULL;
  d->d_average = d->d_accum_next = NULL;
  d->d_kstate_next = NULL;
  d->d_stats = NULL;
  d->h_stats = NULL;
  d->outs = NULL;
  d->recv_capacity = 0;
  d->prepared = 0;
  shard_buffers_t *b = &d->shard;
  cudaFree(b->d_stage);
  cudaFree(b->d_packed);
  cudaFree(b->d_temp);
  cudaFree(b->d_stats);
  cudaFreeHost(b->h_stats);
  cudaFree(b->d_defer);
  free(b->ranges);
  free(b->outs);
  free(b->offsets);
  memset(b, 0, sizeof *b);
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
    res = mcgqDecodeAverageGetTempSizeTyped(d->nranks, total_n, d->bound, d->dtype,
                                            &dec_temp);
  MCGQ_CHECK(res);
  d->enc_temp_bytes = enc_temp;
  d->dec_temp_bytes = dec_temp + 1; /* the allocation (never 0 bytes) */
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc(&d->d_send, d->bound));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc(&d->d_enc_temp, enc_temp + 1));
  MCGQ_CUDA_CHECK(fn, "cudaMalloc", cudaMalloc(&d->d_dec_temp, d->dec_temp_bytes));
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
  for (int i = 1; i < count; ++i) /* one typed decode writes the whole table */
    if (layers[i].cfg.dtype != layers[0].cfg.dtype) {
      snprintf(detail, detail_size,
               "mcgqCommSetLayers: layers[0].cfg.dtype = %d but layers[%d].cfg.dtype "
               "= %d: a device communicator takes one gradient dtype per table",
               (int)layers[0].cfg.dtype, i, (int)layers[i].cfg.dtype);
      return mcgqInvalidUsage; /* the old table and buffers stay */
    }
  /* The new table's buffers first: when they cannot be had, the old table
   * and its buffers stay (comm.c keeps the old table registered). */
  device_codec_t next;
  memset(&next, 0, sizeof next);
  next.base = d->base;
  next.nranks = d->nranks;
  next.dtype = count > 0 ? layers[0].cfg.dtype : MCGQ_DTYPE_F32;
  next.count = count;
  next.total_n = total_n;
  mcgqResult_t res = count > 0 ? allocate(&next, layers, count, total_n) : mcgqSuccess;
  if (res != mcgqSuccess) {
    snprintf(detail, detail_size, "%s", mcgqGetLastErrorDetail());
    free_buffers(&next);
    return res;
  }
  free_buffers(d);
  *d = next;
  return mcgqSuccess;
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
  device_codec_t *d = dev(c);
  d->prepared = 0;
  d->shard.range_count = 0;
  d->shard.defer_used = 0;
}

static mcgqResult_t device_prepare_async(mcgq_codec_t *c, const mcgqLayerDesc_t *descs,
                                         int count, const mcgq_call_t *call,
                                         const void **send) {
  device_codec_t *d = dev(c);
  if (count != d->count) {
    snprintf(call->detail, call->detail_size,
             "%s: internal: device codec asked for %d layers of %d", kFn, count,
             d->count);
    return mcgqInternalError;
  }
  d->descs = descs;
  MCGQ_CHECK(to_call(call, encode(d, call)));
  *send = d->d_send;
  return mcgqSuccess;
}

/* The prepared encode's outcome, once its stats reached the host: a
 * non-finite layer first (it outranks every other failure, as in the
 * agreement), else the first failing layer; on failure the prepare is
 * dropped. */
static mcgqResult_t prepared_status(device_codec_t *d, const mcgq_call_t *call,
                                    size_t *send_bytes, mcgqLayerStats_t *stats) {
  memcpy(stats, d->h_stats, (size_t)d->count * sizeof *stats);
  int bad = -1;
  for (int i = 0; i < d->count; ++i) {
    if (stats[i].status == mcgqSuccess) continue;
    if (bad < 0 || (stats[i].status == mcgqNonFinite && stats[bad].status != mcgqNonFinite))
      bad = i;
  }
  if (bad >= 0) {
    const mcgqResult_t res = (mcgqResult_t)stats[bad].status;
    snprintf(call->detail, call->detail_size, "%s: layers[%d]: %s", kFn, bad,
             mcgqGetErrorString(res));
    device_discard(&d->base, call);
    return res;
  }
  *send_bytes = *d->h_size;
  return mcgqSuccess;
}

static mcgqResult_t device_prepare(mcgq_codec_t *c, const mcgqLayerDesc_t *descs,
                                   int count, size_t capacity,
                                   const mcgq_call_t *call, const void **send,
                                   size_t *send_bytes, mcgqLayerStats_t *stats) {
  if (capacity != 0) {
    snprintf(call->detail, call->detail_size,
             "%s: internal: device codec asked for capacity %zu", kFn, capacity);
    return mcgqInternalError;
  }
  MCGQ_CHECK(device_prepare_async(c, descs, count, call, send));
  mcgqResult_t res = wait_stream(call);
  if (res != mcgqSuccess) {
    device_discard(c, call);
    return res;
  }
  return prepared_status(dev(c), call, send_bytes, stats);
}

/* ------------------------------------------------- agreement on device */

static mcgqResult_t device_stage_block(mcgq_codec_t *c, const uint64_t *mine, int words,
                                       int prepared, int flag_word, int nranks,
                                       void **block, void **gathered,
                                       const mcgq_call_t *call) {
  device_codec_t *d = dev(c);
  const size_t bytes = (size_t)words * sizeof *mine;
  const size_t room = ((size_t)nranks + 1) * kBlockRoom;
  cudaStream_t stream = (cudaStream_t)call->stream;
  if (bytes > kBlockRoom || flag_word + 2 > words) {
    snprintf(call->detail, call->detail_size, "%s: internal: a %zu-byte block", kFn,
             bytes);
    return mcgqInternalError;
  }
  if (!d->d_blocks) {
    cudaError_t err = cudaMalloc((void **)&d->d_blocks, room);
    if (err == cudaSuccess) err = cudaMallocHost((void **)&d->h_blocks, room);
    if (err != cudaSuccess) {
      cudaFree(d->d_blocks);
      d->d_blocks = NULL;
      return to_call(call, mcgq_cuda_result((int)err, kFn, "allocating the block staging"));
    }
  }
  unsigned char *h_mine = d->h_blocks + (size_t)nranks * kBlockRoom;
  unsigned char *d_mine = d->d_blocks + (size_t)nranks * kBlockRoom;
  if (d->block_in_flight) MCGQ_CHECK(wait_stream(call)); /* its H2D reads h_mine */
  memcpy(h_mine, mine, bytes);
  d->block_in_flight = 1;
  cudaError_t err = cudaMemcpyAsync(d_mine, h_mine, bytes, cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess)
    return to_call(call, mcgq_cuda_result((int)err, kFn, "staging the block"));
  if (prepared) {
    err = (cudaError_t)mcgq_gpu_agreement_words(d->d_stats, d->count, d->d_size,
                                                (uint64_t *)(void *)d_mine + flag_word,
                                                call->stream);
    if (err != cudaSuccess)
      return to_call(call, mcgq_cuda_result((int)err, kFn, "the agreement words"));
  }
  *block = d_mine;
  *gathered = d->d_blocks;
  return mcgqSuccess;
}

static mcgqResult_t device_read_blocks(mcgq_codec_t *c, const void *gathered,
                                       uint64_t *blocks, size_t bytes, int prepared,
                                       mcgqResult_t *local, size_t *send_bytes,
                                       mcgqLayerStats_t *stats, const mcgq_call_t *call) {
  device_codec_t *d = dev(c);
  cudaError_t err = cudaMemcpyAsync(d->h_blocks, gathered, bytes, cudaMemcpyDeviceToHost,
                                    (cudaStream_t)call->stream);
  if (err != cudaSuccess)
    return to_call(call, mcgq_cuda_result((int)err, kFn, "reading the blocks"));
  MCGQ_CHECK(wait_stream(call)); /* the one host wait of the agreement */
  d->block_in_flight = 0;
  memcpy(blocks, d->h_blocks, bytes);
  if (prepared) *local = prepared_status(d, call, send_bytes, stats);
  return mcgqSuccess;
}

static size_t device_recv_capacity(const mcgq_codec_t *c) {
  return ((const device_codec_t *)c)->recv_capacity;
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

/* Device memory of at least `bytes` at *ptr (contents not kept). */
static mcgqResult_t grow(void **ptr, size_t *capacity, size_t bytes, const char *what) {
  if (bytes <= *capacity) return mcgqSuccess;
  cudaFree(*ptr);
  *ptr = NULL;
  *capacity = 0;
  MCGQ_CUDA_CHECK(kFn, what, cudaMalloc(ptr, bytes));
  *capacity = bytes;
  return mcgqSuccess;
}

/* n elements in all from nranks messages; the all-gather step's scratch
 * fits its own messages, a sharded step's decodes (other n, other sizes)
 * may grow it. */
static mcgqResult_t decode(device_codec_t *d, const void *const *in,
                           const size_t *in_bytes, int nranks, uint64_t n,
                           const mcgq_call_t *call) {
  size_t in_capacity = 0, need = 0;
  for (int r = 0; r < nranks; ++r)
    if (in_bytes[r] > in_capacity) in_capacity = in_bytes[r];
  MCGQ_CHECK(mcgqDecodeAverageGetTempSizeTyped(nranks, n, in_capacity, d->dtype,
                                                &need));
  MCGQ_CHECK(grow(&d->d_dec_temp, &d->dec_temp_bytes, need + 1,
                  "growing the decode scratch"));
  MCGQ_CHECK(mcgqDecodeAverageAsyncTyped(in, in_bytes, nranks, d->d_average, d->dtype,
                                         n, d->d_status, d->d_dec_temp,
                                         d->dec_temp_bytes, call->stream));
  MCGQ_CUDA_CHECK(kFn, "reading the decode status",
                  cudaMemcpyAsync(d->h_status, d->d_status, sizeof *d->h_status,
                                  cudaMemcpyDeviceToHost, (cudaStream_t)call->stream));
  return mcgqSuccess;
}

/* The averages, already in the table's dtype, into the grads. */
static mcgqResult_t write_grads(device_codec_t *d, const mcgqLayer_t *layers,
                                int count, cudaStream_t stream) {
  const size_t item = mcgq_dtype_bytes(d->dtype);
  const char *src = (const char *)d->d_average;
  for (int i = 0; i < count; ++i) {
    MCGQ_CUDA_CHECK(kFn, "writing the average",
                    cudaMemcpyAsync(layers[i].grad, src, (size_t)layers[i].n * item,
                                    cudaMemcpyDeviceToDevice, stream));
    src += (size_t)layers[i].n * item;
  }
  return mcgqSuccess;
}

static mcgqResult_t device_decode_average(mcgq_codec_t *c, const void *const *in,
                                          const size_t *in_bytes, int padded,
                                          int nranks, const mcgqLayer_t *layers,
                                          int count, const mcgq_call_t *call) {
  (void)padded; /* the device decoder reads each message's size itself */
  device_codec_t *d = dev(c);
  uint64_t n = 0; /* the whole table, or a sharded step's part of it */
  for (int i = 0; i < count; ++i) n += layers[i].n;
  MCGQ_CHECK(to_call(call, decode(d, in, in_bytes, nranks, n, call)));
  MCGQ_CHECK(wait_stream(call));
  if (*d->h_status != 0) { /* the same bytes everywhere: every rank's failure */
    snprintf(call->detail, call->detail_size,
             "%s: decode of the gathered messages: %s", kFn,
             mcgqGetErrorString((mcgqResult_t)*d->h_status));
    return (mcgqResult_t)*d->h_status;
  }
  return to_call(call, write_grads(d, layers, count, (cudaStream_t)call->stream));
}

/* The all-gather step's scratch state: one launch for the layers that
 * succeeded.  A sharded step's: one copy per range of live accumulator
 * that its prepares updated (every layer in them succeeded, or prepare
 * would have failed). */
static mcgqResult_t device_commit(mcgq_codec_t *c, const mcgq_call_t *call) {
  device_codec_t *d = dev(c);
  shard_buffers_t *b = &d->shard;
  mcgqResult_t res = mcgqSuccess;
  if (d->prepared)
    res = to_call(call, mcgq_encode_commit_async(d->descs, d->count, d->d_enc_temp,
                                                 d->enc_temp_bytes, call->stream));
  for (int k = 0; k < b->range_count && res == mcgqSuccess; ++k) {
    const deferred_range_t *r = &b->ranges[k];
    cudaError_t err = cudaMemcpyAsync(r->live, b->d_defer + r->offset,
                                      (size_t)r->n * sizeof(float),
                                      cudaMemcpyDeviceToDevice,
                                      (cudaStream_t)call->stream);
    res = to_call(call, mcgq_cuda_result((int)err, kFn, "committing an accumulator"));
  }
  device_discard(c, call);
  return res;
}

/* ------------------------------------------------------ sharded modes */

/* Host array of at least `count` elements of `size` bytes (contents kept). */
static int grow_host(void **array, int *slots, int count, size_t size) {
  if (count <= *slots) return 1;
  void *p = realloc(*array, (size_t)count * size);
  if (!p) return 0;
  *array = p;
  *slots = count;
  return 1;
}

/* Pinned host and device copies of `bytes` of stats and sizes. */
static mcgqResult_t grow_stats(shard_buffers_t *b, size_t bytes) {
  if (bytes <= b->stats_capacity) return mcgqSuccess;
  cudaFree(b->d_stats);
  cudaFreeHost(b->h_stats);
  b->d_stats = b->h_stats = NULL;
  b->stats_capacity = 0;
  MCGQ_CUDA_CHECK(kFn, "cudaMalloc", cudaMalloc((void **)&b->d_stats, bytes));
  MCGQ_CUDA_CHECK(kFn, "cudaMallocHost", cudaMallocHost((void **)&b->h_stats, bytes));
  b->stats_capacity = bytes;
  return mcgqSuccess;
}

/* Room for `more` floats of deferred accumulators after those held; the
 * held ones (an earlier prepare of this step) move with the buffer. */
static mcgqResult_t grow_defer(shard_buffers_t *b, uint64_t more,
                               const mcgq_call_t *call) {
  if (b->defer_used + more <= b->defer_capacity) return mcgqSuccess;
  size_t floats = b->defer_used + (size_t)more;
  float *p = NULL;
  MCGQ_CUDA_CHECK(kFn, "cudaMalloc", cudaMalloc((void **)&p, floats * sizeof(float)));
  cudaError_t err = cudaSuccess;
  if (b->defer_used)
    err = cudaMemcpyAsync(p, b->d_defer, b->defer_used * sizeof(float),
                          cudaMemcpyDeviceToDevice, (cudaStream_t)call->stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize((cudaStream_t)call->stream);
  if (err != cudaSuccess) {
    cudaFree(p);
    return mcgq_cuda_result((int)err, kFn, "moving the deferred accumulators");
  }
  cudaFree(b->d_defer);
  b->d_defer = p;
  b->defer_capacity = floats;
  return mcgqSuccess;
}

typedef struct {
  float *live;
  uint64_t n;
  int desc;
} accum_use_t;

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const accum_use_t *)a)->live;
  uintptr_t y = (uintptr_t)((const accum_use_t *)b)->live;
  return x < y ? -1 : x > y;
}

/* Gives every descriptor with an accumulator its output slot in d_defer
 * and records the live ranges they replace.  Slots are handed out in
 * address order of the live accumulators, so the shards of one layer
 * (adjacent in memory, spread over the messages) become one range and
 * commit copies once per layer. */
static mcgqResult_t defer_accumulators(shard_buffers_t *b, const mcgqLayerDesc_t *descs,
                                       int total, const mcgq_call_t *call) {
  int uses = 0;
  uint64_t floats = 0;
  for (int i = 0; i < total; ++i) {
    b->outs[i].accum_out = NULL;
    b->outs[i].kstate_out = NULL;
    if (descs[i].accum) {
      ++uses;
      floats += descs[i].n;
    }
  }
  if (uses == 0) return mcgqSuccess;
  accum_use_t *order = malloc((size_t)uses * sizeof *order);
  if (!order || !grow_host((void **)&b->ranges, &b->range_slots, b->range_count + uses,
                           sizeof *b->ranges)) {
    free(order);
    snprintf(call->detail, call->detail_size, "%s: no host memory", kFn);
    return mcgqOutOfMemory;
  }
  mcgqResult_t res = to_call(call, grow_defer(b, floats, call));
  if (res != mcgqSuccess) {
    free(order);
    return res;
  }
  int u = 0;
  for (int i = 0; i < total; ++i)
    if (descs[i].accum) order[u++] = (accum_use_t){descs[i].accum, descs[i].n, i};
  qsort(order, (size_t)uses, sizeof *order, by_address);
  const int held = b->range_count; /* an earlier prepare's ranges stay as they are */
  for (u = 0; u < uses; ++u) {
    const size_t offset = b->defer_used;
    b->outs[order[u].desc].accum_out = b->d_defer + offset;
    b->defer_used += (size_t)order[u].n;
    deferred_range_t *last = b->range_count > held ? &b->ranges[b->range_count - 1] : NULL;
    if (last && last->live + last->n == order[u].live && last->offset + last->n == offset)
      last->n += order[u].n;
    else
      b->ranges[b->range_count++] = (deferred_range_t){order[u].live, offset, order[u].n};
  }
  free(order);
  return mcgqSuccess;
}

/* The staging layout of `messages` messages: offsets[m] (256-byte aligned
 * for the encoder's word stores) and the largest encode scratch. */
static mcgqResult_t plan_messages(shard_buffers_t *b, const mcgqLayerDesc_t *descs,
                                  const int *first, int messages, size_t *temp,
                                  const mcgq_call_t *call) {
  size_t room = 0;
  *temp = 0;
  for (int m = 0; m < messages; ++m) {
    const int count = first[m + 1] - first[m];
    size_t bound = 0, t = 0;
    if (count > 0) {
      mcgqResult_t res = mcgqEncodeGetMaxOutputSize(descs + first[m], count, &bound);
      if (res == mcgqSuccess) res = mcgqEncodeGetTempSize(descs + first[m], count, &t);
      if (res != mcgqSuccess) return to_call(call, res);
    }
    b->offsets[m] = room;
    bound = (bound + 255u) & ~(size_t)255u;
    if (bound > SIZE_MAX - room) {
      snprintf(call->detail, call->detail_size, "%s: the shard messages exceed size_t",
               kFn);
      return mcgqOutOfMemory;
    }
    room += bound;
    if (t > *temp) *temp = t;
  }
  b->offsets[messages] = room;
  return mcgqSuccess;
}

/* The first failing layer of a prepare's stats, named by message. */
static mcgqResult_t first_failed_layer(const mcgqLayerStats_t *stats, const int *first,
                                       int messages, const mcgq_call_t *call) {
  for (int m = 0; m < messages; ++m)
    for (int i = first[m]; i < first[m + 1]; ++i)
      if (stats[i].status != mcgqSuccess) {
        mcgqResult_t res = (mcgqResult_t)stats[i].status;
        snprintf(call->detail, call->detail_size, "%s: message %d, layer %d: %s", kFn,
                 m, i - first[m], mcgqGetErrorString(res));
        return res;
      }
  return mcgqSuccess;
}

/* codec ops: the messages are encoded with deferred accumulators at their
 * staging offsets (sizes are known only after the encodes), their stats
 * and sizes read back (the step's one synchronisation here), then packed
 * back to back for the all-to-all. */
static mcgqResult_t encode_messages(device_codec_t *d, const mcgqLayerDesc_t *descs,
                                    const int *first, int messages,
                                    const mcgq_call_t *call) {
  shard_buffers_t *b = &d->shard;
  const int total = first[messages];
  cudaStream_t stream = (cudaStream_t)call->stream;
  size_t *d_sizes = (size_t *)(void *)(b->d_stats + total);
  for (int m = 0; m < messages; ++m) {
    const int count = first[m + 1] - first[m];
    if (count == 0) continue;
    MCGQ_CHECK(mcgq_encode_deferred_async(
        descs + first[m], count, b->outs + first[m], (char *)b->d_stage + b->offsets[m],
        b->offsets[m + 1] - b->offsets[m], d_sizes + m, b->d_stats + first[m], b->d_temp,
        b->temp_capacity, call->stream));
  }
  MCGQ_CUDA_CHECK(kFn, "reading the encode status",
                  cudaMemcpyAsync(b->h_stats, b->d_stats,
                                  (size_t)total * sizeof(mcgqLayerStats_t) +
                                      (size_t)messages * sizeof(size_t),
                                  cudaMemcpyDeviceToHost, stream));
  return mcgqSuccess;
}

static mcgqResult_t pack_messages(device_codec_t *d, int messages, const size_t *sizes,
                                  const mcgq_call_t *call) {
  shard_buffers_t *b = &d->shard;
  size_t at = 0;
  for (int m = 0; m < messages; ++m) {
    if (sizes[m] == 0) continue;
    MCGQ_CUDA_CHECK(kFn, "packing the shard messages",
                    cudaMemcpyAsync((char *)b->d_packed + at,
                                    (const char *)b->d_stage + b->offsets[m], sizes[m],
                                    cudaMemcpyDeviceToDevice, (cudaStream_t)call->stream));
    at += sizes[m];
  }
  return mcgqSuccess;
}

static mcgqResult_t device_prepare_messages(mcgq_codec_t *c, const mcgqLayerDesc_t *descs,
                                            const int *first, int messages,
                                            const mcgq_call_t *call, const void **send,
                                            size_t *sizes, mcgqLayerStats_t *stats) {
  device_codec_t *d = dev(c);
  shard_buffers_t *b = &d->shard;
  const int total = first[messages];
  for (int i = 0; i < total; ++i)
    if (descs[i].kstate) { /* the sharded plans refuse dynamic K */
      snprintf(call->detail, call->detail_size,
               "%s: internal: a sharded message with a K state", kFn);
      return mcgqInternalError;
    }
  if (!grow_host((void **)&b->offsets, &b->offset_slots, messages + 1, sizeof(size_t)) ||
      !grow_host((void **)&b->outs, &b->out_slots, total > 0 ? total : 1,
                 sizeof *b->outs)) {
    snprintf(call->detail, call->detail_size, "%s: no host memory", kFn);
    return mcgqOutOfMemory;
  }
  size_t temp = 0;
  MCGQ_CHECK(plan_messages(b, descs, first, messages, &temp, call));
  const size_t room = b->offsets[messages] > 0 ? b->offsets[messages] : 1;
  mcgqResult_t res = grow(&b->d_stage, &b->stage_capacity, room, "cudaMalloc");
  if (res == mcgqSuccess) res = grow(&b->d_packed, &b->packed_capacity, room, "cudaMalloc");
  if (res == mcgqSuccess) res = grow(&b->d_temp, &b->temp_capacity, temp + 1, "cudaMalloc");
  if (res == mcgqSuccess)
    res = grow_stats(b, (size_t)total * sizeof(mcgqLayerStats_t) +
                            (size_t)messages * sizeof(size_t));
  MCGQ_CHECK(to_call(call, res));
  /* this call's deferred ranges go on failure, an earlier prepare's stay */
  const int held_ranges = b->range_count;
  const size_t held_floats = b->defer_used;
  res = defer_accumulators(b, descs, total, call);
  if (res == mcgqSuccess) res = to_call(call, encode_messages(d, descs, first, messages, call));
  if (res == mcgqSuccess) res = wait_stream(call);
  if (res == mcgqSuccess) {
    memcpy(stats, b->h_stats, (size_t)total * sizeof *stats);
    memcpy(sizes, b->h_stats + total, (size_t)messages * sizeof *sizes);
    for (int m = 0; m < messages; ++m)
      if (first[m + 1] == first[m]) sizes[m] = 0; /* encoded nothing, wrote no size */
    res = first_failed_layer(stats, first, messages, call);
  }
  if (res == mcgqSuccess) res = to_call(call, pack_messages(d, messages, sizes, call));
  if (res != mcgqSuccess) {
    b->range_count = held_ranges;
    b->defer_used = held_floats;
    return res;
  }
  *send = b->d_packed;
  return mcgqSuccess;
}

/* Zero-filled device memory, ready before any later stream work. */
static mcgqResult_t device_alloc(mcgq_codec_t *c, size_t bytes, void **ptr,
                                 char *detail, size_t detail_size) {
  (void)c;
  const size_t size = bytes > 0 ? bytes : 1;
  void *p = NULL;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaSuccess) err = cudaMemset(p, 0, size);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  if (err != cudaSuccess) {
    cudaFree(p);
    snprintf(detail, detail_size, "mcgqComm: cannot allocate %zu bytes of device "
             "memory: %s", bytes, cudaGetErrorString(err));
    return err == cudaErrorMemoryAllocation ? mcgqOutOfMemory : mcgqCudaError;
  }
  *ptr = p;
  return mcgqSuccess;
}

static void device_release(mcgq_codec_t *c, void *ptr) {
  (void)c;
  cudaFree(ptr);
}

/* Between buffers of the codec: on the step's stream.  With host memory
 * (the owner state's checkpoint copies, outside any step): after all work
 * on the device, which may still be committing the last step on the
 * caller's stream, and complete when this returns. */
static mcgqResult_t device_copy(mcgq_codec_t *c, void *dst, const void *src,
                                size_t bytes, int direction, const mcgq_call_t *call) {
  (void)c;
  if (bytes == 0) return mcgqSuccess;
  cudaError_t err;
  if (direction == MCGQ_COPY_CODEC) {
    err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                          (cudaStream_t)call->stream);
  } else {
    err = cudaDeviceSynchronize();
    if (err == cudaSuccess)
      err = cudaMemcpy(dst, src, bytes, direction == MCGQ_COPY_FROM_HOST
                                            ? cudaMemcpyHostToDevice
                                            : cudaMemcpyDeviceToHost);
  }
  return to_call(call, mcgq_cuda_result((int)err, kFn, "copying a sharded buffer"));
}

static void device_destroy(mcgq_codec_t *c) {
  device_codec_t *d = dev(c);
  if (!d) return;
  free_buffers(d);
  free(d);
}

static const mcgq_codec_ops_t kDeviceCodec = {
    "device",      0,           device_set_layers, device_prepare, device_reserve,
    device_recv_capacity, device_decode_average, device_commit, device_discard, device_destroy,
    device_prepare_messages, device_alloc, device_release, device_copy,
    device_prepare_async, device_stage_block, device_read_blocks};

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
