/* quantize.cu - the stages of DESIGN.md section 2 over every layer of an
 * encode call at once (one launch each; encode_tiles.cuh's tile grid):
 *   max         magnitude bits of x (= g, or accum + g) -> one atomicMax per
 *               block on the layer's max_bits (m and the finiteness flag);
 *   tile sums   q_k -> one uint64 sum per tile (one plain write per block);
 *   scale       one block per layer: exclusive scan of the layer's tile sums
 *               (the tile's C offset), T, the scale and its range check;
 *   counts      q_k again, warp scans -> C_k, then the fused path's closed
 *               form count_k = b(C_k) - b(C_{k-1}), the sign, and the tile's
 *               run summary (encode_tiles.cuh) in the same pass; the card
 *               path stores C instead (its sample kernel needs all of it);
 *   sample      card path: one thread per sample (binary search, ballot-
 *               aggregated atomics), over the sample tiles of card layers;
 *   commit      accumulated layers whose status is 0: the accumulator (or,
 *               deferred, its accum_out).
 * Every reduction is integer (max, sum): the result does not depend on the
 * order blocks run in. */
#include <stdint.h>

#include "device/bits.cuh"
#include "device/block.cuh"
#include "device/scan.cuh"
#include "encode_tiles.cuh"

namespace mcgq_stage_quantize {

using namespace mcgq_tile;

const uint32_t kNonFiniteBits = 0x7f800000u;

/* Magnitude bits order finite floats like their values, and every NaN/Inf
 * is >= 0x7f800000, so one integer max gives m and the finiteness flag. */
__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS) max_kernel(mcgq_encode_scratch S) {
  __shared__ uint32_t scratch[32];
  const tile_ref t = locate_tile(S, blockIdx.x);
  uint32_t bits = 0;
  for (unsigned i = threadIdx.x; i < t.count; i += blockDim.x)
    bits = max(bits, __float_as_uint(input_at(t.rec, t.start + i)) & 0x7fffffffu);
  bits = mcgq_dev::block_max_u32(bits, scratch);
  if (threadIdx.x == 0 && bits) atomicMax(&S.states[t.layer].max_bits, bits);
}

/* The layer is sent all zero: m = 0, non-finite, or refused earlier. */
__device__ __forceinline__ bool zero_before_scale(const mcgq_layer_state *st) {
  return st->zero || st->max_bits == 0 || st->max_bits >= kNonFiniteBits;
}

__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS) tile_sums_kernel(mcgq_encode_scratch S) {
  __shared__ uint64_t scratch[33];
  const tile_ref t = locate_tile(S, blockIdx.x);
  const mcgq_layer_state *st = &S.states[t.layer];
  const bool zero = zero_before_scale(st);
  const float m = __uint_as_float(st->max_bits);
  uint64_t sum = 0;
  if (!zero)
    for (unsigned i = threadIdx.x; i < t.count; i += blockDim.x)
      sum += mcgq_fixed_point(input_at(t.rec, t.start + i), m);
  uint64_t total = 0;
  mcgq_dev::block_exclusive_sum_u64(sum, scratch, &total);
  if (threadIdx.x == 0) S.tile_cdf[blockIdx.x] = total;
}

/* One block per layer.  Each thread owns a contiguous run of the layer's
 * tiles: their sum, a block scan of those sums, then the run again writing
 * each tile's exclusive prefix in place.  Thread 0 settles m, T and the
 * scale (DESIGN.md 2.7 in the order written there; a scale that rounds to
 * infinity refuses the layer with a range error). */
__global__ void __launch_bounds__(MCGQ_TUNE_LAYER_THREADS) scale_kernel(mcgq_encode_scratch S) {
  __shared__ uint64_t scratch[33];
  const int layer = blockIdx.x;
  const mcgq_layer_rec rec = S.recs[layer];
  mcgq_layer_state *st = &S.states[layer];
  const uint64_t tiles = ((uint64_t)rec.n + kTile - 1) / kTile;
  const uint64_t per = (tiles + blockDim.x - 1) / blockDim.x;
  const uint64_t lo = min((uint64_t)threadIdx.x * per, tiles), hi = min(lo + per, tiles);
  uint64_t *sums = S.tile_cdf + rec.first_tile;
  uint64_t mine = 0;
  for (uint64_t i = lo; i < hi; ++i) mine += sums[i];
  uint64_t T = 0;
  uint64_t running = mcgq_dev::block_exclusive_sum_u64(mine, scratch, &T);
  for (uint64_t i = lo; i < hi; ++i) {
    const uint64_t v = sums[i];
    sums[i] = running;
    running += v;
  }
  if (threadIdx.x != 0) return;
  if (!rec.dynamic_k) { /* dynamic K: resolved from the K state (dynamic_k.cu) */
    st->N = rec.N;
    st->k = rec.k;
    st->w1 = -1.0;
  }
  const uint32_t bits = st->max_bits;
  st->m = __uint_as_float(bits);
  if (bits >= kNonFiniteBits) {
    if (st->status == 0) st->status = mcgqNonFinite;
    st->zero = 1;
  } else if (bits == 0) {
    st->zero = 1;
  }
  if (st->zero) {
    st->T = 0;
    st->scale = 0.0f;
    return;
  }
  const double s = mcgq_scale_double(T, st->m, st->N, rec.n,
                                     rec.accumulate == MCGQ_ACCUM_RESIDUAL);
  st->T = T;
  if (s >= MCGQ_FLOAT_OVERFLOW) {
    st->status = mcgqRangeError;
    st->zero = 1;
    st->scale = 0.0f;
    return;
  }
  st->scale = __double2float_rn(s);
}

