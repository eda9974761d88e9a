// The range rule of docs/FORMAT.md ("Range"): finite input never decodes to a
// non-finite value.  An encoder refuses a layer whose own decode could
// overflow (P = 1), a decoder refuses a set of P messages whose average
// could, before writing anything, and hostile messages cannot bring an
// infinity through a decoder either.
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


// One plain layer (or an accumulated one when accum is given) encoded alone.
mcgqResult_t Encode(const std::vector<float> &g, double k, uint32_t u, Bytes *out,
                    float *accum = nullptr, int32_t mode = MCGQ_ACCUM_NONE) {
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.g = g.data();
  d.n = g.size();
  d.u = u;
  d.cfg.k = k;
  d.cfg.accumulate = mode;
  d.accum = accum;
  size_t bound = 0;
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(&d, 1, &bound), mcgqSuccess);
  out->assign(bound, 0);
  size_t bytes = 0;
  mcgqResult_t res = mcgqEncodeHost(&d, 1, out->data(), out->size(), &bytes, nullptr);
  out->resize(res == mcgqSuccess ? bytes : 0);
  return res;
}

// The reproduction: 3e38, 2e38 at K = 1 gave g_int = [2, 0], scale
// 2.5e38 and decoded to [inf, 0] with a success status.
TEST(Range, EncoderRefusesALayerWhoseDecodeOverflows) {
  const std::vector<float> g = {3e38f, 2e38f};
  int refused = 0, accepted = 0;
  for (uint32_t u = 0; u < 64; ++u) {
    std::vector<int32_t> g_int(2);
    mcgqLayerStats_t st;
    mcgqResult_t q = mcgqQuantizeHost(g.data(), 2, 1.0, 0, u * 0x04000000u, 0, g_int.data(), &st);
    Bytes msg;
    mcgqResult_t e = Encode(g, 1.0, u * 0x04000000u, &msg);
    ASSERT_EQ(q, e) << "quantize and encode apply the same rule";
    if (e == mcgqRangeError) {
      ++refused;
      EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("overflow float32"), std::string::npos)
          << mcgqGetLastErrorDetail();
      continue;
    }
    ASSERT_EQ(e, mcgqSuccess) << mcgqGetLastErrorDetail();
    ++accepted;
    std::vector<float> out(2);
    ASSERT_EQ(mcgqDecodeHost(msg.data(), msg.size(), out.data(), 2), mcgqSuccess);
    EXPECT_TRUE(std::isfinite(out[0]) && std::isfinite(out[1])) << out[0] << " " << out[1];
  }
  // Both outcomes occur: a draw of [1, 1] decodes to 2.5e38 each, [2, 0] to inf.
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 0);
}

// The accumulated modes check the rule before the accumulator is written.
TEST(Range, RefusedAccumulatedLayerKeepsItsAccumulator) {
  const std::vector<float> g = {1.5e38f, 1e38f};
  for (int32_t mode : {MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL}) {
    bool saw_refusal = false;
    for (uint32_t u = 0; u < 64 && !saw_refusal; ++u) {
      std::vector<float> accum = {1.5e38f, 1e38f};  // accum + g = 3e38, 2e38
      Bytes msg;
      mcgqResult_t e = Encode(g, 1.0, u * 0x04000000u, &msg, accum.data(), mode);
      if (e != mcgqRangeError) continue;
      saw_refusal = true;
      EXPECT_EQ(Bits(accum[0]), Bits(1.5e38f)) << mode;
      EXPECT_EQ(Bits(accum[1]), Bits(1e38f)) << mode;
    }
    EXPECT_TRUE(saw_refusal) << mode;
  }
}

