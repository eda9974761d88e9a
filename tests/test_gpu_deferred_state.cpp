// The GPU encode with deferred state (host/internal.h: mcgq_encode_deferred_async
// and mcgq_encode_commit_async, what the exchange's device codec runs) and
// the device codec itself (host/comm/codec_device.c) end to end.
//  - Deferred against in place: the same message and stats bit for bit; the
//    live accumulators and K states untouched until the commit, then equal
//    to the in-place encode's; layers refused by the data (range rule,
//    non-finite) keep their state through the commit.
//  - The device codec through mcgqCommInitCallbacks with payload_on_device
//    = 1 and a one-rank transport of this file against the host codec
//    (payload_on_device = 0, the same callbacks): gradients, accumulators
//    and K states bit for bit over steps, and a non-finite step changes
//    nothing.
// Every test skips without a CUDA device; on the GPU simulator (label
// gpusim) every layer stays small (<= 5000 elements).
#include <cstdio>
#include <memory>

#include "gpu_support.hpp"
#include "internal.h"

using namespace gpu_test;

namespace {

bool same_kstate(const mcgqKState_t &a, const mcgqKState_t &b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// A layer's configuration and data source.
struct layer_spec {
  uint64_t n;
  int algo;
  int accumulate;
  int dynamic_k;
  double k;
  dist data;
};

// One layer held twice on the device: the "inplace" copy runs
// mcgqEncodeAsync, the "deferred" copy the deferred encode and its commit.
struct twin_layer {
  layer_spec spec;
  std::vector<float> g;
  dbuf<float> d_g;
  dbuf<float> acc_in, acc_def, acc_out;          // n floats each (accumulated)
  dbuf<mcgqKState_t> ks_in, ks_def, ks_out;      // one state each (dynamic K)
  explicit twin_layer(const layer_spec &s)
      : spec(s), d_g(s.n), acc_in(s.n), acc_def(s.n), acc_out(s.n), ks_in(1),
        ks_def(1), ks_out(1) {}
};

// A sentinel in the scratch outputs: an output left unwritten (a refused
// layer) shows it, and a commit that copied it would put it in the state.
const float kSentinel = -12345.5f;
mcgqKState_t sentinel_kstate() { return mcgqKState_t{7.25, -1.0, 1, 0}; }

void init_state(twin_layer &L, uint32_t seed) {
  std::vector<float> acc = make_data(dist::normal, L.spec.n, seed);
  for (auto &v : acc) v *= 0.5f;
  L.acc_in.upload(acc);
  L.acc_def.upload(acc);
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = L.spec.k;
  cfg.dynamic_k = 1;
  mcgqKState_t ks;
  ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &ks));
  L.ks_in.upload({ks});
  L.ks_def.upload({ks});
}

