/* dispatch.cu - the encode dispatch layer: sizes and places the layers in
 * the call's tile grids, carves the caller's scratch once per call, and
 * enqueues the stages on the caller's stream.  Every stage is one launch
 * over all layers (kernels/README.md, "Segmented execution"):
 *
 *   table (1 per 72 layers) -> max -> tile sums -> scale -> counts
 *   [card: sample -> tile runs] [dynamic K, per such layer: 2 merge sorts,
 *   W1 sum, K update] -> layer runs -> plan (+ header) -> zero -> tokens
 *   [-> CRC32C] [-> accumulator commit]
 *
 * With deferred state (accum_out / kstate_out) the same sequence writes the
 * new accumulators and K states to the caller's scratch, and a later
 * mcgq_gpu_encode_commit_state (one launch) applies them.
 *
 * CUB lives only here (the dynamic-K sorts), in the wrapped namespace
 * mcgq_cub (CUB_WRAPPED_NAMESPACE, kernels/CMakeLists.txt). */
#include <cub/device/device_merge_sort.cuh>
#include <stdint.h>

#include "encode_state.h"
#include "format.h"
#include "tuning.h"

namespace {

const size_t kAlign = 256;
const uint64_t kTile = MCGQ_TUNE_TILE_ELEMENTS;

size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

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

/* The one carve of d_temp; with base = NULL it only measures.  Per-element
 * arrays hold every tile of every layer (no reuse between layers: all
 * layers are in flight in every stage). */
cudaError_t carve(const mcgq_gpu_encode_shape_t *shape, uint8_t *base,
                  mcgq_encode_scratch *S, size_t *total) {
  size_t sort_bytes = 0;
  if (shape->max_dynamic_n) {
    cudaError_t e = sort_keys(nullptr, sort_bytes, nullptr, nullptr,
                              (int64_t)shape->max_dynamic_n, 0);
    if (e != cudaSuccess) return e;
  }
  const uint64_t elements = shape->tiles * kTile;
  size_t at = 0;
  auto take = [&](uint64_t bytes) {
    uint8_t *p = base && bytes ? base + at : nullptr;
    at += align_up((size_t)bytes);
    return (void *)p;
  };
  const uint64_t count = (uint64_t)shape->count;
  S->count = shape->count;
  S->recs = (mcgq_layer_rec *)take(count * sizeof(mcgq_layer_rec));
  S->states = (mcgq_layer_state *)take(count * sizeof(mcgq_layer_state));
  S->tile_cdf = (uint64_t *)take(shape->tiles * sizeof(uint64_t));
  S->tile_runs = (mcgq_run_summary *)take(shape->tiles * sizeof(mcgq_run_summary));
  S->tile_next = (uint32_t *)take(shape->tiles * sizeof(uint32_t));
  S->message_bytes = (unsigned long long *)take(sizeof(unsigned long long));
  S->g_int = (int32_t *)take(elements * sizeof(int32_t));
  S->cdf = (uint64_t *)take(shape->any_sample ? elements * sizeof(uint64_t) : 0);
  const bool dyn = shape->max_dynamic_n != 0;
  S->signed_q = (int32_t *)take(dyn ? elements * sizeof(int32_t) : 0);
  S->sorted_a = (int32_t *)take(shape->max_dynamic_n * sizeof(int32_t));
  S->sorted_g = (int32_t *)take(shape->max_dynamic_n * sizeof(int32_t));
  S->sort_temp = take(sort_bytes);
  S->sort_bytes = sort_bytes;
  *total = at;
  return cudaSuccess;
}

#define MCGQ_CUDA_TRY(call)                     \
  do {                                          \
    cudaError_t mcgq_e_ = (call);               \
    if (mcgq_e_ != cudaSuccess) return mcgq_e_; \
  } while (0)

}  // namespace

extern "C" void mcgq_gpu_encode_shape_init(mcgq_gpu_encode_shape_t *shape, int count,
                                           int checksum) {
  memset(shape, 0, sizeof *shape);
  shape->count = count;
  shape->checksum = checksum;
}

extern "C" int mcgq_gpu_encode_shape_add(mcgq_gpu_encode_shape_t *shape,
                                         mcgq_gpu_layer_t *L) {
  const uint64_t grid_limit = 0x7fffffffu; /* blocks of a grid's x dimension */
  const uint64_t tiles = (L->n + kTile - 1) / kTile;
  uint64_t sample_tiles = 0;
  if (L->algo == MCGQ_ALGO_SAMPLE) {
    /* A dynamic K's N is known on the device only: size the grid for
     * ceil(n * k_max), where the K update keeps it. */
    uint64_t bound = L->samples;
    if (L->dynamic_k) {
      double most = ceil((double)L->n * L->k_max);
      bound = most < (double)MCGQ_MAX_SAMPLES ? (uint64_t)most : MCGQ_MAX_SAMPLES;
    }
    sample_tiles = (bound + kTile - 1) / kTile;
    if (sample_tiles == 0) sample_tiles = 1;
  }
  if (shape->tiles + tiles > grid_limit || shape->sample_tiles + sample_tiles > grid_limit)
    return 1;
  L->first_tile = (uint32_t)shape->tiles;
  L->first_sample_tile = (uint32_t)shape->sample_tiles;
  shape->tiles += tiles;
  shape->sample_tiles += sample_tiles;
  shape->total_n += L->n;
  shape->regions_bound += mcgq_max_region_bytes(L->n);
  if (L->dynamic_k && L->n > shape->max_dynamic_n) shape->max_dynamic_n = L->n;
  shape->any_accumulate |= L->accumulate != MCGQ_ACCUM_NONE;
  shape->any_sample |= L->algo == MCGQ_ALGO_SAMPLE;
  return 0;
}

