// gpu_support.hpp - helpers of the GPU tests: device detection (every GPU
// test skips without a device), RAII device buffers, test data generators
// and one-call wrappers of the public GPU API.
#ifndef MCGQ_TESTS_GPU_SUPPORT_HPP_
#define MCGQ_TESTS_GPU_SUPPORT_HPP_

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mcgq.h"

namespace gpu_test {

// Any error (no driver, no device) counts as "no GPU".
inline bool have_gpu() {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return count > 0;
}

#define MCGQ_REQUIRE_GPU()                                                  \
  do {                                                                      \
    if (!gpu_test::have_gpu())                                              \
      GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount failed or is 0)"; \
  } while (0)

// GPGPU-Sim (the functional simulator of the gpusim ctest label, see
// scripts/gpusim.sh) names its device "GPGPU-Sim_v<version>".
inline bool on_gpu_simulator() {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return std::strncmp(prop.name, "GPGPU-Sim", 9) == 0;
}

// What the simulator cannot run (CUDA graphs and stream capture: the process
// dies on the missing symbol; NCCL) needs a real device.
#define MCGQ_REQUIRE_REAL_GPU(what)                                               \
  do {                                                                            \
    MCGQ_REQUIRE_GPU();                                                           \
    if (gpu_test::on_gpu_simulator())                                             \
      GTEST_SKIP() << "GPU simulator: " what " is not simulated; needs a real GPU"; \
  } while (0)

#define CUDA_OK(call) ASSERT_EQ(cudaSuccess, (call)) << #call

template <class T>
struct dbuf {
  T *p = nullptr;
  size_t count = 0;
  dbuf() = default;
  explicit dbuf(size_t n) { alloc(n); }
  void alloc(size_t n) {
    count = n;
    if (cudaMalloc((void **)&p, (n ? n : 1) * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~dbuf() { if (p) cudaFree(p); }
  dbuf(const dbuf &) = delete;
  dbuf &operator=(const dbuf &) = delete;
  void upload(const std::vector<T> &v) {
    cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> download(size_t n) const {
    std::vector<T> v(n);
    cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }
};

enum class dist { normal, heavy, sparse, one_nonzero, all_zero, denormal, flt_max };
inline const char *dist_name(dist d) {
  static const char *names[] = {"normal", "heavy", "sparse", "one_nonzero",
                                "all_zero", "denormal", "flt_max"};
  return names[(int)d];
}
const dist all_dists[] = {dist::normal, dist::heavy, dist::sparse, dist::one_nonzero,
                          dist::all_zero, dist::denormal, dist::flt_max};

inline std::vector<float> make_data(dist d, uint64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::cauchy_distribution<float> cauchy(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> g(n, 0.0f);
  for (uint64_t k = 0; k < n; ++k) {
    switch (d) {
      case dist::normal: g[k] = normal(rng); break;
      case dist::heavy: g[k] = cauchy(rng); if (!std::isfinite(g[k])) g[k] = 1.0f; break;
      case dist::sparse: g[k] = uni(rng) < 0.001f ? normal(rng) : 0.0f; break;
      case dist::one_nonzero: break;
      case dist::all_zero: break;
      case dist::denormal: g[k] = normal(rng) * 1e-39f; break;  // below FLT_MIN
      case dist::flt_max: g[k] = (uni(rng) < 0.5f ? -FLT_MAX : FLT_MAX) * uni(rng); break;
    }
  }
  if (d == dist::one_nonzero) g[n / 2] = -0.75f;
  if (d == dist::flt_max) g[0] = FLT_MAX;
  return g;
}

// A whole GPU encode: returns the message (empty on an API failure), the
// stats, and the API result.
struct gpu_encoded {
  mcgqResult_t result = mcgqInternalError;
  std::vector<uint8_t> msg;
  std::vector<mcgqLayerStats_t> stats;
};

// descs hold DEVICE pointers.
inline gpu_encoded gpu_encode(const std::vector<mcgqLayerDesc_t> &descs,
                              cudaStream_t stream = nullptr) {
  gpu_encoded out;
  int count = (int)descs.size();
  size_t cap = 0, temp = 0;
  out.result = mcgqEncodeGetMaxOutputSize(descs.data(), count, &cap);
  if (out.result != mcgqSuccess) return out;
  out.result = mcgqEncodeGetTempSize(descs.data(), count, &temp);
  if (out.result != mcgqSuccess) return out;
  dbuf<uint8_t> d_out(cap), d_temp(temp);
  dbuf<size_t> d_bytes(1);
  dbuf<mcgqLayerStats_t> d_stats(count);
  out.result = mcgqEncodeAsync(descs.data(), count, d_out.p, cap, d_bytes.p, d_stats.p,
                               d_temp.p, temp, stream);
  if (out.result != mcgqSuccess) return out;
  if (cudaStreamSynchronize(stream) != cudaSuccess) {
    out.result = mcgqCudaError;
    return out;
  }
  size_t bytes = d_bytes.download(1)[0];
  out.msg = d_out.download(bytes);
  out.stats = d_stats.download(count);
  return out;
}

// GPU decode-average of host messages; returns d_status (or 1000 + API
// result when the call itself fails) and fills out.
inline uint32_t gpu_decode_average(const std::vector<std::vector<uint8_t>> &msgs,
                                   uint64_t n, std::vector<float> *out) {
  int P = (int)msgs.size();
  std::vector<dbuf<uint8_t> *> bufs;
  std::vector<const void *> ptrs;
  std::vector<size_t> sizes;
  size_t cap = 0;
  for (auto &m : msgs) {
    auto *b = new dbuf<uint8_t>(m.size());
    b->upload(m);
    bufs.push_back(b);
    ptrs.push_back(b->p);
    sizes.push_back(m.size());
    cap = m.size() > cap ? m.size() : cap;
  }
  size_t temp = 0;
  uint32_t status = 0;
  mcgqResult_t r = mcgqDecodeAverageGetTempSize(P, n, cap, &temp);
  dbuf<uint8_t> d_temp(temp);
  dbuf<float> d_out(n);
  dbuf<uint32_t> d_status(1);
  if (r == mcgqSuccess)
    r = mcgqDecodeAverageAsync(ptrs.data(), sizes.data(), P, d_out.p, n, d_status.p,
                               d_temp.p, temp, nullptr);
  if (r == mcgqSuccess && cudaDeviceSynchronize() != cudaSuccess) r = mcgqCudaError;
  if (r != mcgqSuccess) {
    status = 1000u + (uint32_t)r;
  } else {
    status = d_status.download(1)[0];
    *out = d_out.download(n);
  }
  for (auto *b : bufs) delete b;
  return status;
}

inline std::vector<uint8_t> cpu_encode(const std::vector<mcgqLayerDesc_t> &descs,
                                       mcgqResult_t *res,
                                       std::vector<mcgqLayerStats_t> *stats) {
  size_t cap = 0, bytes = 0;
  mcgqEncodeGetMaxOutputSize(descs.data(), (int)descs.size(), &cap);
  std::vector<uint8_t> msg(cap);
  stats->assign(descs.size(), mcgqLayerStats_t{});
  *res = mcgqEncodeHost(descs.data(), (int)descs.size(), msg.data(), cap, &bytes,
                        stats->data());
  msg.resize(*res == mcgqSuccess ? bytes : 0);
  return msg;
}

inline bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// A layer descriptor of n elements, K, random word u and algorithm algo.
inline mcgqLayerDesc_t make_desc(uint64_t n, double k, uint32_t u, int algo) {
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.n = n;
  d.cfg.k = k;
  d.u = u;
  d.cfg.algo = algo;
  return d;
}

// Every field the encoder writes, W1 included, bit for bit (CPU vs GPU).
inline void expect_same_stats(const mcgqLayerStats_t &a, const mcgqLayerStats_t &b,
                       const std::string &what) {
  EXPECT_EQ(a.n, b.n) << what;
  EXPECT_EQ(a.samples, b.samples) << what;
  EXPECT_EQ(0, std::memcmp(&a.k, &b.k, sizeof a.k)) << what;
  EXPECT_EQ(0, std::memcmp(&a.scale, &b.scale, sizeof a.scale)) << what;
  EXPECT_EQ(a.bits_value, b.bits_value) << what;
  EXPECT_EQ(a.bits_run, b.bits_run) << what;
  EXPECT_EQ(a.status, b.status) << what;
  EXPECT_EQ(a.stream_bits, b.stream_bits) << what;
  EXPECT_EQ(a.wire_bytes, b.wire_bytes) << what;
  EXPECT_EQ(a.nonzeros, b.nonzeros) << what;
  EXPECT_EQ(0, std::memcmp(&a.w1, &b.w1, sizeof a.w1)) << what;
  EXPECT_EQ(a.flags, b.flags) << what;
}

}  // namespace gpu_test

#endif  // MCGQ_TESTS_GPU_SUPPORT_HPP_