// One step on both copies: gradients from (seed, step) unless fixed_g gives
// them, u from (seed, step, layer) unless fixed_u gives one (>= 0), the
// deferred outputs filled with the sentinel first.  Checks the message, the stats,
// the untouched live state before the commit, and the state after it.
// Returns the statuses (for the caller's expectations).
std::vector<uint32_t> twin_step(std::vector<std::unique_ptr<twin_layer>> &layers, int step,
                                const std::vector<std::vector<float>> *fixed_g = nullptr,
                                const std::vector<int64_t> *fixed_u = nullptr) {
  const int L = (int)layers.size();
  std::vector<mcgqLayerDesc_t> in(L), def(L);
  std::vector<mcgq_state_out_t> outs(L);
  std::vector<std::vector<float>> acc_before(L);
  std::vector<mcgqKState_t> ks_before(L);
  for (int i = 0; i < L; ++i) {
    twin_layer &t = *layers[i];
    t.g = fixed_g ? (*fixed_g)[i] : make_data(t.spec.data, t.spec.n, 100 * step + i);
    t.d_g.upload(t.g);
    const uint32_t u = fixed_u && (*fixed_u)[i] >= 0 ? (uint32_t)(*fixed_u)[i]
                                                     : mcgqRandomWord(5, step, i, 0);
    mcgqLayerDesc_t d = make_desc(t.spec.n, t.spec.k, u, t.spec.algo);
    d.cfg.accumulate = t.spec.accumulate;
    d.cfg.dynamic_k = t.spec.dynamic_k;
    d.cfg.delta_k = 4.0;
    d.g = t.d_g.p;
    in[i] = d;
    def[i] = d;
    outs[i] = mcgq_state_out_t{nullptr, nullptr};
    if (t.spec.accumulate != MCGQ_ACCUM_NONE) {
      in[i].accum = t.acc_in.p;
      def[i].accum = t.acc_def.p;
      outs[i].accum_out = t.acc_out.p;
      t.acc_out.upload(std::vector<float>(t.spec.n, kSentinel));
      acc_before[i] = t.acc_def.download(t.spec.n);
    }
    if (t.spec.dynamic_k) {
      in[i].kstate = t.ks_in.p;
      def[i].kstate = t.ks_def.p;
      outs[i].kstate_out = t.ks_out.p;
      t.ks_out.upload({sentinel_kstate()});
      ks_before[i] = t.ks_def.download(1)[0];
    }
  }
  std::vector<uint32_t> status(L, 0xffffffffu);
  // in place
  gpu_encoded ref = gpu_encode(in);
  EXPECT_EQ(mcgqSuccess, ref.result) << mcgqGetLastErrorDetail();
  if (ref.result != mcgqSuccess) return status;
  // deferred
  size_t cap = 0, temp = 0;
  EXPECT_EQ(mcgqSuccess, mcgqEncodeGetMaxOutputSize(def.data(), L, &cap));
  EXPECT_EQ(mcgqSuccess, mcgqEncodeGetTempSize(def.data(), L, &temp));
  dbuf<uint8_t> d_out(cap), d_temp(temp);
  dbuf<size_t> d_bytes(1);
  dbuf<mcgqLayerStats_t> d_stats(L);
  mcgqResult_t r = mcgq_encode_deferred_async(def.data(), L, outs.data(), d_out.p, cap,
                                              d_bytes.p, d_stats.p, d_temp.p, temp, nullptr);
  EXPECT_EQ(mcgqSuccess, r) << mcgqGetLastErrorDetail();
  if (r != mcgqSuccess) return status;
  EXPECT_EQ(cudaSuccess, cudaStreamSynchronize(nullptr));
  std::vector<uint8_t> msg = d_out.download(d_bytes.download(1)[0]);
  std::vector<mcgqLayerStats_t> stats = d_stats.download(L);
  EXPECT_TRUE(ref.msg == msg) << "step " << step << ": the deferred message differs";
  for (int i = 0; i < L; ++i) {
    const std::string what = "step " + std::to_string(step) + " layer " + std::to_string(i);
    twin_layer &t = *layers[i];
    expect_same_stats(ref.stats[i], stats[i], what);
    status[i] = stats[i].status;
    const bool ok = stats[i].status == 0;
    // Before the commit: the live state as before the step; the scratch holds
    // the in-place result (succeeded) or is unwritten (refused).
    if (t.spec.accumulate != MCGQ_ACCUM_NONE) {
      EXPECT_TRUE(same_bits(acc_before[i], t.acc_def.download(t.spec.n)))
          << what << ": the live accumulator changed before the commit";
      std::vector<float> scratch = t.acc_out.download(t.spec.n);
      const std::vector<float> want =
          ok ? t.acc_in.download(t.spec.n) : std::vector<float>(t.spec.n, kSentinel);
      EXPECT_TRUE(same_bits(want, scratch)) << what;
    }
    if (t.spec.dynamic_k) {
      EXPECT_TRUE(same_kstate(ks_before[i], t.ks_def.download(1)[0]))
          << what << ": the live K state changed before the commit";
      mcgqKState_t scratch = t.ks_out.download(1)[0];
      EXPECT_TRUE(same_kstate(ok ? t.ks_in.download(1)[0] : sentinel_kstate(), scratch))
          << what;
    }
  }
  r = mcgq_encode_commit_async(def.data(), L, d_temp.p, temp, nullptr);
  EXPECT_EQ(mcgqSuccess, r) << mcgqGetLastErrorDetail();
  EXPECT_EQ(cudaSuccess, cudaStreamSynchronize(nullptr));
  // After the commit: the live state equals the in-place encode's (which
  // kept the state of refused layers, and so must the commit).
  for (int i = 0; i < L; ++i) {
    const std::string what = "after commit, step " + std::to_string(step) + " layer " +
                             std::to_string(i);
    twin_layer &t = *layers[i];
    if (t.spec.accumulate != MCGQ_ACCUM_NONE) {
      std::vector<float> live = t.acc_def.download(t.spec.n);
      EXPECT_TRUE(same_bits(t.acc_in.download(t.spec.n), live)) << what;
      if (status[i] != 0) {
        EXPECT_TRUE(same_bits(acc_before[i], live)) << what;
      }
    }
    if (t.spec.dynamic_k) {
      mcgqKState_t live = t.ks_def.download(1)[0];
      EXPECT_TRUE(same_kstate(t.ks_in.download(1)[0], live)) << what;
      if (status[i] != 0) {
        EXPECT_TRUE(same_kstate(ks_before[i], live)) << what;
      }
    }
  }
  return status;
}

