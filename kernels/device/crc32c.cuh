/* crc32c.cuh - CRC32C (Castagnoli, reflected 0x82f63b78, init/xorout
 * 0xffffffff) of a byte range by one block: the block builds the byte table
 * in shared memory, then one thread walks the bytes.  Simple and slow (one
 * byte per step); regions are summed only when the caller asks for CRCs. */
#ifndef MCGQ_DEVICE_CRC32C_CUH_
#define MCGQ_DEVICE_CRC32C_CUH_

#include <stdint.h>

namespace mcgq_dev {

/* Call with all threads of a block of >= 1 thread; returns the CRC in
 * thread 0 (others get 0). */
__device__ inline uint32_t block_crc32c(const uint8_t *p, uint64_t bytes) {
  __shared__ uint32_t table[256];
  for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) {
    uint32_t r = b;
    for (int i = 0; i < 8; ++i) r = (r >> 1) ^ (0x82f63b78u & (0u - (r & 1u)));
    table[b] = r;
  }
  __syncthreads();
  if (threadIdx.x != 0) return 0;
  uint32_t reg = 0xffffffffu;
  for (uint64_t i = 0; i < bytes; ++i) reg = (reg >> 8) ^ table[(reg ^ p[i]) & 0xffu];
  return ~reg;
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_CRC32C_CUH_ */
