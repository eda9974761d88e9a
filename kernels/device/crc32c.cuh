/* crc32c.cuh - CRC32C of a byte range by one block, with format/crc32c.h's
 * algorithm: the block builds the byte table in shared memory, then one
 * thread walks the bytes.  Simple and slow (one byte per step); regions are
 * summed only when the caller asks for CRCs. */
#ifndef MCGQ_DEVICE_CRC32C_CUH_
#define MCGQ_DEVICE_CRC32C_CUH_

#include <stdint.h>

#include "crc32c.h"

namespace mcgq_dev {

/* The byte table in `table` (__shared__, 256 entries), by all threads of the
 * block; ends with a barrier. */
__device__ inline void block_crc32c_table(uint32_t *table) {
  for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) table[b] = mcgq_crc32c_table_entry(b);
  __syncthreads();
}

/* Call with all threads of a block of >= 1 thread; returns the CRC in
 * thread 0 (others get 0). */
__device__ inline uint32_t block_crc32c(const uint8_t *p, uint64_t bytes) {
  __shared__ uint32_t table[256];
  block_crc32c_table(table);
  if (threadIdx.x != 0) return 0;
  return mcgq_crc32c_with_table(table, 0, p, bytes);
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_CRC32C_CUH_ */