std::vector<std::unique_ptr<twin_layer>> make_layers(const std::vector<layer_spec> &specs) {
  std::vector<std::unique_ptr<twin_layer>> layers;
  for (size_t i = 0; i < specs.size(); ++i) {
    layers.emplace_back(new twin_layer(specs[i]));
    init_state(*layers.back(), 1000u + (uint32_t)i);
  }
  return layers;
}

}  // namespace

// Plain, accumulated reset and residual, dynamic K (alone and with an
// accumulator), both algorithms, over three steps (a dynamic K's first step
// only starts it; the next ones move K).
TEST(GpuDeferredState, MatchesInPlaceOverSteps) {
  MCGQ_REQUIRE_GPU();
  std::vector<layer_spec> specs = {
      {3000, MCGQ_ALGO_FUSED, MCGQ_ACCUM_NONE, 0, 0.1, dist::normal},
      {5000, MCGQ_ALGO_FUSED, MCGQ_ACCUM_RESET, 0, 0.05, dist::normal},
      {4500, MCGQ_ALGO_SAMPLE, MCGQ_ACCUM_RESIDUAL, 0, 0.2, dist::heavy},
      {4097, MCGQ_ALGO_FUSED, MCGQ_ACCUM_NONE, 1, 0.2, dist::heavy},
      {2000, MCGQ_ALGO_SAMPLE, MCGQ_ACCUM_RESIDUAL, 1, 0.3, dist::normal},
      {777, MCGQ_ALGO_FUSED, MCGQ_ACCUM_RESET, 1, 0.5, dist::sparse},
  };
  auto layers = make_layers(specs);
  for (int step = 0; step < 3; ++step) {
    std::vector<uint32_t> status = twin_step(layers, step);
    for (size_t i = 0; i < status.size(); ++i)
      EXPECT_EQ(0u, status[i]) << "step " << step << " layer " << i;
    if (HasFatalFailure()) return;
  }
}

