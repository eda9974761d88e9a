// GPU encode (mcgqEncodeAsync, both algorithms) against the CPU reference
// (mcgqEncodeHost, mcgqQuantizeHost): the container bytes and the stats must
// be identical bit for bit (DESIGN.md 2: everything after q_k is integer
// arithmetic).  Every test skips without a CUDA device.
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "dtype.h"
#include "gpu_support.hpp"

using namespace gpu_test;

namespace {

struct layer_case {
  std::vector<float> g;
  std::vector<float> accum;
  mcgqLayerDesc_t desc;
};

// One layer of data d, n, K on both paths; algo = MCGQ_ALGO_*.
void check_one(dist d, uint64_t n, double k, int algo, uint32_t seed) {
  std::string what = std::string(dist_name(d)) + " n=" + std::to_string(n) +
                     " K=" + std::to_string(k) + " algo=" + std::to_string(algo);
  std::vector<float> g = make_data(d, n, seed);
  uint32_t u = mcgqRandomWord(seed, 7, 0, 0);
  dbuf<float> d_g(n);
  d_g.upload(g);
  mcgqLayerDesc_t host = make_desc(n, k, u, algo), dev = host;
  host.g = g.data();
  dev.g = d_g.p;
  mcgqResult_t cpu_res;
  std::vector<mcgqLayerStats_t> cpu_stats;
  std::vector<uint8_t> cpu_msg = cpu_encode({host}, &cpu_res, &cpu_stats);
  gpu_encoded gpu = gpu_encode({dev});
  ASSERT_EQ(mcgqSuccess, gpu.result) << what << ": " << mcgqGetLastErrorDetail();
  if (cpu_res != mcgqSuccess) {
    // The CPU refuses the whole call; the GPU reports the layer's status and
    // sends it as an all-zero layer (mcgq.h, GPU path).
    EXPECT_EQ((uint32_t)cpu_res, gpu.stats[0].status) << what;
    std::vector<int32_t> ints(n, 1);
    ASSERT_EQ(mcgqSuccess, mcgqDecodeIntsHost(gpu.msg.data(), gpu.msg.size(), ints.data(),
                                              n, nullptr, 0)) << what;
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(0, ints[i]) << what;
    EXPECT_EQ(0u, gpu.stats[0].samples) << what;
    return;
  }
  ASSERT_EQ(cpu_msg.size(), gpu.msg.size()) << what;
  EXPECT_TRUE(cpu_msg == gpu.msg) << what;
  expect_same_stats(cpu_stats[0], gpu.stats[0], what);
  // g_int of the GPU message equals the quantizer reference directly.
  std::vector<int32_t> ref(n), got(n);
  mcgqLayerStats_t qs;
  ASSERT_EQ(mcgqSuccess, mcgqQuantizeHost(g.data(), n, k, 0, u, 0, ref.data(), &qs));
  ASSERT_EQ(mcgqSuccess, mcgqDecodeIntsHost(gpu.msg.data(), gpu.msg.size(), got.data(),
                                            n, nullptr, 0)) << what;
  EXPECT_TRUE(ref == got) << what;
}

// Sizes around the warp (32), the 2^13-element chunk of the chunk index
// and a prime past several chunks; every K and distribution at each.
const uint64_t kSizes[] = {1, 31, 32, 33, 1023, 8191, 8192, 8193, 65543};
const double kKs[] = {0.01, 0.1, 1.0, 8.0};

std::string algo_name(int algo) { return algo == MCGQ_ALGO_SAMPLE ? "card" : "fused"; }

// The simulator encodes about 7000 elements (or card-path samples) per
// second, so there the layers of 2^13 and more elements run half of the
// (K, distribution) pairs (each K with 3-4 distributions, each distribution
// with 2 K values), and the card path's K = 8 (8 samples per element) stops
// at n = 8193.  A real GPU runs every pair.
bool simulator_skips(int algo, uint64_t n, int k_index, int d_index) {
  if (!on_gpu_simulator() || n < 8191) return false;
  if ((k_index + d_index) % 2 != 0) return true;
  return algo == MCGQ_ALGO_SAMPLE && kKs[k_index] > 1.0 && n > 8193;
}

}  // namespace

