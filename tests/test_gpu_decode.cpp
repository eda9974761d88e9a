// GPU decode-and-average (mcgqDecodeAverageAsync) against the CPU
// reference (mcgqDecodeAverageHost): identical floats for P = 1..4 messages,
// the CPU's error codes for corrupt messages, and a CUDA graph holding an
// encode and a decode that replays to the same bits.  Skips without a GPU.
#include <cstdio>

#include "gpu_support.hpp"
#include "support/crafted.hpp"

using namespace gpu_test;

namespace {

// A message of several layers (RLE with runs longer than a chunk, fixed
// width, all zero) for rank r, encoded by the CPU reference.
std::vector<uint8_t> rank_message(int r, const std::vector<uint64_t> &sizes,
                                  const std::vector<std::vector<float>> &g, int crc) {
  std::vector<mcgqLayerDesc_t> descs(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    mcgqLayerDescInit(&descs[i]);
    descs[i].n = sizes[i];
    descs[i].g = g[i].data();
    descs[i].cfg.k = i == 1 ? 4.0 : 0.05;
    descs[i].cfg.checksum = crc;
    descs[i].u = mcgqRandomWord(11, 3, (uint32_t)i, (uint32_t)r);
  }
  mcgqResult_t res;
  std::vector<mcgqLayerStats_t> st;
  std::vector<uint8_t> msg = cpu_encode(descs, &res, &st);
  EXPECT_EQ(mcgqSuccess, res);
  return msg;
}

struct table {
  std::vector<uint64_t> sizes{40000, 300, 1, 9000, 70000};
  uint64_t total() const {
    uint64_t t = 0;
    for (uint64_t s : sizes) t += s;
    return t;
  }
  std::vector<std::vector<float>> data(int r) const {
    std::vector<std::vector<float>> g;
    for (size_t i = 0; i < sizes.size(); ++i) {
      dist d = i == 0 ? dist::sparse : i == 3 ? dist::all_zero : dist::heavy;
      g.push_back(make_data(d, sizes[i], 1000u * r + (uint32_t)i));
    }
    return g;
  }
};

uint32_t cpu_average(const std::vector<std::vector<uint8_t>> &msgs, uint64_t n,
                     std::vector<float> *out) {
  std::vector<const void *> ptrs;
  std::vector<size_t> sizes;
  for (auto &m : msgs) {
    ptrs.push_back(m.data());
    sizes.push_back(m.size());
  }
  out->assign(n, 0.0f);
  return (uint32_t)mcgqDecodeAverageHost(ptrs.data(), sizes.data(), (int)msgs.size(),
                                         out->data(), n);
}

}  // namespace

TEST(GpuDecode, AverageMatchesCpuForOneToFourRanks) {
  MCGQ_REQUIRE_GPU();
  table t;
  for (int crc = 0; crc <= 1; ++crc) {
    std::vector<std::vector<uint8_t>> msgs;
    for (int P = 1; P <= 4; ++P) {
      msgs.push_back(rank_message(P - 1, t.sizes, t.data(P - 1), crc));
      std::vector<float> cpu, gpu;
      ASSERT_EQ(0u, cpu_average(msgs, t.total(), &cpu)) << mcgqGetLastErrorDetail();
      ASSERT_EQ(0u, gpu_decode_average(msgs, t.total(), &gpu)) << "P = " << P;
      EXPECT_TRUE(same_bits(cpu, gpu)) << "P = " << P << " crc = " << crc;
    }
  }
}

