// CRC32C (host/cpu/crc32c.c): the standard check value and agreement with the
// bitwise definition for every length and alignment, on both the SSE4.2
// path (where the CPU has it) and the portable table path.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

extern "C" uint32_t mcgq_test_crc32c_dispatch(uint32_t crc, const void *data, size_t bytes);
extern "C" uint32_t mcgq_test_crc32c_portable(uint32_t crc, const void *data, size_t bytes);

namespace {
uint32_t Bitwise(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  return ~c;
}
using Fn = uint32_t (*)(uint32_t, const void *, size_t);
}  // namespace

TEST(Crc32c, CheckValue) {
  for (Fn f : {mcgq_test_crc32c_dispatch, mcgq_test_crc32c_portable}) {
    EXPECT_EQ(f(0, "123456789", 9), 0xe3069283u);
    EXPECT_EQ(f(0, "", 0), 0u);
  }
}

TEST(Crc32c, MatchesDefinitionForAllLengthsAndOffsets) {
  std::mt19937 rng(5);
  std::vector<uint8_t> buf(300);
  for (auto &b : buf) b = static_cast<uint8_t>(rng());
  for (size_t off = 0; off < 8; ++off)
    for (size_t len = 0; len + off <= buf.size(); len += 1 + len / 16) {
      uint32_t want = Bitwise(buf.data() + off, len);
      EXPECT_EQ(mcgq_test_crc32c_dispatch(0, buf.data() + off, len), want) << off << " " << len;
      EXPECT_EQ(mcgq_test_crc32c_portable(0, buf.data() + off, len), want) << off << " " << len;
    }
}

TEST(Crc32c, Incremental) {
  const char *s = "123456789";
  for (Fn f : {mcgq_test_crc32c_dispatch, mcgq_test_crc32c_portable})
    for (size_t cut = 0; cut <= 9; ++cut) EXPECT_EQ(f(f(0, s, cut), s + cut, 9 - cut), 0xe3069283u);
}

// The shift/combine operator of format/crc32c.h (what the kernels' parallel
// CRC is built on): shifting a register equals advancing it over zero
// bytes, and combining the CRCs of two pieces gives the CRC of the whole,
// for every cut of random data and for lengths up to 2^40 (shift against
// repeated squaring by hand).
#include "crc32c.h"

namespace {
uint32_t Table(uint32_t crc, const uint8_t *p, size_t n) {
  uint32_t table[256];
  for (uint32_t b = 0; b < 256; ++b) table[b] = mcgq_crc32c_table_entry(b);
  return mcgq_crc32c_with_table(table, crc, p, n);
}
}  // namespace

TEST(Crc32c, ShiftEqualsZeroBytes) {
  uint32_t table[256];
  for (uint32_t b = 0; b < 256; ++b) table[b] = mcgq_crc32c_table_entry(b);
  std::vector<uint8_t> zeros(1000, 0);
  for (uint32_t reg : {1u, 0x80000000u, 0xffffffffu, 0x12345678u})
    for (size_t len : {0, 1, 2, 3, 7, 8, 64, 999, 1000})
      EXPECT_EQ(mcgq_crc32c_shift(reg, len), mcgq_crc32c_update(table, reg, zeros.data(), len))
          << std::hex << reg << " " << std::dec << len;
  // x^0 (bit 31) times x^8 is x^8 (bit 23); a product with x^0 is the identity.
  EXPECT_EQ(mcgq_crc32c_shift(0x80000000u, 1), 1u << 23);
  EXPECT_EQ(mcgq_crc32c_mulmod(0x80000000u, 0xdeadbeefu), 0xdeadbeefu);
  // Shift by 2^40 bytes = forty squarings of x^8.
  uint32_t power = 1u << 23;
  for (int k = 0; k < 40; ++k) power = mcgq_crc32c_mulmod(power, power);
  EXPECT_EQ(mcgq_crc32c_shift(0x80000000u, (uint64_t)1 << 40), power);
  EXPECT_EQ(mcgq_crc32c_shift(0xabcdef01u, ((uint64_t)1 << 40) + 3),
            mcgq_crc32c_shift(mcgq_crc32c_mulmod(power, 0xabcdef01u), 3));
}

TEST(Crc32c, CombineOfPiecesEqualsWhole) {
  std::mt19937 rng(9);
  std::vector<uint8_t> buf(700);
  for (auto &b : buf) b = static_cast<uint8_t>(rng());
  EXPECT_EQ(mcgq_crc32c_combine(Table(0, (const uint8_t *)"1234", 4),
                                Table(0, (const uint8_t *)"56789", 5), 5),
            0xe3069283u);
  for (size_t len : {0, 1, 9, 100, 700})
    for (size_t cut = 0; cut <= len; cut += 1 + cut / 3) {
      uint32_t whole = Table(0, buf.data(), len);
      uint32_t a = Table(0, buf.data(), cut), b = Table(0, buf.data() + cut, len - cut);
      EXPECT_EQ(mcgq_crc32c_combine(a, b, len - cut), whole) << len << " " << cut;
    }
  // Many pieces of unequal length, combined left to right.
  size_t at = 0;
  uint32_t crc = 0;
  for (size_t piece = 1; at + piece <= buf.size(); at += piece, piece += 7)
    crc = mcgq_crc32c_combine(crc, Table(0, buf.data() + at, piece), piece);
  EXPECT_EQ(crc, Table(0, buf.data(), at));
}
