/* dtype.h - the 16-bit gradient types of the layer descriptor's dtype
 * field (mcgq.h: MCGQ_DTYPE_*), host and device callable.
 *
 * Inputs are widened to float32 exactly (every bf16 and every IEEE binary16
 * value is a float32 value), so a bf16 or fp16 layer gives the same message
 * as the float32 layer of its widened values.  Decoders compute each output
 * in float32 as DESIGN.md 2 prescribes and narrow it once, rounding to
 * nearest even (overflow to infinity; NaN stays NaN), so a 16-bit output is
 * the 16-bit value nearest the float32 one. */
#ifndef MCGQ_FORMAT_DTYPE_H_
#define MCGQ_FORMAT_DTYPE_H_

#include <stdint.h>
#include <string.h>

#include "hd.h"

static inline MCGQ_HD uint32_t mcgq_f32_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}
static inline MCGQ_HD float mcgq_f32_from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* bf16 is the upper half of a float32. */
static inline MCGQ_HD float mcgq_bf16_to_f32(uint16_t h) {
  return mcgq_f32_from_bits((uint32_t)h << 16);
}

/* IEEE binary16 (1 sign, 5 exponent bits with bias 15, 10 fraction bits). */
static inline MCGQ_HD float mcgq_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, fraction = h & 0x3ffu;
  if (exponent == 0x1fu) /* infinity or NaN (payload kept, quiet bit too) */
    return mcgq_f32_from_bits(sign | 0x7f800000u | (fraction << 13));
  if (exponent != 0) /* normal: rebias 15 -> 127 */
    return mcgq_f32_from_bits(sign | ((exponent + 112u) << 23) | (fraction << 13));
  if (fraction == 0) return mcgq_f32_from_bits(sign); /* +-0 */
  /* subnormal: fraction * 2^-24, normalized for float32 */
  uint32_t shift = 0, f = fraction;
  while (!(f & 0x400u)) {
    f <<= 1;
    ++shift;
  }
  return mcgq_f32_from_bits(sign | ((113u - shift) << 23) | ((f & 0x3ffu) << 13));
}

/* float32 -> bf16, round to nearest even; NaN -> a quiet NaN of its sign. */
static inline MCGQ_HD uint16_t mcgq_f32_to_bf16(float f) {
  const uint32_t b = mcgq_f32_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((b >> 16) & 1u); /* ties to the even half */
  return (uint16_t)((b + rounding) >> 16);
}

/* float32 -> binary16, round to nearest even, overflow to infinity,
 * underflow to subnormals and zero; NaN -> a quiet NaN of its sign. */
static inline MCGQ_HD uint16_t mcgq_f32_to_f16(float f) {
  const uint32_t b = mcgq_f32_bits(f);
  const uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
  const uint32_t magnitude = b & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  if (magnitude >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: inf */
  if (magnitude >= 0x38800000u) { /* >= 2^-14: a normal result */
    const uint32_t rebias = magnitude - (112u << 23); /* exponent 127 -> 15 */
    const uint32_t rounding = 0xfffu + ((rebias >> 13) & 1u);
    return (uint16_t)(sign | ((rebias + rounding) >> 13)); /* carries into the exponent */
  }
  if (magnitude < 0x33000000u) return sign; /* < 2^-25: rounds to zero */
  /* subnormal result: value = m * 2^(e-150) with the implicit bit; the
   * result counts units of 2^-24, so shift m right by 126 - e, rounding */
  const uint32_t e = magnitude >> 23, m = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e; /* 14 .. 24 */
  const uint32_t kept = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  const uint32_t up = rest > half || (rest == half && (kept & 1u));
  return (uint16_t)(sign | (kept + up)); /* may carry into the smallest normal */
}

#endif /* MCGQ_FORMAT_DTYPE_H_ */