// One ctest entry per (algorithm, size), so the simulator's runs spread over
// the cores: 4 K x 7 distributions each.
class GpuEncodeSizes : public ::testing::TestWithParam<std::tuple<int, uint64_t>> {};

TEST_P(GpuEncodeSizes, MatchesCpuReference) {
  MCGQ_REQUIRE_GPU();
  const int algo = std::get<0>(GetParam());
  const uint64_t n = std::get<1>(GetParam());
  uint32_t seed = (uint32_t)n * 131u + (uint32_t)algo;
  int ran = 0, skipped = 0;
  for (int ki = 0; ki < 4; ++ki)
    for (int di = 0; di < 7; ++di, ++seed) {
      if (simulator_skips(algo, n, ki, di)) {
        ++skipped;
        continue;
      }
      check_one(all_dists[di], n, kKs[ki], algo, seed);
      ++ran;
    }
  if (skipped) std::printf("GPU simulator: %d of %d (K, distribution) pairs\n", ran, ran + skipped);
}

INSTANTIATE_TEST_SUITE_P(
    AllSizes, GpuEncodeSizes,
    ::testing::Combine(::testing::Values(MCGQ_ALGO_FUSED, MCGQ_ALGO_SAMPLE),
                       ::testing::ValuesIn(kSizes)),
    [](const ::testing::TestParamInfo<std::tuple<int, uint64_t>> &info) {
      return algo_name(std::get<0>(info.param)) + "_n" +
             std::to_string(std::get<1>(info.param));
    });

// A layer past 2^20 elements (many CUB tiles, 128 chunk-index entries),
// one test per path so they run side by side.  One or two (K, distribution)
// pairs each: on the simulator one such encode takes about two minutes.
TEST(GpuEncode, MebiElementLayerFusedMatchesCpu) {
  MCGQ_REQUIRE_GPU();
  const uint64_t n = (1u << 20) + 7;
  check_one(dist::heavy, n, 1.0, MCGQ_ALGO_FUSED, 71);
  if (!on_gpu_simulator()) check_one(dist::normal, n, 8.0, MCGQ_ALGO_FUSED, 72);
}

TEST(GpuEncode, MebiElementLayerCardMatchesCpu) {
  MCGQ_REQUIRE_GPU();
  const uint64_t n = (1u << 20) + 7;
  check_one(dist::normal, n, 0.01, MCGQ_ALGO_SAMPLE, 73);
  if (!on_gpu_simulator()) check_one(dist::sparse, n, 1.0, MCGQ_ALGO_SAMPLE, 74);
}

TEST(GpuEncode, Large2e26BehindEnv) {
  MCGQ_REQUIRE_GPU();
  if (!std::getenv("MCGQ_TEST_LARGE")) GTEST_SKIP() << "set MCGQ_TEST_LARGE=1 for n = 2^26";
  for (int algo : {MCGQ_ALGO_FUSED, MCGQ_ALGO_SAMPLE})
    check_one(dist::normal, 1ull << 26, 0.1, algo, 99);
}

