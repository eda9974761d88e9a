/* bits.cuh - warp/thread primitives of the GPU paths: bit lengths, packed
 * MSB-first writes and reads of the paper's bitstream (FORMAT.md 1).  The
 * sampling arithmetic itself is format/sampling.h, shared with the host.
 *
 * Writes OR tokens into a zeroed region with 32-bit atomics: tokens never
 * overlap, so the result does not depend on the order of the writes. */
#ifndef MCGQ_DEVICE_BITS_CUH_
#define MCGQ_DEVICE_BITS_CUH_

#include <stdint.h>

#include "sampling.h"

namespace mcgq_dev {

__device__ __forceinline__ uint32_t bitlen32(uint32_t x) {
  return 32u - (uint32_t)__clz((int)x);
}
__device__ __forceinline__ uint32_t bitlen64(uint64_t x) {
  return 64u - (uint32_t)__clzll((long long)x);
}

/* A 32-bit word in stream order (first stream byte most significant) as it
 * lies in little-endian memory: reverse the bytes. */
__device__ __forceinline__ uint32_t stream_word_to_memory(uint32_t w) {
  return __byte_perm(w, 0u, 0x0123);
}

/* ORs the low `width` bits (1..32) of `value` at stream bit `pos` of a
 * zeroed, 4-byte aligned region (global memory, or a tile's span in shared
 * memory: the encoder assembles words there first). */
__device__ __forceinline__ void put_bits(uint32_t *region, uint64_t pos,
                                         uint32_t value, uint32_t width) {
  if (width == 0) return;
  uint64_t v = width == 32 ? (uint64_t)value
                           : (uint64_t)(value & ((1u << width) - 1u));
  if (v == 0) return;
  uint32_t shift = (uint32_t)(pos & 31u);
  uint64_t window = v << (64u - width - shift); /* width + shift <= 63 */
  uint64_t word = pos >> 5;
  uint32_t hi = (uint32_t)(window >> 32), lo = (uint32_t)window;
  if (hi) atomicOr(region + word, stream_word_to_memory(hi));
  if (lo) atomicOr(region + word + 1, stream_word_to_memory(lo));
}

/* Reads `width` (0..32) bits at stream bit `pos`; the caller has checked
 * that pos + width <= the readable bits of `bytes`. */
__device__ __forceinline__ uint32_t get_bits(const uint8_t *bytes, uint64_t pos,
                                             uint32_t width) {
  if (width == 0) return 0;
  uint64_t first = pos >> 3, last = (pos + width - 1) >> 3;
  uint64_t acc = 0;
  for (uint64_t b = first; b <= last; ++b) acc = (acc << 8) | bytes[b];
  uint32_t used = (uint32_t)((last - first + 1) * 8);
  uint32_t drop = used - (uint32_t)(pos & 7u) - width;
  acc >>= drop;
  return width == 32 ? (uint32_t)acc : (uint32_t)(acc & ((1ull << width) - 1ull));
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_BITS_CUH_ */
