// The GPU stage kernels of kernels/*.cu compiled as host C++ (through the
// cuda_runtime.h stand-in in tests/emulation/) and run as one thread of one
// block, in the order of kernels/dispatch.cu, against the CPU reference:
// container bytes, stats, accumulators, K state and W1 bit for bit, the
// decode-and-average floats, and the decoder's status for every corrupted
// byte (mcgqDecodeAverageHost's result).  This checks the kernels' integer
// and float logic on machines without a GPU; the parallel behaviour (warp
// aggregation, atomics, CUB) is covered by the gpu-labelled tests only.
#include "cuda_runtime.h"  // tests/emulation/ stand-in (BEFORE in the include path)
sim_dim threadIdx{0, 0, 0}, blockIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};
#include <gtest/gtest.h>

#include "container.cu"
#include "decode.cu"
#include "dynamic_k.cu"
#include "quantize.cu"
#include "rle.cu"
namespace sim_quantize = mcgq_stage_quantize;
namespace sim_rle = mcgq_stage_rle;
namespace sim_container = mcgq_stage_container;
namespace sim_dynamic_k = mcgq_stage_dynamic_k;
namespace sim_decode = mcgq_stage_decode;
#include <cfloat>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {
// EXPECT with a printf-style message (the loops below run thousands of cases).
std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}
#define CHECK(c, ...) EXPECT_TRUE(c) << fmt(__VA_ARGS__)

struct sim_layer {
  std::vector<float> g, accum;
  mcgqKState_t ks;
  mcgq_gpu_layer_t L;
};

// emulates dispatch.cu's mcgq_gpu_encode_begin / _layer / _end sequence
std::vector<uint8_t> sim_encode(std::vector<sim_layer> &layers, int checksum,
                                std::vector<mcgqLayerStats_t> &stats) {
  int count = (int)layers.size();
  uint64_t cap = mcgq_regions_start(count);
  for (auto &l : layers) cap += mcgq_max_region_bytes(l.L.n);
  std::vector<uint8_t> msg(cap + 64, 0xAB);
  std::vector<mcgq_layer_state> st(count);
  memset(st.data(), 0, sizeof(mcgq_layer_state) * count);
  stats.assign(count, mcgqLayerStats_t{});
  uint64_t total_n = 0;
  for (int i = 0; i < count; ++i) {
    mcgq_gpu_layer_t *L = &layers[i].L;
    uint64_t n = L->n;
    std::vector<float> x(n);
    std::vector<uint64_t> wa(n), wb(n);
    std::vector<int32_t> gi(n);
    std::vector<uint32_t> na(n), nb(n);
    sim_dynamic_k::resolve_kernel(n, L->samples, L->k, L->dynamic_k ? L->kstate : nullptr,
                                  &st[i]);
    const float *xp = L->g;
    if (L->accumulate) {
      sim_quantize::accumulate_kernel(L->g, L->accum, n, x.data());
      xp = x.data();
    }
    sim_quantize::magnitudes_kernel(xp, n, na.data());
    st[i].max_bits = *std::max_element(na.begin(), na.end());
    sim_quantize::check_max_kernel(&st[i]);
    sim_quantize::fixed_point_kernel(xp, n, &st[i], wa.data());
    uint64_t acc = 0;
    for (uint64_t k = 0; k < n; ++k) {
      acc += wa[k];
      wb[k] = acc;
    }
    sim_quantize::check_scale_kernel(n, L->accumulate == MCGQ_ACCUM_RESIDUAL, wb.data(),
                                     &st[i]);
    if (L->algo == MCGQ_ALGO_SAMPLE) {
      std::fill(gi.begin(), gi.end(), 0);
      sim_quantize::sample_kernel(xp, wb.data(), n, L->u, &st[i], gi.data());
    } else
      sim_quantize::counts_kernel(xp, wb.data(), n, L->u, &st[i], gi.data());
    if (L->dynamic_k) {
      std::vector<int32_t> a(n), b(gi);
      sim_dynamic_k::signed_fixed_point_kernel(xp, n, &st[i], a.data());
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      sim_dynamic_k::w1_sum_kernel(a.data(), b.data(), n, &st[i]);
      sim_dynamic_k::kstate_update_kernel(n, L->k_min, L->k_max, L->delta_k, L->kstate,
                                          &st[i]);
    }
    sim_rle::run_markers_kernel(gi.data(), n, na.data());
    uint32_t m = 0;
    for (uint64_t k = 0; k < n; ++k) {
      m = std::max(m, na[k]);
      nb[k] = m;
    }
    sim_rle::measure_kernel(gi.data(), nb.data(), n, &st[i]);
    sim_container::plan_kernel(n, i, count, st.data(), msg.data(), stats.data());
    sim_rle::token_bits_kernel(gi.data(), nb.data(), n, &st[i], wa.data());
    uint64_t off = 0;
    for (uint64_t k = 0; k < n; ++k) {
      uint64_t b = wa[k];
      wb[k] = off;
      off += b;
    }
    sim_container::zero_region_kernel(&st[i], msg.data());
    sim_rle::write_tokens_kernel(gi.data(), nb.data(), wb.data(), n, &st[i], msg.data());
    if (checksum) sim_container::crc_kernel(&st[i], i, msg.data());
    if (L->accumulate)
      sim_quantize::commit_kernel(L->accum, xp, gi.data(), n, L->accumulate, &st[i]);
    total_n += n;
  }
  size_t bytes = 0;
  sim_container::header_kernel(st.data(), count, checksum, total_n, msg.data(), &bytes);
  msg.resize(bytes);
  return msg;
}

