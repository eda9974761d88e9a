// NCCL exchange: one rank per GPU (ncclCommInitAll, one thread per rank,
// since each step synchronizes its stream).  The result must equal the CPU
// reference simulation of the same P workers bit for bit (mcgqEncodeHost per
// rank with the same u, then mcgqDecodeAverageHost); with one GPU that is
// the P = 1 case.  Skipped without a GPU.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <nccl.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "mcgq.h"
#include "gpu_support.hpp"
#include "mcgq_nccl.h"

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::vector<float> make_grad(int rank, uint64_t step, int layer, uint64_t n) {
  std::vector<float> g(n);
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t h = splitmix(splitmix(splitmix((uint64_t)rank * 7919 + step) + (uint64_t)layer) + k);
    g[k] = (h & 7) == 0 ? 0.0f : (float)((double)(h >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return g;
}

struct Spec {
  uint64_t n;
  int32_t accumulate, dynamic_k;
  double k;
};
const std::vector<Spec> kTable = {{1000, MCGQ_ACCUM_NONE, 0, 0.5},
                                  {37, MCGQ_ACCUM_RESET, 0, 0.3},
                                  {70000, MCGQ_ACCUM_RESIDUAL, 0, 0.1},
                                  {513, MCGQ_ACCUM_RESIDUAL, 1, 0.2}};

mcgqLayerConfig_t config(const Spec &s) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = s.k;
  cfg.accumulate = s.accumulate;
  cfg.dynamic_k = s.dynamic_k;
  cfg.k_min = 0.05;
  cfg.k_max = 2.0;
  cfg.delta_k = 0.5;
  return cfg;
}

// Host state of one simulated worker.
struct HostWorker {
  std::vector<std::vector<float>> grad, accum;
  std::vector<mcgqKState_t> kstate;
  HostWorker() {
    for (const Spec &s : kTable) {
      grad.emplace_back(s.n, 0.0f);
      accum.emplace_back(s.accumulate ? s.n : 0, 0.0f);
      mcgqKState_t ks;
      mcgqLayerConfig_t cfg = config(s);
      mcgqKStateInit(&cfg, &ks);
      kstate.push_back(ks);
    }
  }
};

// Result of one rank on the GPU after `steps` steps.
struct RankResult {
  mcgqResult_t status = mcgqSuccess;
  std::string detail;
  std::vector<std::vector<float>> grad, accum;
  std::vector<mcgqKState_t> kstate;
};

void run_rank(ncclComm_t nccl, int dev, int rank, uint64_t steps, uint64_t seed,
              RankResult *out) {
  cudaSetDevice(dev);
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  std::vector<float *> d_grad, d_accum;
  std::vector<mcgqKState_t *> d_ks;
  std::vector<mcgqLayer_t> layers;
  HostWorker init;
  for (size_t i = 0; i < kTable.size(); ++i) {
    const Spec &s = kTable[i];
    float *g = nullptr, *a = nullptr;
    mcgqKState_t *ks = nullptr;
    cudaMalloc(&g, s.n * sizeof(float));
    if (s.accumulate) {
      cudaMalloc(&a, s.n * sizeof(float));
      cudaMemset(a, 0, s.n * sizeof(float));
    }
    if (s.dynamic_k) {
      cudaMalloc(&ks, sizeof *ks);
      cudaMemcpy(ks, &init.kstate[i], sizeof *ks, cudaMemcpyHostToDevice);
    }
    d_grad.push_back(g);
    d_accum.push_back(a);
    d_ks.push_back(ks);
    mcgqLayer_t l;
    std::memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.grad = g;
    l.accum = a;
    l.kstate = ks;
    l.n = s.n;
    l.cfg = config(s);
    layers.push_back(l);
  }
  mcgqComm_t comm = nullptr;
  out->status = mcgqCommInitNccl(&comm, nccl);
  if (out->status == mcgqSuccess)
    out->status = mcgqCommSetLayers(comm, layers.data(), (int)layers.size());
  // The GPU encoder cannot cut layers yet: fixed capacity is refused, never
  // silently ignored (DESIGN.md 5).
  if (out->status == mcgqSuccess && mcgqCommSetCapacity(comm, 4096) != mcgqInvalidUsage) {
    out->status = mcgqInternalError;
    out->detail = "mcgqCommSetCapacity was not refused on an NCCL communicator";
  }
  for (uint64_t step = 0; step < steps && out->status == mcgqSuccess; ++step) {
    for (size_t i = 0; i < kTable.size(); ++i) {
      auto g = make_grad(rank, step, (int)i, kTable[i].n);
      cudaMemcpy(d_grad[i], g.data(), g.size() * sizeof(float), cudaMemcpyHostToDevice);
    }
    out->status = mcgqCommStep(comm, step, seed, stream, nullptr);
    if (out->status != mcgqSuccess) out->detail = mcgqCommGetLastError(comm);
  }
  cudaStreamSynchronize(stream);
  for (size_t i = 0; i < kTable.size(); ++i) {
    out->grad.emplace_back(kTable[i].n);
    cudaMemcpy(out->grad.back().data(), d_grad[i], kTable[i].n * sizeof(float),
               cudaMemcpyDeviceToHost);
    out->accum.emplace_back(d_accum[i] ? kTable[i].n : 0);
    if (d_accum[i])
      cudaMemcpy(out->accum.back().data(), d_accum[i], kTable[i].n * sizeof(float),
                 cudaMemcpyDeviceToHost);
    mcgqKState_t ks = init.kstate[i];
    if (d_ks[i]) cudaMemcpy(&ks, d_ks[i], sizeof ks, cudaMemcpyDeviceToHost);
    out->kstate.push_back(ks);
    cudaFree(d_grad[i]);
    cudaFree(d_accum[i]);
    cudaFree(d_ks[i]);
  }
  if (comm) mcgqCommDestroy(comm);
  cudaStreamDestroy(stream);
}

TEST(CommNccl, EqualsCpuSimulation) {
  MCGQ_REQUIRE_REAL_GPU("NCCL");
  int ndev = 0;
  ASSERT_EQ(cudaSuccess, cudaGetDeviceCount(&ndev));
  const int P = ndev;
  const uint64_t steps = 4, seed = 2024;
  std::vector<ncclComm_t> comms(P);
  ASSERT_EQ(ncclCommInitAll(comms.data(), P, nullptr), ncclSuccess);
  std::vector<RankResult> results(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back(run_rank, comms[r], r, r, steps, seed, &results[r]);
  for (auto &t : threads) t.join();
  for (auto c : comms) ncclCommDestroy(c);

  // CPU reference of the same P workers.
  std::vector<HostWorker> sim(P);
  std::vector<float> avg;
  for (uint64_t step = 0; step < steps; ++step) {
    std::vector<std::vector<unsigned char>> msgs(P);
    std::vector<const void *> ptrs(P);
    std::vector<size_t> sizes(P);
    for (int r = 0; r < P; ++r) {
      std::vector<mcgqLayerDesc_t> d(kTable.size());
      for (size_t i = 0; i < kTable.size(); ++i) {
        sim[r].grad[i] = make_grad(r, step, (int)i, kTable[i].n);
        mcgqLayerDescInit(&d[i]);
        d[i].u = mcgqRandomWord(seed, step, (uint32_t)i, (uint32_t)r);
        d[i].g = sim[r].grad[i].data();
        d[i].accum = kTable[i].accumulate ? sim[r].accum[i].data() : nullptr;
        d[i].kstate = kTable[i].dynamic_k ? &sim[r].kstate[i] : nullptr;
        d[i].n = kTable[i].n;
        d[i].cfg = config(kTable[i]);
      }
      size_t cap = 0;
      ASSERT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), (int)d.size(), &cap), mcgqSuccess);
      msgs[r].resize(cap);
      ASSERT_EQ(mcgqEncodeHost(d.data(), (int)d.size(), msgs[r].data(), cap, &sizes[r], nullptr),
                mcgqSuccess);
      ptrs[r] = msgs[r].data();
    }
    uint64_t total = 0;
    for (const Spec &s : kTable) total += s.n;
    avg.assign(total, 0.0f);
    ASSERT_EQ(mcgqDecodeAverageHost(ptrs.data(), sizes.data(), P, avg.data(), total), mcgqSuccess);
  }
  for (int r = 0; r < P; ++r) {
    ASSERT_EQ(results[r].status, mcgqSuccess) << "rank " << r << ": " << results[r].detail;
    size_t off = 0;
    for (size_t i = 0; i < kTable.size(); ++i) {
      EXPECT_EQ(std::memcmp(results[r].grad[i].data(), avg.data() + off, kTable[i].n * sizeof(float)), 0)
          << "rank " << r << " layer " << i;
      off += kTable[i].n;
      EXPECT_EQ(results[r].accum[i], sim[r].accum[i]) << "rank " << r << " layer " << i;
      EXPECT_EQ(std::memcmp(&results[r].kstate[i], &sim[r].kstate[i], sizeof(mcgqKState_t)), 0)
          << "rank " << r << " layer " << i;
    }
  }
}

}  // namespace
