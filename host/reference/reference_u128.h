/* reference_u128.h - unsigned 128-bit arithmetic for the plain reference,
 * written as two 64-bit halves in portable C11 (no __int128), so the exact
 * integer steps of DESIGN.md 2.4-2.5 and the W1 sum of Alg 3 can be read
 * without trusting a compiler extension.  Deliberately separate from
 * format/u128.h: the oracle shares no code with the fast path it checks. */
#ifndef MCGQ_REFERENCE_U128_H_
#define MCGQ_REFERENCE_U128_H_

#include <stdint.h>

typedef struct {
  uint64_t hi, lo;
} ref_u128;

static inline ref_u128 ref_u128_of(uint64_t x) {
  ref_u128 r = {0, x};
  return r;
}

static inline ref_u128 ref_u128_add(ref_u128 a, ref_u128 b) {
  ref_u128 r;
  r.lo = a.lo + b.lo;
  r.hi = a.hi + b.hi + (r.lo < a.lo ? 1u : 0u); /* carry out of the low half */
  return r;
}

/* a - b for a >= b. */
static inline ref_u128 ref_u128_sub(ref_u128 a, ref_u128 b) {
  ref_u128 r;
  r.lo = a.lo - b.lo;
  r.hi = a.hi - b.hi - (a.lo < b.lo ? 1u : 0u); /* borrow */
  return r;
}

static inline int ref_u128_less(ref_u128 a, ref_u128 b) {
  return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

/* a * 2^s for 0 <= s < 64 (bits shifted past 2^128 are lost; callers keep
 * their values below 2^120). */
static inline ref_u128 ref_u128_shl(ref_u128 a, unsigned s) {
  if (s == 0) return a;
  ref_u128 r;
  r.hi = (a.hi << s) | (a.lo >> (64u - s));
  r.lo = a.lo << s;
  return r;
}

/* Schoolbook product of the 32-bit halves: a*b = a1 b1 2^64 +
 * (a1 b0 + a0 b1) 2^32 + a0 b0, each partial product below 2^64. */
static inline ref_u128 ref_u128_mul(uint64_t a, uint64_t b) {
  uint64_t a0 = a & 0xffffffffu, a1 = a >> 32;
  uint64_t b0 = b & 0xffffffffu, b1 = b >> 32;
  ref_u128 r = {a1 * b1, a0 * b0};
  r = ref_u128_add(r, ref_u128_shl(ref_u128_of(a1 * b0), 32));
  r = ref_u128_add(r, ref_u128_shl(ref_u128_of(a0 * b1), 32));
  return r;
}

#endif /* MCGQ_REFERENCE_U128_H_ */