uint32_t run_decode(const std::vector<std::vector<uint8_t>> &msgs, uint64_t n,
                    std::vector<float> &out) {
  mcgq_decode_args a;
  memset(&a, 0, sizeof a);
  size_t cap = 0;
  for (size_t r = 0; r < msgs.size(); ++r) {
    a.msg[r] = msgs[r].data();
    a.bytes[r] = msgs[r].size();
    cap = std::max(cap, msgs[r].size());
  }
  a.nranks = (int)msgs.size();
  uint64_t ml = sim_decode::max_layers(n, cap);
  a.max_layers = (uint32_t)ml;
  a.n = n;
  std::vector<mcgq_decode_layer> layers(ml * msgs.size());
  memset(layers.data(), 0, layers.size() * sizeof(mcgq_decode_layer));
  std::vector<uint64_t> prefix(ml + 1);
  uint32_t lc = 0, status = 0xffff;
  out.assign(n, NAN);
  sim_decode::header_kernel(a, layers.data(), prefix.data(), &lc, &status);
  sim_decode::chunk_kernel(a, layers.data(), prefix.data(), &lc, out.data(), &status);
  sim_decode::layer_kernel(a, layers.data(), &lc, &status);
  sim_decode::divide_kernel(out.data(), n, (float)msgs.size());
  return status;
}

std::vector<float> data(int kind, uint64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::cauchy_distribution<float> cd;
  std::uniform_real_distribution<float> ud;
  std::vector<float> g(n, 0.0f);
  for (auto &v : g) {
    if (kind == 0)
      v = nd(rng);
    else if (kind == 1) {
      v = cd(rng);
      if (!std::isfinite(v)) v = 1;
    } else if (kind == 2)
      v = ud(rng) < 0.001f ? nd(rng) : 0.0f;
    else if (kind == 5)
      v = nd(rng) * 1e-39f;
    else if (kind == 6)
      v = (ud(rng) < 0.5f ? -FLT_MAX : FLT_MAX) * ud(rng);
  }
  if (kind == 3) g[n / 2] = -0.75f;
  if (kind == 6) g[0] = FLT_MAX;
  return g;
}

}  // namespace