// Random layers of huge magnitude: every accepted encode decodes finite, and
// the rule refuses some (about 15% of such layers decoded to inf before).
TEST(Range, RandomHugeLayersNeverDecodeNonFinite) {
  std::mt19937_64 rng(20261202);
  std::uniform_real_distribution<float> frac(0.0f, 1.0f);
  int refused = 0, accepted = 0;
  for (int t = 0; t < 3000; ++t) {
    const size_t n = 1 + rng() % 40;
    const double ks[] = {0.1, 0.5, 1.0, 2.0, 8.0};
    const double k = ks[rng() % 5];
    std::vector<float> g(n);
    for (float &x : g) x = (rng() & 1 ? -1.0f : 1.0f) * FLT_MAX * frac(rng) * frac(rng);
    Bytes msg;
    mcgqResult_t e = Encode(g, k, static_cast<uint32_t>(rng()), &msg);
    if (e == mcgqRangeError) {
      ++refused;
      continue;
    }
    ASSERT_EQ(e, mcgqSuccess) << mcgqGetLastErrorDetail();
    ++accepted;
    std::vector<float> out(n);
    ASSERT_EQ(mcgqDecodeHost(msg.data(), msg.size(), out.data(), n), mcgqSuccess);
    for (size_t i = 0; i < n; ++i) ASSERT_TRUE(std::isfinite(out[i])) << "t " << t << " i " << i;
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 1000);
}

// P messages that each decode finite but whose average could overflow: the
// decoder refuses the set with mcgqRangeError and leaves out untouched.
TEST(Range, DecodeAverageRefusesASumThatCouldOverflow) {
  // [a, a] at K = 1 gives g_int = [1, 1] and scale a, so bound = a per rank.
  const int P = 4;
  for (float a : {0.3f * FLT_MAX, 0.2f * FLT_MAX}) {
    std::vector<Bytes> msgs(P);
    std::vector<const void *> in;
    std::vector<size_t> sizes;
    for (int r = 0; r < P; ++r) {
      ASSERT_EQ(Encode({a, a}, 1.0, 12345u + r, &msgs[r]), mcgqSuccess) << mcgqGetLastErrorDetail();
      in.push_back(msgs[r].data());
      sizes.push_back(msgs[r].size());
    }
    std::vector<float> out = {-7.0f, -7.0f};
    mcgqResult_t res = mcgqDecodeAverageHost(in.data(), sizes.data(), P, out.data(), 2);
    if (a == 0.3f * FLT_MAX) {  // 4 * 0.3 FLT_MAX: the fmaf chain could reach inf
      EXPECT_EQ(res, mcgqRangeError);
      EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("layer 0"), std::string::npos);
      EXPECT_EQ(out[0], -7.0f);
      EXPECT_EQ(out[1], -7.0f);
    } else {  // 0.8 FLT_MAX in all: finite, and the average of [a, a] * 4
      ASSERT_EQ(res, mcgqSuccess) << mcgqGetLastErrorDetail();
      EXPECT_TRUE(std::isfinite(out[0]) && std::isfinite(out[1]));
    }
  }
}

// A hostile message: a valid one whose scale is raised to FLT_MAX (no CRC, so
// nothing else notices).  It used to decode to inf; now it is refused.
TEST(Range, HostileScaleIsRefusedNotDecodedToInfinity) {
  std::vector<float> g(64);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % 7) - 3.0f;
  Bytes msg;
  ASSERT_EQ(Encode(g, 4.0, 99u, &msg), mcgqSuccess);
  const size_t scale_at = 32 + 40;  // directory entry 0, scale field
  const uint32_t flt_max_bits = 0x7f7fffffu;
  for (int b = 0; b < 4; ++b) msg[scale_at + b] = static_cast<uint8_t>(flt_max_bits >> (8 * b));
  std::vector<float> out(g.size(), -7.0f);
  EXPECT_EQ(mcgqDecodeHost(msg.data(), msg.size(), out.data(), out.size()), mcgqRangeError)
      << mcgqGetLastErrorDetail();
  for (float v : out) ASSERT_EQ(v, -7.0f);
  // The integers are still there for who asks for them.
  std::vector<int32_t> ints(g.size());
  EXPECT_EQ(mcgqDecodeIntsHost(msg.data(), msg.size(), ints.data(), ints.size(), nullptr, 0),
            mcgqSuccess)
      << mcgqGetLastErrorDetail();
}

}  // namespace
