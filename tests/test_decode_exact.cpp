// Bit-exactness of the host decoders' float outputs (mcgqDecodeHost,
// mcgqDecodeAverageHost) and of mcgqDecodeIntsHost on random messages,
// against an oracle that never runs the decoder: the quantizer's own g_int
// and scale, combined with the formulas of DESIGN.md 2 (out = scale * g_int;
// acc = fmaf(scale_r, g_int_r, acc) in rank order, out = acc / P).
// The messages cover both encodings, runs across chunk boundaries, cut-free
// multi-layer tables, scales that are denormal or round to +0 (so that
// scale * negative g_int is -0.0f), values near FLT_MAX whose sums overflow,
// and P = 1..5.  Also: with several corrupt ranks, the error names the
// lowest one, as a rank-by-rank decode would.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mcgq.h"
#include "support/bits.hpp"

namespace {

using Bytes = std::vector<uint8_t>;


enum class Dist { kNormal, kSparse, kHuge, kTiny, kZero, kOneHot };

std::vector<float> Values(Dist dist, uint64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> g(n, 0.0f);
  for (uint64_t k = 0; k < n; ++k) {
    switch (dist) {
      case Dist::kNormal: g[k] = normal(rng); break;
      // Mostly zero: long runs, some across the 8192-element chunks.
      case Dist::kSparse: g[k] = unit(rng) < 0.0005f ? normal(rng) : 0.0f; break;
      // Magnitudes near FLT_MAX / 16 (K >= 1): products scale * g_int near
      // FLT_MAX / 4, each message inside docs/FORMAT.md's range rule, and
      // the sums of a few ranks past it.
      case Dist::kHuge: g[k] = (unit(rng) < 0.5f ? -1.0f : 1.0f) * (FLT_MAX / 16) * (0.5f + 0.5f * unit(rng)); break;
      // Denormal magnitudes: the scale is denormal or rounds to +0.
      case Dist::kTiny: g[k] = (unit(rng) < 0.5f ? -1.0f : 1.0f) * FLT_TRUE_MIN * static_cast<float>(1 + rng() % 3); break;
      case Dist::kZero: break;
      case Dist::kOneHot: break;
    }
  }
  if (dist == Dist::kOneHot && n > 0) g[n / 2] = -3.5f;
  return g;
}

struct Layer {
  Dist dist;
  uint64_t n;
  double k;
};

// One rank's message and the oracle's view of it.
struct Encoded {
  Bytes msg;
  std::vector<int32_t> ints;  // all layers concatenated
  std::vector<float> scales;  // per layer
};

Encoded Encode(const std::vector<Layer> &table, uint32_t seed, int rank, int checksum) {
  Encoded e;
  std::vector<std::vector<float>> gs;
  std::vector<mcgqLayerDesc_t> descs(table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    gs.push_back(Values(table[i].dist, table[i].n, seed * 131u + static_cast<uint32_t>(i) * 7u + rank));
    mcgqLayerDescInit(&descs[i]);
    descs[i].g = gs.back().data();
    descs[i].n = table[i].n;
    descs[i].u = mcgqRandomWord(seed, 1, static_cast<uint32_t>(i), static_cast<uint32_t>(rank));
    descs[i].cfg.k = table[i].k;
    descs[i].cfg.checksum = checksum;
  }
  size_t cap = 0, bytes = 0;
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(descs.data(), static_cast<int>(descs.size()), &cap), mcgqSuccess);
  e.msg.resize(cap);
  EXPECT_EQ(mcgqEncodeHost(descs.data(), static_cast<int>(descs.size()), e.msg.data(), cap, &bytes, nullptr),
            mcgqSuccess)
      << mcgqGetLastErrorDetail();
  e.msg.resize(bytes);
  for (size_t i = 0; i < table.size(); ++i) {
    std::vector<int32_t> q(table[i].n);
    mcgqLayerStats_t st;
    EXPECT_EQ(mcgqQuantizeHost(gs[i].data(), table[i].n, table[i].k, 0, descs[i].u, 0, q.data(), &st),
              mcgqSuccess);
    e.ints.insert(e.ints.end(), q.begin(), q.end());
    e.scales.push_back(st.scale);
  }
  return e;
}

uint64_t TotalN(const std::vector<Layer> &table) {
  uint64_t n = 0;
  for (const Layer &l : table) n += l.n;
  return n;
}

// Layer of element k.
std::vector<size_t> LayerOf(const std::vector<Layer> &table) {
  std::vector<size_t> of;
  for (size_t i = 0; i < table.size(); ++i) of.insert(of.end(), table[i].n, i);
  return of;
}