// Every size, K, distribution and algorithm of the GPU tests (n up to
// 20011: chunk indexes with runs across chunks), P = 1..3 decodes.
TEST(KernelsEmulated, SingleLayerEncodeAndDecodeMatchCpu) {
  const uint64_t sizes[] = {1, 31, 32, 33, 1023, 4097, 20011};
  const double ks[] = {0.01, 0.1, 1, 8};
  int cases = 0;
  for (int algo = 0; algo < 2; ++algo)
    for (uint64_t n : sizes)
      for (double K : ks)
        for (int kind = 0; kind < 7; ++kind) {
          std::vector<sim_layer> ls(1);
          ls[0].g = data(kind, n, (uint32_t)(n * 7 + kind));
          mcgqLayerDesc_t d;
          mcgqLayerDescInit(&d);
          d.n = n;
          d.cfg.k = K;
          d.u = mcgqRandomWord(n, kind, 0, 0);
          d.g = ls[0].g.data();
          d.cfg.checksum = kind & 1;
          uint64_t N = 0;
          mcgqResolveSamples(&d.cfg, nullptr, n, &N);
          ls[0].L = mcgq_gpu_layer_t{d.g,  nullptr, n, N, K, d.u, 0,
                                     algo, nullptr, 0, 0, 0, 0,   0};
          std::vector<mcgqLayerStats_t> gs, cs(1);
          std::vector<uint8_t> gm = sim_encode(ls, d.cfg.checksum, gs);
          size_t cap = 0, bytes = 0;
          mcgqEncodeGetMaxOutputSize(&d, 1, &cap);
          std::vector<uint8_t> cm(cap);
          mcgqResult_t r = mcgqEncodeHost(&d, 1, cm.data(), cap, &bytes, cs.data());
          ++cases;
          if (r != mcgqSuccess) {
            CHECK(gs[0].status == (uint32_t)r, "status n=%lu K=%g kind=%d", n, K, kind);
            continue;
          }
          cm.resize(bytes);
          CHECK(cm == gm, "bytes n=%lu K=%g kind=%d algo=%d (%zu vs %zu)", n, K, kind,
                algo, cm.size(), gm.size());
          CHECK(memcmp(&cs[0].scale, &gs[0].scale, 4) == 0 &&
                    cs[0].stream_bits == gs[0].stream_bits &&
                    cs[0].nonzeros == gs[0].nonzeros &&
                    cs[0].wire_bytes == gs[0].wire_bytes && cs[0].k == gs[0].k &&
                    cs[0].samples == gs[0].samples && cs[0].flags == gs[0].flags &&
                    cs[0].bits_run == gs[0].bits_run,
                "stats n=%lu K=%g kind=%d", n, K, kind);
          // decode: P = 1..3 copies from different u
          std::vector<std::vector<uint8_t>> msgs = {gm};
          for (int P = 1; P <= 3; ++P) {
            if (P > 1) {
              d.u ^= 0x9e3779b9u * P;
              size_t b2;
              std::vector<uint8_t> m2(cap);
              mcgqEncodeHost(&d, 1, m2.data(), cap, &b2, nullptr);
              m2.resize(b2);
              msgs.push_back(m2);
            }
            std::vector<const void *> ptrs;
            std::vector<size_t> szs;
            for (auto &m : msgs) {
              ptrs.push_back(m.data());
              szs.push_back(m.size());
            }
            std::vector<float> co(n), go;
            mcgqResult_t cr =
                mcgqDecodeAverageHost(ptrs.data(), szs.data(), P, co.data(), n);
            uint32_t gsx = run_decode(msgs, n, go);
            CHECK(cr == 0 && gsx == 0,
                  "decode status cpu %d sim %u n=%lu K=%g kind=%d P=%d", cr, gsx, n, K,
                  kind, P);
            CHECK(memcmp(co.data(), go.data(), n * 4) == 0,
                  "decode floats n=%lu K=%g kind=%d P=%d", n, K, kind, P);
          }
        }
  EXPECT_EQ(392, cases);
}

