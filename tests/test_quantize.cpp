// CPU reference quantizer (DESIGN.md section 2) against the independent
// vectors, against a literal Alg 1 written here, and its statistics, FP-mode
// independence and error handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include "mcgq.h"
#include "support/bits.hpp"
#include "support/vectors.hpp"

namespace {


// ------------------------------------------------------- literal reference
// Alg 1 as the paper states it, with DESIGN.md's half-open rule: sample i at
// x_i = (u/2^32 + i)/N hits the first k with x_i < C_k/T, decided with exact
// integers (C_k*N*2^32 > (i*2^32 + u)*T).  Nothing here shares code with
// host/cpu/quantize.c: q uses nearbyint, the walk is over samples, not elements.
struct Literal {
  std::vector<int32_t> g_int;
  uint64_t T = 0;
  float m = 0;
  float scale = 0, scale_damped = 0;
  bool overflow = false;
};

Literal LiteralAlg1(const std::vector<float> &g, uint64_t N, uint32_t u) {
  Literal r;
  const size_t n = g.size();
  r.g_int.assign(n, 0);
  for (float v : g) r.m = std::max(r.m, std::fabs(v));
  if (r.m == 0.0f) return r;
  std::vector<uint64_t> C(n);
  for (size_t k = 0; k < n; ++k) {
    volatile float quotient = std::fabs(g[k]) / r.m;  // one IEEE division
    float y = quotient * 16777216.0f;
    r.T += static_cast<uint64_t>(std::nearbyint(y));
    C[k] = r.T;
  }
  using u128 = unsigned __int128;
  size_t k = 0;
  for (uint64_t i = 0; i < N; ++i) {
    u128 threshold = ((static_cast<u128>(i) << 32) + u) * r.T;
    while (!((static_cast<u128>(C[k]) * N << 32) > threshold)) ++k;
    r.g_int[k] += std::signbit(g[k]) ? -1 : 1;
  }
  double unbiased = (double)r.T * (double)r.m / (16777216.0 * (double)N);
  double damped = (double)r.T * (double)r.m / (16777216.0 * (double)std::max<uint64_t>(N, n));
  r.overflow = std::isinf((float)unbiased);  // IEEE conversion (Annex F)
  r.scale = (float)unbiased;
  r.scale_damped = (float)damped;
  return r;
}

uint64_t CeilNK(uint64_t n, double k) { return (uint64_t)std::ceil((double)n * k); }

// -------------------------------------------------------- random layers
enum class Kind { kNormal, kSparse, kTies, kDenormal, kOneNonzero, kAllEqual, kWideRange, kZeros };

std::vector<float> MakeLayer(Kind kind, size_t n, std::mt19937_64 &rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> coin(0, 9);
  std::vector<float> g(n);
  switch (kind) {
    case Kind::kNormal:
      for (float &v : g) v = normal(rng);
      break;
    case Kind::kSparse:
      for (float &v : g) v = coin(rng) == 0 ? normal(rng) : (coin(rng) < 5 ? 0.0f : -0.0f);
      break;
    case Kind::kTies: {
      const float levels[] = {-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 2.0f};
      std::uniform_int_distribution<int> pick(0, 6);
      for (float &v : g) v = levels[pick(rng)];
      break;
    }
    case Kind::kDenormal: {
      std::uniform_int_distribution<uint32_t> mant(0, (1u << 23) - 1);
      for (float &v : g) {
        uint32_t b = mant(rng) >> (coin(rng) % 23);  // spread over all denormal binades
        if (coin(rng) == 0) b |= 0x00800000u;        // a few tiny normals
        v = FromBits(b | (coin(rng) < 5 ? 0x80000000u : 0u));
      }
      break;
    }
    case Kind::kOneNonzero: {
      std::fill(g.begin(), g.end(), 0.0f);
      g[std::uniform_int_distribution<size_t>(0, n - 1)(rng)] = normal(rng) + 0.1f;
      break;
    }
    case Kind::kAllEqual: {
      float v = normal(rng);
      if (v == 0.0f) v = 1.0f;
      std::fill(g.begin(), g.end(), v);
      break;
    }
    case Kind::kWideRange: {
      std::uniform_int_distribution<int> exponent(-149, 100);
      for (float &v : g) v = std::ldexp(normal(rng), exponent(rng));
      break;
    }
    case Kind::kZeros:
      for (float &v : g) v = coin(rng) < 5 ? 0.0f : -0.0f;
      break;
  }
  return g;
}

struct Quantized {
  mcgqResult_t status;
  std::vector<int32_t> g_int;
  mcgqLayerStats_t stats;
};

Quantized Quantize(const std::vector<float> &g, double k, uint64_t samples, uint32_t u,
                   int damped) {
  Quantized q;
  q.g_int.assign(g.size(), 0x5a5a5a5a);
  std::memset(&q.stats, 0, sizeof q.stats);
  q.status = mcgqQuantizeHost(g.data(), g.size(), k, samples, u, damped, q.g_int.data(),
                              &q.stats);
  return q;
}

// ------------------------------------------------------------ the vectors

TEST(QuantizeVectors, EveryCaseBitExact) {
  std::vector<QuantizeCase> cases = LoadQuantizeVectors();
  ASSERT_EQ(cases.size(), 48u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const QuantizeCase &c = cases[i];
    SCOPED_TRACE("case " + std::to_string(i) + " (" + c.kind + ")");
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = c.k;
    uint64_t N = 0;
    ASSERT_EQ(mcgqResolveSamples(&cfg, nullptr, c.n, &N), mcgqSuccess);
    EXPECT_EQ(N, c.N);

    Quantized plain = Quantize(c.g, c.k, 0, c.u, 0);
    ASSERT_EQ(plain.status, mcgqSuccess) << mcgqGetLastErrorDetail();
    EXPECT_EQ(plain.g_int, c.g_int);
    EXPECT_EQ(Bits(plain.stats.scale), Bits(c.scale));
    EXPECT_EQ(Bits(plain.stats.w1), Bits(c.w1)) << plain.stats.w1 << " vs " << c.w1;
    bool all_zero = std::all_of(c.g.begin(), c.g.end(), [](float v) { return v == 0.0f; });
    EXPECT_EQ(plain.stats.samples, all_zero ? 0u : c.N);
    EXPECT_EQ(plain.stats.n, c.n);
    EXPECT_EQ(plain.stats.k, c.k);

    Quantized damped = Quantize(c.g, c.k, 0, c.u, 1);
    ASSERT_EQ(damped.status, mcgqSuccess);
    EXPECT_EQ(damped.g_int, c.g_int);
    EXPECT_EQ(Bits(damped.stats.scale), Bits(c.scale_residual));

    // N given directly gives the same layer.
    Quantized direct = Quantize(c.g, 0.0, c.N, c.u, 0);
    ASSERT_EQ(direct.status, mcgqSuccess);
    EXPECT_EQ(direct.g_int, c.g_int);
    EXPECT_EQ(Bits(direct.stats.scale), Bits(c.scale));
  }
}

// ------------------------------------------- closed form == literal Alg 1

void ExpectMatchesLiteral(const std::vector<float> &g, double k, uint32_t u,
                          const std::string &what) {
  SCOPED_TRACE(what);
  uint64_t N = CeilNK(g.size(), k);
  Literal lit = LiteralAlg1(g, N, u);
  Quantized q = Quantize(g, k, 0, u, 0);
  if (lit.overflow) {
    EXPECT_EQ(q.status, mcgqRangeError);
    return;
  }
  ASSERT_EQ(q.status, mcgqSuccess) << mcgqGetLastErrorDetail();
  ASSERT_EQ(q.g_int, lit.g_int);
  EXPECT_EQ(Bits(q.stats.scale), Bits(lit.scale));
  uint64_t l1 = 0, nonzeros = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    int32_t v = q.g_int[i];
    l1 += (uint64_t)std::llabs(v);
    nonzeros += v != 0;
    // Zeros (and values whose q rounds to 0) are never sampled; a sample
    // carries the sign of its element.
    if (g[i] == 0.0f) {
      EXPECT_EQ(v, 0) << "element " << i;
    }
    if (v != 0) {
      EXPECT_EQ(v < 0, std::signbit(g[i])) << "element " << i;
    }
  }
  EXPECT_EQ(l1, lit.m == 0.0f ? 0u : N);
  EXPECT_EQ(q.stats.nonzeros, nonzeros);
  EXPECT_EQ(q.stats.samples, lit.m == 0.0f ? 0u : N);
}

