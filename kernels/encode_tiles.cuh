/* encode_tiles.cuh - the tile grid shared by every element kernel of an
 * encode: one block per tile of MCGQ_TUNE_TILE_ELEMENTS elements of every
 * layer of the call.  A block finds its layer by a binary search of the
 * layer table's first_tile (no one-thread kernels, no per-layer launches),
 * and each warp owns kRows consecutive 32-element rows of the tile, so that
 * one ballot covers 32 consecutive elements (the warp-level RLE of rle.cu).
 *
 * Also the run-summary monoid (encode_state.h) and its warp- and
 * block-level reductions, shared by the fused counts kernel (quantize.cu)
 * and the card path's summaries (rle.cu). */
#ifndef MCGQ_KERNELS_ENCODE_TILES_CUH_
#define MCGQ_KERNELS_ENCODE_TILES_CUH_

#include <stdint.h>

#include "device/warp.cuh"
#include "dtype.h"
#include "encode_state.h"
#include "format.h"
#include "tuning.h"

namespace mcgq_tile {

const unsigned kTile = MCGQ_TUNE_TILE_ELEMENTS;
const unsigned kThreads = MCGQ_TUNE_TILE_THREADS;
const unsigned kWarps = kThreads / 32u;
const unsigned kWarpElements = kTile / kWarps;
const unsigned kRows = kWarpElements / 32u; /* rows of 32 elements per warp */
static_assert(kTile % kWarps == 0 && kThreads % 32u == 0, "warps split a tile evenly");
static_assert(kWarpElements % 32u == 0, "a warp owns whole 32-element rows");
static_assert(((1u << MCGQ_CHUNK_LOG2) % kTile) == 0,
              "tiles divide the format's chunk, so index entries fall on tile starts");

/* The tile a block works on: its layer and the layer-relative range. */
struct tile_ref {
  int layer;
  mcgq_layer_rec rec;
  uint64_t start;  /* first element, layer-relative */
  unsigned count;  /* elements in this tile (<= kTile) */
  uint64_t slot;   /* index of `start` in the per-element scratch */
};

/* The last layer whose first tile is <= t (layers own >= 1 tile each;
 * for sample tiles, layers with none share the next one's first tile and
 * the search lands on the layer that owns t). */
template <class FirstOf>
__device__ __forceinline__ int find_layer(int count, uint32_t t, FirstOf first_of) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    if (first_of(mid) <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ tile_ref locate_tile(const mcgq_encode_scratch &S, uint32_t t) {
  const mcgq_layer_rec *recs = S.recs;
  tile_ref r;
  r.layer = find_layer(S.count, t, [recs](int i) { return recs[i].first_tile; });
  r.rec = recs[r.layer];
  r.start = (uint64_t)(t - r.rec.first_tile) * kTile;
  uint64_t left = (uint64_t)r.rec.n - r.start;
  r.count = left < kTile ? (unsigned)left : kTile;
  r.slot = (uint64_t)t * kTile;
  return r;
}

/* g_e as float32: a bf16 or binary16 gradient widened exactly
 * (format/dtype.h), so a 16-bit layer's message is its float32 one. */
__device__ __forceinline__ float gradient_at(const mcgq_layer_rec &r, uint64_t e) {
  switch (r.dtype) {
    case MCGQ_DTYPE_BF16: return mcgq_bf16_to_f32(static_cast<const uint16_t *>(r.g)[e]);
    case MCGQ_DTYPE_F16: return mcgq_f16_to_f32(static_cast<const uint16_t *>(r.g)[e]);
    default: return static_cast<const float *>(r.g)[e];
  }
}

/* x_k: the gradient, or accum + g in the accumulated modes (recomputed in
 * every pass rather than stored: one more read instead of a write and a
 * read of a scratch copy). */
__device__ __forceinline__ float input_at(const mcgq_layer_rec &r, uint64_t e) {
  const float g = gradient_at(r, e);
  return r.accumulate != MCGQ_ACCUM_NONE ? __fadd_rn(r.accum[e], g) : g;
}

__device__ __forceinline__ uint32_t magnitude(int32_t v) {
  return v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
}

/* ----------------------------------------------------- the run monoid */

__device__ __forceinline__ mcgq_run_summary runs_empty() {
  mcgq_run_summary s;
  s.nonzeros = 0;
  s.gaps = 0;
  s.longest = 0;
  s.first = MCGQ_RUN_NONE;
  s.last = MCGQ_RUN_NONE;
  s.max_mag = 0;
  return s;
}

/* a's range directly precedes b's. */
__device__ __forceinline__ mcgq_run_summary runs_combine(const mcgq_run_summary &a,
                                                         const mcgq_run_summary &b) {
  mcgq_run_summary s;
  s.nonzeros = a.nonzeros + b.nonzeros;
  s.gaps = a.gaps + b.gaps;
  s.longest = a.longest > b.longest ? a.longest : b.longest;
  if (a.last != MCGQ_RUN_NONE && b.first != MCGQ_RUN_NONE && b.first - a.last > 1u) {
    const uint32_t gap = b.first - a.last - 1u;
    s.gaps += 1;
    if (gap > s.longest) s.longest = gap;
  }
  s.first = a.first != MCGQ_RUN_NONE ? a.first : b.first;
  s.last = b.last != MCGQ_RUN_NONE ? b.last : a.last;
  s.max_mag = a.max_mag > b.max_mag ? a.max_mag : b.max_mag;
  return s;
}

/* The summary of a warp's kRows rows (v[r] = the sent value of element
 * warp_start + 32 r + lane, 0 past n), the same in every lane: a ballot per
 * row gives the nonzero mask; each nonzero lane measures the gap to the
 * next set bit of the mask, and the rows are chained by their first and
 * last set bits. */
__device__ __forceinline__ mcgq_run_summary warp_runs(const int32_t *v, uint64_t warp_start,
                                                      uint64_t n) {
  using namespace mcgq_dev;
  const unsigned lane = threadIdx.x & 31u;
  mcgq_run_summary s = runs_empty();
  uint32_t lane_gap = 0, lane_mag = 0;
  for (unsigned r = 0; r < kRows; ++r) {
    const uint64_t row = warp_start + 32u * r;
    const bool nonzero = row + lane < n && v[r] != 0;
    const unsigned mask = __ballot_sync(kFullWarp, nonzero);
    if (!mask) continue; /* uniform */
    if (nonzero) {
      lane_mag = max(lane_mag, magnitude(v[r]));
      const unsigned above = lane == 31u ? 0u : mask & (~0u << (lane + 1u));
      if (above) lane_gap = max(lane_gap, lowest_set_lane(above) - lane - 1u);
    }
    const unsigned inner = __ballot_sync(
        kFullWarp, nonzero && lane != 31u && (mask & (~0u << (lane + 1u))) != 0u &&
                       ((mask >> (lane + 1u)) & 1u) == 0u);
    mcgq_run_summary row_s;
    row_s.nonzeros = (uint32_t)__popc(mask);
    row_s.gaps = (uint32_t)__popc(inner);
    row_s.longest = 0; /* the lanes' gaps join at the end */
    row_s.first = (uint32_t)row + lowest_set_lane(mask);
    row_s.last = (uint32_t)row + 31u - (uint32_t)__clz((int)mask);
    row_s.max_mag = 0;
    s = runs_combine(s, row_s);
  }
  s.longest = max(s.longest, warp_max_u32(lane_gap));
  s.max_mag = warp_max_u32(lane_mag);
  return s;
}

/* The block's summary from its warps' (valid in thread 0). */
__device__ __forceinline__ mcgq_run_summary block_runs(const mcgq_run_summary &w,
                                                       mcgq_run_summary *scratch) {
  const unsigned warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31u) == 0) scratch[warp] = w;
  __syncthreads();
  mcgq_run_summary s = scratch[0];
  if (threadIdx.x == 0)
    for (unsigned i = 1; i < kWarps; ++i) s = runs_combine(s, scratch[i]);
  __syncthreads();
  return s;
}

}  // namespace mcgq_tile

#endif /* MCGQ_KERNELS_ENCODE_TILES_CUH_ */