__device__ __forceinline__ int32_t apply_sign(bool negative, int32_t count) {
  return negative ? -count : count;
}

/* The third pass over x.  Warp w owns rows of 32 consecutive elements:
 * q in registers, the warp totals meet in shared memory (the tile's C
 * offset comes from the scale kernel), then per row a warp scan gives C_k
 * and the closed form gives b(C_k); b(C_{k-1}) is the lane below's (lane 0:
 * the previous row's lane 31).  The fused path also measures its runs here,
 * so g_int is written once and never read back before the token pass. */
__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS) counts_kernel(mcgq_encode_scratch S) {
  using namespace mcgq_dev;
  __shared__ uint64_t warp_sums[kWarps];
  __shared__ mcgq_run_summary warp_summaries[kWarps];
  const tile_ref t = locate_tile(S, blockIdx.x);
  const mcgq_layer_state *st = &S.states[t.layer];
  const bool zero = st->zero != 0;
  const bool card = t.rec.algo == MCGQ_ALGO_SAMPLE;
  const float m = st->m;
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const uint64_t n = t.rec.n;
  const uint64_t warp_start = t.start + (uint64_t)warp * kWarpElements;
  const uint64_t warp_slot = t.slot + (uint64_t)warp * kWarpElements;

  uint32_t q[kRows];
  uint32_t negative = 0; /* bit r: x of row r is negative */
  uint64_t sum = 0;
  for (unsigned r = 0; r < kRows; ++r) {
    const uint64_t e = warp_start + 32u * r + lane;
    q[r] = 0;
    if (e < n) {
      const float x = input_at(t.rec, e);
      negative |= (__float_as_uint(x) >> 31) << r;
      if (!zero) q[r] = mcgq_fixed_point(x, m);
    }
    sum += q[r];
  }
  sum = warp_sum_u64(sum);
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  uint64_t carry = S.tile_cdf[blockIdx.x];
  for (unsigned w = 0; w < warp; ++w) carry += warp_sums[w];

  const mcgq_count_params p = mcgq_count_params_of(st->N, zero ? 0 : st->T, t.rec.u);
  uint64_t b_carry = zero || carry == 0 ? 0 : mcgq_samples_below(&p, carry);
  int32_t v[kRows];
  for (unsigned r = 0; r < kRows; ++r) {
    const uint64_t e = warp_start + 32u * r + lane;
    const uint64_t incl = warp_inclusive_sum_u64(q[r]);
    const uint64_t C = carry + incl;
    carry += __shfl_sync(kFullWarp, incl, 31);
    v[r] = 0;
    if (card) {
      if (e < n) S.cdf[warp_slot + 32u * r + lane] = C;
    } else if (!zero) {
      const uint64_t b = mcgq_samples_below(&p, C);
      uint64_t below = __shfl_up_sync(kFullWarp, b, 1);
      if (lane == 0) below = b_carry;
      b_carry = __shfl_sync(kFullWarp, b, 31);
      v[r] = apply_sign((negative >> r) & 1u, (int32_t)(b - below));
    }
    if (e < n) {
      S.g_int[warp_slot + 32u * r + lane] = v[r]; /* card: cleared for the atomics */
      if (t.rec.dynamic_k)
        S.signed_q[warp_slot + 32u * r + lane] =
            (negative >> r) & 1u ? -(int32_t)q[r] : (int32_t)q[r];
    }
  }
  if (card) return; /* uniform: its runs are measured after sampling (rle.cu) */
  const mcgq_run_summary s = block_runs(warp_runs(v, warp_start, n), warp_summaries);
  if (threadIdx.x == 0) S.tile_runs[blockIdx.x] = s;
}

/* Card path: sample i hits the first k with C_k*N*2^32 > (i*2^32 + u)*T
 * (DESIGN.md 2.4), found by binary search.  The hit is nondecreasing in i,
 * so the lanes of a warp that hit the same element are contiguous: the
 * first lane of each group (a ballot of "my hit differs from the lane
 * below") adds the group's size, the distance to the next group's first
 * lane, with one atomic.  All lanes of a warp run the same iterations (the
 * loop bound is per block) so the shuffle and ballot see the whole warp. */
