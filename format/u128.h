/* u128.h - the unsigned 128-bit operations the exact integer parts of
 * DESIGN.md 2 need: products N*C_k and T*g_int up to 2^88, sums up to 2^120.
 *
 * One definition for host and device.  The product is built from 32-bit
 * partial products on the device: nvcc lowers `unsigned __int128` (and
 * __umul64hi) to mul.hi.u64 and add.cc/addc chains, which the GPU simulator
 * of CI (GPGPU-Sim, scripts/gpusim.sh) does not execute, and the four
 * mul.wide.u32 cost about the same on hardware for the few elements that
 * need them.  The host takes the compiler's __int128 where it has one. */
#ifndef MCGQ_FORMAT_U128_H_
#define MCGQ_FORMAT_U128_H_

#include <stdint.h>

#include "hd.h"

typedef struct {
  uint64_t hi, lo;
} mcgq_u128;

static inline MCGQ_HD mcgq_u128 mcgq_u128_make(uint64_t hi, uint64_t lo) {
  mcgq_u128 r;
  r.hi = hi;
  r.lo = lo;
  return r;
}

static inline MCGQ_HD mcgq_u128 mcgq_u128_from64(uint64_t x) {
  return mcgq_u128_make(0, x);
}

/* Full 64 x 64 -> 128 product. */
static inline MCGQ_HD mcgq_u128 mcgq_u128_mul64(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__) && !MCGQ_DEVICE_PASS
  unsigned __int128 p = (unsigned __int128)a * b;
  return mcgq_u128_make((uint64_t)(p >> 64), (uint64_t)p);
#else
  const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  /* middle column: at most 3 * (2^32 - 1) < 2^64, no overflow */
  const uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
  return mcgq_u128_make(p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32),
                        (mid << 32) | (uint32_t)p00);
#endif
}

static inline MCGQ_HD mcgq_u128 mcgq_u128_add(mcgq_u128 a, mcgq_u128 b) {
  const uint64_t lo = a.lo + b.lo;
  return mcgq_u128_make(a.hi + b.hi + (lo < a.lo ? 1u : 0u), lo);
}

/* a - b for a >= b. */
static inline MCGQ_HD mcgq_u128 mcgq_u128_sub(mcgq_u128 a, mcgq_u128 b) {
  return mcgq_u128_make(a.hi - b.hi - (a.lo < b.lo ? 1u : 0u), a.lo - b.lo);
}

static inline MCGQ_HD int mcgq_u128_less(mcgq_u128 a, mcgq_u128 b) {
  return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
}

/* x * 2^32 for x < 2^96. */
static inline MCGQ_HD mcgq_u128 mcgq_u128_shl32(mcgq_u128 x) {
  return mcgq_u128_make((x.hi << 32) | (x.lo >> 32), x.lo << 32);
}

/* |a - b|. */
static inline MCGQ_HD mcgq_u128 mcgq_u128_absdiff(mcgq_u128 a, mcgq_u128 b) {
  return mcgq_u128_less(a, b) ? mcgq_u128_sub(b, a) : mcgq_u128_sub(a, b);
}

#endif /* MCGQ_FORMAT_U128_H_ */
