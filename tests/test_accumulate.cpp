// Accumulation modes of DESIGN.md section 2 (host/cpu/accumulate.c, compiled
// into this test because its functions are internal): the invariants, bit
// for bit, with the quantizer of the library in between.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include "internal.h"
#include "support/bits.hpp"

namespace {


std::vector<float> Normal(size_t n, float sd, std::mt19937_64 &rng) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float &x : v) x = d(rng);
  return v;
}

TEST(Accumulate, AddIsOneFloatAddPerElement) {
  std::mt19937_64 rng(1);
  std::vector<float> g = Normal(1000, 1.0f, rng), acc = Normal(1000, 3.0f, rng), ag(1000);
  mcgq_accum_add(g.data(), acc.data(), g.size(), ag.data());
  for (size_t k = 0; k < g.size(); ++k) {
    volatile float sum = acc[k] + g[k];
    ASSERT_EQ(Bits(ag[k]), Bits(sum)) << k;
  }
  // No accumulator: ag is g itself.
  mcgq_accum_add(g.data(), nullptr, g.size(), ag.data());
  EXPECT_EQ(0, std::memcmp(ag.data(), g.data(), g.size() * sizeof(float)));
  // In place (ag == accum) gives the same bits.
  std::vector<float> in_place = acc;
  mcgq_accum_add(g.data(), in_place.data(), g.size(), in_place.data());
  for (size_t k = 0; k < g.size(); ++k) ASSERT_EQ(Bits(in_place[k]), Bits(acc[k] + g[k]));
}

// Alg 4 over several steps: unsampled elements hold exactly accum_old + g,
// sampled ones 0, and the sampled set is {k : g_int[k] != 0}.
TEST(Accumulate, ResetInvariants) {
  std::mt19937_64 rng(2);
  const size_t n = 3000;
  std::vector<float> accum(n, 0.0f), ag(n);
  std::vector<int32_t> g_int(n);
  for (int step = 0; step < 20; ++step) {
    std::vector<float> g = Normal(n, 1.0f, rng);
    std::vector<float> before = accum;
    mcgq_accum_add(g.data(), accum.data(), n, ag.data());
    mcgqLayerStats_t st;
    ASSERT_EQ(mcgqQuantizeHost(ag.data(), n, 0.1, 0, (uint32_t)rng(), 0, g_int.data(), &st),
              mcgqSuccess);
    mcgq_accum_commit(MCGQ_ACCUM_RESET, accum.data(), ag.data(), g_int.data(), st.scale, n);
    uint64_t sampled = 0;
    for (size_t k = 0; k < n; ++k) {
      if (g_int[k] != 0) {
        ++sampled;
        ASSERT_EQ(Bits(accum[k]), 0u) << "step " << step << " k " << k;
      } else {
        volatile float expected = before[k] + g[k];
        ASSERT_EQ(Bits(accum[k]), Bits(expected)) << "step " << step << " k " << k;
      }
    }
    EXPECT_EQ(sampled, st.nonzeros);
  }
}

// Residual error feedback: accum = fmaf(-scale, (float)g_int, ag) for every
// element, with the damped scale the quantizer reports.
//
// Contractiveness of the damped form at K = 0.1 (N = n/10): s = ||a||_1/n and
// mostly 0/1 counts with P(c_k = 1) = p_k = N|a_k|/||a||_1 give
//   E||a - s c||^2 = ||a||^2 - 2 s sum|a_k| p_k + s^2 sum p_k
//                  = 0.8 ||a||^2 + 0.1 ||a||_1^2 / n <= 0.9 ||a||^2
// (Cauchy-Schwarz).  With unit normal gradients E||accum||^2 <= 0.9 (prior +
// n), whose fixed point is 9n: rms <= 3 in expectation, concentrated over
// n = 2500 elements, so rms < 4 holds.  The undamped scale (10x larger)
// reaches rms ~ 240 here after 30 steps.
TEST(Accumulate, ResidualRule) {
  std::mt19937_64 rng(3);
  const size_t n = 2500;
  std::vector<float> accum(n, 0.0f), ag(n);
  std::vector<int32_t> g_int(n);
  for (int step = 0; step < 30; ++step) {
    std::vector<float> g = Normal(n, 1.0f, rng);
    mcgq_accum_add(g.data(), accum.data(), n, ag.data());
    mcgqLayerStats_t st;
    ASSERT_EQ(mcgqQuantizeHost(ag.data(), n, 0.1, 0, (uint32_t)rng(), 1, g_int.data(), &st),
              mcgqSuccess);
    std::vector<float> ag_copy = ag;
    mcgq_accum_commit(MCGQ_ACCUM_RESIDUAL, accum.data(), ag.data(), g_int.data(), st.scale, n);
    for (size_t k = 0; k < n; ++k) {
      float expected = std::fmaf(-st.scale, (float)g_int[k], ag_copy[k]);
      ASSERT_EQ(Bits(accum[k]), Bits(expected)) << "step " << step << " k " << k;
      if (g_int[k] == 0) {
        ASSERT_EQ(Bits(accum[k]), Bits(ag_copy[k]));
      }
    }
  }
  double sum_sq = 0;
  for (float v : accum) sum_sq += (double)v * v;
  EXPECT_LT(std::sqrt(sum_sq / n), 4.0);
}

