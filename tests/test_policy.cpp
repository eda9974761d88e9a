// Performance model and policy (host/model/policy.c): the formulas of mcgq.h
// ("performance model and policy") against values derived by hand, the
// monotonicity the model must have, and the consistency of the break-even
// points with the step-time prediction.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "mcgq.h"

namespace {

mcgqLinkModel_t Link(double alpha_us, double bw_gbs) {
  mcgqLinkModel_t l = MCGQ_LINK_MODEL_INITIALIZER;
  l.alpha_us = alpha_us;
  l.bw_gbs = bw_gbs;
  return l;
}

mcgqCodecModel_t Codec(double enc_gbs, double dec_gbs, double launch_us,
                       double per_layer_us, int size_exchange) {
  mcgqCodecModel_t c = MCGQ_CODEC_MODEL_INITIALIZER;
  c.encode_gbs = enc_gbs;
  c.decode_gbs = dec_gbs;
  c.launch_us = launch_us;
  c.per_layer_us = per_layer_us;
  c.size_exchange = size_exchange;
  return c;
}

mcgqStepPrediction_t Predict(const mcgqLinkModel_t &l, const mcgqCodecModel_t &c,
                             uint64_t n, uint32_t layers, double bits, int P) {
  mcgqStepPrediction_t p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  EXPECT_EQ(mcgqModelStepTime(&l, &c, n, layers, bits, P, &p), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  return p;
}

mcgqBreakEven_t BreakEven(const mcgqLinkModel_t &l, const mcgqCodecModel_t &c,
                          uint64_t n, uint32_t layers, double bits, int P,
                          int baseline) {
  mcgqBreakEven_t b;
  std::memset(&b, 0, sizeof b);
  b.struct_size = sizeof b;
  EXPECT_EQ(mcgqModelBreakEven(&l, &c, n, layers, bits, P, baseline, &b),
            mcgqSuccess)
      << mcgqGetLastErrorDetail();
  return b;
}

int Compress(const mcgqLinkModel_t &l, const mcgqCodecModel_t &c, uint64_t n,
             uint32_t layers, double bits, int P, int baseline) {
  int out = -1;
  EXPECT_EQ(mcgqPolicyShouldCompress(&l, &c, n, layers, bits, P, baseline, &out),
            mcgqSuccess)
      << mcgqGetLastErrorDetail();
  return out;
}

double RelDiff(double a, double b) {
  return std::fabs(a - b) / std::fmax(std::fabs(a), std::fabs(b));
}

}  // namespace

// alpha = 1 us, bw = 1 GB/s = 1000 B/us; encode = decode = 4 GB/s = 4000 B/us,
// launch 2 us, 0.5 us per layer, size exchange on; n = 1000, L = 2, b = 4, P = 4:
//   encode   = 2 + 2*0.5 + 4000 B / 4000          = 4
//   exchange = 2*(4-1)*1 + 3 * (1000*4/8 B) / 1000 = 6 + 1.5 = 7.5
//   decode   = 3 + 4 * 4000 / 4000                 = 7
//   fp32 all-reduce = 2*3*1 + (2*3/4) * 4000/1000  = 6 + 6 = 12
//   bf16 all-reduce = 6 + 1.5 * 2000/1000          = 9
TEST(Policy, StepTimeMatchesHandDerivedValues) {
  auto p = Predict(Link(1, 1), Codec(4, 4, 2, 0.5, 1), 1000, 2, 4.0, 4);
  EXPECT_DOUBLE_EQ(p.encode_us, 4.0);
  EXPECT_DOUBLE_EQ(p.exchange_us, 7.5);
  EXPECT_DOUBLE_EQ(p.decode_us, 7.0);
  EXPECT_DOUBLE_EQ(p.mcgq_us, 18.5);
  EXPECT_DOUBLE_EQ(p.allreduce_fp32_us, 12.0);
  EXPECT_DOUBLE_EQ(p.allreduce_bf16_us, 9.0);
  // Without the size exchange the latency of one all-gather goes away.
  auto q = Predict(Link(1, 1), Codec(4, 4, 2, 0.5, 0), 1000, 2, 4.0, 4);
  EXPECT_DOUBLE_EQ(q.exchange_us, 4.5);
}

TEST(Policy, SingleRankHasNoCommunication) {
  auto p = Predict(Link(1, 1), Codec(4, 4, 2, 0.5, 1), 1000, 2, 4.0, 1);
  EXPECT_EQ(p.exchange_us, 0.0);
  EXPECT_EQ(p.allreduce_fp32_us, 0.0);
  EXPECT_EQ(p.allreduce_bf16_us, 0.0);
  EXPECT_DOUBLE_EQ(p.decode_us, 3.0 + 1.0);  // one stream
  EXPECT_EQ(Compress(Link(1, 1), Codec(4, 4, 2, 0.5, 1), 1000, 2, 4.0, 1, 32), 0);
}

// Fast codec (1000 GB/s = 1e6 B/us), alpha 1, bw 1 GB/s, launch 2, 0.5/layer,
// L = 2, P = 4, n = 1e6:
//   mcgq(b) = (3 + 4) + (3 + 16) + 6 + 3 * 1e6 * b / 8 / 1000 = 32 + 375 b
//   fp32: 6 + 1.5 * 4e6 / 1000 = 6006  -> b* = 5974 / 375
//   bf16: 6 + 1.5 * 2e6 / 1000 = 3006  -> b* = 2974 / 375
// Break-even n at b = 4 vs fp32: mcgq - allreduce = c0 + c1 n with
//   c0 = 2*3 + 2*3*1 - 2*3*1 = 6
//   c1 = 4/1e6 + 4*4/1e6 + 3*0.5/1000 - 1.5*4/1000 = -0.00448
//   n* = 6 / 0.00448, mcgq faster above it.
TEST(Policy, BreakEvenMatchesHandDerivedValues) {
  auto l = Link(1, 1);
  auto c = Codec(1000, 1000, 2, 0.5, 1);
  auto b32 = BreakEven(l, c, 1000000, 2, 4.0, 4, 32);
  EXPECT_NEAR(b32.bits_per_element, 5974.0 / 375.0, 1e-12);
  EXPECT_NEAR(b32.elements, 6.0 / 0.00448, 1e-6);
  EXPECT_EQ(b32.larger_wins, 1);
  EXPECT_EQ(b32.always, 0);
  auto b16 = BreakEven(l, c, 1000000, 2, 4.0, 4, 16);
  EXPECT_NEAR(b16.bits_per_element, 2974.0 / 375.0, 1e-12);
  // Around n* the policy flips: 1339 < n* = 1339.29 < 1340.
  EXPECT_EQ(Compress(l, c, 1339, 2, 4.0, 4, 32), 0);
  EXPECT_EQ(Compress(l, c, 1340, 2, 4.0, 4, 32), 1);
}

// At the break-even bits/element both predicted times are equal.
TEST(Policy, BreakEvenBitsEqualizesTimes) {
  std::mt19937_64 rng(20261128);
  std::uniform_real_distribution<double> alpha(0.0, 20.0), bw(1.0, 900.0),
      codec(5.0, 3000.0), fixed(0.0, 30.0), logn(3.0, 9.0);
  int checked = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    auto l = Link(alpha(rng), bw(rng));
    auto c = Codec(codec(rng), codec(rng), fixed(rng), fixed(rng) / 10, trial & 1);
    uint64_t n = (uint64_t)std::pow(10.0, logn(rng));
    uint32_t layers = 1 + (uint32_t)(rng() % 300);
    int P = 2 + (int)(rng() % 15);
    int baseline = (trial & 2) ? 16 : 32;
    auto be = BreakEven(l, c, n, layers, 1.0, P, baseline);
    if (!(be.bits_per_element > 0)) continue;  // never wins: no b to test
    auto p = Predict(l, c, n, layers, be.bits_per_element, P);
    double base = baseline == 32 ? p.allreduce_fp32_us : p.allreduce_bf16_us;
    ASSERT_LT(RelDiff(p.mcgq_us, base), 1e-9) << "trial " << trial;
    // Just below compresses, just above does not.
    EXPECT_EQ(Compress(l, c, n, layers, be.bits_per_element * (1 - 1e-6), P, baseline), 1);
    EXPECT_EQ(Compress(l, c, n, layers, be.bits_per_element * (1 + 1e-6), P, baseline), 0);
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

// The break-even n, when there is one, is where the sign of the difference
// changes, in the direction larger_wins says.
TEST(Policy, BreakEvenElementsConsistentWithPolicy) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> alpha(0.0, 20.0), bw(1.0, 900.0),
      codec(5.0, 3000.0), fixed(0.0, 30.0), bits(0.5, 40.0);
  int crossings = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    auto l = Link(alpha(rng), bw(rng));
    auto c = Codec(codec(rng), codec(rng), fixed(rng), fixed(rng) / 10, trial & 1);
    uint32_t layers = 1 + (uint32_t)(rng() % 50);
    int P = 2 + (int)(rng() % 15);
    double b = bits(rng);
    auto be = BreakEven(l, c, 1000, layers, b, P, 32);
    if (be.elements < 0) {
      for (uint64_t n : {1ull, 1000ull, 1000000ull, 1000000000ull})
        EXPECT_EQ(Compress(l, c, n, layers, b, P, 32), be.always) << trial;
      continue;
    }
    if (be.elements < 4 || be.elements > 1e15) continue;
    uint64_t below = (uint64_t)std::floor(be.elements * (1 - 1e-6));
    uint64_t above = (uint64_t)std::ceil(be.elements * (1 + 1e-6));
    EXPECT_EQ(Compress(l, c, below, layers, b, P, 32), be.larger_wins ? 0 : 1) << trial;
    EXPECT_EQ(Compress(l, c, above, layers, b, P, 32), be.larger_wins ? 1 : 0) << trial;
    ++crossings;
  }
  EXPECT_GT(crossings, 100);
}

