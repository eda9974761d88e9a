/* u128.cuh - the unsigned 128-bit arithmetic of the exact parts of DESIGN.md
 * 2.4-2.5 and of the W1 sum (products N*C_k and T*g_int up to 2^88, sums up
 * to 2^120), from 32-bit partial products.
 *
 * Why not `unsigned __int128`: nvcc lowers it (and __umul64hi) to
 * mul.hi.u64 and add.cc/addc chains, which the GPU simulator used in CI
 * (GPGPU-Sim, see scripts/gpusim.sh) does not execute.  Four mul.wide.u32
 * and compare-based carries are what every GPU and the simulator run, and
 * cost about the same on hardware for the few elements that need them. */
#ifndef MCGQ_DEVICE_U128_CUH_
#define MCGQ_DEVICE_U128_CUH_

#include <stdint.h>

namespace mcgq_dev {

struct u128 {
  uint64_t hi, lo;
};

__device__ __forceinline__ u128 u128_from64(uint64_t x) { return u128{0, x}; }

/* Full 64 x 64 -> 128 product. */
__device__ __forceinline__ u128 u128_mul64(uint64_t a, uint64_t b) {
  const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  /* middle column: at most 3 * (2^32 - 1) < 2^64, no overflow */
  const uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
  return u128{p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32), (mid << 32) | (uint32_t)p00};
}

__device__ __forceinline__ u128 u128_add(u128 a, u128 b) {
  const uint64_t lo = a.lo + b.lo;
  return u128{a.hi + b.hi + (lo < a.lo ? 1u : 0u), lo};
}

/* a - b for a >= b. */
__device__ __forceinline__ u128 u128_sub(u128 a, u128 b) {
  return u128{a.hi - b.hi - (a.lo < b.lo ? 1u : 0u), a.lo - b.lo};
}

__device__ __forceinline__ bool u128_less(u128 a, u128 b) {
  return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
}

/* x * 2^32 for x < 2^96. */
__device__ __forceinline__ u128 u128_shl32(u128 x) {
  return u128{(x.hi << 32) | (x.lo >> 32), x.lo << 32};
}

/* |a - b|. */
__device__ __forceinline__ u128 u128_absdiff(u128 a, u128 b) {
  return u128_less(a, b) ? u128_sub(b, a) : u128_sub(a, b);
}

}  // namespace mcgq_dev

#endif /* MCGQ_DEVICE_U128_CUH_ */
