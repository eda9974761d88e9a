/* crc32c.h - CRC32C (Castagnoli: reflected polynomial 0x82f63b78, init and
 * xorout 0xffffffff), the container's per-layer checksum (FORMAT.md 3).
 * One definition of the byte-table algorithm for the host and the kernels:
 * the table is built from the polynomial (on the stack on the host, in
 * shared memory on the device), never typed in.  The host adds the SSE4.2
 * instruction as a faster path (host/cpu/crc32c.c), tested equal to this one.
 * The shift operator below lets pieces be summed in parallel and combined
 * (the kernels' parallel CRC, kernels/device/crc32c.cuh).
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

/* ------------------------------------------------- shift and combine
 * The CRC register is a polynomial over GF(2) (reflected: bit 31 is x^0,
 * bit 0 is x^31), and advancing it over a zero byte multiplies it by x^8
 * modulo the polynomial.  Everything else follows from linearity: with
 * R(r, M) the register after M from r, R(r, A||B) = R(r, A) * x^(8|B|) xor
 * R(0, B), and for the inverted CRC crc(M) = ~R(~0, M) the inversions cancel:
 *       crc(A || B) = crc(A) * x^(8|B|)  xor  crc(B)          (mod P)
 * so pieces summed in parallel combine exactly into the CRC of the whole
 * (the idea of zlib's crc32_combine).  Cost: O(log |B|) products of 32
 * steps each, independent of the data. */

/* a * b mod P in the reflected representation. */
static inline MCGQ_HD uint32_t mcgq_crc32c_mulmod(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (int bit = 0; bit < 32; ++bit) { /* bit k of a (from the top) is x^k */
    product ^= b & (0u - (a >> 31));
    a <<= 1;
    b = (b >> 1) ^ (MCGQ_CRC32C_POLY & (0u - (b & 1u))); /* b *= x */
  }
  return product;
}

/* The register (or CRC) r times x^(8 * bytes): what advancing r over
 * `bytes` zero bytes gives, in O(log bytes) products. */
static inline MCGQ_HD uint32_t mcgq_crc32c_shift(uint32_t r, uint64_t bytes) {
  uint32_t power = 1u << 23; /* x^8: one byte */
  for (; bytes; bytes >>= 1) {
    if (bytes & 1u) r = mcgq_crc32c_mulmod(power, r);
    power = mcgq_crc32c_mulmod(power, power); /* x^(8 * 2^(k+1)) */
  }
  return r;
}

/* CRC32C of A || B from crc_a = CRC32C(A), crc_b = CRC32C(B), |B| bytes. */
static inline MCGQ_HD uint32_t mcgq_crc32c_combine(uint32_t crc_a, uint32_t crc_b,
                                                   uint64_t bytes_b) {
  return mcgq_crc32c_shift(crc_a, bytes_b) ^ crc_b;
}

#endif /* MCGQ_FORMAT_CRC32C_H_ */