// Layers the data refuses: the range rule and a NaN.  Their state must
// survive the commit (their scratch outputs hold the sentinel, which the
// commit must not copy), while the good layers of the same call commit.
// The range layer is test_gpu_encode.cpp's: x = accum + g = [3e38, 2e38] at
// K = 1 draws g_int = [2, 0] with scale 2.5e38, whose decode overflows
// (docs/FORMAT.md), when u / 2^32 < 0.2: draws 0 and 1 of u = draw * 2^29
// are refused, the others accepted.
TEST(GpuDeferredState, RefusedLayersAreNotCommitted) {
  MCGQ_REQUIRE_GPU();
  std::vector<layer_spec> specs = {
      {3000, MCGQ_ALGO_FUSED, MCGQ_ACCUM_RESIDUAL, 1, 0.2, dist::normal},
      {2, MCGQ_ALGO_FUSED, MCGQ_ACCUM_RESET, 1, 1.0, dist::normal},   // range layer
      {1500, MCGQ_ALGO_SAMPLE, MCGQ_ACCUM_RESET, 1, 0.3, dist::normal},  // NaN layer
  };
  auto layers = make_layers(specs);
  const std::vector<float> big = {1.5e38f, 1e38f};
  layers[1]->acc_in.upload(big);
  layers[1]->acc_def.upload(big);
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = 1.0;
  cfg.dynamic_k = 1;
  mcgqKState_t ks0;
  ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &ks0));
  int refused = 0;
  for (int draw = 0; draw < 8; ++draw) {
    // The range layer starts every draw from the same state (N = 2).
    layers[1]->acc_in.upload(big);
    layers[1]->acc_def.upload(big);
    layers[1]->ks_in.upload({ks0});
    layers[1]->ks_def.upload({ks0});
    const std::vector<int64_t> u = {-1, (int64_t)draw * 0x20000000, -1};
    std::vector<std::vector<float>> g = {make_data(dist::normal, 3000, 7 * draw), big,
                                         make_data(dist::normal, 1500, 7 * draw + 1)};
    g[2][321] = NAN;
    std::vector<uint32_t> status = twin_step(layers, draw, &g, &u);
    if (HasFatalFailure()) return;
    EXPECT_EQ(0u, status[0]) << "draw " << draw;
    EXPECT_EQ((uint32_t)mcgqNonFinite, status[2]) << "draw " << draw;
    EXPECT_TRUE(status[1] == 0 || status[1] == (uint32_t)mcgqRangeError) << "draw " << draw;
    refused += status[1] == (uint32_t)mcgqRangeError;
  }
  EXPECT_EQ(2, refused) << "draws 0 and 1 refuse the range layer";
}

// The deferred outputs are checked like the encode's other buffers.
TEST(GpuDeferredState, HostCheckedOutputs) {
  MCGQ_REQUIRE_GPU();
  const uint64_t n = 100;
  dbuf<float> d_g(n), d_acc(n), d_out_acc(n);
  dbuf<mcgqKState_t> d_ks(1);
  mcgqLayerDesc_t d = make_desc(n, 0.5, 1, MCGQ_ALGO_FUSED);
  d.g = d_g.p;
  size_t cap = 0, temp = 0;
  ASSERT_EQ(mcgqSuccess, mcgqEncodeGetMaxOutputSize(&d, 1, &cap));
  ASSERT_EQ(mcgqSuccess, mcgqEncodeGetTempSize(&d, 1, &temp));
  dbuf<uint8_t> d_out(cap), d_temp(temp);
  dbuf<size_t> d_bytes(1);
  dbuf<mcgqLayerStats_t> d_stats(1);
  // an accumulator output for a plain layer
  mcgq_state_out_t out = {d_out_acc.p, nullptr};
  EXPECT_EQ(mcgqInvalidArgument,
            mcgq_encode_deferred_async(&d, 1, &out, d_out.p, cap, d_bytes.p, d_stats.p,
                                       d_temp.p, temp, nullptr));
  // an accumulator output that is the accumulator
  d.cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
  d.accum = d_acc.p;
  out.accum_out = d_acc.p;
  EXPECT_EQ(mcgqInvalidArgument,
            mcgq_encode_deferred_async(&d, 1, &out, d_out.p, cap, d_bytes.p, d_stats.p,
                                       d_temp.p, temp, nullptr));
  // a K-state output for a layer without dynamic K
  out.accum_out = d_out_acc.p;
  out.kstate_out = d_ks.p;
  EXPECT_EQ(mcgqInvalidArgument,
            mcgq_encode_deferred_async(&d, 1, &out, d_out.p, cap, d_bytes.p, d_stats.p,
                                       d_temp.p, temp, nullptr));
  out.kstate_out = nullptr;
  EXPECT_EQ(mcgqSuccess,
            mcgq_encode_deferred_async(&d, 1, &out, d_out.p, cap, d_bytes.p, d_stats.p,
                                       d_temp.p, temp, nullptr))
      << mcgqGetLastErrorDetail();
  EXPECT_EQ(mcgqInvalidArgument, mcgq_encode_commit_async(&d, 1, d_temp.p, 1, nullptr));
  EXPECT_EQ(mcgqSuccess, mcgq_encode_commit_async(&d, 1, d_temp.p, temp, nullptr));
  EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
}

// ------------------------------------------------ the device codec, end to end

