/* dispatch.cu - the encode dispatch layer: carves the caller's scratch
 * deterministically and enqueues the stage kernels (quantize.cu, rle.cu,
 * container.cu) and the CUB reductions/scans of each layer on the caller's
 * stream.  CUB lives only here, in the wrapped namespace mcgq_cub
 * (CUB_WRAPPED_NAMESPACE, kernels/CMakeLists.txt).
 *
 * Passes of one layer (both algorithms):
 *   N (host, or dynamic K state) -> [accum add] -> magnitude bits -> cub::DeviceReduce::Max (m, non-finite)
 *   -> q_k -> cub::DeviceScan::InclusiveSum (C, uint64) -> scale
 *   -> counts (fused: closed form) | samples (card: search + atomics)
 *   -> [dynamic K: signed q -> 2 cub::DeviceMergeSort -> W1 sum -> K update]
 *   -> run markers -> cub max-scan -> measure -> plan (directory, stats)
 *   -> token bits -> cub::DeviceScan::ExclusiveSum -> zero region -> write
 *   -> [CRC32C] -> [accumulator commit]
 * Layers run one after the other and reuse the per-element scratch. */
#include <cub/device/device_merge_sort.cuh>
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_scan.cuh>
#include <stdint.h>

#include "encode_state.h"
#include "format.h"

namespace {

const size_t kAlign = 256;

size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

/* Own functors rather than cuda::maximum / cuda::std::less: CUDA 11.8's
 * libcu++ (the toolkit the GPU simulator builds with) has no
 * <cuda/functional>, and these compile the same with CUB 1.x and 2.x. */
struct max_u32 {
  __host__ __device__ __forceinline__ uint32_t operator()(uint32_t a, uint32_t b) const {
    return a > b ? a : b;
  }
};
struct less_i32 {
  __host__ __device__ __forceinline__ bool operator()(int32_t a, int32_t b) const {
    return a < b;
  }
};

/* The sorts of dynamic K's exact W1 are merge sorts: CUB's DeviceRadixSort
 * picks its onesweep kernels on sm_60+ for 32-bit keys, and those never
 * finish in the GPU simulator CI runs them on (scripts/gpusim.sh); a merge
 * sort gives the same sorted keys (keys only, so stability cannot show). */
cudaError_t sort_keys(void *temp, size_t &bytes, const int32_t *in, int32_t *out,
                      int64_t items, cudaStream_t s) {
  return mcgq_cub::cub::DeviceMergeSort::SortKeysCopy(temp, bytes, in, out, items,
                                                      less_i32{}, s);
}

/* Largest CUB scratch any stage needs for a layer of n elements. */
cudaError_t cub_temp_bytes(uint64_t n, size_t *bytes) {
  int64_t items = (int64_t)n;
  size_t a = 0, b = 0, c = 0, d = 0, r = 0;
  cudaError_t e = mcgq_cub::cub::DeviceReduce::Max(
      nullptr, a, (const uint32_t *)nullptr, (uint32_t *)nullptr, items);
  if (e != cudaSuccess) return e;
  e = mcgq_cub::cub::DeviceScan::InclusiveSum(nullptr, b, (const uint64_t *)nullptr,
                                              (uint64_t *)nullptr, items);
  if (e != cudaSuccess) return e;
  e = mcgq_cub::cub::DeviceScan::InclusiveScan(nullptr, c, (const uint32_t *)nullptr,
                                               (uint32_t *)nullptr,
                                               max_u32{}, items);
  if (e != cudaSuccess) return e;
  e = mcgq_cub::cub::DeviceScan::ExclusiveSum(nullptr, d, (const uint64_t *)nullptr,
                                              (uint64_t *)nullptr, items);
  if (e != cudaSuccess) return e;
  e = sort_keys(nullptr, r, nullptr, nullptr, items, 0);
  if (e != cudaSuccess) return e;
  d = d > r ? d : r;
  size_t most = a > b ? a : b;
  most = most > c ? most : c;
  *bytes = most > d ? most : d;
  return cudaSuccess;
}

struct encode_layout {
  mcgq_layer_state *states;
  mcgq_encode_scratch s;
  void *cub_temp;
  size_t cub_bytes;
  size_t total;
};

/* The one carve of d_temp; with base = NULL it only measures. */
cudaError_t carve(uint64_t max_n, int count, uint8_t *base, encode_layout *L) {
  size_t cub_bytes = 0;
  cudaError_t e = cub_temp_bytes(max_n, &cub_bytes);
  if (e != cudaSuccess) return e;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    uint8_t *p = base ? base + at : nullptr;
    at += align_up(bytes);
    return (void *)p;
  };
  L->states = (mcgq_layer_state *)take((size_t)count * sizeof(mcgq_layer_state));
  L->s.x = (float *)take(max_n * sizeof(float));
  L->s.wide_a = (uint64_t *)take(max_n * sizeof(uint64_t));
  L->s.wide_b = (uint64_t *)take(max_n * sizeof(uint64_t));
  L->s.g_int = (int32_t *)take(max_n * sizeof(int32_t));
  L->s.narrow_a = (uint32_t *)take(max_n * sizeof(uint32_t));
  L->s.narrow_b = (uint32_t *)take(max_n * sizeof(uint32_t));
  L->cub_temp = take(cub_bytes);
  L->cub_bytes = cub_bytes;
  L->total = at;
  return cudaSuccess;
}

