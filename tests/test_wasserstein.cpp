// Exact W1 of DESIGN.md Alg 3 (mcgqWassersteinHost), checked against an
// independent evaluation: the CDF integral of scipy.stats.wasserstein_distance
// (integral of |F_u - F_v| over the merged support) done in exact integers on
// the same fixed-point scale, and a long-double sorted-difference mean.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mcgq.h"
#include "support/bits.hpp"

namespace {

using u128 = unsigned __int128;
using i128 = __int128;


struct FixedPoint {
  std::vector<int64_t> a;  // sign(g) q
  uint64_t T = 0;
  float m = 0;
};

FixedPoint SignedFixedPoint(const std::vector<float> &g) {
  FixedPoint f;
  for (float v : g) f.m = std::max(f.m, std::fabs(v));
  for (float v : g) {
    volatile float quotient = std::fabs(v) / f.m;
    int64_t q = (int64_t)std::nearbyint(quotient * 16777216.0f);
    f.T += (uint64_t)q;
    f.a.push_back(std::signbit(v) ? -q : q);
  }
  return f;
}

// scipy semantics on the scaled samples x_i = N a_i, y_i = T g_int_i (n
// each, equal weights): integral over t of |#{x <= t} - #{y <= t}| dt.  Equals
// n * N * T * W1, as an exact integer.
u128 CdfIntegral(const std::vector<int64_t> &a, uint64_t T, const std::vector<int32_t> &g_int,
                 uint64_t N) {
  std::vector<i128> x, y, all;
  for (int64_t v : a) x.push_back((i128)v * (i128)N);
  for (int32_t v : g_int) y.push_back((i128)v * (i128)T);
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  all = x;
  all.insert(all.end(), y.begin(), y.end());
  std::sort(all.begin(), all.end());
  u128 total = 0;
  size_t ix = 0, iy = 0;
  for (size_t j = 0; j + 1 < all.size(); ++j) {
    while (ix < x.size() && x[ix] <= all[j]) ++ix;
    while (iy < y.size() && y[iy] <= all[j]) ++iy;
    i128 diff = (i128)ix - (i128)iy;
    u128 width = (u128)(all[j + 1] - all[j]);
    total += (u128)(diff < 0 ? -diff : diff) * width;
  }
  return total;
}

double DesignDivision(u128 S, uint64_t n, uint64_t N, uint64_t T) {
  double num = (double)(uint64_t)(S >> 64) * 0x1p64 + (double)(uint64_t)S;
  return num / (((double)n * (double)N) * (double)T);
}

std::vector<int32_t> RandomCounts(size_t n, uint64_t N, std::mt19937_64 &rng) {
  // N samples thrown on random elements with random signs (any g_int is a
  // valid W1 input, not only quantizer output).
  std::vector<int32_t> g(n, 0);
  std::uniform_int_distribution<size_t> at(0, n - 1);
  for (uint64_t i = 0; i < N; ++i) {
    size_t k = at(rng);
    g[k] += g[k] < 0 ? -1 : (g[k] > 0 ? 1 : (rng() & 1 ? 1 : -1));
  }
  return g;
}

TEST(Wasserstein, EqualsExactCdfIntegral) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<size_t> length(1, 200);
  for (int rep = 0; rep < 400; ++rep) {
    size_t n = length(rng);
    std::vector<float> g(n);
    for (float &v : g) v = (rep % 3 == 0 && (rng() & 1)) ? 0.0f : normal(rng);
    if (std::all_of(g.begin(), g.end(), [](float v) { return v == 0.0f; })) g[0] = 1.0f;
    uint64_t N = 1 + rng() % (4 * n);
    std::vector<int32_t> g_int;
    if (rep % 2) {
      g_int = RandomCounts(n, N, rng);
    } else {  // quantizer output
      g_int.assign(n, 0);
      mcgqLayerStats_t st;
      ASSERT_EQ(mcgqQuantizeHost(g.data(), n, 0.0, N, (uint32_t)rng(), 0, g_int.data(), &st),
                mcgqSuccess);
    }
    FixedPoint f = SignedFixedPoint(g);
    double expected = DesignDivision(CdfIntegral(f.a, f.T, g_int, N), n, N, f.T);
    double got = -1;
    ASSERT_EQ(mcgqWassersteinHost(g.data(), g_int.data(), n, &got), mcgqSuccess);
    EXPECT_EQ(Bits(got), Bits(expected)) << "rep " << rep << ": " << got << " vs " << expected;
  }
}

