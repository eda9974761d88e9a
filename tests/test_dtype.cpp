// format/dtype.h, the 16-bit gradient types: widening is exact for all
// 65536 bf16 and binary16 patterns, narrowing rounds to the nearest value
// with ties to even, checked against references computed here in double
// from the formats' definitions (no shared code, no compiler half type).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "dtype.h"
#include "support/bits.hpp"

namespace {

// binary16 by definition: (-1)^s 2^(e-15) (1 + f/1024), subnormal 2^-14 f/1024.
double F16Value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, f = h & 1023;
  const double sign = s ? -1.0 : 1.0;
  if (e == 31) return f ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(f, -24);
  return sign * std::ldexp(1024 + f, e - 25);
}

// bf16 by definition: the float32 with these upper 16 bits.
double Bf16Value(uint16_t h) { return FromBits(static_cast<uint32_t>(h) << 16); }

// Round-to-nearest-even into a format given by its ascending finite values
// (pairs of value and encoding); beyond the largest finite value by half an
// ulp of it (the next power of two's midpoint) is infinity.
struct Format {
  std::vector<std::pair<double, uint16_t>> finite;  // ascending, non-negative, +0 first
  double overflow;                                   // |x| >= this rounds to infinity
  uint16_t inf;

  uint16_t Nearest(float f) const {
    const double x = std::fabs(static_cast<double>(f));
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    if (x >= overflow) return sign | inf;
    auto hi = std::lower_bound(finite.begin(), finite.end(), std::make_pair(x, uint16_t{0}));
    if (hi == finite.end()) return sign | finite.back().second;  // below overflow
    if (hi->first == x || hi == finite.begin()) return sign | hi->second;
    auto lo = hi - 1;
    const double dlo = x - lo->first, dhi = hi->first - x;
    if (dlo < dhi) return sign | lo->second;
    if (dhi < dlo) return sign | hi->second;
    return sign | ((lo->second & 1) ? hi->second : lo->second);  // tie: even encoding
  }
};

Format F16Format() {
  Format f;
  for (uint32_t h = 0; h < 0x7c00; ++h) f.finite.push_back({F16Value(static_cast<uint16_t>(h)), static_cast<uint16_t>(h)});
  f.overflow = 65520.0;  // 65504 + half its ulp (32 / 2 = 16)
  f.inf = 0x7c00;
  return f;
}

Format Bf16Format() {
  Format f;
  for (uint32_t h = 0; h < 0x7f80; ++h) f.finite.push_back({Bf16Value(static_cast<uint16_t>(h)), static_cast<uint16_t>(h)});
  f.overflow = std::ldexp(1.0, 128) - std::ldexp(1.0, 128 - 9);  // bf16 max + half ulp
  f.inf = 0x7f80;
  return f;
}

// Floats that exercise rounding: every 16-bit value, the midpoints between
// neighbours and one float32 ulp either side of them, plus random floats.
std::vector<float> Probes(const Format &fmt, uint64_t randoms) {
  std::vector<float> p;
  for (size_t i = 0; i + 1 < fmt.finite.size(); ++i) {
    const float mid = static_cast<float>((fmt.finite[i].first + fmt.finite[i + 1].first) / 2);
    for (float x : {static_cast<float>(fmt.finite[i].first), mid, std::nextafter(mid, 0.0f),
                    std::nextafter(mid, INFINITY)})
      for (float s : {1.0f, -1.0f}) p.push_back(s * x);
  }
  std::mt19937_64 rng(16);
  for (uint64_t i = 0; i < randoms; ++i) {
    const float f = FromBits(static_cast<uint32_t>(rng()));
    if (!std::isnan(f)) p.push_back(f);
  }
  for (float x : {0.0f, -0.0f, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, FLT_MIN, FLT_TRUE_MIN})
    p.push_back(x);
  return p;
}

TEST(Dtype, WideningIsExactForEveryPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t v = static_cast<uint16_t>(h);
    const double f16 = F16Value(v), bf16 = Bf16Value(v);
    const float wf = mcgq_f16_to_f32(v), wb = mcgq_bf16_to_f32(v);
    if (std::isnan(f16)) {
      ASSERT_TRUE(std::isnan(wf)) << std::hex << h;
      ASSERT_EQ(Bits(wf) & 0x80000000u, (h & 0x8000u) << 16) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(wf), f16) << std::hex << h;
      ASSERT_EQ(std::signbit(wf), (h & 0x8000) != 0) << std::hex << h;  // -0 stays -0
    }
    if (std::isnan(bf16)) ASSERT_TRUE(std::isnan(wb));
    else ASSERT_EQ(Bits(wb), h << 16);
  }
}

TEST(Dtype, NarrowingRoundsToNearestEven) {
  const Format f16 = F16Format(), bf16 = Bf16Format();
  for (float x : Probes(f16, 1u << 20))
    ASSERT_EQ(mcgq_f32_to_f16(x), f16.Nearest(x)) << x << " bits " << std::hex << Bits(x);
  for (float x : Probes(bf16, 1u << 20))
    ASSERT_EQ(mcgq_f32_to_bf16(x), bf16.Nearest(x)) << x << " bits " << std::hex << Bits(x);
}

TEST(Dtype, NaNStaysNaNAndRoundTripsAreIdentities) {
  for (float nan : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                    FromBits(0x7f800001u) /* signalling, payload only in low bits */}) {
    EXPECT_TRUE(std::isnan(mcgq_f16_to_f32(mcgq_f32_to_f16(nan))));
    EXPECT_TRUE(std::isnan(mcgq_bf16_to_f32(mcgq_f32_to_bf16(nan))));
  }
  // Every finite 16-bit value survives widening then narrowing.
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t v = static_cast<uint16_t>(h);
    if ((h & 0x7c00) != 0x7c00) {
      ASSERT_EQ(mcgq_f32_to_f16(mcgq_f16_to_f32(v)), v) << std::hex << h;
    }
    if ((h & 0x7f80) != 0x7f80) {
      ASSERT_EQ(mcgq_f32_to_bf16(mcgq_bf16_to_f32(v)), v) << std::hex << h;
    }
  }
}

}  // namespace
