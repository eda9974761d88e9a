/* gpu_api.c - the public GPU entry points (mcgq.h, "GPU path"): host-side
 * validation of everything the host can check, then the launchers of
 * kernels/launch.h on the caller's stream only.  No device allocation, no
 * synchronization, no other stream: an encode+decode can be captured in a
 * CUDA graph.  What depends on the data lands in device-side status words.
 *
 * Built without CUDA (no MCGQ_HAVE_CUDA) the same entry points exist and
 * return mcgqInvalidUsage, so the ABI does not depend on the build. */
#include <stdint.h>

#include "internal.h"

#ifdef MCGQ_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "gpu/cuda_check.h"
#include "launch.h"
#include "tuning.h"

int mcgqGpuAvailable(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky-free error of a missing driver */
    return 0;
  }
  return count > 0;
}

/* ---------------------------------------------------------------- encode */

/* mcgq_check_desc reads kstate->k to resolve N, but here kstate is device
 * memory: a dynamic-K layer is checked through a copy whose kstate is a host
 * stand-in with K = cfg.k (the device resolves the real N and refuses a bad
 * state in stats[i].status); the real pointer gets the overlap checks. */
static mcgqResult_t check_gpu_desc(const char *fn, const mcgqLayerDesc_t *d, int i,
                                   uint64_t *N) {
  if (!d || d->struct_size < sizeof(mcgqLayerDesc_t) || !d->cfg.dynamic_k || !d->kstate)
    return mcgq_check_desc(fn, d, i, N);
  mcgqLayerDesc_t copy = *d;
  mcgqKState_t stand_in = {d->cfg.k, 0.0, 0, 0};
  copy.kstate = &stand_in;
  MCGQ_CHECK(mcgq_check_desc(fn, &copy, i, N));
  size_t bytes = (size_t)d->n * sizeof(float);
  size_t g_bytes = (size_t)d->n * mcgq_dtype_bytes(d->cfg.dtype);
  if (mcgq_ranges_overlap(d->kstate, sizeof(mcgqKState_t), d->g, g_bytes) ||
      mcgq_ranges_overlap(d->kstate, sizeof(mcgqKState_t), d->accum, bytes))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d].kstate overlaps the layer's g or accum", fn, i);
  return mcgqSuccess;
}

/* The launcher's view of a validated descriptor (N resolved on the host;
 * a dynamic-K layer's N is resolved again on the device from its state);
 * its place in the tile grids is set by mcgq_gpu_encode_shape_add. */
static void gpu_layer_from_desc(const mcgqLayerDesc_t *d, uint64_t N,
                                mcgq_gpu_layer_t *L) {
  L->g = d->g;
  L->accum = d->accum;
  L->accum_out = NULL; /* deferred state: set by gpu_layers_of */
  L->kstate_out = NULL;
  L->n = d->n;
  L->samples = N;
  L->k = d->cfg.samples ? (double)N / (double)d->n : d->cfg.k;
  L->u = d->u;
  L->accumulate = d->cfg.accumulate;
  L->algo = d->cfg.algo;
  L->kstate = d->kstate;
  L->dynamic_k = d->cfg.dynamic_k != 0;
  L->dtype = d->cfg.dtype;
  L->k_min = d->cfg.k_min;
  L->k_max = d->cfg.k_max;
  L->delta_k = d->cfg.delta_k;
  L->first_tile = 0;
  L->first_sample_tile = 0;
}

/* Descriptors valid for the GPU path; places every layer in the call's
 * tile grids and sums what sizes the scratch (kernels/launch.h). */
