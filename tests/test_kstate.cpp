// Dynamic K (Alg 3, mcgqKStateUpdate): the update in double exactly as the
// paper writes it, the clamp, the first step, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "mcgq.h"

namespace {

mcgqLayerConfig_t Dynamic(double k, double k_min, double k_max, double delta) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = k;
  cfg.dynamic_k = 1;
  cfg.k_min = k_min;
  cfg.k_max = k_max;
  cfg.delta_k = delta;
  return cfg;
}

TEST(KState, FirstStepKeepsKAndRemembersD) {
  mcgqLayerConfig_t cfg = Dynamic(1.5, 0.01, 8.0, 10.0);
  mcgqKState_t ks;
  ASSERT_EQ(mcgqKStateInit(&cfg, &ks), mcgqSuccess);
  ASSERT_EQ(mcgqKStateUpdate(&cfg, &ks, 0.125), mcgqSuccess);
  EXPECT_EQ(ks.k, 1.5);
  EXPECT_EQ(ks.d_prev, 0.125);
  EXPECT_EQ(ks.started, 1);
}

TEST(KState, UpdateIsExactDoubleArithmetic) {
  mcgqLayerConfig_t cfg = Dynamic(1.0, 0.01, 8.0, 3.7);
  mcgqKState_t ks;
  ASSERT_EQ(mcgqKStateInit(&cfg, &ks), mcgqSuccess);
  const double ds[] = {0.03, 0.021, 0.05, 0.0123456789, 0.07, 0.0, 0.3};
  double k = 1.0, d_prev = 0.0;
  bool started = false;
  for (double d : ds) {
    ASSERT_EQ(mcgqKStateUpdate(&cfg, &ks, d), mcgqSuccess);
    if (started) {
      volatile double step = cfg.delta_k * (d_prev - d);  // K + delta_k*(d_prev - d)
      k = k + step;
      k = std::fmin(std::fmax(k, cfg.k_min), cfg.k_max);
    }
    started = true;
    d_prev = d;
    EXPECT_EQ(ks.k, k);
    EXPECT_EQ(ks.d_prev, d);
  }
}

TEST(KState, Clamps) {
  mcgqLayerConfig_t cfg = Dynamic(1.0, 0.5, 2.0, 100.0);
  mcgqKState_t ks = {1.0, 0.0, 0, 0};
  ASSERT_EQ(mcgqKStateUpdate(&cfg, &ks, 0.5), mcgqSuccess);
  ASSERT_EQ(mcgqKStateUpdate(&cfg, &ks, 0.0), mcgqSuccess);  // K + 50 -> k_max
  EXPECT_EQ(ks.k, 2.0);
  ASSERT_EQ(mcgqKStateUpdate(&cfg, &ks, 0.9), mcgqSuccess);  // K - 90 -> k_min
  EXPECT_EQ(ks.k, 0.5);
  cfg.delta_k = 1e308;  // an overflowing step still clamps, never NaN
  ASSERT_EQ(mcgqKStateUpdate(&cfg, &ks, 0.0), mcgqSuccess);
  EXPECT_EQ(ks.k, 2.0);
}

TEST(KState, Errors) {
  mcgqLayerConfig_t cfg = Dynamic(1.0, 0.5, 2.0, 1.0);
  mcgqKState_t ks = {1.0, 0.25, 1, 0};
  const mcgqKState_t before = ks;
  auto unchanged = [&] { EXPECT_EQ(0, std::memcmp(&ks, &before, sizeof ks)); };
  auto detail = [](const char *needle) {
    std::string d = mcgqGetLastErrorDetail();
    EXPECT_NE(d.find("mcgqKStateUpdate"), std::string::npos) << d;
    EXPECT_NE(d.find(needle), std::string::npos) << d;
  };
  EXPECT_EQ(mcgqKStateUpdate(nullptr, &ks, 0.1), mcgqInvalidArgument);
  detail("cfg is NULL");
  EXPECT_EQ(mcgqKStateUpdate(&cfg, nullptr, 0.1), mcgqInvalidArgument);
  detail("kstate is NULL");
  EXPECT_EQ(mcgqKStateUpdate(&cfg, &ks, std::nan("")), mcgqInvalidArgument);
  detail("d = nan");
  EXPECT_EQ(mcgqKStateUpdate(&cfg, &ks, -0.5), mcgqInvalidArgument);
  detail("d = -0.5");
  EXPECT_EQ(mcgqKStateUpdate(&cfg, &ks, INFINITY), mcgqInvalidArgument);
  unchanged();
  mcgqLayerConfig_t fixed = cfg;
  fixed.dynamic_k = 0;
  EXPECT_EQ(mcgqKStateUpdate(&fixed, &ks, 0.1), mcgqInvalidArgument);
  detail("dynamic_k = 0");
  mcgqLayerConfig_t bad = cfg;
  bad.k_min = 3.0;
  EXPECT_EQ(mcgqKStateUpdate(&bad, &ks, 0.1), mcgqInvalidArgument);
  detail("k_min");
  bad = cfg;
  bad.struct_size = 0;
  EXPECT_EQ(mcgqKStateUpdate(&bad, &ks, 0.1), mcgqUnsupportedVersion);
  unchanged();
  mcgqKState_t broken = {std::nan(""), 0.0, 0, 0};
  EXPECT_EQ(mcgqKStateUpdate(&cfg, &broken, 0.1), mcgqInvalidArgument);
  detail("kstate.k = nan");
  mcgqKState_t broken_prev = {1.0, INFINITY, 1, 0};
  EXPECT_EQ(mcgqKStateUpdate(&cfg, &broken_prev, 0.1), mcgqInvalidArgument);
  detail("d_prev = inf");
}

}  // namespace
