/* bits.cuh - warp/thread primitives of the GPU paths: bit lengths, packed
 * MSB-first writes and reads of the paper's bitstream (FORMAT.md 1), and the
 * exact 128-bit sample test of DESIGN.md 2.4-2.5.
 *
 * Writes OR tokens into a zeroed region with 32-bit atomics: tokens never
 * overlap, so the result does not depend on the order of the writes. */
#ifndef MCGQ_DEVICE_BITS_CUH_
#define MCGQ_DEVICE_BITS_CUH_

#include <stdint.h>

#include "u128.cuh"

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
 * zeroed, 4-byte aligned region. */
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

/* Exact b_k = Q + (R*2^32 > u*T), (Q, R) = divmod(N*C, T), clamped to N;
 * y ~ N*C/T is a start for Q that is corrected, so no 128-bit division. */
__device__ __forceinline__ uint64_t exact_b(uint64_t C, uint64_t N, uint64_t T,
                                            uint32_t u, double y) {
  const u128 P = u128_mul64(N, C);
  const u128 step = u128_from64(T);
  uint64_t Q = y > 0.0 ? (uint64_t)y : 0;
  u128 QT = u128_mul64(Q, T);
  while (u128_less(P, QT)) { --Q; QT = u128_sub(QT, step); }
  while (!u128_less(P, u128_add(QT, step))) { ++Q; QT = u128_add(QT, step); }
  const uint64_t R = u128_sub(P, QT).lo; /* R < T < 2^64 */
  const uint64_t b = Q + (u128_less(u128_mul64(u, T), u128_shl32(u128_from64(R))) ? 1 : 0);
  return b > N ? N : b;
}

/* b(C) = clamp(ceil(C*N/T - u/2^32), 0, N), DESIGN.md 2.5: the double
 * estimate decides unless it lies within 2^-16 of an integer.  The same
 * IEEE operations as the CPU reference (quantize.c), so the same bits. */
__device__ __forceinline__ uint64_t samples_below(uint64_t C, uint64_t N,
                                                  uint64_t T, uint32_t u,
                                                  double ratio, double u_frac) {
  double y = __dmul_rn((double)(int64_t)C, ratio);
  double x = __dsub_rn(y, u_frac);
  int64_t t = (int64_t)x;
  double d = __dsub_rn(x, (double)t);
  double ad = fabs(d);
  if (ad < 0x1p-16 || ad > 1.0 - 0x1p-16) return exact_b(C, N, T, u, y);
  uint64_t b = (uint64_t)(t + (d > 0.0 ? 1 : 0));
  return b > N ? N : b;
}

/* q_k = rne(|g| / m * 2^24), DESIGN.md 2.2: one IEEE division; the product
 * with 2^24 is exact. */
__device__ __forceinline__ uint32_t fixed_point(float g, float m) {
  return __float2uint_rn(__fmul_rn(__fdiv_rn(fabsf(g), m), 16777216.0f));
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_BITS_CUH_ */
