// mpi_worker.hpp - what the MPI exchange tests share: the rank and size of
// MPI_COMM_WORLD, a deterministic gradient of (rank, step, layer, element),
// a hash of a worker's buffers, the CPU encoder's message of a table, and a
// worker holding one rank's gradients and accumulators for a table of
// layers (no dynamic K: test_comm_mpi.cpp has its own worker with K
// states).  Their main() is support/mpi_gtest_main.cpp.
#ifndef MCGQ_TESTS_SUPPORT_MPI_WORKER_HPP_
#define MCGQ_TESTS_SUPPORT_MPI_WORKER_HPP_

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "mcgq.h"

namespace mcgq_test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int p = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  return p;
}

// Every rank's value of x, gathered.
inline std::vector<uint64_t> gather(uint64_t x) {
  std::vector<uint64_t> all((size_t)world_size());
  MPI_Allgather(&x, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  return all;
}

inline bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Deterministic gradient of (rank, step, layer, k): values in (-amp, amp)
// with about 1 in 8 exact zeros, so zero runs and sign changes both occur.
inline float grad_value(int rank, uint64_t step, size_t layer, uint64_t k, float amp) {
  uint64_t h = splitmix(splitmix(splitmix((uint64_t)rank * 7919 + step) + layer) + k);
  if ((h & 7) == 0) return 0.0f;
  return (float)(((double)(h >> 11) / 9007199254740992.0 * 2.0 - 1.0) * amp);
}

inline uint64_t fnv(const void *p, size_t bytes, uint64_t h = 1469598103934665603ull) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// The CPU encoder's message of descs (empty for none), checked.
inline std::vector<unsigned char> encode(std::vector<mcgqLayerDesc_t> &descs) {
  if (descs.empty()) return {};
  size_t cap = 0, bytes = 0;
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(descs.data(), (int)descs.size(), &cap), mcgqSuccess);
  std::vector<unsigned char> out(cap);
  EXPECT_EQ(mcgqEncodeHost(descs.data(), (int)descs.size(), out.data(), cap, &bytes, nullptr),
            mcgqSuccess)
      << mcgqGetLastErrorDetail();
  out.resize(bytes);
  return out;
}

struct LayerSpec {
  uint64_t n;
  int32_t accumulate;
  double k;
  float amp;
  int32_t dtype = MCGQ_DTYPE_F32;  // of the gradient: Worker16 for bf16 / binary16
};

inline mcgqLayerConfig_t config_of(const LayerSpec &s) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = s.k;
  cfg.accumulate = s.accumulate;
  cfg.dtype = s.dtype;
  return cfg;
}

// The 16-bit gradient of (rank, step, layer, k): bfloat16, grad_value's
// float cut to its high half; binary16 built from the hash (finite, about 1
// in 8 zero, magnitudes 2^-14 .. 2^6).
inline uint16_t grad_bits16(int32_t dtype, int rank, uint64_t step, size_t layer, uint64_t k,
                            float amp) {
  if (dtype == MCGQ_DTYPE_BF16) {
    float f = grad_value(rank, step, layer, k, amp);
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return (uint16_t)(b >> 16);
  }
  uint64_t h = splitmix(splitmix((uint64_t)rank * 131 + step) + layer * 7 + k);
  if ((h & 7) == 0) return 0;
  uint16_t exponent = (uint16_t)(1 + (h >> 8) % 20);
  return (uint16_t)(((h >> 4) & 1) << 15 | exponent << 10 | ((h >> 20) & 0x3ff));
}

template <typename G>
G grad_of(const LayerSpec &s, int rank, uint64_t step, size_t layer, uint64_t k);
template <>
inline float grad_of<float>(const LayerSpec &s, int rank, uint64_t step, size_t layer,
                            uint64_t k) {
  return grad_value(rank, step, layer, k, s.amp);
}
template <>
inline uint16_t grad_of<uint16_t>(const LayerSpec &s, int rank, uint64_t step, size_t layer,
                                  uint64_t k) {
  return grad_bits16(s.dtype, rank, step, layer, k, s.amp);
}

// One rank's gradients (of type G: float, or the bits of a 16-bit dtype)
// and float32 accumulators.
template <typename G>
struct BasicWorker {
  std::vector<LayerSpec> spec;
  std::vector<std::vector<G>> grad;
  std::vector<std::vector<float>> accum;
  explicit BasicWorker(const std::vector<LayerSpec> &s)
      : spec(s), grad(s.size()), accum(s.size()) {
    for (size_t i = 0; i < s.size(); ++i) {
      grad[i].assign(s[i].n, G(0));
      if (s[i].accumulate != MCGQ_ACCUM_NONE) accum[i].assign(s[i].n, 0.0f);
    }
  }
  void load(int rank, uint64_t step) {
    for (size_t i = 0; i < spec.size(); ++i)
      for (uint64_t k = 0; k < spec[i].n; ++k) grad[i][k] = grad_of<G>(spec[i], rank, step, i, k);
  }
  std::vector<mcgqLayer_t> comm_layers() {
    std::vector<mcgqLayer_t> out(spec.size());
    for (size_t i = 0; i < spec.size(); ++i) {
      std::memset(&out[i], 0, sizeof out[i]);
      out[i].struct_size = sizeof(mcgqLayer_t);
      out[i].grad = grad[i].data();
      out[i].accum = accum[i].empty() ? nullptr : accum[i].data();
      out[i].n = spec[i].n;
      out[i].cfg = config_of(spec[i]);
    }
    return out;
  }
  uint64_t hash() const {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < spec.size(); ++i) {
      h = fnv(grad[i].data(), grad[i].size() * sizeof(G), h);
      h = fnv(accum[i].data(), accum[i].size() * sizeof(float), h);
    }
    return h;
  }
};

using Worker = BasicWorker<float>;
using Worker16 = BasicWorker<uint16_t>;

}  // namespace mcgq_test

#endif  // MCGQ_TESTS_SUPPORT_MPI_WORKER_HPP_