// Several layers in one call (segmented), CRC on, mixed algorithms and
// accumulation modes over three steps: messages and accumulators identical.
TEST(GpuEncode, MultiLayerAccumulatedStepsMatchCpu) {
  MCGQ_REQUIRE_GPU();
  const uint64_t sizes[] = {100, 20000, 7, 9000};
  const int modes[] = {MCGQ_ACCUM_NONE, MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL,
                       MCGQ_ACCUM_RESET};
  const int L = 4;
  std::vector<std::vector<float>> g(L), acc_cpu(L);
  std::vector<dbuf<float> *> d_g, d_acc;
  for (int i = 0; i < L; ++i) {
    acc_cpu[i].assign(sizes[i], 0.0f);
    d_g.push_back(new dbuf<float>(sizes[i]));
    d_acc.push_back(new dbuf<float>(sizes[i]));
    d_acc[i]->upload(acc_cpu[i]);
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<mcgqLayerDesc_t> host(L), dev(L);
    for (int i = 0; i < L; ++i) {
      g[i] = make_data(i == 2 ? dist::sparse : dist::normal, sizes[i], 100 * step + i);
      d_g[i]->upload(g[i]);
      host[i] = make_desc(sizes[i], 0.1 + 0.2 * i, mcgqRandomWord(5, step, i, 0), i & 1);
      host[i].cfg.accumulate = modes[i];
      host[i].cfg.checksum = 1;
      dev[i] = host[i];
      host[i].g = g[i].data();
      dev[i].g = d_g[i]->p;
      if (modes[i] != MCGQ_ACCUM_NONE) {
        host[i].accum = acc_cpu[i].data();
        dev[i].accum = d_acc[i]->p;
      }
    }
    mcgqResult_t res;
    std::vector<mcgqLayerStats_t> cs;
    std::vector<uint8_t> cmsg = cpu_encode(host, &res, &cs);
    ASSERT_EQ(mcgqSuccess, res);
    gpu_encoded ge = gpu_encode(dev);
    ASSERT_EQ(mcgqSuccess, ge.result) << mcgqGetLastErrorDetail();
    EXPECT_TRUE(cmsg == ge.msg) << "step " << step;
    for (int i = 0; i < L; ++i) {
      expect_same_stats(cs[i], ge.stats[i], "layer " + std::to_string(i));
      EXPECT_TRUE(same_bits(acc_cpu[i], d_acc[i]->download(sizes[i])))
          << "accumulator of layer " << i << " at step " << step;
    }
  }
  for (int i = 0; i < L; ++i) { delete d_g[i]; delete d_acc[i]; }
}

TEST(GpuEncode, HundredRepeatsIdentical) {
  MCGQ_REQUIRE_GPU();
  // Repeats look for races and stale scratch; the simulator runs blocks one
  // after another and lanes in order (no races to find), so there a few
  // repeats check the stale-scratch half at a thousandth of the cost.
  const int repeats = on_gpu_simulator() ? 3 : 100;
  if (repeats < 100) std::printf("GPU simulator: %d repeats instead of 100\n", repeats);
  const uint64_t n = 50000;
  std::vector<float> g = make_data(dist::heavy, n, 3);
  dbuf<float> d_g(n);
  d_g.upload(g);
  for (int algo : {MCGQ_ALGO_FUSED, MCGQ_ALGO_SAMPLE}) {
    mcgqLayerDesc_t d = make_desc(n, 0.5, 12345u, algo);
    d.g = d_g.p;
    gpu_encoded first = gpu_encode({d});
    ASSERT_EQ(mcgqSuccess, first.result);
    for (int r = 0; r < repeats; ++r) {
      gpu_encoded again = gpu_encode({d});
      ASSERT_TRUE(again.msg == first.msg) << "repeat " << r << " algo " << algo;
    }
  }
}

