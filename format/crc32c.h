/* crc32c.h - CRC32C (Castagnoli: reflected polynomial 0x82f63b78, init and
 * xorout 0xffffffff), the container's per-layer checksum (FORMAT.md 3).
 * One definition of the byte-table algorithm for the host and the kernels:
 * the table is built from the polynomial (on the stack on the host, in
 * shared memory on the device), never typed in.  The host adds the SSE4.2
 * instruction as a faster path (host/cpu/crc32c.c), tested equal to this one.
 * Check value: CRC32C("123456789") = 0xe3069283. */
#ifndef MCGQ_FORMAT_CRC32C_H_
#define MCGQ_FORMAT_CRC32C_H_

#include <stdint.h>

#include "hd.h"

#define MCGQ_CRC32C_POLY 0x82f63b78u

/* Entry `byte` of the byte table: the register after shifting in `byte`. */
static inline MCGQ_HD uint32_t mcgq_crc32c_table_entry(uint32_t byte) {
  uint32_t r = byte;
  for (int bit = 0; bit < 8; ++bit) r = (r >> 1) ^ (MCGQ_CRC32C_POLY & (0u - (r & 1u)));
  return r;
}

/* Advances the raw register (not yet inverted) over `bytes` bytes. */
static inline MCGQ_HD uint32_t mcgq_crc32c_update(const uint32_t *table, uint32_t reg,
                                                  const uint8_t *p, uint64_t bytes) {
  for (uint64_t i = 0; i < bytes; ++i) reg = (reg >> 8) ^ table[(reg ^ p[i]) & 0xffu];
  return reg;
}

/* The CRC of a range: crc is the CRC of the data before it (0 to start),
 * so a region can be checksummed in pieces. */
static inline MCGQ_HD uint32_t mcgq_crc32c_with_table(const uint32_t *table, uint32_t crc,
                                                      const uint8_t *p, uint64_t bytes) {
  return ~mcgq_crc32c_update(table, ~crc, p, bytes);
}

#endif /* MCGQ_FORMAT_CRC32C_H_ */