TEST(Policy, NoCrossingCases) {
  // No fixed costs, no size exchange: c0 = -(P-1) alpha < 0; a fast codec and
  // 1 bit/element make c1 < 0 too: always faster.
  auto l = Link(5, 10);
  auto fast = Codec(1e6, 1e6, 0, 0, 0);
  auto always = BreakEven(l, fast, 1000, 1, 1.0, 8, 32);
  EXPECT_EQ(always.elements, -1.0);
  EXPECT_EQ(always.always, 1);
  // 64 bits/element with size exchange and launch costs: c0 > 0 and c1 > 0.
  auto slow = Codec(10, 10, 5, 0, 1);
  auto never = BreakEven(l, slow, 1000, 1, 64.0, 8, 32);
  EXPECT_EQ(never.elements, -1.0);
  EXPECT_EQ(never.always, 0);
  // c0 < 0 (no fixed costs, no size exchange) but a slow codec, c1 > 0:
  // mcgq only wins below the crossing (it saves P-1 latencies).
  auto small_only = BreakEven(l, Codec(1, 1, 0, 0, 0), 1000, 1, 8.0, 8, 32);
  EXPECT_GT(small_only.elements, 0.0);
  EXPECT_EQ(small_only.larger_wins, 0);
}

TEST(Policy, Monotonicity) {
  auto l = Link(3, 25);
  auto c = Codec(50, 80, 10, 0.2, 1);
  double prev_m = 0, prev_a = 0, prev_b = -INFINITY;
  for (uint64_t n = 1; n < (1ull << 34); n *= 4) {
    auto p = Predict(l, c, n, 10, 3.0, 8);
    EXPECT_GT(p.mcgq_us, prev_m);
    EXPECT_GT(p.allreduce_fp32_us, prev_a);
    EXPECT_GT(p.allreduce_fp32_us, p.allreduce_bf16_us);
    // Break-even bits grow with n: here the fixed costs of mcgq (2 launches,
    // 20 layers, 2 gathers: 66 us) exceed the all-reduce latency (42 us), and
    // they are spread over more elements.
    auto be = BreakEven(l, c, n, 10, 3.0, 8, 32);
    EXPECT_GT(be.bits_per_element, prev_b);
    prev_m = p.mcgq_us;
    prev_a = p.allreduce_fp32_us;
    prev_b = be.bits_per_element;
  }
  double prev = 0;
  for (double b = 0.5; b < 64; b *= 2) {
    auto p = Predict(l, c, 1 << 20, 10, b, 8);
    EXPECT_GT(p.mcgq_us, prev);
    prev = p.mcgq_us;
  }
  prev = 0;
  for (int P = 2; P <= 64; P *= 2) {
    auto p = Predict(l, c, 1 << 20, 10, 2.0, P);
    EXPECT_GT(p.allreduce_fp32_us, prev);
    prev = p.allreduce_fp32_us;
  }
}