TEST(QuantizeLiteral, ClosedFormEqualsStratifiedSampling) {
  std::mt19937_64 rng(20240611);
  const double ks[] = {0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 0.77, 1.0, 1.5, 2.0, 3.3, 7.5, 16.0, 64.0};
  const Kind kinds[] = {Kind::kNormal,     Kind::kSparse,   Kind::kTies,      Kind::kDenormal,
                        Kind::kOneNonzero, Kind::kAllEqual, Kind::kWideRange, Kind::kZeros};
  const uint32_t special_u[] = {0u, 1u, 0x80000000u, 0xffffffffu};
  std::uniform_int_distribution<size_t> length(1, 300);
  std::uniform_real_distribution<double> any_k(1e-3, 64.0);
  std::uniform_int_distribution<uint32_t> any_u;
  int cases = 0;
  for (int rep = 0; rep < 40; ++rep) {
    for (Kind kind : kinds) {
      for (double k : ks) {
        size_t n = length(rng);
        std::vector<float> g = MakeLayer(kind, n, rng);
        uint32_t u = rep < 4 ? special_u[rep] : any_u(rng);
        ExpectMatchesLiteral(g, k, u, "kind " + std::to_string((int)kind) + " n " +
                                          std::to_string(n) + " k " + std::to_string(k) +
                                          " u " + std::to_string(u));
        ++cases;
      }
      size_t n = length(rng);
      ExpectMatchesLiteral(MakeLayer(kind, n, rng), any_k(rng), any_u(rng), "random K");
      ++cases;
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GE(cases, 4000);
}

// Layers longer than the reference's internal blocks (2048), with tails of
// every length modulo the SIMD widths, so carries across blocks are exercised.
TEST(QuantizeLiteral, LongLayersAcrossBlocks) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint32_t> any_u;
  const size_t lengths[] = {2047, 2048, 2049, 4096 + 257, 100003};
  for (size_t n : lengths)
    for (double k : {0.01, 0.3, 1.0, 3.0})
      for (Kind kind : {Kind::kNormal, Kind::kSparse, Kind::kTies, Kind::kAllEqual})
        ExpectMatchesLiteral(MakeLayer(kind, n, rng), k, any_u(rng),
                             "n " + std::to_string(n) + " k " + std::to_string(k));
}

// Every b_k lands exactly on an integer (all values equal, u = 0): every
// element takes the exact 128-bit branch of the closed form.
TEST(QuantizeLiteral, IntegerBoundariesUseTheExactTest) {
  for (size_t n : {1, 2, 3, 64, 1000, 5000})
    for (double k : {0.5, 1.0, 2.0, 0.25, 64.0})
      for (uint32_t u : {0u, 1u, 0xffffffffu}) {
        std::vector<float> g(n, -0.75f);
        ExpectMatchesLiteral(g, k, u, "equal n " + std::to_string(n));
        Quantized q = Quantize(g, k, 0, u, 0);
        if (k == 1.0) {
          for (int32_t v : q.g_int) ASSERT_EQ(v, -1);  // K = 1, equal values: one each
        }
      }
}

// --------------------------------------------------------- statistics

// E_u[count_k] = N q_k / T exactly for continuous u: count_k = ceil(A - U) -
// ceil(B - U) with A - B = N q_k / T = mu takes only floor(mu) and
// floor(mu) + 1, so it is bounded in an interval of width 1 (variance
// p(1-p) <= 1/4).  Hoeffding for R independent draws: P(|mean - mu| >= t)
// <= 2 exp(-2 R t^2); with R = 20000 and t = 0.0195, that is <= 1.1e-6 per
// element, 2e-5 for the 16 elements (fixed seed, so the run is
// deterministic anyway).  The discrete u (multiples of 2^-32) moves the
// expectation by at most 2^-31, far below t.
TEST(QuantizeStatistics, UnbiasedCountsAndEstimates) {
  const std::vector<float> g = {0.3f,  -1.7f, 0.0f,   2.5f,  -0.01f, 1e-3f, -4.0f, 0.77f,
                                -0.5f, 0.25f, 3.125f, -2.2f, 1e-30f, 0.9f,  -0.9f, 1.0f};
  const double k = 0.5;  // N = 8 < n: most elements get 0 or 1
  const int R = 20000;
  const double t = 0.0195;
  std::mt19937 rng(99);
  std::vector<double> count_sum(g.size(), 0.0), estimate_sum(g.size(), 0.0);
  float scale = 0;
  for (int r = 0; r < R; ++r) {
    Quantized q = Quantize(g, k, 0, (uint32_t)rng(), 0);
    ASSERT_EQ(q.status, mcgqSuccess);
    scale = q.stats.scale;
    for (size_t i = 0; i < g.size(); ++i) {
      count_sum[i] += std::abs(q.g_int[i]);
      estimate_sum[i] += (double)q.stats.scale * q.g_int[i];
    }
  }
  Literal lit = LiteralAlg1(g, 8, 0);
  for (size_t i = 0; i < g.size(); ++i) {
    float m = lit.m;
    double q_i = std::nearbyint((double)(std::fabs(g[i]) / m * 16777216.0f));
    double mu = 8.0 * q_i / (double)lit.T;
    EXPECT_NEAR(count_sum[i] / R, mu, t) << "element " << i;
    // scale * count: the same bound times scale, plus scale's float rounding
    // (relative 2^-24 of the expectation).
    double expected = (std::signbit(g[i]) ? -1.0 : 1.0) * q_i * m / 16777216.0;
    EXPECT_NEAR(estimate_sum[i] / R, expected, t * scale + std::fabs(expected) * 0x1p-23)
        << "element " << i;
  }
}

// ------------------------------------------------- special layers, FP mode

TEST(QuantizeSpecial, AllZeroLayer) {
  std::vector<float> g = {0.0f, -0.0f, 0.0f, -0.0f, 0.0f};
  for (int damped : {0, 1}) {
    Quantized q = Quantize(g, 2.0, 0, 12345, damped);
    ASSERT_EQ(q.status, mcgqSuccess);
    EXPECT_EQ(q.g_int, std::vector<int32_t>(g.size(), 0));
    EXPECT_EQ(Bits(q.stats.scale), 0u);  // +0
    EXPECT_EQ(q.stats.samples, 0u);
    EXPECT_EQ(q.stats.nonzeros, 0u);
    EXPECT_EQ(q.stats.w1, 0.0);
    EXPECT_EQ(q.stats.bits_value, 1u);  // DESIGN 3: all-zero layer -> B_g = 1
  }
}

TEST(QuantizeSpecial, OneNonzeroGetsEverySample) {
  std::vector<float> g(1000, 0.0f);
  g[617] = -3.0e-41f;  // a denormal is a full member of the layer
  Quantized q = Quantize(g, 2.0, 0, 777, 0);
  ASSERT_EQ(q.status, mcgqSuccess);
  EXPECT_EQ(q.g_int[617], -2000);
  EXPECT_EQ(q.stats.nonzeros, 1u);
  // scale = T*m/(2^24 N) with T = 2^24: m / N
  EXPECT_EQ(Bits(q.stats.scale), Bits((float)((double)g[617] * -1.0 / 2000.0)));
}

#if defined(__x86_64__) || defined(_M_X64)
constexpr unsigned kFtzDaz = (1u << 15) | (1u << 6);

TEST(QuantizeFpMode, FlushToZeroModeDoesNotChangeBits) {
  // The mode really changes float arithmetic here (else this test could not
  // fail): a denormal divided by 1 reads as 0 under DAZ.
  const unsigned saved = _mm_getcsr();
  volatile float denormal = 1e-40f, one = 1.0f;
  _mm_setcsr(saved | kFtzDaz);
  volatile float flushed = denormal / one;
  _mm_setcsr(saved);
  ASSERT_EQ(flushed, 0.0f);

  std::mt19937_64 rng(31);
  std::uniform_int_distribution<uint32_t> any_u;
  for (int rep = 0; rep < 50; ++rep) {
    std::vector<float> g = MakeLayer(rep % 2 ? Kind::kDenormal : Kind::kWideRange, 257, rng);
    if (rep % 5 == 0) g[3] = 1e-38f;  // a normal max over denormal rest
    uint32_t u = any_u(rng);
    for (int damped : {0, 1}) {
      Quantized normal_mode = Quantize(g, 0.8, 0, u, damped);
      _mm_setcsr(saved | kFtzDaz);
      Quantized ftz_mode = Quantize(g, 0.8, 0, u, damped);
      const unsigned during = _mm_getcsr();
      _mm_setcsr(saved);
      EXPECT_EQ(during & kFtzDaz, kFtzDaz) << "the caller's mode must be restored";
      ASSERT_EQ(normal_mode.status, mcgqSuccess);
      ASSERT_EQ(ftz_mode.status, mcgqSuccess);
      EXPECT_EQ(ftz_mode.g_int, normal_mode.g_int);
      EXPECT_EQ(Bits(ftz_mode.stats.scale), Bits(normal_mode.stats.scale));
      EXPECT_EQ(Bits(ftz_mode.stats.w1), Bits(normal_mode.stats.w1));
      Literal lit = LiteralAlg1(g, CeilNK(g.size(), 0.8), u);
      EXPECT_EQ(normal_mode.g_int, lit.g_int);
    }
  }
}
#endif

// ------------------------------------------------------------- errors

void ExpectFailure(mcgqResult_t got, mcgqResult_t want, const char *needle) {
  EXPECT_EQ(got, want);
  std::string detail = mcgqGetLastErrorDetail();
  EXPECT_NE(detail.find("mcgqQuantizeHost"), std::string::npos) << detail;
  EXPECT_NE(detail.find(needle), std::string::npos) << detail;
}

TEST(QuantizeErrors, InvalidArguments) {
  std::vector<float> g(100, 1.0f);
  std::vector<int32_t> out(100, 7);
  mcgqLayerStats_t st;
  const float *gp = g.data();
  int32_t *op = out.data();
  ExpectFailure(mcgqQuantizeHost(nullptr, 100, 1.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "g is NULL");
  ExpectFailure(mcgqQuantizeHost(gp, 100, 1.0, 0, 1, 0, nullptr, &st), mcgqInvalidArgument, "g_int is NULL");
  ExpectFailure(mcgqQuantizeHost(gp, 0, 1.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "n = 0");
  ExpectFailure(mcgqQuantizeHost(gp, (1ull << 32), 1.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "n = ");
  ExpectFailure(mcgqQuantizeHost(gp, 100, 0.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "K = 0");
  ExpectFailure(mcgqQuantizeHost(gp, 100, -1.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "K = -1");
  ExpectFailure(mcgqQuantizeHost(gp, 100, std::nan(""), 0, 1, 0, op, &st), mcgqInvalidArgument, "K = nan");
  ExpectFailure(mcgqQuantizeHost(gp, 100, 64.5, 0, 1, 0, op, &st), mcgqInvalidArgument, "K = 64.5");
  ExpectFailure(mcgqQuantizeHost(gp, 100, INFINITY, 0, 1, 0, op, &st), mcgqInvalidArgument, "K = inf");
  ExpectFailure(mcgqQuantizeHost(gp, 100, 1.0, 1ull << 31, 1, 0, op, &st), mcgqInvalidArgument, "samples");
  ExpectFailure(mcgqQuantizeHost(gp, 100, 1.0, 0, 1, 2, op, &st), mcgqInvalidArgument, "damped");
  // N = ceil(n*K) beyond 2^31 - 1 (the data is never read for this check).
  ExpectFailure(mcgqQuantizeHost(gp, 0xffffffffull, 1.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "2^31-1");
  ExpectFailure(mcgqQuantizeHost(gp, (1ull << 25), 64.0, 0, 1, 0, op, &st), mcgqInvalidArgument, "N = ");
  // g_int overlapping g
  ExpectFailure(mcgqQuantizeHost(gp, 100, 1.0, 0, 1, 0, reinterpret_cast<int32_t *>(g.data() + 50), &st),
                mcgqInvalidArgument, "overlaps");
  for (int32_t v : out) EXPECT_EQ(v, 7);
  // stats may be NULL
  EXPECT_EQ(mcgqQuantizeHost(gp, 100, 1.0, 0, 1, 0, op, nullptr), mcgqSuccess);
  EXPECT_STREQ(mcgqGetLastErrorDetail(), "");
}

TEST(QuantizeErrors, NonFiniteLeavesOutputUntouched) {
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> g(5000, 0.5f);
    g[4321] = bad;
    Quantized q = Quantize(g, 1.0, 0, 5, 0);
    ExpectFailure(q.status, mcgqNonFinite, "g[4321]");
    EXPECT_EQ(q.g_int, std::vector<int32_t>(g.size(), 0x5a5a5a5a));
    EXPECT_EQ(q.stats.status, (uint32_t)mcgqNonFinite);
  }
}

TEST(QuantizeErrors, ScaleOverflowIsARangeError) {
  // T*m/(2^24 N) = n*m/N = 100 FLT_MAX with N = 1: not a float.
  std::vector<float> g(100, FLT_MAX);
  g[3] = -FLT_MAX;
  Quantized q = Quantize(g, 0.01, 0, 5, 0);
  ExpectFailure(q.status, mcgqRangeError, "overflows");
  EXPECT_EQ(q.g_int, std::vector<int32_t>(g.size(), 0x5a5a5a5a));
  // K = 1 brings the scale back to m: fine.
  Quantized fine = Quantize(g, 1.0, 0, 5, 0);
  ASSERT_EQ(fine.status, mcgqSuccess);
  EXPECT_EQ(fine.stats.scale, FLT_MAX);
  // The damped scale never exceeds m, so residual mode never overflows.
  Quantized damped = Quantize(g, 0.01, 0, 5, 1);
  ASSERT_EQ(damped.status, mcgqSuccess);
  // T*m/(2^24 max(N, n)) = 100 * 2^24 * m / (2^24 * 100) = m
  EXPECT_EQ(damped.stats.scale, FLT_MAX);
  // Two values, one sample: scale = 2 FLT_MAX overflows; with a zero beside
  // the max (T = 2^24) the scale is FLT_MAX exactly and fine.
  std::vector<float> two = {FLT_MAX, FLT_MAX};
  EXPECT_EQ(Quantize(two, 0.5, 0, 5, 0).status, mcgqRangeError);
  std::vector<float> one = {-FLT_MAX, 0.0f};
  Quantized exact = Quantize(one, 0.5, 0, 5, 0);
  ASSERT_EQ(exact.status, mcgqSuccess);
  EXPECT_EQ(exact.stats.scale, FLT_MAX);
  EXPECT_EQ(exact.g_int, (std::vector<int32_t>{-1, 0}));
}

}  // namespace
