/* widen.c - a bf16 or binary16 layer's values as float32 (mcgq.h
 * MCGQ_DTYPE_*), exactly (format/dtype.h): what the CPU encoder quantizes, so
 * a 16-bit layer's message is the float32 one of the same values; and back,
 * float32 results rounded once to nearest even into a 16-bit output (the
 * typed decoders, the exchange's 16-bit gradients). */
#include <string.h>

#include "dtype.h"
#include "internal.h"

void mcgq_widen(const void *src, int32_t dtype, uint64_t n, float *dst) {
  const uint16_t *h = (const uint16_t *)src;
  switch (dtype) {
    case MCGQ_DTYPE_BF16:
      for (uint64_t k = 0; k < n; ++k) dst[k] = mcgq_bf16_to_f32(h[k]);
      break;
    case MCGQ_DTYPE_F16:
      for (uint64_t k = 0; k < n; ++k) dst[k] = mcgq_f16_to_f32(h[k]);
      break;
    default:
      memcpy(dst, src, (size_t)n * sizeof(float));
      break;
  }
}

void mcgq_narrow(const float *src, int32_t dtype, uint64_t n, void *dst) {
  uint16_t *h = (uint16_t *)dst;
  switch (dtype) {
    case MCGQ_DTYPE_BF16:
      for (uint64_t k = 0; k < n; ++k) h[k] = mcgq_f32_to_bf16(src[k]);
      break;
    case MCGQ_DTYPE_F16:
      for (uint64_t k = 0; k < n; ++k) h[k] = mcgq_f32_to_f16(src[k]);
      break;
    default:
      memcpy(dst, src, (size_t)n * sizeof(float));
      break;
  }
}