// Tables that exercise both encodings, chunk boundaries and edge values.
std::vector<std::vector<Layer>> Tables() {
  return {
      {{Dist::kNormal, 100000, 0.1}, {Dist::kNormal, 8193, 1.0}, {Dist::kNormal, 7, 0.5}},
      {{Dist::kSparse, 3 * 8192 + 5, 0.2}, {Dist::kNormal, 8192, 4.0}, {Dist::kZero, 9000, 1.0}},
      {{Dist::kHuge, 20000, 1.0}, {Dist::kHuge, 5000, 3.0}, {Dist::kOneHot, 17000, 2.0}},
      {{Dist::kTiny, 12000, 8.0}, {Dist::kTiny, 3000, 0.3}, {Dist::kNormal, 1, 1.0}},
      {{Dist::kNormal, 70000, 0.01}, {Dist::kSparse, 40000, 8.0}, {Dist::kNormal, 8191, 64.0}},
  };
}

class DecodeExact : public ::testing::TestWithParam<int> {};

TEST_P(DecodeExact, FloatsAndIntsEqualTheQuantizer) {
  const std::vector<Layer> table = Tables()[GetParam()];
  const uint64_t n = TotalN(table);
  const std::vector<size_t> layer_of = LayerOf(table);
  for (int checksum = 0; checksum < 2; ++checksum) {
    Encoded e = Encode(table, 11u + GetParam(), 0, checksum);
    std::vector<int32_t> ints(n, 12345);
    std::vector<float> scales(table.size());
    ASSERT_EQ(mcgqDecodeIntsHost(e.msg.data(), e.msg.size(), ints.data(), n, scales.data(),
                                 static_cast<uint32_t>(scales.size())),
              mcgqSuccess)
        << mcgqGetLastErrorDetail();
    EXPECT_EQ(ints, e.ints);
    std::vector<float> out(n, 7.0f);
    ASSERT_EQ(mcgqDecodeHost(e.msg.data(), e.msg.size(), out.data(), n), mcgqSuccess)
        << mcgqGetLastErrorDetail();
    uint64_t wrong = 0, first = n;
    for (uint64_t k = 0; k < n; ++k) {
      float want = e.scales[layer_of[k]] * static_cast<float>(e.ints[k]);
      if (Bits(out[k]) != Bits(want) && wrong++ == 0) first = k;
    }
    EXPECT_EQ(wrong, 0u) << "first at " << first;
  }
}

TEST_P(DecodeExact, AverageEqualsTheNormativeFormula) {
  const std::vector<Layer> table = Tables()[GetParam()];
  const uint64_t n = TotalN(table);
  const std::vector<size_t> layer_of = LayerOf(table);
  std::vector<Encoded> ranks;
  for (int r = 0; r < 5; ++r) ranks.push_back(Encode(table, 23u + GetParam(), r, r % 2));
  for (int P = 1; P <= 5; ++P) {
    std::vector<const void *> in;
    std::vector<size_t> sizes;
    for (int r = 0; r < P; ++r) {
      in.push_back(ranks[r].msg.data());
      sizes.push_back(ranks[r].msg.size());
    }
    std::vector<float> out(n, 7.0f);
    ASSERT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, out.data(), n), mcgqSuccess)
        << mcgqGetLastErrorDetail();
    uint64_t wrong = 0, first = n, negative_zeros = 0;
    for (uint64_t k = 0; k < n; ++k) {
      float acc = 0.0f;
      for (int r = 0; r < P; ++r)
        acc = std::fmaf(ranks[r].scales[layer_of[k]], static_cast<float>(ranks[r].ints[k]), acc);
      float want = acc / static_cast<float>(P);
      negative_zeros += Bits(want) == 0x80000000u;
      if (Bits(out[k]) != Bits(want) && wrong++ == 0) first = k;
    }
    EXPECT_EQ(wrong, 0u) << "P = " << P << ", first at " << first;
    (void)negative_zeros;
  }
}

INSTANTIATE_TEST_SUITE_P(Tables, DecodeExact, ::testing::Range(0, 5));

