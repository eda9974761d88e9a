// GPU encode (mcgqEncodeAsync, both algorithms) against the CPU reference
// (mcgqEncodeHost, mcgqQuantizeHost): the container bytes and the stats must
// be identical bit for bit (DESIGN.md 2: everything after q_k is integer
// arithmetic).  Every test skips without a CUDA device.
#include <cstdlib>

#include "gpu_support.hpp"

using namespace gpu_test;

namespace {

struct layer_case {
  std::vector<float> g;
  std::vector<float> accum;
  mcgqLayerDesc_t desc;
};

mcgqLayerDesc_t make_desc(uint64_t n, double k, uint32_t u, int algo) {
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.n = n;
  d.cfg.k = k;
  d.u = u;
  d.cfg.algo = algo;
  return d;
}

void expect_same_stats(const mcgqLayerStats_t &c, const mcgqLayerStats_t &g,
                       const std::string &what) {
  EXPECT_EQ(c.n, g.n) << what;
  EXPECT_EQ(c.samples, g.samples) << what;
  EXPECT_EQ(c.k, g.k) << what;
  EXPECT_EQ(0, std::memcmp(&c.scale, &g.scale, sizeof(float))) << what;
  EXPECT_EQ(c.bits_value, g.bits_value) << what;
  EXPECT_EQ(c.bits_run, g.bits_run) << what;
  EXPECT_EQ(c.status, g.status) << what;
  EXPECT_EQ(c.stream_bits, g.stream_bits) << what;
  EXPECT_EQ(c.wire_bytes, g.wire_bytes) << what;
  EXPECT_EQ(c.nonzeros, g.nonzeros) << what;
  EXPECT_EQ(c.flags, g.flags) << what;
}

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

const uint64_t kSizes[] = {1, 31, 32, 33, 1023, 4097, (1u << 20) + 7};
const double kKs[] = {0.01, 0.1, 1.0, 8.0};

}  // namespace

TEST(GpuEncode, FusedMatchesCpuReference) {
  MCGQ_REQUIRE_GPU();
  uint32_t seed = 1;
  for (uint64_t n : kSizes)
    for (double k : kKs)
      for (dist d : all_dists) check_one(d, n, k, MCGQ_ALGO_FUSED, seed++);
}

TEST(GpuEncode, CardPathMatchesCpuReference) {
  MCGQ_REQUIRE_GPU();
  uint32_t seed = 1;
  for (uint64_t n : kSizes)
    for (double k : kKs)
      for (dist d : all_dists) check_one(d, n, k, MCGQ_ALGO_SAMPLE, seed++);
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
  const uint64_t n = 50000;
  std::vector<float> g = make_data(dist::heavy, n, 3);
  dbuf<float> d_g(n);
  d_g.upload(g);
  for (int algo : {MCGQ_ALGO_FUSED, MCGQ_ALGO_SAMPLE}) {
    mcgqLayerDesc_t d = make_desc(n, 0.5, 12345u, algo);
    d.g = d_g.p;
    gpu_encoded first = gpu_encode({d});
    ASSERT_EQ(mcgqSuccess, first.result);
    for (int r = 0; r < 100; ++r) {
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

// Dynamic K (Alg 3) with the K state in device memory: over five steps the
// messages, the exact W1 and the K state equal the CPU reference's bits.
TEST(GpuEncode, DynamicKMatchesCpuOverSteps) {
  MCGQ_REQUIRE_GPU();
  const uint64_t sizes[] = {5000, 70000};
  const int L = 2;
  std::vector<mcgqKState_t> ks_cpu(L);
  std::vector<std::vector<float>> acc_cpu(L);
  dbuf<mcgqKState_t> d_ks(L);
  std::vector<dbuf<float> *> d_g, d_acc;
  for (int i = 0; i < L; ++i) {
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = 0.2;
    cfg.dynamic_k = 1;
    ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &ks_cpu[i]));
    acc_cpu[i].assign(sizes[i], 0.0f);
    d_g.push_back(new dbuf<float>(sizes[i]));
    d_acc.push_back(new dbuf<float>(sizes[i]));
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
      EXPECT_EQ(0, std::memcmp(&ks_cpu[i].k, &ks_gpu[i].k, sizeof(double))) << what;
      EXPECT_EQ(0, std::memcmp(&ks_cpu[i].d_prev, &ks_gpu[i].d_prev, sizeof(double)))
          << what;
      EXPECT_EQ(ks_cpu[i].started, ks_gpu[i].started) << what;
    }
  }
  for (int i = 0; i < L; ++i) { delete d_g[i]; delete d_acc[i]; }
}