// The range rule (docs/FORMAT.md) over P = 4 messages of [a, a] at K = 1
// (bound a each): the GPU refuses the set exactly when the CPU does.
TEST(GpuDecode, RangeRuleMatchesCpu) {
  MCGQ_REQUIRE_GPU();
  for (float a : {0.3f * FLT_MAX, 0.2f * FLT_MAX}) {
    std::vector<std::vector<uint8_t>> msgs;
    std::vector<float> g = {a, a};
    for (int r = 0; r < 4; ++r) {
      mcgqLayerDesc_t d;
      mcgqLayerDescInit(&d);
      d.n = 2;
      d.g = g.data();
      d.cfg.k = 1.0;
      d.u = mcgqRandomWord(5, 0, 0, (uint32_t)r);
      mcgqResult_t res;
      std::vector<mcgqLayerStats_t> st;
      msgs.push_back(cpu_encode({d}, &res, &st));
      ASSERT_EQ(mcgqSuccess, res) << mcgqGetLastErrorDetail();
    }
    std::vector<float> cpu, gpu;
    uint32_t cpu_status = cpu_average(msgs, 2, &cpu);
    EXPECT_EQ(a == 0.3f * FLT_MAX ? (uint32_t)mcgqRangeError : 0u, cpu_status);
    EXPECT_EQ(cpu_status, gpu_decode_average(msgs, 2, &gpu));
    if (cpu_status == 0) {
      EXPECT_TRUE(same_bits(cpu, gpu));
    }
  }
}

// 16-bit outputs (mcgqDecodeAverageAsyncTyped): every value is the float32
// average rounded once, equal to the CPU's typed decode; a corrupt message
// leaves the 16-bit output untouched.
TEST(GpuDecode, TypedOutputsRoundTheFloat32AverageOnce) {
  MCGQ_REQUIRE_GPU();
  table t;
  std::vector<std::vector<uint8_t>> msgs;
  for (int r = 0; r < 3; ++r) msgs.push_back(rank_message(r, t.sizes, t.data(r), r == 1));
  const uint64_t n = t.total();
  std::vector<dbuf<uint8_t> *> bufs;
  std::vector<const void *> dptrs, hptrs;
  std::vector<size_t> sizes;
  size_t cap = 0;
  for (auto &m : msgs) {
    bufs.push_back(new dbuf<uint8_t>(m.size()));
    bufs.back()->upload(m);
    dptrs.push_back(bufs.back()->p);
    hptrs.push_back(m.data());
    sizes.push_back(m.size());
    cap = m.size() > cap ? m.size() : cap;
  }
  for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
    std::vector<uint16_t> cpu(n);
    ASSERT_EQ(mcgqSuccess, mcgqDecodeAverageHostTyped(hptrs.data(), sizes.data(), 3, cpu.data(),
                                                      dtype, n))
        << mcgqGetLastErrorDetail();
    size_t temp = 0;
    ASSERT_EQ(mcgqSuccess, mcgqDecodeAverageGetTempSizeTyped(3, n, cap, dtype, &temp));
    dbuf<uint8_t> d_temp(temp);
    dbuf<uint16_t> d_out(n);
    dbuf<uint32_t> d_status(1);
    d_out.upload(std::vector<uint16_t>(n, 0x1234));
    ASSERT_EQ(mcgqSuccess, mcgqDecodeAverageAsyncTyped(dptrs.data(), sizes.data(), 3, d_out.p,
                                                       dtype, n, d_status.p, d_temp.p, temp,
                                                       nullptr))
        << mcgqGetLastErrorDetail();
    ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
    EXPECT_EQ(0u, d_status.download(1)[0]);
    EXPECT_TRUE(cpu == d_out.download(n)) << "dtype " << dtype;
    // A corrupt rank: status says so and the 16-bit output keeps its bytes.
    std::vector<uint8_t> bad = msgs[2];
    bad[bad.size() / 2] ^= 0x40;
    dbuf<uint8_t> d_bad(bad.size());
    d_bad.upload(bad);
    std::vector<const void *> bad_ptrs = dptrs;
    bad_ptrs[2] = d_bad.p;
    std::vector<size_t> bad_sizes = sizes;
    bad_sizes[2] = bad.size();
    std::vector<float> cpu_floats;
    const uint32_t cpu_status = cpu_average({msgs[0], msgs[1], bad}, n, &cpu_floats);
    d_out.upload(std::vector<uint16_t>(n, 0x1234));
    ASSERT_EQ(mcgqSuccess, mcgqDecodeAverageAsyncTyped(bad_ptrs.data(), bad_sizes.data(), 3,
                                                       d_out.p, dtype, n, d_status.p, d_temp.p,
                                                       temp, nullptr));
    ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
    const uint32_t gpu_status = d_status.download(1)[0];
    EXPECT_EQ(cpu_status, gpu_status);
    if (gpu_status != 0) {
      EXPECT_TRUE(std::vector<uint16_t>(n, 0x1234) == d_out.download(n));
    }
  }
  for (auto *b : bufs) delete b;
}