// Counts far apart (span > 2^26) take every radix pass of the sort.
TEST(Wasserstein, WideCountsAgreeWithCdfIntegral) {
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int32_t> wide(-(1 << 30), 1 << 30);
  for (int rep = 0; rep < 20; ++rep) {
    size_t n = 1 + rng() % 3000;
    std::vector<float> g(n);
    for (float &v : g) v = normal(rng);
    std::vector<int32_t> g_int(n);
    uint64_t N = 0;
    for (int32_t &v : g_int) {
      v = rep % 2 ? wide(rng) : wide(rng) >> 14;
      N += (uint64_t)std::llabs(v);
    }
    if (N == 0) continue;
    FixedPoint f = SignedFixedPoint(g);
    double expected = DesignDivision(CdfIntegral(f.a, f.T, g_int, N), n, N, f.T);
    double got = -1;
    ASSERT_EQ(mcgqWassersteinHost(g.data(), g_int.data(), n, &got), mcgqSuccess);
    EXPECT_EQ(Bits(got), Bits(expected)) << "rep " << rep;
  }
}

// The plain-language definition in long double: mean over i of
// |sort(g/||g||_1)_i - sort(g_int/N)_i| with the fixed-point g.  Agreement to
// 1e-15 relative (long double has 64 mantissa bits, the terms are summed n
// <= 1000 times) shows the exact form is the distance it claims to be.
TEST(Wasserstein, MatchesSortedDifferenceMean) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (int rep = 0; rep < 50; ++rep) {
    size_t n = 1 + rng() % 1000;
    std::vector<float> g(n);
    for (float &v : g) v = normal(rng);
    std::vector<int32_t> g_int(n);
    mcgqLayerStats_t st;
    ASSERT_EQ(mcgqQuantizeHost(g.data(), n, 0.7, 0, (uint32_t)rng(), 0, g_int.data(), &st),
              mcgqSuccess);
    FixedPoint f = SignedFixedPoint(g);
    std::vector<long double> x, y;
    for (int64_t v : f.a) x.push_back((long double)v / f.T);
    for (int32_t v : g_int) y.push_back((long double)v / st.samples);
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    long double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += std::fabs(x[i] - y[i]);
    double expected = (double)(sum / n);
    EXPECT_NEAR(st.w1, expected, 1e-15 * expected + 1e-300) << "rep " << rep;
    double direct = -1;
    ASSERT_EQ(mcgqWassersteinHost(g.data(), g_int.data(), n, &direct), mcgqSuccess);
    EXPECT_EQ(Bits(direct), Bits(st.w1));
  }
}

TEST(Wasserstein, HandComputedCases) {
  double d = -1;
  // Two equal values, one sample: sorted a = (2^24, 2^24), g_int = (0, 1):
  // W1 of {1/2, 1/2} vs {0, 1} = (1/2 + 1/2)/2 = 1/2.
  std::vector<float> g = {3.0f, 3.0f};
  std::vector<int32_t> gi = {1, 0};
  ASSERT_EQ(mcgqWassersteinHost(g.data(), gi.data(), 2, &d), mcgqSuccess);
  EXPECT_EQ(d, 0.5);
  // Proportional: identical normalized distributions.
  std::vector<float> g4 = {1.0f, -2.0f, 1.0f, 0.0f};
  std::vector<int32_t> gi4 = {2, -4, 2, 0};
  ASSERT_EQ(mcgqWassersteinHost(g4.data(), gi4.data(), 4, &d), mcgqSuccess);
  EXPECT_EQ(d, 0.0);
  // All-zero layer: d = 0 by definition.
  std::vector<float> z = {0.0f, -0.0f};
  std::vector<int32_t> zi = {0, 0};
  ASSERT_EQ(mcgqWassersteinHost(z.data(), zi.data(), 2, &d), mcgqSuccess);
  EXPECT_EQ(d, 0.0);
}

TEST(Wasserstein, Errors) {
  std::vector<float> g = {1.0f, 2.0f};
  std::vector<int32_t> gi = {0, 1};
  double d = 7;
  EXPECT_EQ(mcgqWassersteinHost(nullptr, gi.data(), 2, &d), mcgqInvalidArgument);
  EXPECT_EQ(mcgqWassersteinHost(g.data(), nullptr, 2, &d), mcgqInvalidArgument);
  EXPECT_EQ(mcgqWassersteinHost(g.data(), gi.data(), 2, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqWassersteinHost(g.data(), gi.data(), 0, &d), mcgqInvalidArgument);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("mcgqWassersteinHost: n = 0"),
            std::string::npos);
  std::vector<int32_t> zero = {0, 0};
  EXPECT_EQ(mcgqWassersteinHost(g.data(), zero.data(), 2, &d), mcgqInvalidArgument);
  std::vector<float> bad = {1.0f, NAN};
  EXPECT_EQ(mcgqWassersteinHost(bad.data(), gi.data(), 2, &d), mcgqNonFinite);
  EXPECT_EQ(d, 7.0);  // untouched on failure
}

}  // namespace