// A non-finite layer: its status says so, its accumulator stays, the other
// layers are encoded as usual; the gradient is never written.
TEST(GpuEncode, NonFiniteLeavesBuffersUntouched) {
  MCGQ_REQUIRE_GPU();
  const uint64_t n = 3000;
  std::vector<float> g0 = make_data(dist::normal, n, 1), g1 = make_data(dist::normal, n, 2);
  g1[1234] = NAN;
  std::vector<float> acc(n, 0.25f);
  dbuf<float> d_g0(n), d_g1(n), d_acc0(n), d_acc1(n);
  d_g0.upload(g0);
  d_g1.upload(g1);
  d_acc0.upload(acc);
  d_acc1.upload(acc);
  std::vector<mcgqLayerDesc_t> dev(2);
  for (int i = 0; i < 2; ++i) {
    dev[i] = make_desc(n, 1.0, 77u + i, i);
    dev[i].cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
  }
  dev[0].g = d_g0.p; dev[0].accum = d_acc0.p;
  dev[1].g = d_g1.p; dev[1].accum = d_acc1.p;
  gpu_encoded ge = gpu_encode(dev);
  ASSERT_EQ(mcgqSuccess, ge.result);
  EXPECT_EQ(0u, ge.stats[0].status);
  EXPECT_EQ((uint32_t)mcgqNonFinite, ge.stats[1].status);
  EXPECT_TRUE(same_bits(acc, d_acc1.download(n)));
  EXPECT_FALSE(same_bits(acc, d_acc0.download(n)));  // the good layer committed
  std::vector<float> back = d_g1.download(n);
  EXPECT_EQ(0, std::memcmp(back.data(), g1.data(), n * sizeof(float)));
}

// The range rule (docs/FORMAT.md): 3e38, 2e38 at K = 1 may draw g_int =
// [2, 0] with scale 2.5e38, whose decode overflows.  For every draw the GPU
// layer's status is the CPU's result; a refused layer is sent all zero and
// keeps its accumulator and K state, an accepted one equals the CPU bytes.
TEST(GpuEncode, RangeRuleMatchesCpuAndKeepsState) {
  MCGQ_REQUIRE_GPU();
  const std::vector<float> g = {1.5e38f, 1e38f}, acc0 = {1.5e38f, 1e38f};
  int refused = 0;
  for (uint32_t draw = 0; draw < 8; ++draw) {
    const uint32_t u = draw * 0x20000000u;
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = 1.0;
    cfg.dynamic_k = 1;
    cfg.accumulate = MCGQ_ACCUM_RESET;
    mcgqKState_t ks0;
    ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &ks0));
    std::vector<float> acc_cpu = acc0;
    mcgqKState_t ks_cpu = ks0;
    mcgqLayerDesc_t host = make_desc(2, 1.0, u, MCGQ_ALGO_FUSED);
    host.cfg = cfg;
    mcgqLayerDesc_t dev = host;
    host.g = g.data();
    host.accum = acc_cpu.data();
    host.kstate = &ks_cpu;
    dbuf<float> d_g(2), d_acc(2);
    dbuf<mcgqKState_t> d_ks(1);
    d_g.upload(g);
    d_acc.upload(acc0);
    d_ks.upload(std::vector<mcgqKState_t>{ks0});
    dev.g = d_g.p;
    dev.accum = d_acc.p;
    dev.kstate = d_ks.p;
    mcgqResult_t cpu_res;
    std::vector<mcgqLayerStats_t> cpu_stats;
    std::vector<uint8_t> cpu_msg = cpu_encode({host}, &cpu_res, &cpu_stats);
    gpu_encoded ge = gpu_encode({dev});
    ASSERT_EQ(mcgqSuccess, ge.result);
    EXPECT_EQ((uint32_t)cpu_res, ge.stats[0].status) << "draw " << draw;
    EXPECT_TRUE(same_bits(acc_cpu, d_acc.download(2))) << "draw " << draw;
    mcgqKState_t ks_gpu = d_ks.download(1)[0];
    EXPECT_EQ(0, std::memcmp(&ks_cpu, &ks_gpu, sizeof ks_gpu)) << "draw " << draw;
    if (cpu_res == mcgqSuccess) {
      EXPECT_TRUE(cpu_msg == ge.msg) << "draw " << draw;
      continue;
    }
    ASSERT_EQ(mcgqRangeError, cpu_res);
    ++refused;
    EXPECT_TRUE(same_bits(acc0, acc_cpu));
    std::vector<int32_t> ints(2, 1);
    ASSERT_EQ(mcgqSuccess, mcgqDecodeIntsHost(ge.msg.data(), ge.msg.size(), ints.data(), 2,
                                              nullptr, 0));
    EXPECT_EQ(0, ints[0]);
    EXPECT_EQ(0, ints[1]);
  }
  EXPECT_GT(refused, 0);
}

