// The plain reference (host/reference, docs/REFERENCE.md) against the
// independent vectors, exactly; then the public API's fast CPU path
// (mcgqQuantizeHost, mcgqRleEncodeHost, mcgqEncodeHost) against the
// reference byte for byte on seeded random layers: many sizes around the
// SIMD widths, block and chunk sizes, K values, N given directly, value
// distributions that stress the closed form, the accumulated modes and
// dynamic K over several steps.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include "mcgq.h"
#include "support/bits.hpp"
#include "mcgq_reference.h"
#include "support/vectors.hpp"

namespace {


// splitmix64: a fixed, library-independent stream, so a failing case is
// reproduced by its seed on any platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t Word() { return static_cast<uint32_t>(Next() >> 32); }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1p-53; }  // [0, 1)
  uint64_t Below(uint64_t bound) { return Next() % bound; }
  float Gaussian() {
    double u1 = 1.0 - Unit(), u2 = Unit();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  float Sign() { return (Next() & 1) ? -1.0f : 1.0f; }

 private:
  uint64_t state_;
};

enum Dist {
  kGaussian,
  kUniform,
  kSparse,         // ~90% exact zeros, some of them -0.0
  kOneNonzero,
  kAllEqual,
  kHuge,           // magnitudes near FLT_MAX: range errors at K < 1
  kDenormal,       // every value denormal (or zero)
  kMixedSigns,     // magnitudes over 2^-60..2^60, random signs: many q = 0
  kNegativeZeros,  // mostly -0.0f, a few values
  kAnyBits,        // any finite bit pattern
  kSmallIntegers,  // values in {-4..4}: exact ties of q and of b_k
  kDistCount
};
const char *DistName(int d) {
  static const char *names[] = {"gaussian", "uniform",      "sparse",    "one-nonzero",
                                "all-equal", "huge",        "denormal",  "mixed-signs",
                                "negative-zeros", "any-bits", "small-integers"};
  return names[d];
}

std::vector<float> MakeLayer(int dist, size_t n, Rng &rng) {
  std::vector<float> g(n, 0.0f);
  const float constant = rng.Sign() * static_cast<float>(0.25 + rng.Unit());
  const size_t one = n ? static_cast<size_t>(rng.Below(n)) : 0;
  for (size_t k = 0; k < n; ++k) {
    switch (dist) {
      case kGaussian: g[k] = rng.Gaussian(); break;
      case kUniform: g[k] = static_cast<float>(2.0 * rng.Unit() - 1.0); break;
      case kSparse:
        g[k] = rng.Below(10) == 0 ? rng.Gaussian() : (rng.Next() & 1 ? -0.0f : 0.0f);
        break;
      case kOneNonzero: g[k] = k == one ? constant : 0.0f; break;
      case kAllEqual: g[k] = constant; break;
      case kHuge: g[k] = rng.Sign() * FLT_MAX * static_cast<float>(0.5 + 0.5 * rng.Unit()); break;
      case kDenormal: {
        const uint32_t word = rng.Word();
        g[k] = FromBits((word & 0x80000000u) | ((word & 0x007fffffu) >> rng.Below(20)));
        break;
      }
      case kMixedSigns:
        g[k] = rng.Sign() * std::ldexp(static_cast<float>(1.0 + rng.Unit()),
                                       static_cast<int>(rng.Below(121)) - 60);
        break;
      case kNegativeZeros: g[k] = rng.Below(16) == 0 ? rng.Gaussian() : -0.0f; break;
      case kAnyBits: {
        uint32_t b = rng.Word();
        if ((b & 0x7f800000u) == 0x7f800000u) b &= 0xbfffffffu;  // keep it finite
        g[k] = FromBits(b);
        break;
      }
      case kSmallIntegers: g[k] = static_cast<float>(static_cast<int>(rng.Below(9)) - 4); break;
    }
  }
  return g;
}

const uint64_t kSizes[] = {0, 1, 2, 3, 7, 8, 31, 32, 33, 63, 64, 65,
                           1000, 4097, 8191, 8192, 8193, 65537};
const double kKs[] = {0.001, 0.01, 0.1, 0.5, 1, 2, 8, 64};

std::string Describe(const char *what, uint64_t n, double k, uint64_t samples, int dist,
                     uint64_t seed) {
  std::ostringstream s;
  s << what << ": n=" << n << " K=" << k << " samples=" << samples << " dist=" << DistName(dist)
    << " seed=" << seed;
  return s.str();
}

::testing::AssertionResult SameStats(const mcgqLayerStats_t &fast, const mcgqLayerStats_t &ref) {
  std::ostringstream diff;
  auto field = [&](const char *name, uint64_t a, uint64_t b) {
    if (a != b) diff << " " << name << " fast=" << a << " ref=" << b;
  };
  field("n", fast.n, ref.n);
  field("samples", fast.samples, ref.samples);
  field("k_bits", Bits(fast.k), Bits(ref.k));
  field("scale_bits", Bits(fast.scale), Bits(ref.scale));
  field("bits_value", fast.bits_value, ref.bits_value);
  field("bits_run", fast.bits_run, ref.bits_run);
  field("status", fast.status, ref.status);
  field("stream_bits", fast.stream_bits, ref.stream_bits);
  field("wire_bytes", fast.wire_bytes, ref.wire_bytes);
  field("nonzeros", fast.nonzeros, ref.nonzeros);
  field("w1_bits", Bits(fast.w1), Bits(ref.w1));
  field("flags", fast.flags, ref.flags);
  if (diff.str().empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "stats differ:" << diff.str();
}

// First differing index of two equal-length arrays, or -1.
template <typename T>
long long FirstDifference(const std::vector<T> &a, const std::vector<T> &b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<long long>(i);
  return -1;
}

// ================================================= reference vs. vectors

TEST(ReferenceVectors, QuantizeMatchesEveryCaseExactly) {
  const std::vector<QuantizeCase> cases = LoadQuantizeVectors();
  ASSERT_GE(cases.size(), 40u);
  for (size_t c = 0; c < cases.size(); ++c) {
    const QuantizeCase &v = cases[c];
    SCOPED_TRACE("quantize.jsonl line " + std::to_string(c + 1) + " (" + v.kind + ")");
    uint64_t N = 0;
    ASSERT_EQ(mcgq_ref_samples(v.n, v.k, 0, &N), mcgqSuccess);
    EXPECT_EQ(N, v.N);
    std::vector<int32_t> g_int(v.n, 7), walked(v.n, 7), damped(v.n, 7);
    mcgq_ref_layer_t layer, layer_damped;
    ASSERT_EQ(mcgq_ref_quantize(v.g.data(), v.n, N, v.u, 0, g_int.data(), &layer), mcgqSuccess);
    EXPECT_EQ(g_int, v.g_int);
    EXPECT_EQ(Bits(layer.scale), Bits(v.scale));
    ASSERT_EQ(mcgq_ref_quantize(v.g.data(), v.n, N, v.u, 1, damped.data(), &layer_damped),
              mcgqSuccess);
    EXPECT_EQ(damped, v.g_int);  // damping changes the scale only
    EXPECT_EQ(Bits(layer_damped.scale), Bits(v.scale_residual));
    EXPECT_EQ(Bits(mcgq_ref_w1(v.g.data(), g_int.data(), v.n)), Bits(v.w1));
    ASSERT_EQ(mcgq_ref_quantize_by_sampling(v.g.data(), v.n, N, v.u, walked.data()), mcgqSuccess);
    EXPECT_EQ(walked, v.g_int);
  }
}

TEST(ReferenceVectors, RleMatchesEveryCaseExactly) {
  const std::vector<RleCase> cases = LoadRleVectors();
  ASSERT_GE(cases.size(), 5u);
  for (size_t c = 0; c < cases.size(); ++c) {
    const RleCase &v = cases[c];
    SCOPED_TRACE("rle.jsonl line " + std::to_string(c + 1));
    std::vector<uint8_t> out(v.bytes.size() + 8, 0xa5);
    uint64_t bits = 0;
    ASSERT_EQ(mcgq_ref_rle_encode(v.g_int.data(), v.g_int.size(), out.data(), out.size(), &bits,
                                  nullptr, nullptr),
              mcgqSuccess);
    EXPECT_EQ(bits, v.bits);
    EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + v.bytes.size()), v.bytes);
    EXPECT_EQ(out[v.bytes.size()], 0xa5) << "wrote past ceil(bits/8) bytes";
    mcgq_ref_rle_size_t size;
    ASSERT_EQ(mcgq_ref_rle_size(v.g_int.data(), v.g_int.size(), &size), mcgqSuccess);
    EXPECT_EQ(size.bits, v.bits);
  }
}

