/* quantize.cu - stage kernels of DESIGN.md section 2 on one layer: the
 * accumulation add, magnitudes for the max reduction, q_k, the scale, the
 * counts (fused path: closed form; card path: one thread per sample with a
 * binary search and ballot-aggregated atomics) and the accumulator commit.
 * The reductions and scans between them are CUB calls in dispatch.cu. */
#include <stdint.h>

#include "device/bits.cuh"
#include "device/warp.cuh"
#include "encode_state.h"
#include "tuning.h"

namespace mcgq_stage_quantize {

__host__ unsigned grid_for(uint64_t items, unsigned threads) {
  uint64_t blocks = (items + threads - 1) / threads;
  if (blocks == 0) blocks = 1;
  return blocks > MCGQ_TUNE_MAX_GRID ? MCGQ_TUNE_MAX_GRID : (unsigned)blocks;
}

#define MCGQ_FOR_EACH(k, n) \
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < (n); \
       k += (uint64_t)gridDim.x * blockDim.x)

__global__ void accumulate_kernel(const float *g, const float *accum, uint64_t n,
                                  float *x) {
  MCGQ_FOR_EACH(k, n) x[k] = __fadd_rn(accum[k], g[k]);
}

/* Magnitude bits order finite floats like their values, and every NaN/Inf
 * is >= 0x7f800000, so one integer max gives m and the finiteness flag. */
__global__ void magnitudes_kernel(const float *x, uint64_t n, uint32_t *mag) {
  MCGQ_FOR_EACH(k, n) mag[k] = __float_as_uint(x[k]) & 0x7fffffffu;
}

__global__ void check_max_kernel(mcgq_layer_state *st) {
  uint32_t bits = st->max_bits;
  st->m = __uint_as_float(bits);
  if (bits >= 0x7f800000u) {
    if (st->status == 0) st->status = mcgqNonFinite;
    st->zero = 1;
  } else if (bits == 0) {
    st->zero = 1;
  }
}

__global__ void fixed_point_kernel(const float *x, uint64_t n,
                                   const mcgq_layer_state *st, uint64_t *q) {
  const int zero = st->zero;
  const float m = st->m;
  MCGQ_FOR_EACH(k, n) q[k] = zero ? 0u : mcgq_fixed_point(x[k], m);
}

/* DESIGN.md 2.7 in the order written there; a scale that rounds to
 * infinity refuses the layer (RangeError). */
__global__ void check_scale_kernel(uint64_t n, int damped, const uint64_t *C,
                                   mcgq_layer_state *st) {
  const uint64_t N = st->N;
  if (st->zero) {
    st->T = 0;
    st->scale = 0.0f;
    return;
  }
  uint64_t T = C[n - 1];
  double s = mcgq_scale_double(T, st->m, N, n, damped);
  st->T = T;
  if (s >= MCGQ_FLOAT_OVERFLOW) {
    st->status = mcgqRangeError;
    st->zero = 1;
    st->scale = 0.0f;
    return;
  }
  st->scale = __double2float_rn(s);
}

__device__ __forceinline__ int32_t apply_sign(float g, int32_t count) {
  return (__float_as_uint(g) >> 31) ? -count : count;
}

/* Fused path: count_k = b(C_k) - b(C_{k-1}), no atomics. */
__global__ void counts_kernel(const float *x, const uint64_t *C, uint64_t n,
                              uint32_t u, const mcgq_layer_state *st, int32_t *g_int) {
  const uint64_t N = st->N;
  const int zero = st->zero;
  const uint64_t T = st->T;
  const mcgq_count_params p = mcgq_count_params_of(N, zero ? 0 : T, u);
  MCGQ_FOR_EACH(k, n) {
    if (zero) {
      g_int[k] = 0;
      continue;
    }
    uint64_t b = mcgq_samples_below(&p, C[k]);
    uint64_t b_prev = k ? mcgq_samples_below(&p, C[k - 1]) : 0;
    g_int[k] = apply_sign(x[k], (int32_t)(b - b_prev));
  }
}

/* Card path: sample i hits the first k with C_k*N*2^32 > (i*2^32 + u)*T
 * (DESIGN.md 2.4), found by binary search.  The hit is nondecreasing in i,
 * so the lanes of a warp that hit the same element are contiguous: the
 * first lane of each group (a ballot of "my hit differs from the lane
 * below") adds the group's size, the distance to the next group's first
 * lane, with one atomic.  All lanes of a warp run the same iterations (the
 * loop bound is per block) so the shuffle and ballot see the whole warp. */