// bf16 and binary16 layers (cfg.dtype): the GPU reads the 16-bit values,
// widened exactly, so its message equals the CPU's of the same 16-bit layer
// (which tests/test_dtype_layers.cpp holds to the float32 message of the
// widened values), plain and accumulated, on both algorithms.
TEST(GpuEncode, SixteenBitLayersMatchCpu) {
  MCGQ_REQUIRE_GPU();
  for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
    for (int algo : {MCGQ_ALGO_FUSED, MCGQ_ALGO_SAMPLE}) {
      const uint64_t n = 9000;  // past a 8192-element chunk
      std::vector<float> wide = make_data(dist::heavy, n, 11u + (uint32_t)algo);
      std::vector<uint16_t> g16(n);
      for (uint64_t k = 0; k < n; ++k) {
        float v = std::fmax(-6e4f, std::fmin(6e4f, wide[k]));  // inside binary16's range
        g16[k] = dtype == MCGQ_DTYPE_BF16 ? mcgq_f32_to_bf16(v) : mcgq_f32_to_f16(v);
      }
      std::vector<float> acc_cpu(n, 0.125f);
      dbuf<uint16_t> d_g(n);
      dbuf<float> d_acc(n);
      d_g.upload(g16);
      d_acc.upload(acc_cpu);
      mcgqLayerDesc_t host = make_desc(n, 0.5, mcgqRandomWord(3, 1, 0, 0), algo);
      host.cfg.dtype = dtype;
      host.cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
      mcgqLayerDesc_t dev = host;
      host.g = g16.data();
      host.accum = acc_cpu.data();
      dev.g = d_g.p;
      dev.accum = d_acc.p;
      mcgqResult_t cpu_res;
      std::vector<mcgqLayerStats_t> cpu_stats;
      std::vector<uint8_t> cpu_msg = cpu_encode({host}, &cpu_res, &cpu_stats);
      ASSERT_EQ(mcgqSuccess, cpu_res) << mcgqGetLastErrorDetail();
      gpu_encoded ge = gpu_encode({dev});
      ASSERT_EQ(mcgqSuccess, ge.result) << mcgqGetLastErrorDetail();
      EXPECT_TRUE(cpu_msg == ge.msg) << "dtype " << dtype << " algo " << algo;
      EXPECT_TRUE(same_bits(acc_cpu, d_acc.download(n))) << "dtype " << dtype;
    }
  }
}

TEST(GpuEncode, HostCheckedArguments) {
  MCGQ_REQUIRE_GPU();
  dbuf<float> d_g(10);
  mcgqLayerDesc_t d = make_desc(10, 1.0, 1u, MCGQ_ALGO_FUSED);
  d.g = d_g.p;
  size_t cap = 0, temp = 0;
  ASSERT_EQ(mcgqSuccess, mcgqEncodeGetMaxOutputSize(&d, 1, &cap));
  ASSERT_EQ(mcgqSuccess, mcgqEncodeGetTempSize(&d, 1, &temp));
  dbuf<uint8_t> out(cap), t(temp);
  dbuf<size_t> bytes(1);
  dbuf<mcgqLayerStats_t> st(1);
  EXPECT_EQ(mcgqCapacityExceeded,
            mcgqEncodeAsync(&d, 1, out.p, cap - 1, bytes.p, st.p, t.p, temp, nullptr));
  EXPECT_EQ(mcgqInvalidArgument,
            mcgqEncodeAsync(&d, 1, out.p, cap, bytes.p, st.p, t.p, temp - 1, nullptr));
  EXPECT_EQ(mcgqInvalidArgument,
            mcgqEncodeAsync(&d, 0, out.p, cap, bytes.p, st.p, t.p, temp, nullptr));
  mcgqLayerDesc_t bad = d;
  bad.cfg.k = 0.0;
  EXPECT_EQ(mcgqInvalidArgument,
            mcgqEncodeAsync(&bad, 1, out.p, cap, bytes.p, st.p, t.p, temp, nullptr));
}

