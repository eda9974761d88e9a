/* u128.h - the few unsigned 128-bit operations the exact integer parts of
 * DESIGN.md 2 need (products N*C_k, T*g_int up to 2^88, sums up to 2^120).
 * Uses the compiler's unsigned __int128 where it has one, else 32-bit limbs,
 * so the reference stays portable C11.  Internal to host/. */
#ifndef MCGQ_U128_H_
#define MCGQ_U128_H_

#include <stdint.h>

typedef struct {
  uint64_t hi, lo;
} mcgq_u128;

static inline mcgq_u128 mcgq_u128_from64(uint64_t x) {
  mcgq_u128 r = {0, x};
  return r;
}

/* Full 64x64 -> 128 product. */
static inline mcgq_u128 mcgq_u128_mul64(uint64_t a, uint64_t b) {
  mcgq_u128 r;
#if defined(__SIZEOF_INT128__)
  unsigned __int128 p = (unsigned __int128)a * b;
  r.hi = (uint64_t)(p >> 64);
  r.lo = (uint64_t)p;
#else
  uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  /* middle column: cannot overflow 64 bits (3 * (2^32-1) < 2^64) */
  uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
  r.lo = (mid << 32) | (uint32_t)p00;
  r.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
  return r;
}

static inline mcgq_u128 mcgq_u128_add(mcgq_u128 a, mcgq_u128 b) {
  mcgq_u128 r;
  r.lo = a.lo + b.lo;
  r.hi = a.hi + b.hi + (r.lo < a.lo);
  return r;
}

/* a - b, requires a >= b. */
static inline mcgq_u128 mcgq_u128_sub(mcgq_u128 a, mcgq_u128 b) {
  mcgq_u128 r;
  r.lo = a.lo - b.lo;
  r.hi = a.hi - b.hi - (a.lo < b.lo);
  return r;
}

/* -1, 0, 1 as a <, ==, > b. */
static inline int mcgq_u128_cmp(mcgq_u128 a, mcgq_u128 b) {
  if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
  if (a.lo != b.lo) return a.lo < b.lo ? -1 : 1;
  return 0;
}

/* x * 2^32 for x < 2^96. */
static inline mcgq_u128 mcgq_u128_shl32(mcgq_u128 x) {
  mcgq_u128 r;
  r.hi = (x.hi << 32) | (x.lo >> 32);
  r.lo = x.lo << 32;
  return r;
}

#endif /* MCGQ_U128_H_ */
