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
