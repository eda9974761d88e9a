// mcgqRandomWord = first word of Philox4x32-10 (DESIGN.md 2.8) with key
// (seed lo, seed hi) and counter (step lo, step hi, layer, rank).
#include <gtest/gtest.h>

#include <cstdint>
#include <set>

#include "mcgq.h"

namespace {

// Known-answer vectors of Random123's tests/kat_vectors
// (github.com/DEShawResearch/random123, the three "philox4x32 10" lines;
// found with the code search "philox4x32 10 kat_vectors", which also shows
// them quoted in several independent projects).  Columns: counter (4 words),
// key (2 words), output (4 words).  mcgqRandomWord returns output word 0.
struct Kat {
  uint32_t ctr[4];
  uint32_t key[2];
  uint32_t out[4];
};
const Kat kKats[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

TEST(Philox, Random123KnownAnswers) {
  for (const Kat &k : kKats) {
    uint64_t seed = (uint64_t)k.key[1] << 32 | k.key[0];
    uint64_t step = (uint64_t)k.ctr[1] << 32 | k.ctr[0];
    EXPECT_EQ(mcgqRandomWord(seed, step, k.ctr[2], k.ctr[3]), k.out[0])
        << std::hex << "counter " << k.ctr[0] << " key " << k.key[0];
  }
}

// Each input word reaches the output (a generator that dropped, say, the
// high half of the seed would give equal words here).
TEST(Philox, EveryInputWordMatters) {
  const uint32_t base = mcgqRandomWord(1, 2, 3, 4);
  EXPECT_NE(mcgqRandomWord(1 | (1ull << 32), 2, 3, 4), base);
  EXPECT_NE(mcgqRandomWord(1, 2 | (1ull << 32), 3, 4), base);
  EXPECT_NE(mcgqRandomWord(0, 2, 3, 4), base);
  EXPECT_NE(mcgqRandomWord(1, 3, 3, 4), base);
  EXPECT_NE(mcgqRandomWord(1, 2, 4, 4), base);
  EXPECT_NE(mcgqRandomWord(1, 2, 3, 5), base);
  EXPECT_EQ(mcgqRandomWord(1, 2, 3, 4), base);  // pure function
}

// Words of consecutive steps look uniform: each of the 32 bits is set in
// about half of R = 65536 words.  A fair bit's count has sd sqrt(R)/2 = 128;
// |count - R/2| < 6 sd = 768 fails with probability < 2e-9 per bit.
TEST(Philox, BitsAreBalanced) {
  const int R = 65536;
  int ones[32] = {0};
  std::set<uint32_t> distinct;
  for (int s = 0; s < R; ++s) {
    uint32_t w = mcgqRandomWord(42, (uint64_t)s, 7, 1);
    distinct.insert(w);
    for (int b = 0; b < 32; ++b) ones[b] += (w >> b) & 1u;
  }
  for (int b = 0; b < 32; ++b) EXPECT_NEAR(ones[b], R / 2, 768) << "bit " << b;
  // Birthday bound: expected collisions among 65536 32-bit words ~ 0.5.
  EXPECT_GE(distinct.size(), (size_t)R - 8);
}

}  // namespace