// Five layers, CRC, all accumulation modes, dynamic K, four steps; then
// single-bit corruptions of a two-rank decode.
TEST(KernelsEmulated, MultiLayerStepsAndCorruptionMatchCpu) {
  {
    const uint64_t ns[] = {100, 20000, 7, 9000, 30000};
    std::vector<sim_layer> ls(5);
    std::vector<std::vector<float>> cacc(5);
    std::vector<mcgqKState_t> cks(5);
    for (int i = 0; i < 5; ++i) {
      ls[i].accum.assign(ns[i], 0.0f);
      cacc[i] = ls[i].accum;
      mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
      cfg.k = 0.3;
      mcgqKStateInit(&cfg, &cks[i]);
      ls[i].ks = cks[i];
    }
    for (int step = 0; step < 4; ++step) {
      std::vector<mcgqLayerDesc_t> ds(5);
      for (int i = 0; i < 5; ++i) {
        ls[i].g = data(i == 2 ? 2 : 1, ns[i], 100 * step + i);
        mcgqLayerDescInit(&ds[i]);
        ds[i].n = ns[i];
        ds[i].g = ls[i].g.data();
        ds[i].cfg.k = 0.3;
        ds[i].u = mcgqRandomWord(1, step, i, 0);
        ds[i].cfg.accumulate = i % 3;
        ds[i].cfg.checksum = 1;
        ds[i].cfg.dynamic_k = i >= 3;
        ds[i].cfg.delta_k = 3.0;
        if (ds[i].cfg.accumulate) ds[i].accum = cacc[i].data();
        if (ds[i].cfg.dynamic_k) ds[i].kstate = &cks[i];
        uint64_t N = 0;
        mcgqResolveSamples(&ds[i].cfg, ds[i].kstate, ns[i], &N);
        ls[i].L = mcgq_gpu_layer_t{ls[i].g.data(),
                                   ds[i].cfg.accumulate ? ls[i].accum.data() : nullptr,
                                   ns[i],
                                   N,
                                   ds[i].cfg.dynamic_k ? cks[i].k : 0.3,
                                   ds[i].u,
                                   ds[i].cfg.accumulate,
                                   i & 1,
                                   ds[i].cfg.dynamic_k ? &ls[i].ks : nullptr,
                                   ds[i].cfg.dynamic_k,
                                   0,
                                   ds[i].cfg.k_min,
                                   ds[i].cfg.k_max,
                                   ds[i].cfg.delta_k};
      }
      std::vector<mcgqLayerStats_t> gs, cs(5);
      std::vector<uint8_t> gm = sim_encode(ls, 1, gs);
      size_t cap = 0, bytes = 0;
      mcgqEncodeGetMaxOutputSize(ds.data(), 5, &cap);
      std::vector<uint8_t> cm(cap);
      mcgqResult_t r = mcgqEncodeHost(ds.data(), 5, cm.data(), cap, &bytes, cs.data());
      CHECK(r == 0, "multi encode %d %s", r, mcgqGetLastErrorDetail());
      cm.resize(bytes);
      CHECK(cm == gm, "multi bytes step %d", step);
      for (int i = 0; i < 5; ++i) {
        CHECK(memcmp(cacc[i].data(), ls[i].accum.data(), ns[i] * 4) == 0,
              "accum step %d layer %d", step, i);
        CHECK(memcmp(&cks[i], &ls[i].ks, sizeof(mcgqKState_t)) == 0,
              "kstate step %d layer %d (%.17g %.17g / %.17g %.17g)", step, i, cks[i].k,
              ls[i].ks.k, cks[i].d_prev, ls[i].ks.d_prev);
        CHECK(memcmp(&cs[i].w1, &gs[i].w1, 8) == 0, "w1 step %d layer %d %g %g", step, i,
              cs[i].w1, gs[i].w1);
      }
      // corruption sweep on this message (with CRC) and a no-CRC version
      if (step == 3) {
        for (int crc = 0; crc < 2; ++crc) {
          for (auto &d : ds) d.cfg.checksum = crc;
          for (int i = 0; i < 5; ++i) {
            if (ds[i].cfg.accumulate) ds[i].accum = nullptr, ds[i].cfg.accumulate = 0;
            ds[i].cfg.dynamic_k = 0;
            ds[i].kstate = nullptr;
          }
          std::vector<uint8_t> base(cap);
          mcgqEncodeHost(ds.data(), 5, base.data(), cap, &bytes, nullptr);
          base.resize(bytes);
          uint64_t tn = 0;
          for (uint64_t v : ns) tn += v;
          int checked = 0, valid = 0;
          for (size_t at = 0; at < base.size(); ++at)
            for (int bit = 0; bit < 8; bit += (at < 400 ? 1 : 4)) {
              if (at >= 400 && (at % 11) != 0) continue;
              std::vector<std::vector<uint8_t>> msgs = {base, base};
              msgs[1][at] ^= (uint8_t)(1u << bit);
              std::vector<const void *> ptrs = {msgs[0].data(), msgs[1].data()};
              std::vector<size_t> szs = {base.size(), base.size()};
              std::vector<float> co(tn), go;
              mcgqResult_t cr =
                  mcgqDecodeAverageHost(ptrs.data(), szs.data(), 2, co.data(), tn);
              uint32_t gsx = run_decode(msgs, tn, go);
              ++checked;
              valid += cr == 0;
              CHECK((uint32_t)cr == gsx,
                    "corrupt crc=%d byte %zu bit %d: cpu %d sim %u (%s)", crc, at, bit,
                    cr, gsx, mcgqGetLastErrorDetail());
              if (cr == 0 && gsx == 0) {
                CHECK(memcmp(co.data(), go.data(), tn * 4) == 0,
                      "corrupt-valid floats byte %zu", at);
              }
            }
          EXPECT_GT(checked, 5000);
          EXPECT_GT(valid, 10);  // sign flips of tokens keep a message valid
        }
      }
    }
  }
}