static mcgqResult_t check_gpu_layers(const char *fn, const mcgqLayerDesc_t *layers,
                                     int count, mcgq_gpu_encode_shape_t *shape) {
  if (!layers) return mcgq_fail(mcgqInvalidArgument, "%s: layers is NULL", fn);
  if (count < 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: count = %d is not >= 1", fn, count);
  mcgq_gpu_encode_shape_init(shape, count, 0);
  for (int i = 0; i < count; ++i) {
    const mcgqLayerDesc_t *d = mcgq_desc_at(layers, i);
    uint64_t N = 0;
    MCGQ_CHECK(check_gpu_desc(fn, d, i, &N));
    if (d->cfg.algo != MCGQ_ALGO_FUSED && d->cfg.algo != MCGQ_ALGO_SAMPLE)
      return mcgq_fail(mcgqInvalidArgument, "%s: layers[%d].cfg.algo = %d is not "
                       "MCGQ_ALGO_FUSED or MCGQ_ALGO_SAMPLE", fn, i, (int)d->cfg.algo);
    mcgq_gpu_layer_t L;
    gpu_layer_from_desc(d, N, &L);
    if (mcgq_gpu_encode_shape_add(shape, &L) != 0)
      return mcgq_fail(mcgqInvalidArgument, "%s: layers[0..%d] hold more elements than "
                       "one encode call can grid (2^31 - 1 tiles of %d): split the call",
                       fn, i, MCGQ_TUNE_TILE_ELEMENTS);
    shape->checksum |= d->cfg.checksum != 0;
  }
  return mcgqSuccess;
}

mcgqResult_t mcgqEncodeGetTempSize(const mcgqLayerDesc_t *layers, int count,
                                   size_t *temp_bytes) {
  static const char fn[] = "mcgqEncodeGetTempSize";
  if (!temp_bytes) return mcgq_fail(mcgqInvalidArgument, "%s: temp_bytes is NULL", fn);
  mcgq_gpu_encode_shape_t shape;
  MCGQ_CHECK(check_gpu_layers(fn, layers, count, &shape));
  MCGQ_CUDA_CHECK(fn, "sizing the scratch",
                  mcgq_gpu_encode_temp_bytes(&shape, temp_bytes));
  mcgq_clear_error();
  return mcgqSuccess;
}

static mcgqResult_t check_encode_buffers(const char *fn, const mcgqLayerDesc_t *layers,
                                         int count, const void *d_out,
                                         size_t out_capacity, const size_t *d_out_bytes,
                                         const mcgqLayerStats_t *d_stats,
                                         const void *d_temp, size_t temp_bytes) {
  if (!d_out || !d_out_bytes || !d_stats || !d_temp)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: d_out, d_out_bytes, d_stats and d_temp must not be NULL", fn);
  if (((uintptr_t)d_out & 7u) != 0 || ((uintptr_t)d_temp & 255u) != 0)
    return mcgq_fail(mcgqInvalidArgument, "%s: d_out must be 8-byte and d_temp "
                     "256-byte aligned (cudaMalloc memory is)", fn);
  size_t stats_bytes = (size_t)count * sizeof(mcgqLayerStats_t);
  for (int i = 0; i < count; ++i) {
    const mcgqLayerDesc_t *d = mcgq_desc_at(layers, i);
    const void *bufs[2] = {d->g, d->accum};
    const size_t sizes[2] = {(size_t)d->n * mcgq_dtype_bytes(d->cfg.dtype),
                             (size_t)d->n * sizeof(float)};
    for (int b = 0; b < 2; ++b)
      if (mcgq_ranges_overlap(bufs[b], sizes[b], d_out, out_capacity) ||
          mcgq_ranges_overlap(bufs[b], sizes[b], d_temp, temp_bytes) ||
          mcgq_ranges_overlap(bufs[b], sizes[b], d_stats, stats_bytes))
        return mcgq_fail(mcgqInvalidArgument, "%s: layers[%d]'s buffers overlap "
                         "d_out, d_temp or d_stats", fn, i);
  }
  if (mcgq_ranges_overlap(d_out, out_capacity, d_temp, temp_bytes) ||
      mcgq_ranges_overlap(d_out, out_capacity, d_stats, stats_bytes) ||
      mcgq_ranges_overlap(d_temp, temp_bytes, d_stats, stats_bytes))
    return mcgq_fail(mcgqInvalidArgument, "%s: d_out, d_temp and d_stats overlap", fn);
  return mcgqSuccess;
}

/* Deferred state (internal.h): an output only where the layer has the
 * state, and apart from the layer's and the call's buffers. */
static mcgqResult_t check_state_outs(const char *fn, const mcgqLayerDesc_t *layers,
                                     int count, const mcgq_state_out_t *outs,
                                     const void *d_out, size_t out_capacity,
                                     const void *d_temp, size_t temp_bytes) {
  if (!outs) return mcgqSuccess;
  for (int i = 0; i < count; ++i) {
    const mcgqLayerDesc_t *d = mcgq_desc_at(layers, i);
    const float *acc = outs[i].accum_out;
    const mcgqKState_t *ks = outs[i].kstate_out;
    if ((acc && !d->accum) || (ks && !d->kstate))
      return mcgq_fail(mcgqInvalidArgument, "%s: outs[%d] gives a deferred %s for a "
                       "layer without one", fn, i, acc && !d->accum ? "accumulator"
                                                                    : "K state");
    const size_t bytes = (size_t)d->n * sizeof(float), kbytes = sizeof(mcgqKState_t);
    const size_t g_bytes = (size_t)d->n * mcgq_dtype_bytes(d->cfg.dtype);
    if (acc && (mcgq_ranges_overlap(acc, bytes, d->g, g_bytes) ||
                mcgq_ranges_overlap(acc, bytes, d->accum, bytes) ||
                mcgq_ranges_overlap(acc, bytes, d->kstate, d->kstate ? kbytes : 0) ||
                mcgq_ranges_overlap(acc, bytes, d_out, out_capacity) ||
                mcgq_ranges_overlap(acc, bytes, d_temp, temp_bytes)))
      return mcgq_fail(mcgqInvalidArgument, "%s: outs[%d].accum_out overlaps the "
                       "layer's buffers, d_out or d_temp", fn, i);
    if (ks && (mcgq_ranges_overlap(ks, kbytes, d->kstate, kbytes) ||
               mcgq_ranges_overlap(ks, kbytes, d->g, g_bytes) ||
               mcgq_ranges_overlap(ks, kbytes, d->accum, d->accum ? bytes : 0) ||
               mcgq_ranges_overlap(ks, kbytes, d_temp, temp_bytes)))
      return mcgq_fail(mcgqInvalidArgument, "%s: outs[%d].kstate_out overlaps the "
                       "layer's buffers or d_temp", fn, i);
  }
  return mcgqSuccess;
}

/* temp_bytes holds the scratch that the call's shape carves. */
static mcgqResult_t check_encode_temp(const char *fn, const mcgq_gpu_encode_shape_t *shape,
                                      size_t temp_bytes) {
  size_t need = 0;
  MCGQ_CUDA_CHECK(fn, "sizing the scratch", mcgq_gpu_encode_temp_bytes(shape, &need));
  if (temp_bytes < need)
    return mcgq_fail(mcgqInvalidArgument, "%s: temp_bytes = %zu is below "
                     "mcgqEncodeGetTempSize = %zu", fn, temp_bytes, need);
  return mcgqSuccess;
}

/* The launcher's view of layers [first, first + chunk), placed in the
 * call's tile grids like check_gpu_layers placed them (validated there:
 * this only resolves N again), with their deferred outputs if any. */
static mcgqResult_t gpu_layers_of(const char *fn, const mcgqLayerDesc_t *layers,
                                  const mcgq_state_out_t *outs, int first, int chunk,
                                  mcgq_gpu_encode_shape_t *placed, mcgq_gpu_layer_t *out) {
  for (int i = 0; i < chunk; ++i) {
    const mcgqLayerDesc_t *d = mcgq_desc_at(layers, first + i);
    uint64_t N = 0;
    MCGQ_CHECK(check_gpu_desc(fn, d, first + i, &N));
    gpu_layer_from_desc(d, N, &out[i]);
    if (outs) {
      out[i].accum_out = outs[first + i].accum_out;
      out[i].kstate_out = outs[first + i].kstate_out;
    }
    (void)mcgq_gpu_encode_shape_add(placed, &out[i]); /* fitted in check_gpu_layers */
  }
  return mcgqSuccess;
}

/* Enqueues the encode (kernels/launch.h): the layer table a chunk at a time
 * (each chunk converted on the stack, so nothing is allocated), the
 * segmented stages, and the per-layer W1 stages of dynamic-K layers. */
static mcgqResult_t encode_enqueue(const char *fn, const mcgqLayerDesc_t *layers,
                                   const mcgq_state_out_t *outs,
                                   const mcgq_gpu_encode_shape_t *shape, void *d_out,
                                   size_t *d_out_bytes, mcgqLayerStats_t *d_stats,
                                   void *d_temp, mcgqStream_t stream) {
  mcgq_gpu_layer_t chunk[MCGQ_GPU_TABLE_CHUNK];
  mcgq_gpu_encode_shape_t placed;
  const int count = shape->count;
  int any_dynamic = 0, err = 0;
  mcgq_gpu_encode_shape_init(&placed, count, shape->checksum);
  for (int first = 0; first < count && !err; first += MCGQ_GPU_TABLE_CHUNK) {
    int n = count - first < MCGQ_GPU_TABLE_CHUNK ? count - first : MCGQ_GPU_TABLE_CHUNK;
    MCGQ_CHECK(gpu_layers_of(fn, layers, outs, first, n, &placed, chunk));
    for (int i = 0; i < n; ++i) any_dynamic |= chunk[i].dynamic_k;
    err = mcgq_gpu_encode_table(chunk, first, n, shape, d_temp, stream);
  }
  if (!err) err = mcgq_gpu_encode_quantize(shape, d_temp, stream);
  if (any_dynamic) {
    mcgq_gpu_encode_shape_init(&placed, count, shape->checksum);
    for (int i = 0; i < count && !err; ++i) {
      MCGQ_CHECK(gpu_layers_of(fn, layers, outs, i, 1, &placed, chunk));
      if (chunk[0].dynamic_k) err = mcgq_gpu_encode_dynamic_k(&chunk[0], i, shape, d_temp,
                                                              stream);
    }
  }
  if (!err)
    err = mcgq_gpu_encode_finish(shape, d_out, d_out_bytes, d_stats, d_temp, stream);
  MCGQ_CUDA_CHECK(fn, "launching the encode", err);
  return mcgqSuccess;
}

static mcgqResult_t encode_async(const char *fn, const mcgqLayerDesc_t *layers,
                                 int count, const mcgq_state_out_t *outs, void *d_out,
                                 size_t out_capacity, size_t *d_out_bytes,
                                 mcgqLayerStats_t *d_stats, void *d_temp,
                                 size_t temp_bytes, mcgqStream_t stream) {
  mcgq_gpu_encode_shape_t shape;
  MCGQ_CHECK(check_gpu_layers(fn, layers, count, &shape));
  size_t bound = 0;
  if (mcgqEncodeGetMaxOutputSize(layers, count, &bound) != mcgqSuccess)
    return mcgq_fail(mcgqInvalidArgument, "%s: %s", fn, mcgqGetLastErrorDetail());
  if (out_capacity < bound)
    return mcgq_fail(mcgqCapacityExceeded, "%s: out_capacity = %zu is below "
                     "mcgqEncodeGetMaxOutputSize = %zu", fn, out_capacity, bound);
  MCGQ_CHECK(check_encode_buffers(fn, layers, count, d_out, out_capacity, d_out_bytes,
                                  d_stats, d_temp, temp_bytes));
  MCGQ_CHECK(check_state_outs(fn, layers, count, outs, d_out, out_capacity, d_temp,
                              temp_bytes));
  MCGQ_CHECK(check_encode_temp(fn, &shape, temp_bytes));
  MCGQ_CHECK(encode_enqueue(fn, layers, outs, &shape, d_out, d_out_bytes, d_stats,
                            d_temp, stream));
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqEncodeAsync(const mcgqLayerDesc_t *layers, int count, void *d_out,
                             size_t out_capacity, size_t *d_out_bytes,
                             mcgqLayerStats_t *d_stats, void *d_temp,
                             size_t temp_bytes, mcgqStream_t stream) {
  return encode_async("mcgqEncodeAsync", layers, count, NULL, d_out, out_capacity,
                      d_out_bytes, d_stats, d_temp, temp_bytes, stream);
}

mcgqResult_t mcgq_encode_deferred_async(const mcgqLayerDesc_t *layers, int count,
                                        const mcgq_state_out_t *outs, void *d_out,
                                        size_t out_capacity, size_t *d_out_bytes,
                                        mcgqLayerStats_t *d_stats, void *d_temp,
                                        size_t temp_bytes, mcgqStream_t stream) {
  return encode_async("mcgq_encode_deferred_async", layers, count, outs, d_out,
                      out_capacity, d_out_bytes, d_stats, d_temp, temp_bytes, stream);
}

/* The deferred encode's layers give the shape, and so where its table and
 * status words lie in d_temp (the same carve). */
mcgqResult_t mcgq_encode_commit_async(const mcgqLayerDesc_t *layers, int count,
                                      void *d_temp, size_t temp_bytes,
                                      mcgqStream_t stream) {
  static const char fn[] = "mcgq_encode_commit_async";
  mcgq_gpu_encode_shape_t shape;
  MCGQ_CHECK(check_gpu_layers(fn, layers, count, &shape));
  if (!d_temp || ((uintptr_t)d_temp & 255u) != 0)
    return mcgq_fail(mcgqInvalidArgument, "%s: d_temp is NULL or not 256-byte "
                     "aligned", fn);
  MCGQ_CHECK(check_encode_temp(fn, &shape, temp_bytes));
  MCGQ_CUDA_CHECK(fn, "launching the state commit",
                  mcgq_gpu_encode_commit_state(&shape, d_temp, stream));
  mcgq_clear_error();
  return mcgqSuccess;
}

/* ---------------------------------------------------------------- decode */

static mcgqResult_t check_decode_sizes(const char *fn, int nranks, uint64_t n) {
  if (nranks < 1 || nranks > MCGQ_TUNE_MAX_DECODE_RANKS)
    return mcgq_fail(mcgqInvalidArgument, "%s: nranks = %d is not in [1, %d]", fn,
                     nranks, MCGQ_TUNE_MAX_DECODE_RANKS);
  if (n == 0) return mcgq_fail(mcgqInvalidArgument, "%s: n = 0", fn);
  return mcgqSuccess;
}

static mcgqResult_t decode_temp_size(const char *fn, int nranks, uint64_t n,
                                     size_t in_capacity, int32_t out_dtype,
                                     size_t *temp_bytes) {
  if (!temp_bytes) return mcgq_fail(mcgqInvalidArgument, "%s: temp_bytes is NULL", fn);
  MCGQ_CHECK(check_decode_sizes(fn, nranks, n));
  MCGQ_CHECK(mcgq_check_dtype(fn, "out_dtype", out_dtype));
  mcgq_gpu_decode_temp_bytes(nranks, n, in_capacity, out_dtype, temp_bytes);
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqDecodeAverageGetTempSize(int nranks, uint64_t n, size_t in_capacity,
                                          size_t *temp_bytes) {
  return decode_temp_size("mcgqDecodeAverageGetTempSize", nranks, n, in_capacity,
                          MCGQ_DTYPE_F32, temp_bytes);
}

mcgqResult_t mcgqDecodeAverageGetTempSizeTyped(int nranks, uint64_t n, size_t in_capacity,
                                               int32_t out_dtype, size_t *temp_bytes) {
  return decode_temp_size("mcgqDecodeAverageGetTempSizeTyped", nranks, n, in_capacity,
                          out_dtype, temp_bytes);
}

static mcgqResult_t check_decode_buffers(const char *fn, const void *const *d_in,
                                         const size_t *d_in_bytes, int nranks,
                                         const void *d_out, size_t out_bytes,
                                         const uint32_t *d_status, const void *d_temp,
                                         size_t *in_capacity) {
  if (!d_in || !d_in_bytes)
    return mcgq_fail(mcgqInvalidArgument, "%s: d_in or d_in_bytes is NULL", fn);
  if (!d_out || !d_status || !d_temp)
    return mcgq_fail(mcgqInvalidArgument, "%s: d_out, d_status and d_temp must not "
                     "be NULL", fn);
  if (((uintptr_t)d_temp & 255u) != 0)
    return mcgq_fail(mcgqInvalidArgument, "%s: d_temp must be 256-byte aligned", fn);
  *in_capacity = 0;
  for (int r = 0; r < nranks; ++r) {
    if (!d_in[r]) return mcgq_fail(mcgqInvalidArgument, "%s: d_in[%d] is NULL", fn, r);
    if (mcgq_ranges_overlap(d_in[r], d_in_bytes[r], d_out, out_bytes))
      return mcgq_fail(mcgqInvalidArgument, "%s: d_out overlaps d_in[%d]", fn, r);
    if (d_in_bytes[r] > *in_capacity) *in_capacity = d_in_bytes[r];
  }
  return mcgqSuccess;
}

static mcgqResult_t decode_average(const char *fn, const void *const *d_in,
                                   const size_t *d_in_bytes, int nranks, void *d_out,
                                   int32_t out_dtype, uint64_t n, uint32_t *d_status,
                                   void *d_temp, size_t temp_bytes, mcgqStream_t stream) {
  MCGQ_CHECK(check_decode_sizes(fn, nranks, n));
  MCGQ_CHECK(mcgq_check_dtype(fn, "out_dtype", out_dtype));
  const size_t value_bytes = mcgq_dtype_bytes(out_dtype);
  size_t out_bytes = n > SIZE_MAX / value_bytes ? SIZE_MAX : (size_t)n * value_bytes;
  size_t in_capacity = 0;
  MCGQ_CHECK(check_decode_buffers(fn, d_in, d_in_bytes, nranks, d_out, out_bytes, d_status,
                                  d_temp, &in_capacity));
  size_t need = 0;
  mcgq_gpu_decode_temp_bytes(nranks, n, in_capacity, out_dtype, &need);
  if (temp_bytes < need)
    return mcgq_fail(mcgqInvalidArgument, "%s: temp_bytes = %zu is below the %zu "
                     "bytes these messages need (the GetTempSize call with the "
                     "largest d_in_bytes and the same output type)", fn, temp_bytes, need);
  int err = mcgq_gpu_decode_average(d_in, d_in_bytes, nranks, d_out, out_dtype, n,
                                    in_capacity, d_status, d_temp, temp_bytes, stream);
  MCGQ_CUDA_CHECK(fn, "launching the decode", err);
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqDecodeAverageAsync(const void *const *d_in, const size_t *d_in_bytes,
                                    int nranks, float *d_out, uint64_t n,
                                    uint32_t *d_status, void *d_temp, size_t temp_bytes,
                                    mcgqStream_t stream) {
  return decode_average("mcgqDecodeAverageAsync", d_in, d_in_bytes, nranks, d_out,
                        MCGQ_DTYPE_F32, n, d_status, d_temp, temp_bytes, stream);
}

mcgqResult_t mcgqDecodeAverageAsyncTyped(const void *const *d_in, const size_t *d_in_bytes,
                                         int nranks, void *d_out, int32_t out_dtype,
                                         uint64_t n, uint32_t *d_status, void *d_temp,
                                         size_t temp_bytes, mcgqStream_t stream) {
  return decode_average("mcgqDecodeAverageAsyncTyped", d_in, d_in_bytes, nranks, d_out,
                        out_dtype, n, d_status, d_temp, temp_bytes, stream);
}

#else /* !MCGQ_HAVE_CUDA */

static mcgqResult_t no_cuda(const char *fn) {
  return mcgq_fail(mcgqInvalidUsage, "%s: libmcgq was built without CUDA", fn);
}

int mcgqGpuAvailable(void) { return 0; }

mcgqResult_t mcgqEncodeGetTempSize(const mcgqLayerDesc_t *layers, int count,
                                   size_t *temp_bytes) {
  (void)layers; (void)count; (void)temp_bytes;
  return no_cuda("mcgqEncodeGetTempSize");
}

mcgqResult_t mcgqEncodeAsync(const mcgqLayerDesc_t *layers, int count, void *d_out,
                             size_t out_capacity, size_t *d_out_bytes,
                             mcgqLayerStats_t *d_stats, void *d_temp,
                             size_t temp_bytes, mcgqStream_t stream) {
  (void)layers; (void)count; (void)d_out; (void)out_capacity; (void)d_out_bytes;
  (void)d_stats; (void)d_temp; (void)temp_bytes; (void)stream;
  return no_cuda("mcgqEncodeAsync");
}

mcgqResult_t mcgq_encode_deferred_async(const mcgqLayerDesc_t *layers, int count,
                                        const mcgq_state_out_t *outs, void *d_out,
                                        size_t out_capacity, size_t *d_out_bytes,
                                        mcgqLayerStats_t *d_stats, void *d_temp,
                                        size_t temp_bytes, mcgqStream_t stream) {
  (void)layers; (void)count; (void)outs; (void)d_out; (void)out_capacity;
  (void)d_out_bytes; (void)d_stats; (void)d_temp; (void)temp_bytes; (void)stream;
  return no_cuda("mcgq_encode_deferred_async");
}

mcgqResult_t mcgq_encode_commit_async(const mcgqLayerDesc_t *layers, int count,
                                      void *d_temp, size_t temp_bytes,
                                      mcgqStream_t stream) {
  (void)layers; (void)count; (void)d_temp; (void)temp_bytes; (void)stream;
  return no_cuda("mcgq_encode_commit_async");
}

mcgqResult_t mcgqDecodeAverageGetTempSizeTyped(int nranks, uint64_t n, size_t in_capacity,
                                               int32_t out_dtype, size_t *temp_bytes) {
  (void)nranks; (void)n; (void)in_capacity; (void)out_dtype; (void)temp_bytes;
  return no_cuda("mcgqDecodeAverageGetTempSizeTyped");
}

mcgqResult_t mcgqDecodeAverageAsyncTyped(const void *const *d_in, const size_t *d_in_bytes,
                                         int nranks, void *d_out, int32_t out_dtype,
                                         uint64_t n, uint32_t *d_status, void *d_temp,
                                         size_t temp_bytes, mcgqStream_t stream) {
  (void)d_in; (void)d_in_bytes; (void)nranks; (void)d_out; (void)out_dtype; (void)n;
  (void)d_status; (void)d_temp; (void)temp_bytes; (void)stream;
  return no_cuda("mcgqDecodeAverageAsyncTyped");
}

mcgqResult_t mcgqDecodeAverageGetTempSize(int nranks, uint64_t n, size_t in_capacity,
                                          size_t *temp_bytes) {
  (void)nranks; (void)n; (void)in_capacity; (void)temp_bytes;
  return no_cuda("mcgqDecodeAverageGetTempSize");
}

mcgqResult_t mcgqDecodeAverageAsync(const void *const *d_in, const size_t *d_in_bytes,
                                    int nranks, float *d_out, uint64_t n,
                                    uint32_t *d_status, void *d_temp, size_t temp_bytes,
                                    mcgqStream_t stream) {
  (void)d_in; (void)d_in_bytes; (void)nranks; (void)d_out; (void)n; (void)d_status;
  (void)d_temp; (void)temp_bytes; (void)stream;
  return no_cuda("mcgqDecodeAverageAsync");
}

#endif /* MCGQ_HAVE_CUDA */
