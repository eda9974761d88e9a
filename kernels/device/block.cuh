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

#include "u128.cuh"
#include "warp.cuh"

namespace mcgq_dev {

__device__ __forceinline__ uint32_t block_max_u32(uint32_t v, uint32_t *scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_max_u32(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : 0u;
  if (warp == 0) v = warp_max_u32(v);
  __syncthreads(); /* scratch may be reused */
  return v;
}

__device__ __forceinline__ uint32_t block_sum_u32(uint32_t v, uint32_t *scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_sum_u32(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : 0u;
  if (warp == 0) v = warp_sum_u32(v);
  __syncthreads();
  return v;
}

__device__ __forceinline__ u128 warp_sum_u128(u128 v) {
  for (int d = 16; d > 0; d >>= 1) {
    u128 o;
    o.hi = __shfl_xor_sync(kFullWarp, v.hi, d);
    o.lo = __shfl_xor_sync(kFullWarp, v.lo, d);
    v = u128_add(v, o);
  }
  return v;
}

/* `scratch`: __shared__ room for 32 u128 values. */
__device__ __forceinline__ u128 block_sum_u128(u128 v, u128 *scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_sum_u128(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : u128_from64(0);
  if (warp == 0) v = warp_sum_u128(v);
  __syncthreads();
  return v;
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_BLOCK_CUH_ */