__global__ void sample_kernel(const float *x, const uint64_t *C, uint64_t n,
                              uint32_t u, const mcgq_layer_state *st, int32_t *g_int) {
  using namespace mcgq_dev;
  if (st->zero) return; /* g_int was cleared by the dispatch */
  const uint64_t N = st->N;
  const uint64_t T = st->T;
  const unsigned lane = threadIdx.x & 31u;
  const uint64_t none = ~(uint64_t)0;
  for (uint64_t base = (uint64_t)blockIdx.x * blockDim.x; base < N;
       base += (uint64_t)gridDim.x * blockDim.x) {
    uint64_t i = base + threadIdx.x;
    uint64_t hit = none;
    if (i < N) {
      const mcgq_u128 rhs = mcgq_u128_mul64((i << 32) | u, T); /* i < 2^31: no overflow */
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
    const bool first = lane == 0 || below != hit;
    const unsigned firsts = __ballot_sync(kFullWarp, first);
    if (first && hit != none) {
      const unsigned above = firsts & ~((2u << lane) - 1u); /* lane 31: 0 */
      const unsigned next = above ? lowest_set_lane(above) : 32u;
      atomicAdd(&g_int[hit], apply_sign(x[hit], (int32_t)(next - lane)));
    }
  }
}

/* Accumulator update after a successful quantize (accumulate.c). */
__global__ void commit_kernel(float *accum, const float *x, const int32_t *g_int,
                              uint64_t n, int mode, const mcgq_layer_state *st) {
  if (st->status != 0) return; /* a failed layer leaves accum untouched */
  const float neg_scale = -st->scale;
  MCGQ_FOR_EACH(k, n) {
    if (mode == MCGQ_ACCUM_RESET)
      accum[k] = g_int[k] != 0 ? 0.0f : x[k];
    else
      accum[k] = __fmaf_rn(neg_scale, (float)g_int[k], x[k]);
  }
}

}  // namespace mcgq_stage_quantize

using namespace mcgq_stage_quantize;

#define T_ELEM MCGQ_TUNE_ELEMENT_THREADS

void mcgq_launch_accumulate(const mcgq_gpu_layer_t *L, float *x, cudaStream_t s) {
  accumulate_kernel<<<grid_for(L->n, T_ELEM), T_ELEM, 0, s>>>(L->g, L->accum, L->n, x);
}
void mcgq_launch_magnitudes(const float *x, uint64_t n, uint32_t *mag, cudaStream_t s) {
  magnitudes_kernel<<<grid_for(n, T_ELEM), T_ELEM, 0, s>>>(x, n, mag);
}
void mcgq_launch_check_max(mcgq_layer_state *st, cudaStream_t s) {
  check_max_kernel<<<1, 1, 0, s>>>(st);
}
void mcgq_launch_fixed_point(const float *x, uint64_t n, const mcgq_layer_state *st,
                             uint64_t *q, cudaStream_t s) {
  fixed_point_kernel<<<grid_for(n, T_ELEM), T_ELEM, 0, s>>>(x, n, st, q);
}
void mcgq_launch_check_scale(const mcgq_gpu_layer_t *L, const uint64_t *C,
                             mcgq_layer_state *st, cudaStream_t s) {
  check_scale_kernel<<<1, 1, 0, s>>>(L->n, L->accumulate == MCGQ_ACCUM_RESIDUAL, C, st);
}
void mcgq_launch_counts(const mcgq_gpu_layer_t *L, const float *x, const uint64_t *C,
                        const mcgq_layer_state *st, int32_t *g_int, cudaStream_t s) {
  counts_kernel<<<grid_for(L->n, T_ELEM), T_ELEM, 0, s>>>(x, C, L->n, L->u, st, g_int);
}
void mcgq_launch_sample(const mcgq_gpu_layer_t *L, const float *x, const uint64_t *C,
                        const mcgq_layer_state *st, int32_t *g_int, cudaStream_t s) {
  cudaMemsetAsync(g_int, 0, L->n * sizeof(int32_t), s);
  unsigned t = MCGQ_TUNE_SAMPLE_THREADS;
  /* A dynamic K's N is known on the device only: size the grid for
   * ceil(n * k_max), where the K update keeps it.  Only the grid's size
   * depends on this: the grid-stride loop covers any N. */
  uint64_t bound = L->samples;
  if (L->dynamic_k) {
    double most = ceil((double)L->n * L->k_max);
    bound = most < (double)MCGQ_MAX_SAMPLES ? (uint64_t)most : MCGQ_MAX_SAMPLES;
  }
  sample_kernel<<<grid_for(bound, t), t, 0, s>>>(x, C, L->n, L->u, st, g_int);
}
void mcgq_launch_commit(const mcgq_gpu_layer_t *L, const float *x, const int32_t *g_int,
                        const mcgq_layer_state *st, cudaStream_t s) {
  commit_kernel<<<grid_for(L->n, T_ELEM), T_ELEM, 0, s>>>(L->accum, x, g_int, L->n,
                                                          L->accumulate, st);
}