__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS) sample_kernel(mcgq_encode_scratch S) {
  using namespace mcgq_dev;
  const mcgq_layer_rec *recs = S.recs;
  const int layer = find_layer(S.count, blockIdx.x,
                               [recs](int i) { return recs[i].first_sample_tile; });
  const mcgq_layer_rec rec = recs[layer];
  const mcgq_layer_state *st = &S.states[layer];
  if (rec.algo != MCGQ_ALGO_SAMPLE || st->zero) return; /* uniform */
  const uint64_t N = st->N, T = st->T, n = rec.n;
  const uint64_t *C = S.cdf + (uint64_t)rec.first_tile * kTile;
  int32_t *g_int = S.g_int + (uint64_t)rec.first_tile * kTile;
  const unsigned lane = threadIdx.x & 31u;
  const uint64_t none = ~(uint64_t)0;
  const uint64_t first = (uint64_t)(blockIdx.x - rec.first_sample_tile) * kTile;
  for (uint64_t base = first; base < first + kTile && base < N; base += blockDim.x) {
    const uint64_t i = base + threadIdx.x;
    uint64_t hit = none;
    if (i < N) {
      const mcgq_u128 rhs = mcgq_u128_mul64((i << 32) | rec.u, T); /* i < 2^31 */
      uint64_t lo = 0, hi = n - 1; /* C_{n-1} = T always satisfies the test */
      while (lo < hi) {
        uint64_t mid = lo + ((hi - lo) >> 1);
        if (mcgq_u128_less(rhs, mcgq_u128_shl32(mcgq_u128_mul64(C[mid], N))))
          hi = mid;
        else
          lo = mid + 1;
      }
      hit = lo;
    }
    const uint64_t below = __shfl_up_sync(kFullWarp, hit, 1);
    const bool head = lane == 0 || below != hit;
    const unsigned heads = __ballot_sync(kFullWarp, head);
    if (head && hit != none) {
      const unsigned above = heads & ~((2u << lane) - 1u); /* lane 31: 0 */
      const unsigned next = above ? lowest_set_lane(above) : 32u;
      const bool negative = __float_as_uint(input_at(rec, hit)) >> 31;
      atomicAdd(&g_int[hit], apply_sign(negative, (int32_t)(next - lane)));
    }
  }
}

/* Accumulator update after a successful quantize (accumulate.c); x is
 * recomputed from the old accumulator before it is overwritten.  With
 * accum_out (deferred state) the new values go there and accum is only
 * read: state_commit.cu copies them in once the step is agreed. */
__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS) commit_kernel(mcgq_encode_scratch S) {
  const tile_ref t = locate_tile(S, blockIdx.x);
  const mcgq_layer_state *st = &S.states[t.layer];
  if (t.rec.accumulate == MCGQ_ACCUM_NONE || st->status != 0) return; /* uniform */
  const float neg_scale = -st->scale;
  const bool reset = t.rec.accumulate == MCGQ_ACCUM_RESET;
  float *out = t.rec.accum_out ? t.rec.accum_out : t.rec.accum;
  for (unsigned i = threadIdx.x; i < t.count; i += blockDim.x) {
    const uint64_t e = t.start + i;
    const float x = input_at(t.rec, e);
    const int32_t v = S.g_int[t.slot + i];
    out[e] = reset ? (v != 0 ? 0.0f : x) : __fmaf_rn(neg_scale, (float)v, x);
  }
}

}  // namespace mcgq_stage_quantize

using namespace mcgq_stage_quantize;

#define T_TILE MCGQ_TUNE_TILE_THREADS

void mcgq_launch_max(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s) {
  max_kernel<<<(unsigned)tiles, T_TILE, 0, s>>>(*S);
}
void mcgq_launch_tile_sums(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s) {
  tile_sums_kernel<<<(unsigned)tiles, T_TILE, 0, s>>>(*S);
}
void mcgq_launch_scale(const mcgq_encode_scratch *S, cudaStream_t s) {
  scale_kernel<<<(unsigned)S->count, MCGQ_TUNE_LAYER_THREADS, 0, s>>>(*S);
}
void mcgq_launch_counts(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s) {
  counts_kernel<<<(unsigned)tiles, T_TILE, 0, s>>>(*S);
}
void mcgq_launch_sample(const mcgq_encode_scratch *S, uint64_t sample_tiles,
                        cudaStream_t s) {
  sample_kernel<<<(unsigned)sample_tiles, T_TILE, 0, s>>>(*S);
}
void mcgq_launch_commit(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s) {
  commit_kernel<<<(unsigned)tiles, T_TILE, 0, s>>>(*S);
}