TEST(GpuEncode, AvailabilityAgreesWithRuntime) {
  EXPECT_EQ(have_gpu() ? 1 : 0, mcgqGpuAvailable());
}

namespace {

// One step of layers with K states (device array d_ks) and accumulators on
// both paths: the message, the stats (W1 too), every accumulator and every
// K state equal the CPU reference's bits.  host/dev hold the same layers
// with host and device pointers.
void expect_step_matches_cpu(const std::vector<mcgqLayerDesc_t> &host,
                             const std::vector<mcgqLayerDesc_t> &dev,
                             const std::vector<mcgqKState_t> &ks_cpu,
                             const dbuf<mcgqKState_t> &d_ks,
                             const std::vector<std::vector<float>> &acc_cpu,
                             const std::vector<std::unique_ptr<dbuf<float>>> &d_acc,
                             int step) {
  const int L = (int)host.size();
  mcgqResult_t res;
  std::vector<mcgqLayerStats_t> cs;
  std::vector<uint8_t> cmsg = cpu_encode(host, &res, &cs);
  ASSERT_EQ(mcgqSuccess, res) << mcgqGetLastErrorDetail();
  gpu_encoded ge = gpu_encode(dev);
  ASSERT_EQ(mcgqSuccess, ge.result) << mcgqGetLastErrorDetail();
  EXPECT_TRUE(cmsg == ge.msg) << "step " << step;
  std::vector<mcgqKState_t> ks_gpu = d_ks.download(L);
  for (int i = 0; i < L; ++i) {
    std::string what = "step " + std::to_string(step) + " layer " + std::to_string(i);
    expect_same_stats(cs[i], ge.stats[i], what);
    EXPECT_EQ(0, std::memcmp(&cs[i].w1, &ge.stats[i].w1, sizeof(double))) << what;
    EXPECT_TRUE(same_bits(acc_cpu[i], d_acc[i]->download(host[i].n))) << "accumulator, " << what;
    EXPECT_EQ(0, std::memcmp(&ks_cpu[i], &ks_gpu[i], sizeof(mcgqKState_t))) << "K state, " << what;
  }
}

}  // namespace

// Dynamic K (Alg 3) with the K state in device memory: over five steps the
// messages, the exact W1 and the K state equal the CPU reference's bits.
TEST(GpuEncode, DynamicKMatchesCpuOverSteps) {
  MCGQ_REQUIRE_GPU();
  // The simulator takes about 15 s per merge sort of 70000 keys (two per
  // layer and step): a smaller second layer there, still 5 sort tiles.
  const uint64_t sizes[] = {5000, on_gpu_simulator() ? 20000u : 70000u};
  const int L = 2;
  std::vector<mcgqKState_t> ks_cpu(L);
  std::vector<std::vector<float>> acc_cpu(L);
  dbuf<mcgqKState_t> d_ks(L);
  std::vector<std::unique_ptr<dbuf<float>>> d_g, d_acc;
  for (int i = 0; i < L; ++i) {
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = 0.2;
    cfg.dynamic_k = 1;
    ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &ks_cpu[i]));
    acc_cpu[i].assign(sizes[i], 0.0f);
    d_g.emplace_back(new dbuf<float>(sizes[i]));
    d_acc.emplace_back(new dbuf<float>(sizes[i]));
    d_acc[i]->upload(acc_cpu[i]);
  }
  d_ks.upload(ks_cpu);
  for (int step = 0; step < 5; ++step) {
    std::vector<std::vector<float>> g(L);
    std::vector<mcgqLayerDesc_t> host(L), dev(L);
    for (int i = 0; i < L; ++i) {
      g[i] = make_data(dist::heavy, sizes[i], 50 * step + i);
      d_g[i]->upload(g[i]);
      host[i] = make_desc(sizes[i], 0.2, mcgqRandomWord(9, step, i, 0), i);
      host[i].cfg.dynamic_k = 1;
      host[i].cfg.delta_k = 4.0;
      host[i].cfg.accumulate = i ? MCGQ_ACCUM_RESIDUAL : MCGQ_ACCUM_NONE;
      dev[i] = host[i];
      host[i].g = g[i].data();
      host[i].kstate = &ks_cpu[i];
      dev[i].g = d_g[i]->p;
      dev[i].kstate = d_ks.p + i;
      if (i) {
        host[i].accum = acc_cpu[i].data();
        dev[i].accum = d_acc[i]->p;
      }
    }
    expect_step_matches_cpu(host, dev, ks_cpu, d_ks, acc_cpu, d_acc, step);
  }
}

