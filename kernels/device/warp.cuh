/* warp.cuh - warp-wide reductions every target runs.
 *
 * A shuffle butterfly instead of __reduce_max_sync / __reduce_add_sync:
 * redux.sync exists only on sm_80+, and not in the GPU simulator CI runs the
 * kernels on (scripts/gpusim.sh).  Five __shfl_xor_sync steps; every lane
 * gets the result.  Call with all 32 lanes active. */
#ifndef MCGQ_DEVICE_WARP_CUH_
#define MCGQ_DEVICE_WARP_CUH_

#include <stdint.h>

namespace mcgq_dev {

const unsigned kFullWarp = 0xffffffffu;

__device__ __forceinline__ uint32_t warp_max_u32(uint32_t v) {
  for (int d = 16; d > 0; d >>= 1) {
    uint32_t o = __shfl_xor_sync(kFullWarp, v, d);
    v = o > v ? o : v;
  }
  return v;
}

__device__ __forceinline__ uint32_t warp_sum_u32(uint32_t v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(kFullWarp, v, d);
  return v;
}

/* Index of the lowest set bit of a nonzero mask (what __ffs(x) - 1 gives;
 * bfind.shiftamt, behind __ffs, is another instruction the simulator lacks). */
__device__ __forceinline__ unsigned lowest_set_lane(unsigned mask) {
  return 31u - (unsigned)__clz((int)(mask & (0u - mask)));
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_WARP_CUH_ */