extern "C" int mcgq_gpu_encode_temp_bytes(const mcgq_gpu_encode_shape_t *shape,
                                          size_t *bytes) {
  mcgq_encode_scratch S;
  return (int)carve(shape, nullptr, &S, bytes);
}

extern "C" int mcgq_gpu_encode_table(const mcgq_gpu_layer_t *layers, int first, int chunk,
                                     const mcgq_gpu_encode_shape_t *shape, void *d_temp,
                                     mcgqStream_t stream) {
  cudaStream_t s = (cudaStream_t)stream;
  mcgq_encode_scratch S;
  size_t total = 0;
  MCGQ_CUDA_TRY(carve(shape, (uint8_t *)d_temp, &S, &total));
  mcgq_launch_layer_table(layers, first, chunk, &S, s);
  for (int i = 0; i < chunk; ++i)
    if (layers[i].dynamic_k) mcgq_launch_resolve_samples(&layers[i], first + i, &S, s);
  return (int)cudaGetLastError();
}

extern "C" int mcgq_gpu_encode_quantize(const mcgq_gpu_encode_shape_t *shape, void *d_temp,
                                        mcgqStream_t stream) {
  cudaStream_t s = (cudaStream_t)stream;
  mcgq_encode_scratch S;
  size_t total = 0;
  MCGQ_CUDA_TRY(carve(shape, (uint8_t *)d_temp, &S, &total));
  mcgq_launch_max(&S, shape->tiles, s);
  mcgq_launch_tile_sums(&S, shape->tiles, s);
  mcgq_launch_scale(&S, s);
  mcgq_launch_counts(&S, shape->tiles, s);
  if (shape->any_sample) {
    mcgq_launch_sample(&S, shape->sample_tiles, s);
    mcgq_launch_tile_runs(&S, shape->tiles, s);
  }
  return (int)cudaGetLastError();
}

/* Exact W1 of one dynamic-K layer: its signed q (written by the counts
 * pass) and its g_int, sorted, then the 128-bit sum and the K update. */
extern "C" int mcgq_gpu_encode_dynamic_k(const mcgq_gpu_layer_t *L, int index,
                                         const mcgq_gpu_encode_shape_t *shape,
                                         void *d_temp, mcgqStream_t stream) {
  cudaStream_t s = (cudaStream_t)stream;
  mcgq_encode_scratch S;
  size_t total = 0;
  MCGQ_CUDA_TRY(carve(shape, (uint8_t *)d_temp, &S, &total));
  const uint64_t slot = (uint64_t)L->first_tile * kTile;
  size_t bytes = S.sort_bytes;
  MCGQ_CUDA_TRY(sort_keys(S.sort_temp, bytes, S.signed_q + slot, S.sorted_a,
                          (int64_t)L->n, s));
  bytes = S.sort_bytes;
  MCGQ_CUDA_TRY(sort_keys(S.sort_temp, bytes, S.g_int + slot, S.sorted_g, (int64_t)L->n, s));
  mcgq_launch_w1_sum(L, index, &S, s);
  mcgq_launch_kstate_update(L, index, &S, s);
  return (int)cudaGetLastError();
}

extern "C" int mcgq_gpu_encode_finish(const mcgq_gpu_encode_shape_t *shape, void *d_out,
                                      size_t *d_out_bytes, mcgqLayerStats_t *d_stats,
                                      void *d_temp, mcgqStream_t stream) {
  cudaStream_t s = (cudaStream_t)stream;
  uint8_t *msg = (uint8_t *)d_out;
  mcgq_encode_scratch S;
  size_t total = 0;
  MCGQ_CUDA_TRY(carve(shape, (uint8_t *)d_temp, &S, &total));
  mcgq_launch_layer_runs(&S, s);
  mcgq_launch_plan(&S, shape->checksum, shape->total_n, msg, d_out_bytes, d_stats, s);
  mcgq_launch_zero_regions(&S, shape->regions_bound, msg, s);
  mcgq_launch_write_tokens(&S, shape->tiles, msg, s);
  if (shape->checksum) mcgq_launch_crc(S.states, shape->count, msg, s);
  if (shape->any_accumulate) mcgq_launch_commit(&S, shape->tiles, s);
  return (int)cudaGetLastError();
}

/* Deferred state: the encode of this shape left its table and status words
 * in d_temp; one launch applies the scratch state of the layers that
 * succeeded (state_commit.cu). */
extern "C" int mcgq_gpu_encode_commit_state(const mcgq_gpu_encode_shape_t *shape,
                                            void *d_temp, mcgqStream_t stream) {
  mcgq_encode_scratch S;
  size_t total = 0;
  MCGQ_CUDA_TRY(carve(shape, (uint8_t *)d_temp, &S, &total));
  mcgq_launch_state_commit(&S, shape->tiles, (cudaStream_t)stream);
  return (int)cudaGetLastError();
}