// Every single-byte change of a message: the GPU's status is the CPU's
// result (0 where the change leaves a valid message, then equal floats).
TEST(GpuDecode, CorruptMessagesGiveCpuErrorCodes) {
  MCGQ_REQUIRE_GPU();
  // On the simulator (where a decode of this table takes about a second:
  // one thread per 2^13-element chunk) smaller layers, still two chunks in
  // the first, and a subset of positions: every header and directory byte
  // gets one of the two flips and the payload 24 positions get both; on a
  // GPU every byte of the first 400 and 150 payload positions get both.
  const bool sim = on_gpu_simulator();
  table t;
  t.sizes = sim ? std::vector<uint64_t>{9000, 50, 3000} : std::vector<uint64_t>{20000, 50, 9000};
  std::vector<uint8_t> good = rank_message(0, t.sizes, t.data(0), 1);
  std::vector<uint8_t> good_nocrc = rank_message(1, t.sizes, t.data(1), 0);
  const size_t dense = sim ? 32 + 56 * t.sizes.size() : 400;
  const size_t spread = sim ? 24 : 150;
  int checked = 0;
  for (const auto *base : {&good, &good_nocrc}) {
    size_t step = (base->size() - dense) / spread + 1;
    for (size_t at = 0; at < base->size(); at += (at < dense ? 1 : step)) {
      for (uint8_t flip : {0x01, 0x80}) {
        if (sim && at < dense && (flip == 0x80) == (at % 2 == 0)) continue;
        std::vector<std::vector<uint8_t>> msgs = {*base, *base};
        msgs[1][at] ^= flip;
        std::vector<float> cpu, gpu;
        uint32_t want = cpu_average(msgs, t.total(), &cpu);
        uint32_t got = gpu_decode_average(msgs, t.total(), &gpu);
        ASSERT_EQ(want, got) << "byte " << at << " ^ " << (int)flip << ": "
                             << mcgqGetLastErrorDetail();
        if (want == 0) {
          EXPECT_TRUE(same_bits(cpu, gpu)) << "byte " << at;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, sim ? 400 : 1500);
  std::printf("%d corrupted messages decoded%s\n", checked, sim ? " (simulator subset)" : "");
  // Truncated and wrong-n inputs.
  std::vector<float> out;
  std::vector<std::vector<uint8_t>> cut = {good};
  cut[0].resize(good.size() - 8);
  std::vector<float> cpu;
  EXPECT_EQ(cpu_average(cut, t.total(), &cpu), gpu_decode_average(cut, t.total(), &out));
  std::vector<std::vector<uint8_t>> one = {good};
  EXPECT_EQ((uint32_t)mcgqInvalidArgument, gpu_decode_average(one, t.total() + 1, &out));
}

// Streams the encoder never writes, one canonical-stream rule each
// (DESIGN.md 3), as rank 1 of three: the GPU decoder's status equals the
// CPU decoder's, which rejects every one of them; the canonical original
// decodes to the CPU's floats.
TEST(GpuDecode, NonCanonicalStreamsGiveCpuErrorCodes) {
  MCGQ_REQUIRE_GPU();
  using crafted::Token;
  // g_int = [2, -1, 0, 0, 0, 3, 0, 1, 0 x 20, 5]: B_g = 4, B_RLE = 5, 111
  // paper bits against 116 fixed-width bits, samples = 12.
  const uint64_t n = 29;
  const std::vector<Token> tokens = {{2, 0}, {-1, 0}, {0, 3}, {3, 0}, {0, 1}, {1, 0},
                                     {0, 20}, {5, 0}};
  auto rle = [&](std::vector<Token> t, unsigned bg, unsigned br, uint64_t samples,
                 bool dirty = false) {
    crafted::BitWriter w = crafted::paper_stream(t, bg, br);
    return crafted::one_layer_message({n, samples, 0.25f, 0, bg, br, w.bits, w.padded(dirty)});
  };
  auto with = [&](size_t at, std::vector<Token> replacement, size_t drop = 1) {
    std::vector<Token> t = tokens;
    t.erase(t.begin() + at, t.begin() + at + drop);
    t.insert(t.begin() + at, replacement.begin(), replacement.end());
    return t;
  };
  const crafted::Bytes canonical = rle(tokens, 4, 5, 12);
  std::vector<int32_t> dense(n, 0);
  dense[0] = 2; dense[1] = -1; dense[5] = 3; dense[7] = 1; dense[28] = 5;
  crafted::BitWriter fixed = crafted::fixed_stream(dense, 4);
  crafted::BitWriter ones = crafted::paper_stream({{1, 0}, {1, 0}, {1, 0}, {1, 0}}, 2, 0);
  const struct {
    const char *rule;
    crafted::Bytes msg;
    uint64_t n;
  } cases[] = {
      {"B_g wider than the values need", rle(tokens, 5, 5, 12), n},
      {"B_RLE wider than the longest run needs", rle(tokens, 4, 6, 12), n},
      {"two runs in a row", rle(with(6, {{0, 10}, {0, 10}}), 4, 5, 12), n},
      {"a run of length 0", rle(with(1, {{0, 0}, {-1, 0}}), 4, 5, 12), n},
      {"the value -2^(B_g-1)", rle(with(7, {{-8, 0}}), 4, 5, 15), n},
      {"nonzero padding bits", rle(tokens, 4, 5, 12, true), n},
      {"a token past n elements", rle(with(7, {{5, 0}, {1, 0}}), 4, 5, 13), n},
      {"missing tokens", rle(with(7, {}), 4, 5, 7), n},
      {"a run crossing n", rle(with(6, {{0, 22}}, 2), 4, 5, 7), n},
      {"B_g = 0 with n > 0", rle(tokens, 0, 5, 12), n},
      {"samples not the sum of |g_int|", rle(tokens, 4, 5, 11), n},
      {"fixed width where the paper stream is smaller",
       crafted::one_layer_message({n, 12, 0.25f, 1, 4, 0, fixed.bits, fixed.padded(false)}), n},
      {"paper stream where fixed width is smaller",
       crafted::one_layer_message({4, 4, 0.25f, 0, 2, 0, ones.bits, ones.padded(false)}), 4},
  };
  std::vector<float> cpu, gpu;
  ASSERT_EQ(0u, cpu_average({canonical, canonical, canonical}, n, &cpu))
      << mcgqGetLastErrorDetail();
  ASSERT_EQ(0u, gpu_decode_average({canonical, canonical, canonical}, n, &gpu));
  EXPECT_TRUE(same_bits(cpu, gpu));
  for (const auto &c : cases) {
    // Rank 0 and 2 hold a valid message of the same length as the case.
    crafted::Bytes good =
        c.n == n ? canonical
                 : crafted::one_layer_message(
                       {4, 4, 0.25f, 1, 2, 0, 8, crafted::Bytes{0x55, 0, 0, 0, 0, 0, 0, 0}});
    std::vector<std::vector<uint8_t>> msgs = {good, c.msg, good};
    uint32_t want = cpu_average(msgs, c.n, &cpu);
    EXPECT_NE(0u, want) << c.rule << ": the CPU decoder accepted it";
    EXPECT_EQ(want, gpu_decode_average(msgs, c.n, &gpu)) << c.rule;
  }
}

// Encode on the GPU and decode on the GPU inside one captured graph; the
// decoder gets the capacity as size (the true size is on the device).
TEST(GpuDecode, GraphCaptureOfEncodeAndDecodeReplays) {
  MCGQ_REQUIRE_REAL_GPU("stream capture (cudaStreamBeginCapture)");
  const uint64_t n = 30000;
  std::vector<float> g = make_data(dist::normal, n, 5);
  dbuf<float> d_g(n), d_avg(n);
  d_g.upload(g);
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.n = n;
  d.g = d_g.p;
  d.cfg.k = 0.3;
  d.u = 424242u;
  size_t cap = 0, etemp = 0, dtemp = 0;
  ASSERT_EQ(mcgqSuccess, mcgqEncodeGetMaxOutputSize(&d, 1, &cap));
  ASSERT_EQ(mcgqSuccess, mcgqEncodeGetTempSize(&d, 1, &etemp));
  ASSERT_EQ(mcgqSuccess, mcgqDecodeAverageGetTempSize(1, n, cap, &dtemp));
  dbuf<uint8_t> d_msg(cap), d_et(etemp), d_dt(dtemp);
  dbuf<size_t> d_bytes(1);
  dbuf<mcgqLayerStats_t> d_stats(1);
  dbuf<uint32_t> d_status(1);
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const void *ins[1] = {d_msg.p};
  size_t in_sizes[1] = {cap};
  CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  mcgqResult_t e1 = mcgqEncodeAsync(&d, 1, d_msg.p, cap, d_bytes.p, d_stats.p, d_et.p,
                                    etemp, s);
  mcgqResult_t e2 = mcgqDecodeAverageAsync(ins, in_sizes, 1, d_avg.p, n, d_status.p,
                                           d_dt.p, dtemp, s);
  cudaGraph_t graph;
  CUDA_OK(cudaStreamEndCapture(s, &graph));
  ASSERT_EQ(mcgqSuccess, e1);
  ASSERT_EQ(mcgqSuccess, e2);
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
  std::vector<float> first;
  for (int rep = 0; rep < 3; ++rep) {
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaStreamSynchronize(s));
    ASSERT_EQ(0u, d_status.download(1)[0]);
    std::vector<float> avg = d_avg.download(n);
    if (rep == 0) {
      first = avg;
      size_t bytes = d_bytes.download(1)[0];
      std::vector<uint8_t> msg = d_msg.download(bytes);
      std::vector<float> ref(n);
      ASSERT_EQ(mcgqSuccess, mcgqDecodeHost(msg.data(), msg.size(), ref.data(), n));
      // P = 1: fmaf(s, v, 0) / 1 = s * v, the host decode's product.
      EXPECT_TRUE(same_bits(ref, avg));
    } else {
      EXPECT_TRUE(same_bits(first, avg)) << "replay " << rep;
    }
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

// The block-parallel CRC32C (kernels/device/crc32c.cuh) on both sides:
// regions below one 256-byte piece, of a few pieces and of every thread's
// piece; the GPU encode's bytes (CRCs included) are the CPU's, the GPU
// decode of CRC-carrying messages gives the CPU's floats, and a flipped
// byte anywhere in a region, or a flipped CRC, gives the CPU's status.
TEST(GpuDecode, ParallelCrcMatchesCpuOnEncodeAndDecode) {
  MCGQ_REQUIRE_GPU();
  const std::vector<uint64_t> sizes = {7, 2500, on_gpu_simulator() ? 12000u : 150000u};
  std::vector<std::vector<float>> g;
  std::vector<dbuf<float> *> d_g;
  std::vector<mcgqLayerDesc_t> host(sizes.size()), dev(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    g.push_back(make_data(dist::heavy, sizes[i], 70u + (uint32_t)i));
    d_g.push_back(new dbuf<float>(sizes[i]));
    d_g[i]->upload(g[i]);
    mcgqLayerDescInit(&host[i]);
    host[i].n = sizes[i];
    host[i].g = g[i].data();
    host[i].cfg.k = 0.5;
    host[i].cfg.checksum = 1;
    host[i].u = mcgqRandomWord(3, 1, (uint32_t)i, 0);
    dev[i] = host[i];
    dev[i].g = d_g[i]->p;
  }
  mcgqResult_t res;
  std::vector<mcgqLayerStats_t> st;
  std::vector<uint8_t> cpu_msg = cpu_encode(host, &res, &st);
  ASSERT_EQ(mcgqSuccess, res);
  gpu_encoded ge = gpu_encode(dev);
  for (auto *p : d_g) delete p;
  ASSERT_EQ(mcgqSuccess, ge.result) << mcgqGetLastErrorDetail();
  EXPECT_TRUE(cpu_msg == ge.msg) << "GPU encode with CRCs differs from the CPU's bytes";
  uint64_t n = 0;
  for (uint64_t s : sizes) n += s;
  const uint64_t last_region = st.back().wire_bytes - 56;
  ASSERT_GT(last_region, 256u * 4) << "the last region should span several pieces";
  std::vector<float> cpu, gpu;
  std::vector<std::vector<uint8_t>> msgs = {ge.msg, cpu_msg};
  ASSERT_EQ(0u, cpu_average(msgs, n, &cpu));
  ASSERT_EQ(0u, gpu_decode_average(msgs, n, &gpu));
  EXPECT_TRUE(same_bits(cpu, gpu));
  // Flips: a CRC field, the first and last bytes of the regions, and bytes
  // inside the last region at piece boundaries.
  const size_t regions = 32 + 56 * sizes.size(), end = cpu_msg.size();
  std::vector<size_t> at = {32 + 44, 32 + 56 + 45, 32 + 112 + 47, regions, end - 1,
                            end - last_region, end - last_region + 255,
                            end - last_region + 256, end - last_region / 2};
  for (size_t pos : at) {
    std::vector<std::vector<uint8_t>> bad = msgs;
    bad[1][pos] ^= 0x10;
    uint32_t want = cpu_average(bad, n, &cpu);
    EXPECT_NE(0u, want) << "byte " << pos;
    EXPECT_EQ(want, gpu_decode_average(bad, n, &gpu)) << "byte " << pos;
  }
}

// More layers than one warp's step of the directory walk and of the chunk
// lookup (32): 100 small layers around one of several chunks, P = 2 (rank 1
// with CRCs), against the CPU; then corrupt directory entries and regions
// of layers past the first 32 and compare the status.
TEST(GpuDecode, HundredLayersMatchCpu) {
  MCGQ_REQUIRE_GPU();
  table t;
  t.sizes.clear();
  for (int i = 0; i < 100; ++i) t.sizes.push_back(i == 57 ? 20000u : 1u + (uint64_t)(i * 37) % 250u);
  std::vector<std::vector<uint8_t>> msgs = {rank_message(0, t.sizes, t.data(0), 0),
                                            rank_message(1, t.sizes, t.data(1), 1)};
  std::vector<float> cpu, gpu;
  ASSERT_EQ(0u, cpu_average(msgs, t.total(), &cpu)) << mcgqGetLastErrorDetail();
  ASSERT_EQ(0u, gpu_decode_average(msgs, t.total(), &gpu));
  EXPECT_TRUE(same_bits(cpu, gpu));
  const size_t entry = 56, dir = 32;
  const std::vector<size_t> at = {dir + 40 * entry + 0,  dir + 63 * entry + 32,
                                  dir + 99 * entry + 49, dir + 100 * entry + 8,
                                  msgs[1].size() - 1,    msgs[1].size() / 2};
  for (size_t pos : at) {
    for (int rank = 0; rank < 2; ++rank) {
      std::vector<std::vector<uint8_t>> bad = msgs;
      bad[rank][pos] ^= 0x04;
      uint32_t want = cpu_average(bad, t.total(), &cpu);
      EXPECT_EQ(want, gpu_decode_average(bad, t.total(), &gpu)) << "rank " << rank << " byte " << pos;
      if (want == 0) {
        EXPECT_TRUE(same_bits(cpu, gpu)) << "byte " << pos;
      }
    }
  }
}