// Sixty layers of mixed sizes, algorithms, K, accumulation modes and
// distributions in one call (CRC on, every seventh layer with dynamic K),
// over two steps: message, stats, accumulators and K states equal the CPU
// reference's bits.  (No FLT_MAX-range layer: there the CPU refuses the
// whole call while the GPU marks the one layer; check_one covers that.)
TEST(GpuEncode, SixtyMixedLayersInOneCallMatchCpu) {
  MCGQ_REQUIRE_GPU();
  const int L = 60;
  const uint64_t sizes[] = {1, 7, 31, 32, 33, 100, 1023, 4097, 8192, 8193, 20000};
  const int modes[] = {MCGQ_ACCUM_NONE, MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL};
  const dist dists[] = {dist::normal, dist::heavy, dist::sparse, dist::one_nonzero,
                        dist::all_zero, dist::denormal};
  std::vector<uint64_t> n(L);
  std::vector<std::vector<float>> acc_cpu(L);
  std::vector<mcgqKState_t> ks_cpu(L);
  std::vector<std::unique_ptr<dbuf<float>>> d_g, d_acc;
  for (int i = 0; i < L; ++i) {
    n[i] = sizes[(7 * i) % 11];
    acc_cpu[i].assign(n[i], 0.0f);
    d_g.emplace_back(new dbuf<float>(n[i]));
    d_acc.emplace_back(new dbuf<float>(n[i]));
    d_acc[i]->upload(acc_cpu[i]);
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = kKs[i % 4];
    cfg.dynamic_k = 1;
    ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &ks_cpu[i]));
  }
  dbuf<mcgqKState_t> d_ks(L);
  d_ks.upload(ks_cpu);
  for (int step = 0; step < 2; ++step) {
    std::vector<std::vector<float>> g(L);
    std::vector<mcgqLayerDesc_t> host(L), dev(L);
    for (int i = 0; i < L; ++i) {
      g[i] = make_data(dists[(i / 2) % 6], n[i], 1000u * step + (uint32_t)i);
      d_g[i]->upload(g[i]);
      host[i] = make_desc(n[i], kKs[i % 4], mcgqRandomWord(21, step, i, 0), (i / 3) % 2);
      host[i].cfg.accumulate = modes[i % 3];
      host[i].cfg.checksum = 1;
      host[i].cfg.dynamic_k = i % 7 == 3;
      host[i].cfg.delta_k = 4.0;
      dev[i] = host[i];
      host[i].g = g[i].data();
      dev[i].g = d_g[i]->p;
      if (host[i].cfg.dynamic_k) {
        host[i].kstate = &ks_cpu[i];
        dev[i].kstate = d_ks.p + i;
      }
      if (modes[i % 3] != MCGQ_ACCUM_NONE) {
        host[i].accum = acc_cpu[i].data();
        dev[i].accum = d_acc[i]->p;
      }
    }
    expect_step_matches_cpu(host, dev, ks_cpu, d_ks, acc_cpu, d_acc, step);
  }
}