// The edge values the tables are meant to reach do occur: a -0.0f output of
// mcgqDecodeHost (scale rounded to +0 times a negative count), a denormal
// scale, and huge averages: finite for two ranks, and refused by the range
// rule (docs/FORMAT.md 4) for enough ranks, never averaged to infinity.
TEST(DecodeExactCoverage, EdgeValuesOccur) {
  std::vector<Layer> tiny = {{Dist::kTiny, 12000, 8.0}, {Dist::kTiny, 3000, 0.3}};
  Encoded e = Encode(tiny, 3, 0, 0);
  EXPECT_EQ(Bits(e.scales[0]), 0u) << "scale of the first tiny layer should round to +0";
  EXPECT_TRUE(e.scales[1] > 0.0f && e.scales[1] < FLT_MIN) << "a denormal scale";
  std::vector<float> out(15000);
  ASSERT_EQ(mcgqDecodeHost(e.msg.data(), e.msg.size(), out.data(), out.size()), mcgqSuccess);
  size_t negative_zeros = 0;
  for (float f : out) negative_zeros += Bits(f) == 0x80000000u;
  EXPECT_GT(negative_zeros, 0u);

  std::vector<Layer> huge = {{Dist::kHuge, 20000, 1.0}};
  std::vector<Encoded> r = {Encode(huge, 5, 0, 0), Encode(huge, 5, 1, 0)};
  const void *in[2] = {r[0].msg.data(), r[1].msg.data()};
  size_t sizes[2] = {r[0].msg.size(), r[1].msg.size()};
  std::vector<float> avg(20000);
  ASSERT_EQ(mcgqDecodeAverageHost(in, sizes, 2, avg.data(), avg.size()), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  size_t infinities = 0;
  for (float f : avg) infinities += std::isinf(f);
  EXPECT_EQ(infinities, 0u);
  // The same two messages repeated: some P refuses, leaving avg untouched.
  int refused_at = 0;
  for (int P = 3; P <= 16 && !refused_at; ++P) {
    std::vector<const void *> many;
    std::vector<size_t> many_sizes;
    for (int q = 0; q < P; ++q) {
      many.push_back(in[q % 2]);
      many_sizes.push_back(sizes[q % 2]);
    }
    std::vector<float> out(20000, -7.0f);
    mcgqResult_t res = mcgqDecodeAverageHost(many.data(), many_sizes.data(), P, out.data(),
                                             out.size());
    if (res == mcgqSuccess) {
      for (float f : out) ASSERT_TRUE(std::isfinite(f)) << "P = " << P;
      continue;
    }
    ASSERT_EQ(res, mcgqRangeError) << mcgqGetLastErrorDetail();
    for (float f : out) ASSERT_EQ(f, -7.0f);
    refused_at = P;
  }
  EXPECT_GT(refused_at, 0);
}

// Several corrupt ranks: the detail names the lowest one even when a higher
// rank's defect lies earlier in its stream.
TEST(DecodeExactErrors, LowestCorruptRankIsReported) {
  std::vector<Layer> table = {{Dist::kNormal, 50000, 0.1}, {Dist::kNormal, 20000, 1.0}};
  const uint64_t n = TotalN(table);
  std::vector<Encoded> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back(Encode(table, 41, r, 0));
  mcgqMessageLayer_t l0, l1;
  ASSERT_EQ(mcgqMessageGetLayer(ranks[1].msg.data(), ranks[1].msg.size(), 0, &l0), mcgqSuccess);
  ASSERT_EQ(mcgqMessageGetLayer(ranks[1].msg.data(), ranks[1].msg.size(), 1, &l1), mcgqSuccess);
  ASSERT_EQ(l0.encoding, 0u);
  // Rank 1: the last token byte of layer 0 flipped (found late in the layer);
  // rank 3: a byte just after the 64-bit stream header (found first).
  Bytes bad1 = ranks[1].msg, bad3 = ranks[3].msg;
  bad1[l0.byte_offset + (l0.stream_bits - 1) / 8 - 1] ^= 0x5a;
  bad3[l0.byte_offset + 9] ^= 0xff;
  std::vector<const void *> in = {ranks[0].msg.data(), bad1.data(), ranks[2].msg.data(), bad3.data()};
  std::vector<size_t> sizes = {ranks[0].msg.size(), bad1.size(), ranks[2].msg.size(), bad3.size()};
  std::vector<float> out(n);
  EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), 4, out.data(), n), mcgqCorruptStream);
  std::string detail = mcgqGetLastErrorDetail();
  EXPECT_NE(detail.find("rank 1: layer 0"), std::string::npos) << detail;

  // The same defect alone gives the same detail.
  in[3] = ranks[3].msg.data();
  EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), 4, out.data(), n), mcgqCorruptStream);
  EXPECT_EQ(std::string(mcgqGetLastErrorDetail()), detail);
}

}  // namespace
