/* bitpack.h - fixed-width bit fields, MSB-first, for the baselines' messages
 * (QSGD levels, signSGD signs).  The buffer must be zeroed before packing. */
#ifndef MCGQ_TRAIN_BITPACK_H_
#define MCGQ_TRAIN_BITPACK_H_

#include <stdint.h>

static inline void bitpack_put(unsigned char *buf, uint64_t bitpos,
                               unsigned bits, uint32_t value) {
  for (unsigned b = 0; b < bits; ++b, ++bitpos)
    if ((value >> (bits - 1 - b)) & 1u)
      buf[bitpos >> 3] |= (unsigned char)(0x80u >> (bitpos & 7));
}

static inline uint32_t bitpack_get(const unsigned char *buf, uint64_t bitpos,
                                   unsigned bits) {
  uint32_t v = 0;
  for (unsigned b = 0; b < bits; ++b, ++bitpos)
    v = (v << 1) | ((buf[bitpos >> 3] >> (7 - (bitpos & 7))) & 1u);
  return v;
}

static inline uint64_t bitpack_bytes(uint64_t bits) { return (bits + 7) / 8; }

#endif
