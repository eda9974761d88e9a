// The paper's RLE bitstream (section 3.4, DESIGN.md 3, FORMAT.md 1) through
// mcgqRleEncodeHost / mcgqRleDecodeHost: the paper's golden example, the
// independent vectors, the edge cases of B_g/B_RLE, random round trips
// against a bit-by-bit reference encoder written here, and every canonical
// rejection on a crafted stream.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mcgq.h"
#include "support/vectors.hpp"

namespace {

// Bit-by-bit MSB-first stream builder: the test's own writer, deliberately
// simple (one bit at a time) so it shares nothing with the library's.
struct Bits {
  std::vector<int> bits;
  void Put(uint64_t v, unsigned width) {
    for (unsigned i = width; i-- > 0;) bits.push_back(static_cast<int>((v >> i) & 1u));
  }
  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> out((bits.size() + 7) / 8, 0);
    for (size_t i = 0; i < bits.size(); ++i)
      if (bits[i]) out[i / 8] |= static_cast<uint8_t>(0x80u >> (i % 8));
    return out;
  }
};

unsigned BitLen(uint64_t x) {
  unsigned b = 0;
  while (x) { ++b; x >>= 1; }
  return b;
}

// Reference encoder straight from the paper's description.
Bits ReferenceStream(const std::vector<int32_t> &g) {
  uint64_t maxmag = 0, longest = 0, run = 0;
  for (int32_t v : g) {
    if (v == 0) { longest = std::max(longest, ++run); continue; }
    run = 0;
    maxmag = std::max<uint64_t>(maxmag, v < 0 ? -static_cast<int64_t>(v) : v);
  }
  unsigned bg = g.empty() ? 0 : 1 + BitLen(maxmag), br = BitLen(longest);
  Bits b;
  b.Put(bg, 32);
  b.Put(br, 32);
  for (size_t k = 0; k < g.size();) {
    if (g[k] != 0) {
      b.Put(static_cast<uint32_t>(g[k]) & ((bg == 32) ? 0xffffffffu : ((1u << bg) - 1)), bg);
      ++k;
      continue;
    }
    size_t s = k;
    while (k < g.size() && g[k] == 0) ++k;
    b.Put(0, bg);
    b.Put(k - s, br);
  }
  return b;
}

