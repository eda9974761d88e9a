/* crc32c.cuh - CRC32C of a byte range by one block, with format/crc32c.h's
 * algorithm and its shift operator: each thread sums one contiguous piece
 * (byte table in shared memory), moves its piece's register to the end of
 * the range (times x^(8 * bytes after the piece)), and the block xors the
 * results; by linearity that is the register of the whole range, whatever
 * the order of the xors.  Pieces are at least kMinPiece bytes so a small
 * region is summed by few threads and pays few shift products. */
#ifndef MCGQ_DEVICE_CRC32C_CUH_
#define MCGQ_DEVICE_CRC32C_CUH_

#include <stdint.h>

#include "block.cuh"
#include "crc32c.h"

namespace mcgq_dev {

/* The byte table in `table` (__shared__, 256 entries), by all threads of the
 * block; ends with a barrier. */
__device__ inline void block_crc32c_table(uint32_t *table) {
  for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) table[b] = mcgq_crc32c_table_entry(b);
  __syncthreads();
}

__device__ __forceinline__ uint32_t warp_xor_u32(uint32_t v) {
  for (int d = 16; d > 0; d >>= 1) v ^= __shfl_xor_sync(kFullWarp, v, d);
  return v;
}
struct WarpXorU32 {
  __device__ __forceinline__ uint32_t operator()(uint32_t v) const { return warp_xor_u32(v); }
};

const uint64_t kMinCrcPiece = 256;

/* CRC32C of p[0, bytes).  Call with every thread of the block (blockDim.x a
 * multiple of 32), `table` filled by block_crc32c_table, `scratch` __shared__
 * room for 32 words; returns the CRC in thread 0 (0 elsewhere). */
__device__ inline uint32_t block_crc32c(const uint32_t *table, const uint8_t *p,
                                        uint64_t bytes, uint32_t *scratch) {
  uint64_t piece = (bytes + blockDim.x - 1) / blockDim.x;
  if (piece < kMinCrcPiece) piece = kMinCrcPiece;
  const uint64_t lo = (uint64_t)threadIdx.x * piece;
  uint32_t moved = 0;
  if (lo < bytes) {
    const uint64_t hi = lo + piece < bytes ? lo + piece : bytes;
    moved = mcgq_crc32c_shift(mcgq_crc32c_update(table, 0, p + lo, hi - lo), bytes - hi);
  }
  const uint32_t reg = block_reduce(moved, 0u, scratch, WarpXorU32{});
  if (threadIdx.x != 0) return 0;
  /* the initial register ~0 moved over all bytes, and the final inversion */
  return ~(mcgq_crc32c_shift(0xffffffffu, bytes) ^ reg);
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_CRC32C_CUH_ */