TEST(ReferenceVectors, DesignGoldenExampleAndCrcCheckValue) {
  const int32_t g_int[] = {2, -1, 0, 0, 0, 3, 0, 1};
  const uint8_t expected[] = {0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x5c, 0x6c, 0x24};
  uint8_t out[sizeof expected];
  uint64_t bits = 0;
  ASSERT_EQ(mcgq_ref_rle_encode(g_int, 8, out, sizeof out, &bits, nullptr, nullptr), mcgqSuccess);
  EXPECT_EQ(bits, 86u);
  EXPECT_EQ(0, std::memcmp(out, expected, sizeof out));
  EXPECT_EQ(mcgq_ref_rle_encode(g_int, 8, out, sizeof out - 1, &bits, nullptr, nullptr),
            mcgqCapacityExceeded);
  EXPECT_EQ(mcgq_ref_crc32c("123456789", 9), 0xe3069283u);  // the CRC32C check value
}

TEST(ReferenceVectors, RefusesWhatTheSpecRefuses) {
  uint64_t N = 0;
  EXPECT_EQ(mcgq_ref_samples(0, 1.0, 0, &N), mcgqInvalidArgument);
  EXPECT_EQ(mcgq_ref_samples(10, 0.0, 0, &N), mcgqInvalidArgument);
  EXPECT_EQ(mcgq_ref_samples(10, NAN, 0, &N), mcgqInvalidArgument);
  EXPECT_EQ(mcgq_ref_samples(10, 64.5, 0, &N), mcgqInvalidArgument);
  EXPECT_EQ(mcgq_ref_samples(100, 0.1, 0, &N), mcgqSuccess);
  EXPECT_EQ(N, 10u);  // DESIGN.md 2: the double product, not a float K
  EXPECT_EQ(mcgq_ref_samples(100, 0.07, 0, &N), mcgqSuccess);
  EXPECT_EQ(N, 8u);
  EXPECT_EQ(mcgq_ref_samples(0xffffffffull, 1.0, 0, &N), mcgqInvalidArgument);  // N >= 2^31
  const int32_t has_min[] = {1, INT32_MIN};
  mcgq_ref_rle_size_t size;
  EXPECT_EQ(mcgq_ref_rle_size(has_min, 2, &size), mcgqInvalidArgument);
  const float g[] = {1.0f, NAN};
  int32_t g_int[2] = {5, 5};
  mcgq_ref_layer_t layer;
  EXPECT_EQ(mcgq_ref_quantize(g, 2, 2, 0, 0, g_int, &layer), mcgqNonFinite);
  EXPECT_EQ(g_int[0], 5);
  const float huge[] = {FLT_MAX, FLT_MAX};
  EXPECT_EQ(mcgq_ref_quantize(huge, 2, 1, 0, 0, g_int, &layer), mcgqRangeError);
  EXPECT_EQ(g_int[0], 5);
}

