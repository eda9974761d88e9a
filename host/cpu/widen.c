/* widen.c - a bf16 or binary16 layer's values as float32 (mcgq.h
 * MCGQ_DTYPE_*), exactly (format/dtype.h): what the CPU encoder quantizes, so
 * a 16-bit layer's message is the float32 one of the same values. */
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
