/* crc32c.c - CRC32C (Castagnoli, reflected polynomial 0x82f63b78, init and
 * xorout 0xffffffff) of the container's per-layer checksums.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (several GB/s, so a
 * checksum costs little next to quantization) and otherwise the byte-table
 * algorithm of format/crc32c.h, which the kernels use too.
 * Check value: mcgq_crc32c(0, "123456789", 9) = 0xe3069283. */
#include <string.h>

#include "crc32c.h"
#include "internal.h"

/* MCGQ_CRC32C_PORTABLE_ONLY builds the table path alone (the test compiles
 * this file that way too, so both paths are checked on x86 machines). */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && \
    !defined(MCGQ_CRC32C_PORTABLE_ONLY)
#define MCGQ_CRC_HW 1
#include <nmmintrin.h>
#endif

/* The byte-table path of format/crc32c.h, its table built on the stack per
 * call (256 x 8 steps: no global state, and this path runs only where the
 * CPU lacks SSE4.2). */
static uint32_t crc32c_bytes(uint32_t reg, const uint8_t *p, size_t bytes) {
  uint32_t table[256];
  for (uint32_t b = 0; b < 256; ++b) table[b] = mcgq_crc32c_table_entry(b);
  return mcgq_crc32c_update(table, reg, p, bytes);
}

#ifdef MCGQ_CRC_HW
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t reg, const uint8_t *p, size_t bytes) {
#if defined(__x86_64__)
  uint64_t r = reg;
  while (bytes >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);  /* unaligned load; x86 is little-endian */
    r = _mm_crc32_u64(r, word);
    p += 8;
    bytes -= 8;
  }
  reg = (uint32_t)r;
#endif
  while (bytes--) reg = _mm_crc32_u8(reg, *p++);
  return reg;
}
#endif

/* crc is the CRC of the data before (0 to start), so a region can be
 * checksummed in pieces: mcgq_crc32c(mcgq_crc32c(0, a, na), b, nb). */
uint32_t mcgq_crc32c(uint32_t crc, const void *data, size_t bytes) {
  const uint8_t *p = (const uint8_t *)data;
  uint32_t reg = ~crc;
#ifdef MCGQ_CRC_HW
  if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hw(reg, p, bytes);
#endif
  return ~crc32c_bytes(reg, p, bytes);
}
