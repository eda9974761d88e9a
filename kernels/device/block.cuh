/* block.cuh - block-wide integer reductions: each warp reduces with shuffles
 * (warp.cuh), warp leaders meet in shared memory, warp 0 reduces those.  The
 * result is valid in thread 0, which then makes the block's one atomic: no
 * address sees more than one atomic per block (integer max and sum, so the
 * result does not depend on the order blocks arrive in).
 *
 * Call with every thread of the block (blockDim.x a multiple of 32, at most
 * 1024); `scratch` is __shared__ room for 32 values, reusable after return. */
#ifndef MCGQ_DEVICE_BLOCK_CUH_
#define MCGQ_DEVICE_BLOCK_CUH_

#include <stdint.h>

#include "u128.h"
#include "warp.cuh"

namespace mcgq_dev {

__device__ __forceinline__ mcgq_u128 warp_sum_u128(mcgq_u128 v) {
  for (int d = 16; d > 0; d >>= 1) {
    mcgq_u128 o;
    o.hi = __shfl_xor_sync(kFullWarp, v.hi, d);
    o.lo = __shfl_xor_sync(kFullWarp, v.lo, d);
    v = mcgq_u128_add(v, o);
  }
  return v;
}

struct WarpMaxU32 {
  __device__ __forceinline__ uint32_t operator()(uint32_t v) const { return warp_max_u32(v); }
};
struct WarpSumU32 {
  __device__ __forceinline__ uint32_t operator()(uint32_t v) const { return warp_sum_u32(v); }
};
struct WarpSumU128 {
  __device__ __forceinline__ mcgq_u128 operator()(mcgq_u128 v) const { return warp_sum_u128(v); }
};

/* Every thread's v combined by warp_reduce (a warp-wide reduction that
 * gives every lane the result), `identity` for the empty warp slots. */
template <class T, class WarpReduce>
__device__ __forceinline__ T block_reduce(T v, T identity, T *scratch,
                                          WarpReduce warp_reduce) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_reduce(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : identity;
  if (warp == 0) v = warp_reduce(v);
  __syncthreads(); /* scratch may be reused */
  return v;
}

__device__ __forceinline__ uint32_t block_max_u32(uint32_t v, uint32_t *scratch) {
  return block_reduce(v, 0u, scratch, WarpMaxU32{});
}
__device__ __forceinline__ uint32_t block_sum_u32(uint32_t v, uint32_t *scratch) {
  return block_reduce(v, 0u, scratch, WarpSumU32{});
}
/* `scratch`: __shared__ room for 32 mcgq_u128 values. */
__device__ __forceinline__ mcgq_u128 block_sum_u128(mcgq_u128 v, mcgq_u128 *scratch) {
  return block_reduce(v, mcgq_u128_from64(0), scratch, WarpSumU128{});
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_BLOCK_CUH_ */