namespace {

// A one-rank transport: every collective is a copy of this rank's part.  The
// device codec's payloads are device memory on `stream` (mcgqCommStep's),
// which the callback orders itself after by synchronizing it.
struct one_rank {
  int on_device;
  cudaStream_t stream;
  int calls;
};

int32_t one_allgather(void *user, const void *send, void *recv, size_t bytes) {
  static_cast<one_rank *>(user)->calls++;
  std::memcpy(recv, send, bytes);
  return mcgqSuccess;
}

int32_t one_allgatherv(void *user, const void *send, size_t send_bytes, void *recv,
                       const size_t *counts, const size_t *displs) {
  one_rank *t = static_cast<one_rank *>(user);
  t->calls++;
  if (counts[0] != send_bytes) return mcgqInternalError;
  char *dst = static_cast<char *>(recv) + displs[0];
  if (!t->on_device) {
    std::memcpy(dst, send, send_bytes);
    return mcgqSuccess;
  }
  if (cudaStreamSynchronize(t->stream) != cudaSuccess ||
      cudaMemcpy(dst, send, send_bytes, cudaMemcpyDeviceToDevice) != cudaSuccess)
    return mcgqCudaError;
  return mcgqSuccess;
}

int32_t one_allreduce_max(void *user, int32_t *value) {
  (void)value;  // one rank: the maximum is its own value
  static_cast<one_rank *>(user)->calls++;
  return mcgqSuccess;
}

int32_t one_alltoallv(void *user, const void *send, const size_t *send_counts,
                      const size_t *send_displs, void *recv, const size_t *recv_counts,
                      const size_t *recv_displs) {
  if (send_counts[0] != recv_counts[0]) return mcgqInternalError;
  return one_allgatherv(user, static_cast<const char *>(send) + send_displs[0],
                        send_counts[0], recv, recv_counts, recv_displs);
}

mcgqComm_t make_comm(one_rank *t) {
  mcgqTransportCallbacks_t cb;
  std::memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.payload_on_device = t->on_device;
  cb.user = t;
  cb.allgather = one_allgather;
  cb.allgatherv = one_allgatherv;
  cb.allreduce_max_int = one_allreduce_max;
  cb.alltoallv = one_alltoallv;
  mcgqComm_t comm = nullptr;
  if (mcgqCommInitCallbacks(&comm, 0, 1, &cb) != mcgqSuccess) return nullptr;
  return comm;
}

// The registered state of one layer on both communicators.
struct comm_layer {
  layer_spec spec;
  std::vector<float> grad, accum;  // host communicator's
  mcgqKState_t ks{};
  dbuf<float> d_grad, d_accum;     // device communicator's
  dbuf<mcgqKState_t> d_ks;
  explicit comm_layer(const layer_spec &s) : spec(s), d_grad(s.n), d_accum(s.n), d_ks(1) {}
};

// Both communicators' gradients, accumulators and K states, bit for bit.
void expect_comm_state_equal(const std::vector<std::unique_ptr<comm_layer>> &layers,
                             const std::string &what) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const comm_layer &l = *layers[i];
    const std::string w = what + " layer " + std::to_string(i);
    EXPECT_TRUE(same_bits(l.grad, l.d_grad.download(l.spec.n))) << w << ": gradient";
    if (l.spec.accumulate != MCGQ_ACCUM_NONE) {
      EXPECT_TRUE(same_bits(l.accum, l.d_accum.download(l.spec.n))) << w << ": accumulator";
    }
    if (l.spec.dynamic_k) {
      EXPECT_TRUE(same_kstate(l.ks, l.d_ks.download(1)[0])) << w << ": K state";
    }
  }
}

