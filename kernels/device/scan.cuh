/* scan.cuh - warp and block prefix sums of 64-bit integers (shuffle-up
 * steps, warp totals meeting in shared memory).  Integer sums: any order
 * gives the same result, so the scans are exact and deterministic.
 * Call with every lane / thread (blockDim.x a multiple of 32, <= 1024). */
#ifndef MCGQ_DEVICE_SCAN_CUH_
#define MCGQ_DEVICE_SCAN_CUH_

#include <stdint.h>

#include "warp.cuh"

namespace mcgq_dev {

__device__ __forceinline__ uint64_t warp_inclusive_sum_u64(uint64_t v) {
  const unsigned lane = threadIdx.x & 31u;
  for (unsigned d = 1; d < 32; d <<= 1) {
    uint64_t o = __shfl_up_sync(kFullWarp, v, d);
    if (lane >= d) v += o;
  }
  return v;
}

__device__ __forceinline__ uint64_t warp_sum_u64(uint64_t v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(kFullWarp, v, d);
  return v;
}

/* Exclusive prefix of v over the block's threads in thread order; *total
 * gets the block's sum (every thread).  `scratch`: __shared__ room for 33
 * values, reusable after return. */
__device__ __forceinline__ uint64_t block_exclusive_sum_u64(uint64_t v, uint64_t *scratch,
                                                            uint64_t *total) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const unsigned warps = blockDim.x >> 5;
  uint64_t incl = warp_inclusive_sum_u64(v);
  if (lane == 31) scratch[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    uint64_t w = lane < warps ? scratch[lane] : 0;
    uint64_t wi = warp_inclusive_sum_u64(w);
    if (lane < warps) scratch[lane] = wi - w; /* exclusive warp bases */
    if (lane == 31) scratch[32] = wi;
  }
  __syncthreads();
  uint64_t out = scratch[warp] + incl - v;
  *total = scratch[32];
  __syncthreads();
  return out;
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_SCAN_CUH_ */