std::vector<uint8_t> Encode(const std::vector<int32_t> &g, uint64_t *bits) {
  uint64_t query = 0;
  EXPECT_EQ(mcgqRleEncodeHost(g.data(), g.size(), nullptr, 0, &query), mcgqSuccess);
  std::vector<uint8_t> out((query + 7) / 8 + 1, 0xee);  // one spare byte
  EXPECT_EQ(mcgqRleEncodeHost(g.data(), g.size(), out.data(), out.size(), bits), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  EXPECT_EQ(*bits, query);
  EXPECT_EQ(out.back(), 0xee) << "wrote past ceil(bits/8)";
  out.pop_back();
  return out;
}

std::vector<int32_t> DecodeOk(const std::vector<uint8_t> &bytes, uint64_t n) {
  // Exact-size heap copy so ASan sees any read past the end.
  std::vector<uint8_t> copy(bytes);
  std::vector<int32_t> g(n, 0x5a5a5a5a);
  EXPECT_EQ(mcgqRleDecodeHost(copy.data(), copy.size(), n, g.data()), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  return g;
}

uint32_t Be32(const std::vector<uint8_t> &b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

}  // namespace

TEST(Rle, PaperGoldenExample) {
  const std::vector<int32_t> g = {2, -1, 0, 0, 0, 3, 0, 1};
  uint64_t bits = 0;
  std::vector<uint8_t> bytes = Encode(g, &bits);
  EXPECT_EQ(bits, 86u);
  const std::vector<uint8_t> want = {0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
                                     0x00, 0x02, 0x5c, 0x6c, 0x24};
  EXPECT_EQ(bytes, want);
  EXPECT_EQ(Be32(bytes, 0), 3u);  // B_g
  EXPECT_EQ(Be32(bytes, 4), 2u);  // B_RLE
  EXPECT_EQ(DecodeOk(bytes, g.size()), g);
}

TEST(Rle, IndependentVectors) {
  std::vector<RleCase> cases = LoadRleVectors();
  ASSERT_GE(cases.size(), 10u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const RleCase &c = cases[i];
    uint64_t bits = 0;
    EXPECT_EQ(Encode(c.g_int, &bits), c.bytes) << "case " << i;
    EXPECT_EQ(bits, c.bits) << "case " << i;
    EXPECT_EQ(DecodeOk(c.bytes, c.g_int.size()), c.g_int) << "case " << i;
  }
}

TEST(Rle, EdgeCasesOfDesignSection3) {
  struct Case { std::vector<int32_t> g; uint32_t bg, br; };
  const Case cases[] = {
      {{}, 0, 0},                                   // n = 0: no tokens
      {{0, 0, 0, 0, 0}, 1, 3},                      // all zero: B_g = 1
      {{1, -1, 3}, 3, 0},                           // no zeros: B_RLE = 0
      {{2147483647, 0, -2147483647}, 32, 1},        // max magnitude: B_g = 32
      {{-1}, 2, 0},
  };
  for (const Case &c : cases) {
    uint64_t bits = 0;
    std::vector<uint8_t> bytes = Encode(c.g, &bits);
    ASSERT_GE(bytes.size(), 8u);
    EXPECT_EQ(Be32(bytes, 0), c.bg);
    EXPECT_EQ(Be32(bytes, 4), c.br);
    EXPECT_EQ(bytes, ReferenceStream(c.g).Bytes());
    EXPECT_EQ(DecodeOk(bytes, c.g.size()), c.g);
  }
  // n = 0 is exactly the 64-bit header.
  uint64_t bits = 0;
  EXPECT_EQ(Encode({}, &bits).size(), 8u);
  EXPECT_EQ(bits, 64u);
}

TEST(Rle, RandomSparseRoundTripsMatchReference) {
  std::mt19937_64 rng(20260128);
  for (int iter = 0; iter < 300; ++iter) {
    size_t n = 1 + rng() % 3000;
    double density = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    int mag_bits = 1 + static_cast<int>(rng() % 31);
    std::vector<int32_t> g(n, 0);
    for (auto &v : g) {
      if (std::uniform_real_distribution<double>(0.0, 1.0)(rng) >= density) continue;
      int64_t m = 1 + static_cast<int64_t>(rng() % ((uint64_t{1} << mag_bits) - 1));
      v = static_cast<int32_t>((rng() & 1) ? -m : m);
    }
    uint64_t bits = 0;
    Bits ref = ReferenceStream(g);
    std::vector<uint8_t> bytes = Encode(g, &bits);
    ASSERT_EQ(bits, ref.bits.size()) << "iter " << iter;
    ASSERT_EQ(bytes, ref.Bytes()) << "iter " << iter;
    ASSERT_EQ(DecodeOk(bytes, n), g) << "iter " << iter;
  }
}

TEST(Rle, LongRunsAndWideCounts) {
  std::vector<int32_t> g(200000, 0);
  g[0] = 5;
  g[199999] = -7;
  g[70000] = 1;
  uint64_t bits = 0;
  std::vector<uint8_t> bytes = Encode(g, &bits);
  EXPECT_EQ(bytes, ReferenceStream(g).Bytes());
  EXPECT_EQ(DecodeOk(bytes, g.size()), g);
}

TEST(Rle, ArgumentErrors) {
  const int32_t g[2] = {1, 0};
  uint8_t out[16];
  uint64_t bits = 0;
  EXPECT_EQ(mcgqRleEncodeHost(g, 2, out, sizeof out, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqRleEncodeHost(nullptr, 2, out, sizeof out, &bits), mcgqInvalidArgument);
  EXPECT_EQ(mcgqRleEncodeHost(g, 2, out, 8, &bits), mcgqCapacityExceeded);
  EXPECT_EQ(mcgqRleEncodeHost(g, 2, out, 9, &bits), mcgqSuccess);  // 64+2+2+1 = 69 bits
  EXPECT_EQ(bits, 69u);
  const int32_t bad[1] = {INT32_MIN};
  EXPECT_EQ(mcgqRleEncodeHost(bad, 1, out, sizeof out, &bits), mcgqInvalidArgument);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("INT32_MIN"), std::string::npos);
  int32_t dec[2];
  EXPECT_EQ(mcgqRleDecodeHost(nullptr, 9, 2, dec), mcgqInvalidArgument);
  EXPECT_EQ(mcgqRleDecodeHost(out, 9, 2, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqRleDecodeHost(out, 9, uint64_t{1} << 32, dec), mcgqInvalidArgument);
}

// Every rejection of FORMAT.md 1, each from a crafted stream, each with its
// own detail.
TEST(Rle, CanonicalRejections) {
  struct Case {
    const char *name;
    Bits stream;
    uint64_t n;
    const char *detail;  // a substring only this defect's detail contains
  };
  std::vector<Case> cases;
  auto add = [&](const char *name, uint64_t n, const char *detail, auto build) {
    Bits b;
    build(b);
    cases.push_back({name, b, n, detail});
  };
  add("B_g zero", 2, "B_g = 0 with n", [](Bits &b) { b.Put(0, 32); b.Put(1, 32); });
  add("B_g over 32", 1, "B_g = 33 > 32", [](Bits &b) { b.Put(33, 32); b.Put(0, 32); b.Put(1, 33); });
  add("B_RLE over 32", 1, "B_RLE = 33 > 32", [](Bits &b) { b.Put(2, 32); b.Put(33, 32); b.Put(1, 2); });
  add("B_g too wide", 2, "B_g = 4 but the values need B_g = 2",
      [](Bits &b) { b.Put(4, 32); b.Put(0, 32); b.Put(1, 4); b.Put(1, 4); });
  add("B_RLE too wide", 3, "B_RLE = 3 but the longest zero run needs B_RLE = 2",
      [](Bits &b) { b.Put(2, 32); b.Put(3, 32); b.Put(1, 2); b.Put(0, 2); b.Put(2, 3); });
  add("run of length 0", 2, "zero run of length 0",
      [](Bits &b) { b.Put(2, 32); b.Put(1, 32); b.Put(0, 2); b.Put(0, 1); b.Put(1, 2); b.Put(1, 2); });
  add("two runs in a row", 3, "two zero runs in a row",
      [](Bits &b) { b.Put(2, 32); b.Put(1, 32); b.Put(1, 2); b.Put(0, 2); b.Put(1, 1); b.Put(0, 2); b.Put(1, 1); });
  add("-2^(B_g-1)", 1, "token -2^(B_g-1)",
      [](Bits &b) { b.Put(3, 32); b.Put(0, 32); b.Put(4, 3); });
  add("B_g = 1 nonzero", 1, "token -2^(B_g-1) (B_g = 1)",
      [](Bits &b) { b.Put(1, 32); b.Put(0, 32); b.Put(1, 1); });
  add("run crossing n", 3, "crosses n = 3",
      [](Bits &b) { b.Put(2, 32); b.Put(3, 32); b.Put(1, 2); b.Put(0, 2); b.Put(4, 3); });
  // The streams below end on a byte boundary, so no padding bit can pose
  // as a token.
  add("missing tokens", 5, "missing tokens: stream ends at bit 72",
      [](Bits &b) { b.Put(2, 32); b.Put(0, 32); for (int i = 0; i < 4; ++i) b.Put(1, 2); });
  add("missing run length", 3, "stream ends inside the run length",
      [](Bits &b) { b.Put(2, 32); b.Put(5, 32); b.Put(1, 2); b.Put(1, 2); b.Put(0, 2); b.Put(0, 2); });
  add("nonzero padding", 1, "nonzero padding bits",
      [](Bits &b) { b.Put(2, 32); b.Put(0, 32); b.Put(1, 2); b.Put(1, 1); });
  add("tokens past n", 1, "bytes beyond the padding byte",
      [](Bits &b) { b.Put(2, 32); b.Put(0, 32); b.Put(1, 2); b.Put(0, 6); b.Put(0x40, 8); });
  add("short header", 1, "shorter than its 64-bit header", [](Bits &b) { b.Put(2, 32); b.Put(0, 16); });
  add("empty layer with widths", 0, "empty layer needs B_g = B_RLE = 0",
      [](Bits &b) { b.Put(1, 32); b.Put(0, 32); });

  std::set<std::string> details;
  for (const Case &c : cases) {
    std::vector<uint8_t> bytes = c.stream.Bytes();
    std::vector<int32_t> g(c.n + 1);
    EXPECT_EQ(mcgqRleDecodeHost(bytes.data(), bytes.size(), c.n, g.data()), mcgqCorruptStream)
        << c.name;
    std::string detail = mcgqGetLastErrorDetail();
    EXPECT_NE(detail.find(c.detail), std::string::npos) << c.name << ": " << detail;
    EXPECT_EQ(detail.rfind("mcgqRleDecodeHost: ", 0), 0u) << detail;
    details.insert(detail);
  }
  EXPECT_EQ(details.size(), cases.size()) << "details are not distinct";
}

// Decode then encode gives the same bytes: the decoder accepts nothing the
// encoder does not write.  A canonical stream with one bit flipped is
// either rejected or decodes to values whose encoding is that stream.
TEST(Rle, EveryAcceptedStreamIsCanonical) {
  const std::vector<int32_t> g = {0, 7, 0, 0, -8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  uint64_t bits = 0;
  const std::vector<uint8_t> bytes = Encode(g, &bits);
  int accepted = 0;
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::vector<uint8_t> mutated = bytes;
    mutated[bit / 8] ^= static_cast<uint8_t>(0x80u >> (bit % 8));
    for (uint64_t n : {g.size(), g.size() - 1, g.size() + 1}) {
      std::vector<int32_t> out(n);
      if (mcgqRleDecodeHost(mutated.data(), mutated.size(), n, out.data()) != mcgqSuccess) continue;
      ++accepted;
      uint64_t b2 = 0;
      EXPECT_EQ(Encode(out, &b2), mutated) << "bit " << bit;
    }
  }
  // Sign or magnitude flips of a nonzero token that keep B_g can be valid.
  EXPECT_GT(accepted, 0);
}