// mcgqCommStep over the device codec (payload_on_device = 1: deferred encode,
// exchange, GPU decode-average, one-launch commit) against the host codec
// (payload_on_device = 0, the CPU encoder and decoder) on the same
// one-rank callbacks: after every step the averaged gradients, the
// accumulators and the K states are the same bits.  Step 3 has a NaN: both
// refuse it with mcgqNonFinite and change nothing (the device codec never
// wrote its live state, so there is nothing to restore); the steps after it
// match again.
void run_codec_steps(int32_t mode) {
  // dynamic K only where the mode takes it (the sharded modes refuse it)
  const int dyn = mode == MCGQ_EXCHANGE_ALL_GATHER ? 1 : 0;
  std::vector<layer_spec> specs = {
      {3000, MCGQ_ALGO_FUSED, MCGQ_ACCUM_NONE, 0, 0.1, dist::normal},
      {2500, MCGQ_ALGO_SAMPLE, MCGQ_ACCUM_RESET, 0, 0.2, dist::heavy},
      {4000, MCGQ_ALGO_FUSED, MCGQ_ACCUM_RESIDUAL, dyn, 0.2, dist::normal},
      {1000, MCGQ_ALGO_FUSED, MCGQ_ACCUM_NONE, dyn, 0.5, dist::sparse},
  };
  const int L = (int)specs.size();
  cudaStream_t stream = nullptr;  // the simulator's cudaStreamQuery needs a real one
  CUDA_OK(cudaStreamCreate(&stream));
  one_rank host_t = {0, nullptr, 0}, dev_t = {1, stream, 0};
  mcgqComm_t host_comm = make_comm(&host_t), dev_comm = make_comm(&dev_t);
  ASSERT_NE(nullptr, host_comm) << mcgqGetLastErrorDetail();
  ASSERT_NE(nullptr, dev_comm) << mcgqGetLastErrorDetail();

  std::vector<std::unique_ptr<comm_layer>> layers;
  std::vector<mcgqLayer_t> host_tab(L), dev_tab(L);
  for (int i = 0; i < L; ++i) {
    layers.emplace_back(new comm_layer(specs[i]));
    comm_layer &l = *layers.back();
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = specs[i].k;
    cfg.algo = specs[i].algo;
    cfg.accumulate = specs[i].accumulate;
    cfg.dynamic_k = specs[i].dynamic_k;
    cfg.delta_k = 4.0;
    l.accum = make_data(dist::normal, specs[i].n, 300 + i);
    l.d_accum.upload(l.accum);
    ASSERT_EQ(mcgqSuccess, mcgqKStateInit(&cfg, &l.ks));
    l.d_ks.upload({l.ks});
    mcgqLayer_t h;
    std::memset(&h, 0, sizeof h);
    h.struct_size = sizeof h;
    h.n = specs[i].n;
    h.cfg = cfg;
    mcgqLayer_t d = h;
    h.grad = l.grad.data();  // set again below: grad is filled every step
    d.grad = l.d_grad.p;
    if (cfg.accumulate != MCGQ_ACCUM_NONE) {
      h.accum = l.accum.data();
      d.accum = l.d_accum.p;
    }
    if (cfg.dynamic_k) {
      h.kstate = &l.ks;
      d.kstate = l.d_ks.p;
    }
    host_tab[i] = h;
    dev_tab[i] = d;
  }
  for (int i = 0; i < L; ++i) layers[i]->grad.assign(specs[i].n, 0.0f);
  for (int i = 0; i < L; ++i) host_tab[i].grad = layers[i]->grad.data();
  ASSERT_EQ(mcgqSuccess, mcgqCommSetLayers(host_comm, host_tab.data(), L))
      << mcgqCommGetLastError(host_comm);
  ASSERT_EQ(mcgqSuccess, mcgqCommSetLayers(dev_comm, dev_tab.data(), L))
      << mcgqCommGetLastError(dev_comm);
  ASSERT_EQ(mcgqSuccess, mcgqCommSetExchangeMode(host_comm, mode))
      << mcgqCommGetLastError(host_comm);
  ASSERT_EQ(mcgqSuccess, mcgqCommSetExchangeMode(dev_comm, mode))
      << mcgqCommGetLastError(dev_comm);

  const uint64_t seed = 2026;
  for (uint64_t step = 0; step < 5; ++step) {
    const bool nan_step = step == 3;
    const std::string what = "step " + std::to_string(step);
    for (int i = 0; i < L; ++i) {
      comm_layer &l = *layers[i];
      std::vector<float> g = make_data(specs[i].data, specs[i].n, 40 * (uint32_t)step + i);
      if (nan_step && i == 2) g[1234] = NAN;
      std::memcpy(l.grad.data(), g.data(), g.size() * sizeof(float));  // keeps the pointer
      l.d_grad.upload(g);
    }
    // what a refused step must leave (the gradients included)
    std::vector<std::vector<float>> grad0(L), acc0(L);
    std::vector<mcgqKState_t> ks0(L);
    for (int i = 0; i < L; ++i) {
      grad0[i] = layers[i]->grad;
      acc0[i] = layers[i]->accum;
      ks0[i] = layers[i]->ks;
    }
    mcgqStepStats_t hs, ds;
    mcgqResult_t hr = mcgqCommStep(host_comm, step, seed, nullptr, &hs);
    mcgqResult_t dr = mcgqCommStep(dev_comm, step, seed, stream, &ds);
    CUDA_OK(cudaStreamSynchronize(stream));
    ASSERT_EQ(nan_step ? mcgqNonFinite : mcgqSuccess, hr)
        << what << ": " << mcgqCommGetLastError(host_comm);
    ASSERT_EQ(hr, dr) << what << ": " << mcgqCommGetLastError(dev_comm);
    EXPECT_EQ(hs.found_nonfinite, ds.found_nonfinite) << what;
    EXPECT_EQ(hs.bytes_sent, ds.bytes_sent) << what;
    EXPECT_EQ(hs.elements, ds.elements) << what;
    expect_comm_state_equal(layers, what);
    if (nan_step) {
      EXPECT_EQ(1, ds.found_nonfinite);
      for (int i = 0; i < L; ++i) {
        const comm_layer &l = *layers[i];
        const std::string w = what + " layer " + std::to_string(i);
        EXPECT_TRUE(same_bits(grad0[i], l.d_grad.download(specs[i].n))) << w;
        if (specs[i].accumulate != MCGQ_ACCUM_NONE) {
          EXPECT_TRUE(same_bits(acc0[i], l.d_accum.download(specs[i].n))) << w;
        }
        if (specs[i].dynamic_k) {
          EXPECT_TRUE(same_kstate(ks0[i], l.d_ks.download(1)[0])) << w;
        }
      }
    }
    if (::testing::Test::HasFatalFailure()) break;
    // the owner-side accumulators (two-stage): host copies, bit for bit
    uint64_t host_owner = 0, dev_owner = 0;
    ASSERT_EQ(mcgqSuccess, mcgqCommGetOwnerStateSize(host_comm, &host_owner));
    ASSERT_EQ(mcgqSuccess, mcgqCommGetOwnerStateSize(dev_comm, &dev_owner));
    ASSERT_EQ(host_owner, dev_owner) << what;
    if (mode == MCGQ_EXCHANGE_TWO_STAGE) {
      EXPECT_GT(dev_owner, 0u) << what;
    }
    if (host_owner > 0) {
      std::vector<float> ho(host_owner), dv(dev_owner);
      ASSERT_EQ(mcgqSuccess, mcgqCommGetOwnerState(host_comm, ho.data(), host_owner));
      ASSERT_EQ(mcgqSuccess, mcgqCommGetOwnerState(dev_comm, dv.data(), dev_owner))
          << mcgqCommGetLastError(dev_comm);
      EXPECT_TRUE(same_bits(ho, dv)) << what << ": owner state";
    }
  }
  EXPECT_GT(dev_t.calls, 0);
  mcgqCommDestroy(host_comm);
  mcgqCommDestroy(dev_comm);
  cudaStreamDestroy(stream);
}

}  // namespace

// The all-gather step (dynamic K included).
TEST(GpuDeviceCodec, CallbackStepMatchesHostCodec) {
  MCGQ_REQUIRE_GPU();
  run_codec_steps(MCGQ_EXCHANGE_ALL_GATHER);
}

// The sharded steps over the device codec (prepare_messages with deferred
// accumulators, device staging and owner state, the all-to-all on device
// buffers): with one rank every layer is one shard, so the owner's message
// is the whole table, decoded, re-encoded with the owner-side accumulator
// (two-stage) and committed, against the host codec's bits.
TEST(GpuDeviceCodec, ReduceScatterMatchesHostCodec) {
  MCGQ_REQUIRE_GPU();
  run_codec_steps(MCGQ_EXCHANGE_REDUCE_SCATTER);
}

TEST(GpuDeviceCodec, TwoStageMatchesHostCodec) {
  MCGQ_REQUIRE_GPU();
  run_codec_steps(MCGQ_EXCHANGE_TWO_STAGE);
}