TEST(Accumulate, NoneLeavesAccumulatorAlone) {
  std::vector<float> accum = {1.0f, 2.0f}, ag = {5.0f, 6.0f};
  std::vector<int32_t> g_int = {1, 0};
  mcgq_accum_commit(MCGQ_ACCUM_NONE, accum.data(), ag.data(), g_int.data(), 1.0f, 2);
  EXPECT_EQ(accum, (std::vector<float>{1.0f, 2.0f}));
}

// Issue 14: an accumulated layer quantizes accum + g, so when that sum
// overflows the message must say so, not blame g[k] (finite) for it.
std::string NonFiniteDetail(int32_t mode, std::vector<float> g, std::vector<float> accum) {
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.g = g.data();
  d.n = g.size();
  d.accum = accum.data();
  d.cfg.accumulate = mode;
  const std::vector<float> accum_before = accum;
  std::vector<uint8_t> out(4096);
  size_t bytes = 0;
  EXPECT_EQ(mcgqEncodeHost(&d, 1, out.data(), out.size(), &bytes, nullptr), mcgqNonFinite);
  EXPECT_EQ(0, std::memcmp(accum.data(), accum_before.data(), accum.size() * sizeof(float)));
  return mcgqGetLastErrorDetail();
}

TEST(Accumulate, NonFiniteMessageNamesWhatOverflowed) {
  for (int32_t mode : {MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL}) {
    SCOPED_TRACE(mode);
    std::vector<float> g = {1, 2, 3, 2e38f, 5}, accum = {0, 0, 0, 3e38f, 0};
    std::string detail = NonFiniteDetail(mode, g, accum);
    EXPECT_NE(detail.find("layers[0]: accum[3] + g[3] overflowed to inf (accum[3] = "
                          "3e+38, g[3] = 2e+38)"), std::string::npos) << detail;
    EXPECT_EQ(detail.find("g[3] = inf"), std::string::npos) << detail;
    g[3] = -2e38f;
    accum[3] = -3e38f;
    detail = NonFiniteDetail(mode, g, accum);
    EXPECT_NE(detail.find("accum[3] + g[3] overflowed to -inf"), std::string::npos) << detail;
    // A non-finite input is named as itself, the gradient before the accumulator.
    g = {1, 2, NAN, 4};
    accum = {0, 0, INFINITY, 0};
    detail = NonFiniteDetail(mode, g, accum);
    EXPECT_NE(detail.find("layers[0]: g[2] = nan is not finite"), std::string::npos) << detail;
    g[2] = 3;
    detail = NonFiniteDetail(mode, g, accum);
    EXPECT_NE(detail.find("layers[0]: accum[2] = inf is not finite"), std::string::npos)
        << detail;
  }
}

#if defined(__x86_64__) || defined(_M_X64)
TEST(Accumulate, FlushToZeroModeDoesNotChangeBits) {
  std::mt19937_64 rng(4);
  const size_t n = 1000;
  std::vector<float> g = Normal(n, 1e-39f, rng), acc = Normal(n, 1e-39f, rng);  // denormals
  std::vector<int32_t> g_int(n);
  for (size_t k = 0; k < n; ++k) g_int[k] = (int32_t)(rng() % 5) - 2;
  const float scale = 3e-40f;
  std::vector<float> ag_a(n), ag_b(n), acc_a = acc, acc_b = acc, res_a = acc, res_b = acc;
  mcgq_accum_add(g.data(), acc.data(), n, ag_a.data());
  mcgq_accum_commit(MCGQ_ACCUM_RESIDUAL, res_a.data(), ag_a.data(), g_int.data(), scale, n);
  mcgq_accum_commit(MCGQ_ACCUM_RESET, acc_a.data(), ag_a.data(), g_int.data(), scale, n);
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(saved | (1u << 15) | (1u << 6));
  mcgq_accum_add(g.data(), acc.data(), n, ag_b.data());
  mcgq_accum_commit(MCGQ_ACCUM_RESIDUAL, res_b.data(), ag_b.data(), g_int.data(), scale, n);
  mcgq_accum_commit(MCGQ_ACCUM_RESET, acc_b.data(), ag_b.data(), g_int.data(), scale, n);
  _mm_setcsr(saved);
  size_t denormal_results = 0;
  for (size_t k = 0; k < n; ++k) {
    ASSERT_EQ(Bits(ag_a[k]), Bits(ag_b[k])) << k;
    ASSERT_EQ(Bits(res_a[k]), Bits(res_b[k])) << k;
    ASSERT_EQ(Bits(acc_a[k]), Bits(acc_b[k])) << k;
    denormal_results += std::fpclassify(ag_a[k]) == FP_SUBNORMAL;
  }
  EXPECT_GT(denormal_results, n / 2);  // the inputs really exercise denormals
}
#endif

}  // namespace