// The closed form (2.5) and Algorithm 1's sample walk are two derivations
// inside the reference; they must agree wherever the walk is affordable.
TEST(ReferenceSelfCheck, ClosedFormEqualsAlgorithm1Walk) {
  int compared = 0;
  for (uint64_t n : kSizes) {
    if (n == 0) continue;
    for (double k : kKs) {
      for (int dist = 0; dist < kDistCount; ++dist) {
        const uint64_t seed = n * 1000003u + static_cast<uint64_t>(k * 1000) * 101u + dist;
        Rng rng(seed);
        std::vector<float> g = MakeLayer(dist, n, rng);
        uint64_t N = 0;
        ASSERT_EQ(mcgq_ref_samples(n, k, 0, &N), mcgqSuccess);
        if (N > (1u << 18)) continue;
        // u = 0 and 2^31 make x_i = C_k/T exactly reachable: the half-open
        // boundary of 2.4 (a sample on C_k/T belongs to the next element).
        const uint32_t u = dist % 3 == 0 ? 0u : dist % 3 == 1 ? 0x80000000u : rng.Word();
        std::vector<int32_t> closed(n), walked(n);
        mcgq_ref_layer_t layer;
        mcgqResult_t res = mcgq_ref_quantize(g.data(), n, N, u, 1, closed.data(), &layer);
        if (res == mcgqRangeError) continue;  // the walk has no scale
        ASSERT_EQ(res, mcgqSuccess) << Describe("quantize", n, k, 0, dist, seed);
        ASSERT_EQ(mcgq_ref_quantize_by_sampling(g.data(), n, N, u, walked.data()), mcgqSuccess);
        ASSERT_EQ(FirstDifference(closed, walked), -1) << Describe("walk", n, k, 0, dist, seed);
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 1000);
}

// =============================================== fast path vs. reference

// What the random layers reached, so the test shows it covers each case.
struct Coverage {
  int encoded = 0, all_zero = 0, fixed_width = 0, rle_indexed = 0;
  int range_errors = 0, invalid = 0, nonfinite = 0;
};

// One layer through mcgqQuantizeHost, mcgqRleEncodeHost and a one-layer
// mcgqEncodeHost, each against the reference.
void CompareOneLayer(const std::vector<float> &g, double k, uint64_t samples, uint32_t u,
                     int damped, int checksum, const std::string &where,
                     Coverage *coverage) {
  SCOPED_TRACE(where);
  const uint64_t n = g.size();
  // N: the API's resolution against the reference's.
  uint64_t N_ref = 0, N_fast = 0;
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = k;
  cfg.samples = samples;
  cfg.checksum = checksum;
  const mcgqResult_t n_ref = mcgq_ref_samples(n, k, samples, &N_ref);
  ASSERT_EQ(mcgqResolveSamples(&cfg, nullptr, n, &N_fast), n_ref);
  if (n_ref == mcgqSuccess) {
    ASSERT_EQ(N_fast, N_ref);
  }

  // Quantize: status, g_int (untouched on failure), stats.
  // n = 0 gets valid pointers, so that n itself is what the API refuses.
  std::vector<int32_t> fast(n ? n : 1, 0x5a5a5a5a), ref(n ? n : 1, 0x5a5a5a5a);
  const float zero_layer_value = 0.0f;
  const float *g_ptr = n ? g.data() : &zero_layer_value;
  mcgqLayerStats_t st_fast;
  const mcgqResult_t r_fast =
      mcgqQuantizeHost(g_ptr, n, k, samples, u, damped, fast.data(), &st_fast);
  mcgq_ref_layer_t layer;
  const mcgqResult_t r_ref = n_ref != mcgqSuccess
                                 ? n_ref
                                 : mcgq_ref_quantize(g.data(), n, N_ref, u, damped, ref.data(), &layer);
  ASSERT_EQ(r_fast, r_ref) << mcgqGetLastErrorDetail();
  ASSERT_EQ(FirstDifference(fast, ref), -1) << "g_int differs (or was written on failure)";
  coverage->range_errors += r_ref == mcgqRangeError;
  coverage->invalid += r_ref == mcgqInvalidArgument;
  coverage->nonfinite += r_ref == mcgqNonFinite;
  if (r_ref == mcgqSuccess) {
    mcgq_ref_rle_size_t size;
    ASSERT_EQ(mcgq_ref_rle_size(ref.data(), n, &size), mcgqSuccess);
    mcgqLayerStats_t st_ref;
    std::memset(&st_ref, 0, sizeof st_ref);
    st_ref.n = n;
    st_ref.samples = layer.samples;
    st_ref.k = samples ? static_cast<double>(N_ref) / static_cast<double>(n) : k;
    st_ref.scale = layer.scale;
    st_ref.bits_value = size.bits_value;
    st_ref.bits_run = size.bits_run;
    st_ref.stream_bits = size.bits;
    st_ref.nonzeros = size.nonzeros;
    st_ref.w1 = mcgq_ref_w1(g.data(), ref.data(), n);
    ASSERT_TRUE(SameStats(st_fast, st_ref));

    // The paper stream alone.
    uint64_t bits_fast = 0, bits_ref = 0;
    const size_t cap = static_cast<size_t>((size.bits + 7) / 8);
    std::vector<uint8_t> s_fast(cap + 1, 0xa5), s_ref(cap + 1, 0xa5);
    ASSERT_EQ(mcgqRleEncodeHost(fast.data(), n, s_fast.data(), cap, &bits_fast), mcgqSuccess);
    ASSERT_EQ(mcgq_ref_rle_encode(ref.data(), n, s_ref.data(), cap, &bits_ref, nullptr, nullptr),
              mcgqSuccess);
    ASSERT_EQ(bits_fast, bits_ref);
    ASSERT_EQ(FirstDifference(s_fast, s_ref), -1) << "paper stream bytes differ";
  }

  // The container of this one layer.
  mcgqLayerDesc_t desc;
  mcgqLayerDescInit(&desc);
  desc.g = g_ptr;
  desc.n = n;
  desc.u = u;
  desc.cfg = cfg;
  if (n == 0) {  // both refuse n = 0 (FORMAT.md: 1 <= n)
    size_t bytes = 0;
    uint8_t out[64];
    ASSERT_EQ(mcgqEncodeHost(&desc, 1, out, sizeof out, &bytes, nullptr), mcgqInvalidArgument);
    ASSERT_EQ(mcgq_ref_encode(&desc, 1, out, sizeof out, &bytes, nullptr), mcgqInvalidArgument);
    return;
  }
  size_t cap = 0;
  ASSERT_EQ(mcgqEncodeGetMaxOutputSize(&desc, 1, &cap), mcgqSuccess);
  std::vector<uint8_t> m_fast(cap + 8, 0xa5), m_ref(cap + 8, 0xa5);
  size_t bytes_fast = 0, bytes_ref = 0;
  mcgqLayerStats_t e_fast, e_ref;
  const mcgqResult_t w_fast = mcgqEncodeHost(&desc, 1, m_fast.data(), cap, &bytes_fast, &e_fast);
  const mcgqResult_t w_ref = mcgq_ref_encode(&desc, 1, m_ref.data(), cap, &bytes_ref, &e_ref);
  ASSERT_EQ(w_fast, w_ref) << mcgqGetLastErrorDetail();
  ASSERT_EQ(FirstDifference(m_fast, m_ref), -1) << "message bytes differ";
  if (w_ref != mcgqSuccess) return;
  ASSERT_EQ(bytes_fast, bytes_ref);
  ASSERT_TRUE(SameStats(e_fast, e_ref));
  coverage->encoded += 1;
  coverage->all_zero += e_ref.samples == 0;
  coverage->fixed_width += (e_ref.flags & MCGQ_LAYER_FLAG_FIXED_WIDTH) != 0;
  coverage->rle_indexed += !(e_ref.flags & MCGQ_LAYER_FLAG_FIXED_WIDTH) && n > 8192;
}

TEST(FastEqualsReference, RandomLayersOverSizesKAndDistributions) {
  int layers = 0;
  Coverage coverage;
  for (uint64_t n : kSizes) {
    // Two seeds per setting up to the chunk size, one beyond (time).
    const int seeds = n <= 8193 ? 2 : 1;
    for (int s = 0; s < seeds; ++s) {
      for (int setting = 0; setting < 11; ++setting) {
        // Eight K values, then N given directly: 1 sample, n + 3, and the
        // largest N (2^31 - 1: counts up to B_g = 32, estimates near 2^31).
        const double k = setting < 8 ? kKs[setting] : 1.0;
        const uint64_t samples = setting == 8    ? 1
                                 : setting == 9  ? n + 3
                                 : setting == 10 ? MCGQ_MAX_SAMPLES
                                                 : 0;
        for (int dist = 0; dist < kDistCount; ++dist) {
          const uint64_t seed = (n << 20) ^ (static_cast<uint64_t>(s) << 16) ^
                                (static_cast<uint64_t>(setting) << 8) ^ static_cast<uint64_t>(dist);
          Rng rng(seed);
          const std::vector<float> g = MakeLayer(dist, n, rng);
          const uint32_t u = (seed & 7) == 0 ? 0u : rng.Word();  // u = 0 is a guard edge
          const int damped = static_cast<int>(rng.Next() & 1);
          const int checksum = static_cast<int>(rng.Next() & 1);
          CompareOneLayer(g, k, samples, u, damped, checksum,
                          Describe("one layer", n, k, samples, dist, seed), &coverage);
          if (HasFatalFailure()) return;
          ++layers;
        }
      }
    }
  }
  EXPECT_GT(layers, 4000);
  EXPECT_GT(coverage.encoded, 3500);
  EXPECT_GT(coverage.all_zero, 50);
  EXPECT_GT(coverage.fixed_width, 200);
  EXPECT_GT(coverage.rle_indexed, 100);
  EXPECT_GT(coverage.range_errors, 20);
  EXPECT_GT(coverage.invalid, 10);  // n = 0
  std::printf("[ coverage ] %d layers: %d encoded (%d all zero, %d fixed width, %d RLE with "
              "chunk index), refused alike: %d range, %d n = 0\n",
              layers, coverage.encoded, coverage.all_zero, coverage.fixed_width,
              coverage.rle_indexed, coverage.range_errors, coverage.invalid);
}

// The paper stream of arbitrary integers (quantize rarely makes wide values):
// every B_g from 1 to 32, sparse to dense, n = 0, and INT32_MIN refused.
TEST(FastEqualsReference, RleOfRandomIntegers) {
  int compared = 0;
  for (uint64_t n : kSizes) {
    for (uint32_t width = 0; width <= 31; width += (n > 8192 ? 5 : 1)) {
      for (uint64_t zero_odds : {1u, 2u, 10u, 1000u}) {  // 1 in zero_odds is nonzero
        const uint64_t seed = (n << 12) ^ (width << 4) ^ zero_odds;
        Rng rng(seed);
        std::vector<int32_t> g_int(n);
        for (auto &v : g_int) {
          const uint32_t mag = width ? static_cast<uint32_t>(rng.Below(1ull << width)) : 0u;
          v = rng.Below(zero_odds) == 0 ? static_cast<int32_t>(rng.Next() & 1 ? 0u - mag : mag) : 0;
        }
        if (n && width == 31 && zero_odds == 2) g_int[rng.Below(n)] = INT32_MIN;
        mcgq_ref_rle_size_t size{};
        uint64_t bits_fast = 0, bits_ref = 0;
        const int32_t *p = n ? g_int.data() : nullptr;
        const mcgqResult_t sized = mcgq_ref_rle_size(p, n, &size);
        ASSERT_EQ(mcgqRleEncodeHost(p, n, nullptr, 0, &bits_fast), sized) << "seed " << seed;
        if (sized != mcgqSuccess) continue;
        const size_t cap = static_cast<size_t>((size.bits + 7) / 8);
        std::vector<uint8_t> fast(cap + 1, 0xa5), ref(cap + 1, 0xa5);
        ASSERT_EQ(mcgqRleEncodeHost(p, n, fast.data(), cap, &bits_fast), mcgqSuccess);
        ASSERT_EQ(mcgq_ref_rle_encode(p, n, ref.data(), cap, &bits_ref, nullptr, nullptr),
                  mcgqSuccess);
        ASSERT_EQ(bits_fast, bits_ref) << "seed " << seed;
        ASSERT_EQ(FirstDifference(fast, ref), -1) << "seed " << seed;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 1500);
}

#if defined(__x86_64__) || defined(_M_X64)
// DESIGN.md 2: the fast path gives the reference's bits also when the caller
// runs with flush-to-zero / denormals-are-zero (MXCSR bits 15 and 6); the
// reference itself runs in the default mode.
TEST(FastEqualsReference, CallerFlushToZeroDoesNotChangeTheFastPath) {
  Coverage coverage;
  const unsigned int saved = _mm_getcsr();
  for (int dist : {kDenormal, kMixedSigns, kAnyBits}) {
    for (uint64_t n : {33u, 8193u}) {
      Rng rng(n * 3 + dist);
      const std::vector<float> g = MakeLayer(dist, n, rng);
      const uint32_t u = rng.Word();
      std::vector<int32_t> fast(n), ref(n);
      mcgqLayerStats_t st;
      _mm_setcsr(saved | (1u << 15) | (1u << 6));
      const mcgqResult_t r_fast = mcgqQuantizeHost(g.data(), n, 2.0, 0, u, 0, fast.data(), &st);
      _mm_setcsr(saved);
      uint64_t N = 0;
      ASSERT_EQ(mcgq_ref_samples(n, 2.0, 0, &N), mcgqSuccess);
      mcgq_ref_layer_t layer;
      ASSERT_EQ(r_fast, mcgq_ref_quantize(g.data(), n, N, u, 0, ref.data(), &layer));
      if (r_fast != mcgqSuccess) continue;  // e.g. the range rule: refused alike
      EXPECT_EQ(FirstDifference(fast, ref), -1) << DistName(dist) << " n=" << n;
      EXPECT_EQ(Bits(st.scale), Bits(layer.scale));
      ++coverage.encoded;
    }
  }
  EXPECT_GE(coverage.encoded, 4);
}
#endif

TEST(FastEqualsReference, NonFiniteValuesAreRefusedAlike) {
  Rng rng(77);
  Coverage coverage;
  const float bad[] = {NAN, INFINITY, -INFINITY};
  for (uint64_t n : {1u, 33u, 8193u}) {
    for (float b : bad) {
      std::vector<float> g = MakeLayer(kGaussian, n, rng);
      g[rng.Below(n)] = b;
      CompareOneLayer(g, 1.0, 0, rng.Word(), 0, 0, "non-finite n=" + std::to_string(n),
                      &coverage);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_EQ(coverage.nonfinite, 9);
}

// Several layers with their own accumulators and K states, run step after
// step through mcgqEncodeHost and through the reference with copies of the
// same state; every step's message, stats, accumulators and K states must
// be equal bit for bit.
struct LayerSpec {
  uint64_t n;
  int dist;
  double k;
  uint64_t samples;
  int accumulate;
  int dynamic_k;
  int checksum;
};

class Stepper {
 public:
  explicit Stepper(const std::vector<LayerSpec> &specs) : specs_(specs) {
    const size_t count = specs.size();
    g_.resize(count);
    accum_fast_.resize(count);
    accum_ref_.resize(count);
    k_fast_.resize(count);
    k_ref_.resize(count);
    for (size_t i = 0; i < count; ++i) {
      accum_fast_[i].assign(specs[i].n, 0.0f);
      accum_ref_[i].assign(specs[i].n, 0.0f);
    }
  }

  // One step with fresh gradients; `poison` >= 0 puts a NaN into that layer.
  void Step(uint64_t step, Rng &rng, int poison, const std::string &where) {
    SCOPED_TRACE(where + " step " + std::to_string(step));
    const int count = static_cast<int>(specs_.size());
    std::vector<mcgqLayerDesc_t> fast(count), ref(count);
    for (int i = 0; i < count; ++i) {
      const LayerSpec &s = specs_[i];
      g_[i] = MakeLayer(s.dist, s.n, rng);
      if (i == poison) g_[i][rng.Below(s.n)] = NAN;
      mcgqLayerDesc_t d;
      mcgqLayerDescInit(&d);
      d.g = g_[i].data();
      d.n = s.n;
      d.u = mcgqRandomWord(0x5eed, step, static_cast<uint32_t>(i), 0);
      d.cfg.k = s.k;
      d.cfg.samples = s.samples;
      d.cfg.accumulate = s.accumulate;
      d.cfg.dynamic_k = s.dynamic_k;
      d.cfg.k_min = 0.05;
      d.cfg.k_max = 4.0;
      d.cfg.delta_k = 50.0;  // large, so K moves and both paths see new N
      d.cfg.checksum = s.checksum;
      if (step == 0 && s.dynamic_k) {
        ASSERT_EQ(mcgqKStateInit(&d.cfg, &k_fast_[i]), mcgqSuccess);
        k_ref_[i] = k_fast_[i];
      }
      fast[i] = d;
      ref[i] = d;
      if (s.accumulate != MCGQ_ACCUM_NONE) {
        fast[i].accum = accum_fast_[i].data();
        ref[i].accum = accum_ref_[i].data();
      }
      if (s.dynamic_k) {
        fast[i].kstate = &k_fast_[i];
        ref[i].kstate = &k_ref_[i];
      }
    }
    size_t cap = 0;
    ASSERT_EQ(mcgqEncodeGetMaxOutputSize(fast.data(), count, &cap), mcgqSuccess);
    std::vector<uint8_t> m_fast(cap, 0xa5), m_ref(cap, 0xa5);
    std::vector<mcgqLayerStats_t> st_fast(count), st_ref(count);
    size_t bytes_fast = 0, bytes_ref = 0;
    const mcgqResult_t r_fast =
        mcgqEncodeHost(fast.data(), count, m_fast.data(), cap, &bytes_fast, st_fast.data());
    const mcgqResult_t r_ref =
        mcgq_ref_encode(ref.data(), count, m_ref.data(), cap, &bytes_ref, st_ref.data());
    ASSERT_EQ(r_fast, r_ref) << mcgqGetLastErrorDetail();
    if (r_ref == mcgqSuccess) {
      ASSERT_EQ(bytes_fast, bytes_ref);
      ASSERT_EQ(FirstDifference(m_fast, m_ref), -1) << "message bytes differ";
    }
    for (int i = 0; i < count; ++i) {
      SCOPED_TRACE("layer " + std::to_string(i));
      if (r_ref == mcgqSuccess) {
        ASSERT_TRUE(SameStats(st_fast[i], st_ref[i]));
      }
      ASSERT_EQ(st_fast[i].status, st_ref[i].status);
      ASSERT_EQ(FirstDifference(accum_fast_[i], accum_ref_[i]), -1) << "accumulators differ";
      ASSERT_EQ(0, std::memcmp(&k_fast_[i], &k_ref_[i], sizeof(mcgqKState_t)))
          << "K states differ: fast K=" << k_fast_[i].k << " ref K=" << k_ref_[i].k;
    }
    // The library's canonical reader accepts the (equal) message: the
    // reference writes nothing a decoder would reject.
    if (r_ref == mcgqSuccess) {
      uint64_t total = 0;
      for (const LayerSpec &s : specs_) total += s.n;
      std::vector<int32_t> decoded(total);
      ASSERT_EQ(mcgqDecodeIntsHost(m_fast.data(), bytes_fast, decoded.data(), total, nullptr, 0),
                mcgqSuccess)
          << mcgqGetLastErrorDetail();
    }
  }

  const std::vector<float> &Accum(size_t i) const { return accum_ref_[i]; }
  const mcgqKState_t &KState(size_t i) const { return k_ref_[i]; }

 private:
  std::vector<LayerSpec> specs_;
  std::vector<std::vector<float>> g_, accum_fast_, accum_ref_;
  std::vector<mcgqKState_t> k_fast_, k_ref_;
};

TEST(FastEqualsReference, AccumulatedModesOverSteps) {
  const uint64_t sizes[] = {1, 7, 64, 65, 1000, 8193, 20000};
  const int modes[] = {MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL};
  const double ks[] = {0.01, 0.1, 1.0, 8.0};
  const int dists[] = {kGaussian, kSparse, kMixedSigns, kDenormal, kSmallIntegers};
  int runs = 0;
  for (uint64_t n : sizes) {
    for (int mode : modes) {
      for (double k : ks) {
        for (int dist : dists) {
          const uint64_t seed = n * 31 + static_cast<uint64_t>(mode) * 7 + static_cast<uint64_t>(k * 100) + dist;
          Rng rng(seed);
          Stepper stepper({{n, dist, k, 0, mode, 0, static_cast<int>(seed & 1)}});
          for (uint64_t step = 0; step < 5; ++step) {
            stepper.Step(step, rng, -1, Describe("accumulated", n, k, 0, dist, seed));
            if (HasFatalFailure()) return;
          }
          ++runs;
        }
      }
    }
  }
  EXPECT_EQ(runs, 7 * 2 * 4 * 5);
}

TEST(FastEqualsReference, DynamicKOverSteps) {
  const uint64_t sizes[] = {3, 33, 1000, 8192, 30000};
  const int modes[] = {MCGQ_ACCUM_NONE, MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL};
  int moved = 0;
  for (uint64_t n : sizes) {
    for (int mode : modes) {
      for (int dist : {kGaussian, kSparse, kUniform}) {
        const uint64_t seed = n * 131 + static_cast<uint64_t>(mode) * 17 + dist;
        Rng rng(seed);
        Stepper stepper({{n, dist, 0.5, 0, mode, 1, 0}});
        for (uint64_t step = 0; step < 6; ++step) {
          stepper.Step(step, rng, -1, Describe("dynamic K", n, 0.5, 0, dist, seed));
          if (HasFatalFailure()) return;
        }
        moved += stepper.KState(0).k != 0.5;
      }
    }
  }
  EXPECT_GT(moved, 20) << "K should move in most runs, or the update is not exercised";
}

TEST(FastEqualsReference, MixedMessagesAndFailedStepsChangeNothing) {
  // Layers of every kind in one message: RLE with chunk index, fixed width,
  // all-zero, accumulated, dynamic, N given directly.
  const std::vector<LayerSpec> specs = {
      {20000, kSparse, 0.05, 0, MCGQ_ACCUM_RESET, 0, 1},
      {4097, kGaussian, 8.0, 0, MCGQ_ACCUM_NONE, 0, 0},
      {65, kNegativeZeros, 1.0, 0, MCGQ_ACCUM_RESIDUAL, 1, 0},
      {1, kAllEqual, 1.0, 5, MCGQ_ACCUM_NONE, 0, 0},
      {17000, kGaussian, 0.01, 0, MCGQ_ACCUM_NONE, 1, 0},
  };
  Rng rng(2024);
  Stepper stepper(specs);
  for (uint64_t step = 0; step < 8; ++step) {
    // Step 3 and 6: a NaN in some layer; nothing may change anywhere.
    const int poison = step == 3 ? 2 : step == 6 ? 0 : -1;
    std::vector<float> before = stepper.Accum(0);
    stepper.Step(step, rng, poison, "mixed message");
    if (HasFatalFailure()) return;
    if (poison >= 0) {
      EXPECT_EQ(FirstDifference(before, stepper.Accum(0)), -1);
    }
  }
}

TEST(FastEqualsReference, CapacityShortfallIsRefusedAlike) {
  Rng rng(5);
  std::vector<float> g = MakeLayer(kGaussian, 9000, rng);
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.g = g.data();
  d.n = g.size();
  d.u = 12345;
  size_t cap = 0;
  ASSERT_EQ(mcgqEncodeGetMaxOutputSize(&d, 1, &cap), mcgqSuccess);
  std::vector<uint8_t> out(cap);
  size_t bytes = 0;
  ASSERT_EQ(mcgq_ref_encode(&d, 1, out.data(), cap, &bytes, nullptr), mcgqSuccess);
  // One layer a byte short; two copies where the first fits and the second
  // does not (one more directory entry, 56 bytes, and half a region).
  const size_t region = bytes - 32 - 56;
  const mcgqLayerDesc_t two[2] = {d, d};
  for (int count : {1, 2}) {
    const size_t capacity = count == 1 ? bytes - 1 : bytes + 56 + region / 2;
    std::vector<uint8_t> fast(capacity, 0xa5), ref(capacity, 0xa5);
    mcgqLayerStats_t st_fast[2], st_ref[2];
    size_t b1 = 0, b2 = 0;
    EXPECT_EQ(mcgqEncodeHost(two, count, fast.data(), capacity, &b1, st_fast),
              mcgqCapacityExceeded);
    EXPECT_EQ(mcgq_ref_encode(two, count, ref.data(), capacity, &b2, st_ref),
              mcgqCapacityExceeded);
    EXPECT_EQ(fast, std::vector<uint8_t>(capacity, 0xa5)) << "output written on failure";
    EXPECT_EQ(ref, std::vector<uint8_t>(capacity, 0xa5));
    for (int i = 0; i < count; ++i) EXPECT_TRUE(SameStats(st_fast[i], st_ref[i])) << i;
    EXPECT_EQ(st_ref[count - 1].status, static_cast<uint32_t>(mcgqCapacityExceeded));
  }
}

}  // namespace
