/* dynamic_k.cu - the per-layer sample count and the dynamic K of Alg 3 on
 * the device, so a captured graph replays with the K state in device memory.
 * These are the only per-layer launches of an encode, paid by dynamic-K
 * layers alone (kernels/README.md: launch budget):
 *   resolve       N = ceil(n*K) from the K state (validated like
 *                 mcgqKStateUpdate / mcgq_resolve_samples);
 *   (signed q: the counts pass, quantize.cu; two CUB merge sorts, dispatch.cu)
 *   W1 sum        S = sum |N*a_i - T*g_int_i| in 128 bits (each thread sums
 *                 its elements, the block sums the threads, and thread 0 adds
 *                 to a 128-bit total with two 64-bit atomics and a carry:
 *                 integer sums are order-independent);
 *   update        d = S / ((n*N)*T) in DESIGN.md's order, then
 *                 K = clamp(K + delta_k*(d_prev - d)), d_prev = d, only for
 *                 layers whose status is 0; the plan commits it (to the
 *                 K state, or deferred to kstate_out: state_commit.cu). */
#include <stdint.h>

#include "device/bits.cuh"
#include "device/block.cuh"
#include "encode_state.h"
#include "tuning.h"

namespace mcgq_stage_dynamic_k {

unsigned grid_for(uint64_t items, unsigned threads) {
  uint64_t blocks = (items + threads - 1) / threads;
  if (blocks == 0) blocks = 1;
  return blocks > MCGQ_TUNE_MAX_GRID ? MCGQ_TUNE_MAX_GRID : (unsigned)blocks;
}

__device__ bool kstate_valid(const mcgqKState_t *ks) {
  if (!(ks->k > 0.0 && ks->k <= MCGQ_MAX_K)) return false;
  if (ks->started != 0 && ks->started != 1) return false;
  return !ks->started || isfinite(ks->d_prev);
}

__global__ void resolve_kernel(uint64_t n, mcgqKState_t *ks, mcgqKState_t *ks_out,
                               mcgq_layer_state *st) {
  st->kstate = ks;
  st->kstate_out = ks_out;
  st->w1 = 0.0;
  if (!kstate_valid(ks)) {
    st->status = mcgqInvalidArgument;
    st->zero = 1;
    st->k = ks->k;
    return;
  }
  double up = ceil(__dmul_rn((double)n, ks->k)); /* validate.c's N */
  st->k = ks->k;
  if (up > (double)MCGQ_MAX_SAMPLES) {
    st->status = mcgqInvalidArgument;
    st->zero = 1;
    return;
  }
  uint64_t N = (uint64_t)up;
  st->N = N ? N : 1;
}

/* Per-thread 128-bit sums, a block sum, and one pair of 64-bit atomics per
 * block (low word, then high word with the carry out of the low one). */
__global__ void w1_sum_kernel(const int32_t *a, const int32_t *b, uint64_t n,
                              mcgq_layer_state *st) {
  using namespace mcgq_dev;
  __shared__ mcgq_u128 scratch[32];
  if (st->zero) return; /* uniform across the grid */
  const uint64_t N = st->N, T = st->T;
  mcgq_u128 sum = mcgq_u128_from64(0);
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x) {
    sum = mcgq_u128_add(sum, mcgq_w1_term(N, a[k], T, b[k]));
  }
  sum = block_sum_u128(sum, scratch);
  if (threadIdx.x != 0 || (sum.hi == 0 && sum.lo == 0)) return;
  unsigned long long lo = sum.lo, hi = sum.hi;
  unsigned long long old = atomicAdd(&st->w1_lo, lo);
  if (old + lo < old) hi += 1; /* carry out of the low word */
  if (hi) atomicAdd(&st->w1_hi, hi);
}

/* The next K state into st->kstate_next; the plan commits it. */
__global__ void kstate_update_kernel(uint64_t n, double k_min, double k_max,
                                     double delta_k, const mcgqKState_t *ks,
                                     mcgq_layer_state *st) {
  if (st->status != 0) return; /* a failed layer leaves the K state */
  double d = 0.0;              /* all-zero layer: d = 0 */
  if (!st->zero) {
    d = mcgq_w1_distance(mcgq_u128_make(st->w1_hi, st->w1_lo), n, st->N, st->T);
  }
  st->w1 = d;
  mcgqKState_t next = *ks;
  if (next.started)
    next.k = mcgq_dynamic_k_next(ks->k, delta_k, ks->d_prev, d, k_min, k_max);
  else
    next.started = 1; /* a first step has no d_prev: K stays */
  next.d_prev = d;
  st->kstate_next = next;
  st->has_kstate_next = 1;
}

}  // namespace mcgq_stage_dynamic_k

using namespace mcgq_stage_dynamic_k;

#define T_ELEM MCGQ_TUNE_ELEMENT_THREADS

void mcgq_launch_resolve_samples(const mcgq_gpu_layer_t *L, int index,
                                 const mcgq_encode_scratch *S, cudaStream_t s) {
  resolve_kernel<<<1, 1, 0, s>>>(L->n, L->kstate, L->kstate_out, &S->states[index]);
}
void mcgq_launch_w1_sum(const mcgq_gpu_layer_t *L, int index,
                        const mcgq_encode_scratch *S, cudaStream_t s) {
  w1_sum_kernel<<<grid_for(L->n, T_ELEM), T_ELEM, 0, s>>>(S->sorted_a, S->sorted_g, L->n,
                                                          &S->states[index]);
}
void mcgq_launch_kstate_update(const mcgq_gpu_layer_t *L, int index,
                               const mcgq_encode_scratch *S, cudaStream_t s) {
  kstate_update_kernel<<<1, 1, 0, s>>>(L->n, L->k_min, L->k_max, L->delta_k, L->kstate,
                                       &S->states[index]);
}