#define MCGQ_CUDA_TRY(call)               \
  do {                                    \
    cudaError_t mcgq_e_ = (call);         \
    if (mcgq_e_ != cudaSuccess) return mcgq_e_; \
  } while (0)

/* q, C, the scale and g_int of one layer. */
cudaError_t quantize_layer(const mcgq_gpu_layer_t *L, mcgq_layer_state *st,
                           const encode_layout *lay, const float *x, cudaStream_t s) {
  const mcgq_encode_scratch &S = lay->s;
  size_t cub_bytes = lay->cub_bytes;
  int64_t items = (int64_t)L->n;
  mcgq_launch_magnitudes(x, L->n, S.narrow_a, s);
  MCGQ_CUDA_TRY(mcgq_cub::cub::DeviceReduce::Max(lay->cub_temp, cub_bytes, S.narrow_a,
                                                 &st->max_bits, items, s));
  mcgq_launch_check_max(st, s);
  mcgq_launch_fixed_point(x, L->n, st, S.wide_a, s);
  cub_bytes = lay->cub_bytes;
  MCGQ_CUDA_TRY(mcgq_cub::cub::DeviceScan::InclusiveSum(lay->cub_temp, cub_bytes,
                                                        S.wide_a, S.wide_b, items, s));
  mcgq_launch_check_scale(L, S.wide_b, st, s);
  if (L->algo == MCGQ_ALGO_SAMPLE)
    mcgq_launch_sample(L, x, S.wide_b, st, S.g_int, s);
  else
    mcgq_launch_counts(L, x, S.wide_b, st, S.g_int, s);
  return cudaGetLastError();
}

/* Dynamic K (Alg 3): exact W1 of x and g_int, then the K state update.
 * The sorted copies go to wide_a (2n int32), which the scan no longer needs. */
cudaError_t update_dynamic_k(const mcgq_gpu_layer_t *L, mcgq_layer_state *st,
                             const encode_layout *lay, const float *x, cudaStream_t s) {
  const mcgq_encode_scratch &S = lay->s;
  int64_t items = (int64_t)L->n;
  int32_t *a = (int32_t *)S.narrow_a;
  int32_t *a_sorted = (int32_t *)S.wide_a, *b_sorted = a_sorted + L->n;
  mcgq_launch_signed_fixed_point(x, L->n, st, a, s);
  size_t cub_bytes = lay->cub_bytes;
  MCGQ_CUDA_TRY(sort_keys(lay->cub_temp, cub_bytes, a, a_sorted, items, s));
  cub_bytes = lay->cub_bytes;
  MCGQ_CUDA_TRY(sort_keys(lay->cub_temp, cub_bytes, S.g_int, b_sorted, items, s));
  mcgq_launch_w1_sum(a_sorted, b_sorted, L->n, st, s);
  mcgq_launch_kstate_update(L, st, s);
  return cudaGetLastError();
}