TEST(Policy, Presets) {
  mcgqLinkModel_t l;
  ASSERT_EQ(mcgqLinkModelPreset("pcie4", &l), mcgqSuccess);
  EXPECT_EQ(l.struct_size, sizeof(mcgqLinkModel_t));
  EXPECT_EQ(l.bw_gbs, 25.0);
  EXPECT_EQ(l.alpha_us, 3.0);
  ASSERT_EQ(mcgqLinkModelPreset("nvlink-h100", &l), mcgqSuccess);
  EXPECT_EQ(l.bw_gbs, 450.0);
  EXPECT_EQ(mcgqLinkModelPreset("infiniband", &l), mcgqInvalidArgument);
  EXPECT_NE(std::strstr(mcgqGetLastErrorDetail(), "infiniband"), nullptr);
  EXPECT_EQ(mcgqLinkModelPreset(nullptr, &l), mcgqInvalidArgument);
  EXPECT_EQ(mcgqLinkModelPreset("pcie4", nullptr), mcgqInvalidArgument);
}

TEST(Policy, RejectsBadArguments) {
  auto l = Link(3, 25);
  auto c = Codec(50, 80, 10, 0.2, 1);
  mcgqStepPrediction_t p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  EXPECT_EQ(mcgqModelStepTime(nullptr, &c, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, nullptr, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 10, 1, 2, 2, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 0, 1, 2, 2, &p), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 10, 0, 2, 2, &p), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 10, 1, 0.0, 2, &p), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 10, 1, NAN, 2, &p), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 10, 1, 2, 0, &p), mcgqInvalidArgument);
  auto bad = l;
  bad.bw_gbs = 0;
  EXPECT_EQ(mcgqModelStepTime(&bad, &c, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  bad = l;
  bad.alpha_us = INFINITY;
  EXPECT_EQ(mcgqModelStepTime(&bad, &c, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  bad = l;
  bad.struct_size = 4;
  EXPECT_EQ(mcgqModelStepTime(&bad, &c, 10, 1, 2, 2, &p), mcgqUnsupportedVersion);
  auto badc = c;
  badc.size_exchange = 2;
  EXPECT_EQ(mcgqModelStepTime(&l, &badc, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  badc = c;
  badc.decode_gbs = -1;
  EXPECT_EQ(mcgqModelStepTime(&l, &badc, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  badc = c;
  badc.launch_us = NAN;
  EXPECT_EQ(mcgqModelStepTime(&l, &badc, 10, 1, 2, 2, &p), mcgqInvalidArgument);
  p.struct_size = 8;
  EXPECT_EQ(mcgqModelStepTime(&l, &c, 10, 1, 2, 2, &p), mcgqUnsupportedVersion);

  mcgqBreakEven_t be;
  std::memset(&be, 0, sizeof be);
  be.struct_size = sizeof be;
  EXPECT_EQ(mcgqModelBreakEven(&l, &c, 10, 1, 2, 1, 32, &be), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelBreakEven(&l, &c, 10, 1, 2, 2, 0, &be), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelBreakEven(&l, &c, 10, 1, 2, 2, 65, &be), mcgqInvalidArgument);
  EXPECT_EQ(mcgqModelBreakEven(&l, &c, 10, 1, 2, 2, 32, nullptr), mcgqInvalidArgument);
  int out = 7;
  EXPECT_EQ(mcgqPolicyShouldCompress(&l, &c, 10, 1, 2, 2, 32, nullptr),
            mcgqInvalidArgument);
  EXPECT_EQ(mcgqPolicyShouldCompress(&l, &c, 10, 1, 2, 2, 0, &out),
            mcgqInvalidArgument);
  EXPECT_EQ(out, 7);  // untouched on failure
}

// ------------------------------------------------------- exchange modes

namespace {

mcgqExchangeModel_t Exchange(int mode, int ranks_per_node = 1, double b2 = 0.0) {
  mcgqExchangeModel_t x = MCGQ_EXCHANGE_MODEL_INITIALIZER;
  x.mode = mode;
  x.ranks_per_node = ranks_per_node;
  x.second_bits_per_element = b2;
  return x;
}

mcgqStepPrediction_t PredictMode(const mcgqLinkModel_t &l, const mcgqCodecModel_t &c,
                                 const mcgqExchangeModel_t &x, uint64_t n, uint32_t layers,
                                 double bits, int P) {
  mcgqStepPrediction_t p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, &x, n, layers, bits, P, &p), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  return p;
}

}  // namespace

// Hand-derived: P = 4, n = 1e6, L = 10, b = 1, b2 = 2, link alpha 3 us,
// 10 GB/s (10e3 bytes/us), codec 100/200 GB/s, launch 10 us, 1 us/layer,
// exact sizes (two latencies per exchange).
TEST(PolicyModes, StepTimesMatchHandDerivedValues) {
  const mcgqLinkModel_t l = Link(3.0, 10.0);
  const mcgqCodecModel_t c = Codec(100.0, 200.0, 10.0, 1.0, 1);
  const uint64_t n = 1000000;
  // Reduce-scatter: enc = 10 + 40*1 + 4e6/1e5 = 90; x = 2*3*3 + 3/4 * 125000/1e4
  // = 18 + 9.375; dec = 10 + 10 + 4e6/2e5 = 40.
  mcgqStepPrediction_t rs = PredictMode(l, c, Exchange(MCGQ_EXCHANGE_REDUCE_SCATTER), n, 10, 1.0, 4);
  EXPECT_DOUBLE_EQ(rs.encode_us, 90.0);
  EXPECT_DOUBLE_EQ(rs.exchange_us, 27.375);
  EXPECT_DOUBLE_EQ(rs.decode_us, 40.0);
  EXPECT_DOUBLE_EQ(rs.mcgq_us, 157.375);
  // Baseline: ring reduce-scatter, 3*3 + 3/4 * 4e6/1e4 = 9 + 300 (fp32), 9 + 150 (bf16).
  EXPECT_DOUBLE_EQ(rs.allreduce_fp32_us, 309.0);
  EXPECT_DOUBLE_EQ(rs.allreduce_bf16_us, 159.0);
  // Two-stage adds enc2 = 20 + 1e6/1e5 = 30, x2 = 18 + 3/4 * 250000/1e4 = 36.75,
  // dec2 = 20 + 20 = 40; baseline = ring all-reduce 2*3*3 + 2*3/4*400 = 618.
  mcgqStepPrediction_t ts =
      PredictMode(l, c, Exchange(MCGQ_EXCHANGE_TWO_STAGE, 1, 2.0), n, 10, 1.0, 4);
  EXPECT_DOUBLE_EQ(ts.encode_us, 120.0);
  EXPECT_DOUBLE_EQ(ts.exchange_us, 27.375 + 36.75);
  EXPECT_DOUBLE_EQ(ts.decode_us, 80.0);
  EXPECT_DOUBLE_EQ(ts.allreduce_fp32_us, 618.0);
  EXPECT_DOUBLE_EQ(ts.allreduce_bf16_us, 318.0);
  // All-gather mode is mcgqModelStepTime's prediction.
  mcgqStepPrediction_t ag = PredictMode(l, c, Exchange(MCGQ_EXCHANGE_ALL_GATHER), n, 10, 1.0, 4);
  mcgqStepPrediction_t old = Predict(l, c, n, 10, 1.0, 4);
  EXPECT_EQ(0, std::memcmp(&ag, &old, sizeof ag));
}

// Hierarchical with G = 2 ranks per node, P = 8 (N = 4 nodes): the node
// stages are fp32 rings on the node link, the cross-node stage is the flat
// mode on n/G elements among N ranks.
TEST(PolicyModes, HierarchicalIsNodeRingsAroundTheFlatMode) {
  const mcgqLinkModel_t cross = Link(3.0, 10.0);
  const mcgqCodecModel_t c = Codec(100.0, 200.0, 10.0, 1.0, 1);
  mcgqExchangeModel_t x = Exchange(MCGQ_EXCHANGE_TWO_STAGE, 2);
  x.node_link = Link(1.0, 100.0);
  const uint64_t n = 1000000;
  mcgqStepPrediction_t h = PredictMode(cross, c, x, n, 10, 1.0, 8);
  mcgqStepPrediction_t flat =
      PredictMode(cross, c, Exchange(MCGQ_EXCHANGE_TWO_STAGE), n / 2, 10, 1.0, 4);
  // node ring half: 1 * 1 + 1/2 * 4e6 / 1e5 = 21 us, twice (RS and AG)
  EXPECT_DOUBLE_EQ(h.encode_us, flat.encode_us);
  EXPECT_DOUBLE_EQ(h.decode_us, flat.decode_us);
  EXPECT_DOUBLE_EQ(h.exchange_us, flat.exchange_us + 42.0);
  // Baseline: node RS + cross all-reduce of n/2 among 4 + node AG, fp32.
  const double cross_ar = 2 * 3 * 3.0 + 2 * 3.0 / 4 * (4.0 * 500000 / 1e4);
  EXPECT_DOUBLE_EQ(h.allreduce_fp32_us, 42.0 + cross_ar);
  // G = 1 is the flat model.
  mcgqStepPrediction_t g1 = PredictMode(cross, c, Exchange(MCGQ_EXCHANGE_TWO_STAGE, 1), n, 10, 1.0, 8);
  mcgqStepPrediction_t g1b = PredictMode(cross, c, Exchange(MCGQ_EXCHANGE_TWO_STAGE), n, 10, 1.0, 8);
  EXPECT_EQ(0, std::memcmp(&g1, &g1b, sizeof g1));
}

// The traffic per rank: all-gather grows with P, two-stage does not, so the
// policy moves from all-gather to two-stage as P grows, and to no
// compression where bits are too many for either.
TEST(PolicyModes, PolicyPicksTheFasterModeAsRanksGrow) {
  const mcgqLinkModel_t l = Link(3.0, 25.0);
  const mcgqCodecModel_t c = Codec(1000.0, 2000.0, 5.0, 0.0, 0);
  const mcgqExchangeModel_t x = Exchange(MCGQ_EXCHANGE_ALL_GATHER);
  const uint64_t n = 25000000;
  int mode = 99;
  ASSERT_EQ(mcgqPolicyChooseExchange(&l, &c, &x, n, 161, 1.0, 2, 32, &mode), mcgqSuccess);
  EXPECT_EQ(mode, MCGQ_EXCHANGE_ALL_GATHER);
  ASSERT_EQ(mcgqPolicyChooseExchange(&l, &c, &x, n, 161, 1.0, 256, 32, &mode), mcgqSuccess);
  EXPECT_EQ(mode, MCGQ_EXCHANGE_TWO_STAGE);
  // 40 bits per element: more than fp32 itself, never worth it.
  ASSERT_EQ(mcgqPolicyChooseExchange(&l, &c, &x, n, 161, 40.0, 8, 32, &mode), mcgqSuccess);
  EXPECT_EQ(mode, MCGQ_EXCHANGE_NONE);
  ASSERT_EQ(mcgqPolicyChooseExchange(&l, &c, &x, n, 161, 1.0, 1, 32, &mode), mcgqSuccess);
  EXPECT_EQ(mode, MCGQ_EXCHANGE_NONE);
  // The choice agrees with the predictions it is made from.
  for (int P : {2, 3, 8, 32, 128, 1024}) {
    ASSERT_EQ(mcgqPolicyChooseExchange(&l, &c, &x, n, 161, 1.0, P, 16, &mode), mcgqSuccess);
    mcgqStepPrediction_t ag = PredictMode(l, c, Exchange(MCGQ_EXCHANGE_ALL_GATHER), n, 161, 1.0, P);
    mcgqStepPrediction_t ts = PredictMode(l, c, Exchange(MCGQ_EXCHANGE_TWO_STAGE), n, 161, 1.0, P);
    const double best = std::min(ag.mcgq_us, ts.mcgq_us);
    if (best >= ag.allreduce_bf16_us) {
      EXPECT_EQ(mode, MCGQ_EXCHANGE_NONE) << P;
    } else {
      EXPECT_EQ(mode, ag.mcgq_us <= ts.mcgq_us ? MCGQ_EXCHANGE_ALL_GATHER : MCGQ_EXCHANGE_TWO_STAGE)
          << P;
    }
  }
}

TEST(PolicyModes, RejectsBadExchangeModels) {
  const mcgqLinkModel_t l = Link(3.0, 25.0);
  const mcgqCodecModel_t c = Codec(100.0, 200.0, 10.0, 0.0, 1);
  mcgqStepPrediction_t p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  mcgqExchangeModel_t x = Exchange(7);
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, &x, 100, 1, 1.0, 4, &p), mcgqInvalidArgument);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("mode = 7"), std::string::npos);
  x = Exchange(MCGQ_EXCHANGE_TWO_STAGE, 3);
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, &x, 100, 1, 1.0, 4, &p), mcgqInvalidArgument);
  x = Exchange(MCGQ_EXCHANGE_TWO_STAGE, 2);
  x.node_link.bw_gbs = 0.0;
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, &x, 100, 1, 1.0, 4, &p), mcgqInvalidArgument);
  x = Exchange(MCGQ_EXCHANGE_TWO_STAGE, 1, NAN);
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, &x, 100, 1, 1.0, 4, &p), mcgqInvalidArgument);
  x = Exchange(MCGQ_EXCHANGE_ALL_GATHER);
  x.struct_size = 8;
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, &x, 100, 1, 1.0, 4, &p), mcgqUnsupportedVersion);
  EXPECT_EQ(mcgqModelExchangeStepTime(&l, &c, nullptr, 100, 1, 1.0, 4, &p), mcgqInvalidArgument);
  int mode = 0;
  EXPECT_EQ(mcgqPolicyChooseExchange(&l, &c, nullptr, 100, 1, 1.0, 4, 32, &mode),
            mcgqInvalidArgument);
  x = Exchange(MCGQ_EXCHANGE_ALL_GATHER);
  EXPECT_EQ(mcgqPolicyChooseExchange(&l, &c, &x, 100, 1, 1.0, 4, 32, nullptr),
            mcgqInvalidArgument);
}
