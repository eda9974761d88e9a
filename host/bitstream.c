/* bitstream.c - the paper's run-length bitstream (section 3.4): sizing. */
#include "internal.h"

uint32_t mcgq_bitlen64(uint64_t x) {
  uint32_t bits = 0;
#if defined(__GNUC__)
  if (x) bits = 64u - (uint32_t)__builtin_clzll(x);
#else
  while (x) { ++bits; x >>= 1; }
#endif
  return bits;
}

/* One pass: the widest value decides B_g, the longest zero run B_RLE, and the
 * token count the length.  Every nonzero costs B_g bits and every run
 * B_g + B_RLE bits, so stream_bits = 64 + B_g*(nonzeros+runs) + B_RLE*runs. */
void mcgq_rle_measure(const int32_t *g_int, uint64_t n, uint32_t *bits_value,
                      uint32_t *bits_run, uint64_t *stream_bits) {
  uint32_t max_mag = 0;
  uint64_t nonzeros = 0, runs = 0, run = 0, longest = 0;
  for (uint64_t k = 0; k < n; ++k) {
    int32_t v = g_int[k];
    if (v == 0) {
      if (run++ == 0) ++runs;
      if (run > longest) longest = run;
      continue;
    }
    run = 0;
    ++nonzeros;
    /* |INT32_MIN| does not occur (|count| <= N < 2^31) but stay defined. */
    uint32_t mag = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (mag > max_mag) max_mag = mag;
  }
  uint32_t bg = n == 0 ? 0u : 1u + mcgq_bitlen64(max_mag);
  uint32_t br = mcgq_bitlen64(longest);
  *bits_value = bg;
  *bits_run = br;
  *stream_bits = 64u + (uint64_t)bg * (nonzeros + runs) + (uint64_t)br * runs;
}