/* Bitstream and container region of one layer. */
cudaError_t encode_layer(const mcgq_gpu_layer_t *L, int index, int count, int checksum,
                         const encode_layout *lay, uint8_t *msg,
                         mcgqLayerStats_t *stats, cudaStream_t s) {
  const mcgq_encode_scratch &S = lay->s;
  mcgq_layer_state *st = &lay->states[index];
  size_t cub_bytes = lay->cub_bytes;
  int64_t items = (int64_t)L->n;
  mcgq_launch_run_markers(S.g_int, L->n, S.narrow_a, s);
  MCGQ_CUDA_TRY(mcgq_cub::cub::DeviceScan::InclusiveScan(
      lay->cub_temp, cub_bytes, S.narrow_a, S.narrow_b, max_u32{}, items, s));
  mcgq_launch_measure(S.g_int, S.narrow_b, L->n, st, s);
  mcgq_launch_plan(L, index, lay->states, count, msg, stats, s);
  mcgq_launch_token_bits(S.g_int, S.narrow_b, L->n, st, S.wide_a, s);
  cub_bytes = lay->cub_bytes;
  MCGQ_CUDA_TRY(mcgq_cub::cub::DeviceScan::ExclusiveSum(lay->cub_temp, cub_bytes,
                                                        S.wide_a, S.wide_b, items, s));
  mcgq_launch_zero_region(mcgq_max_region_bytes(L->n), st, msg, s);
  mcgq_launch_write_tokens(S.g_int, S.narrow_b, S.wide_b, L->n, st, msg, s);
  if (checksum) mcgq_launch_crc(st, index, msg, s);
  return cudaGetLastError();
}

}  // namespace

extern "C" int mcgq_gpu_encode_temp_bytes(uint64_t max_n, int count, size_t *bytes) {
  encode_layout lay;
  cudaError_t e = carve(max_n, count, nullptr, &lay);
  if (e == cudaSuccess) *bytes = lay.total;
  return (int)e;
}

extern "C" int mcgq_gpu_encode_begin(int count, uint64_t max_n, void *d_temp,
                                     size_t temp_bytes, mcgqStream_t stream) {
  encode_layout lay;
  MCGQ_CUDA_TRY(carve(max_n, count, (uint8_t *)d_temp, &lay));
  if (lay.total > temp_bytes) return (int)cudaErrorInvalidValue;
  MCGQ_CUDA_TRY(cudaMemsetAsync(lay.states, 0, (size_t)count * sizeof(mcgq_layer_state),
                                (cudaStream_t)stream));
  return (int)cudaSuccess;
}

extern "C" int mcgq_gpu_encode_layer(const mcgq_gpu_layer_t *L, int i, int count,
                                     int checksum, uint64_t max_n, void *d_out,
                                     mcgqLayerStats_t *d_stats, void *d_temp,
                                     mcgqStream_t stream) {
  cudaStream_t s = (cudaStream_t)stream;
  encode_layout lay;
  MCGQ_CUDA_TRY(carve(max_n, count, (uint8_t *)d_temp, &lay));
  const float *x = L->g;
  mcgq_launch_resolve_samples(L, &lay.states[i], s);
  if (L->accumulate != MCGQ_ACCUM_NONE) {
    mcgq_launch_accumulate(L, lay.s.x, s);
    x = lay.s.x;
  }
  MCGQ_CUDA_TRY(quantize_layer(L, &lay.states[i], &lay, x, s));
  if (L->dynamic_k) MCGQ_CUDA_TRY(update_dynamic_k(L, &lay.states[i], &lay, x, s));
  MCGQ_CUDA_TRY(encode_layer(L, i, count, checksum, &lay, (uint8_t *)d_out, d_stats, s));
  if (L->accumulate != MCGQ_ACCUM_NONE)
    mcgq_launch_commit(L, x, lay.s.g_int, &lay.states[i], s);
  return (int)cudaGetLastError();
}

extern "C" int mcgq_gpu_encode_end(int count, int checksum, uint64_t max_n,
                                   uint64_t total_n, void *d_out, size_t *d_out_bytes,
                                   void *d_temp, mcgqStream_t stream) {
  encode_layout lay;
  MCGQ_CUDA_TRY(carve(max_n, count, (uint8_t *)d_temp, &lay));
  mcgq_launch_header(lay.states, count, checksum, total_n, (uint8_t *)d_out, d_out_bytes,
                     (cudaStream_t)stream);
  return (int)cudaGetLastError();
}
