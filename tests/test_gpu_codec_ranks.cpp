// test_gpu_codec_ranks.cpp - the exchange's device codec as one rank of two:
// rank 0 runs mcgqCommStep on the GPU (callbacks, payload_on_device = 1),
// rank 1 on the CPU (the host codec), each on its own thread, joined by an
// in-process transport.  The same steps are run again with both ranks on
// the CPU; rank 0's results (gradients, accumulators, owner-side state)
// must be the same bits both times, and in the all-reduce modes equal to
// rank 1's.  With two ranks the sharded modes cut every layer in two, so
// this covers what the one-rank tests cannot: several shard messages per
// rank, their packing and displacements in the all-to-all, and the owner
// of a shard being the other rank.  Non-finite consensus crosses the two
// codecs: a NaN on rank 1 only refuses the step on both.
//
// Only rank 0's thread calls CUDA (the simulator's runtime is not
// thread-safe); the transport copies device payloads through host staging.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gpu_support.hpp"
#include "mcgq.h"

using namespace gpu_test;

namespace {

constexpr int kRanks = 2;

// A barrier and the pointers each rank publishes for the collective at hand.
struct group {
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  const void *data[kRanks] = {};
  const size_t *counts[kRanks] = {};
  const size_t *displs[kRanks] = {};
  int32_t value[kRanks] = {};

  void barrier() {
    std::unique_lock<std::mutex> lock(m);
    const uint64_t gen = generation;
    if (++arrived == kRanks) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
  }
};

struct member {
  member(group *g_, int rank_, int on_device_, cudaStream_t stream_, int device_blocks_ = 0)
      : g(g_), rank(rank_), on_device(on_device_), stream(stream_),
        device_blocks(device_blocks_) {}
  group *g;
  int rank;
  int on_device;
  cudaStream_t stream;
  int device_blocks;  // gives allgather_device: the step blocks stay on the device
  std::vector<char> send_stage, recv_stage;  // device payloads pass through these
  int failed = 0;                            // a CUDA call of the transport failed
};

// The payload this rank publishes: its send buffer, or a host copy of it.
const void *publish(member *t, const void *send, size_t bytes) {
  if (!t->on_device) return send;
  t->send_stage.resize(bytes + 1);
  if (cudaStreamSynchronize(t->stream) != cudaSuccess ||
      (bytes && cudaMemcpy(t->send_stage.data(), send, bytes, cudaMemcpyDeviceToHost) !=
                    cudaSuccess))
    t->failed = 1;
  return t->send_stage.data();
}

// Where this rank's received payload is assembled, and its delivery.
char *receive_area(member *t, void *recv, size_t bytes) {
  if (!t->on_device) return static_cast<char *>(recv);
  t->recv_stage.assign(bytes + 1, 0);
  return t->recv_stage.data();
}

void deliver(member *t, void *recv, size_t bytes) {
  if (t->on_device && bytes &&
      cudaMemcpy(recv, t->recv_stage.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess)
    t->failed = 1;
}

int32_t status_of(const member *t) { return t->failed ? mcgqCudaError : mcgqSuccess; }

int32_t t_allgather(void *user, const void *send, void *recv, size_t bytes) {
  member *t = static_cast<member *>(user);
  t->g->data[t->rank] = send;  // blocks are host memory on every transport
  t->g->barrier();
  for (int r = 0; r < kRanks; ++r)
    std::memcpy(static_cast<char *>(recv) + r * bytes, t->g->data[r], bytes);
  t->g->barrier();
  return mcgqSuccess;
}

size_t extent(const size_t *counts, const size_t *displs) {
  size_t end = 0;
  for (int r = 0; r < kRanks; ++r) end = std::max(end, displs[r] + counts[r]);
  return end;
}

int32_t t_allgatherv(void *user, const void *send, size_t send_bytes, void *recv,
                     const size_t *counts, const size_t *displs) {
  member *t = static_cast<member *>(user);
  t->g->data[t->rank] = publish(t, send, send_bytes);
  t->g->barrier();
  const size_t total = extent(counts, displs);
  char *out = receive_area(t, recv, total);
  for (int r = 0; r < kRanks; ++r) std::memcpy(out + displs[r], t->g->data[r], counts[r]);
  t->g->barrier();
  deliver(t, recv, total);
  return status_of(t);
}

// The step blocks on the device (allgather_device): allgatherv's path with
// equal counts.
int32_t t_allgather_device(void *user, const void *send, void *recv, size_t bytes) {
  size_t counts[kRanks], displs[kRanks];
  for (int r = 0; r < kRanks; ++r) {
    counts[r] = bytes;
    displs[r] = (size_t)r * bytes;
  }
  return t_allgatherv(user, send, bytes, recv, counts, displs);
}

int32_t t_allreduce_max(void *user, int32_t *value) {
  member *t = static_cast<member *>(user);
  t->g->value[t->rank] = *value;
  t->g->barrier();
  for (int r = 0; r < kRanks; ++r) *value = std::max(*value, t->g->value[r]);
  t->g->barrier();
  return mcgqSuccess;
}

int32_t t_alltoallv(void *user, const void *send, const size_t *send_counts,
                    const size_t *send_displs, void *recv, const size_t *recv_counts,
                    const size_t *recv_displs) {
  member *t = static_cast<member *>(user);
  group *g = t->g;
  g->data[t->rank] = publish(t, send, extent(send_counts, send_displs));
  g->counts[t->rank] = send_counts;
  g->displs[t->rank] = send_displs;
  g->barrier();
  const size_t total = extent(recv_counts, recv_displs);
  char *out = receive_area(t, recv, total);
  for (int r = 0; r < kRanks; ++r) {
    if (g->counts[r][t->rank] != recv_counts[r]) t->failed = 1;
    std::memcpy(out + recv_displs[r],
                static_cast<const char *>(g->data[r]) + g->displs[r][t->rank],
                recv_counts[r]);
  }
  g->barrier();
  deliver(t, recv, total);
  return status_of(t);
}

mcgqComm_t make_comm(member *t) {
  mcgqTransportCallbacks_t cb;
  std::memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.payload_on_device = t->on_device;
  cb.user = t;
  cb.allgather = t_allgather;
  cb.allgatherv = t_allgatherv;
  cb.allreduce_max_int = t_allreduce_max;
  cb.alltoallv = t_alltoallv;
  if (t->device_blocks) cb.allgather_device = t_allgather_device;
  mcgqComm_t comm = nullptr;
  if (mcgqCommInitCallbacks(&comm, t->rank, kRanks, &cb) != mcgqSuccess) return nullptr;
  return comm;
}

struct spec {
  uint64_t n;
  int32_t accumulate;
  double k;
  dist data;
};

const std::vector<spec> kMixed = {
    {3001, MCGQ_ACCUM_RESIDUAL, 0.2, dist::normal},  // odd n: unequal shards
    {2, MCGQ_ACCUM_RESET, 1.0, dist::heavy},         // one element per shard
    {1, MCGQ_ACCUM_RESIDUAL, 1.0, dist::normal},     // an empty shard (rank 0's)
    {4096, MCGQ_ACCUM_NONE, 0.1, dist::sparse},
};
// Only one-element layers: rank 0 owns no shard at all (its message to
// itself and its share of the all-to-all are empty).
const std::vector<spec> kTiny = {
    {1, MCGQ_ACCUM_RESIDUAL, 1.0, dist::normal},
    {1, MCGQ_ACCUM_RESET, 2.0, dist::heavy},
};
constexpr int kSteps = 5;
// A NaN in one rank's gradient only: rank 1's (the host rank) at step 2,
// rank 0's (the device rank: its encode status decides) at step 3.
constexpr int kNanStep = 2;
int nan_rank(int step) { return step == kNanStep ? 1 : step == kNanStep + 1 ? 0 : -1; }

// What one rank holds after every step: gradients, accumulators, owner state.
struct rank_trace {
  std::vector<mcgqResult_t> status;
  std::vector<std::vector<float>> grads, accums, owner;  // [step]
};

// A 16-bit gradient in a float buffer of n values: the n bf16 (top halves)
// or binary16 values in its first 2n bytes, zeros after, so that the trace
// compares whole buffers whatever the dtype.
std::vector<float> pack_input(const std::vector<float> &g, int32_t dtype) {
  if (dtype == MCGQ_DTYPE_F32) return g;
  std::vector<float> out(g.size(), 0.0f);
  uint16_t *h = reinterpret_cast<uint16_t *>(out.data());
  for (size_t k = 0; k < g.size(); ++k) {
    uint32_t b;
    std::memcpy(&b, &g[k], sizeof b);
    if (dtype == MCGQ_DTYPE_BF16) {
      h[k] = (uint16_t)(b >> 16);
    } else {  // binary16 of |g| clamped to [2^-14, 2^15): exponent and 10 mantissa bits
      int e = (int)((b >> 23) & 0xff) - 127;
      e = e < -14 ? -14 : (e > 15 ? 15 : e);
      h[k] = (uint16_t)((b >> 31) << 15 | (uint32_t)(e + 15) << 10 | ((b >> 13) & 0x3ff));
      if (g[k] == 0.0f) h[k] = 0;
      if (g[k] != g[k]) h[k] = 0x7e00;  // NaN stays NaN
    }
  }
  return out;
}

// One rank's steps; its layers live on the device when on_device.
void run_rank(member *t, int32_t mode, const std::vector<spec> *layers, int32_t dtype,
              rank_trace *out, std::string *error) {
  const std::vector<spec> &kLayers = *layers;
  const int kLayerCount = (int)kLayers.size();
  auto fail = [&](const std::string &what) {
    if (error->empty()) *error = "rank " + std::to_string(t->rank) + ": " + what;
  };
  mcgqComm_t comm = make_comm(t);
  if (!comm) return fail(std::string("mcgqCommInitCallbacks: ") + mcgqGetLastErrorDetail());
  std::vector<std::vector<float>> grad(kLayerCount), accum(kLayerCount);
  std::vector<dbuf<float> *> d_grad, d_accum;
  std::vector<mcgqLayer_t> table(kLayerCount);
  for (int i = 0; i < kLayerCount; ++i) {
    const spec &s = kLayers[i];
    grad[i].assign(s.n, 0.0f);
    accum[i] = make_data(dist::normal, s.n, 900 + 10 * i + t->rank);
    mcgqLayer_t &l = table[i];
    std::memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.n = s.n;
    l.cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    l.cfg.k = s.k;
    l.cfg.accumulate = s.accumulate;
    l.cfg.dtype = dtype;
    if (t->on_device) {
      d_grad.push_back(new dbuf<float>(s.n));
      d_accum.push_back(new dbuf<float>(s.n));
      d_accum.back()->upload(accum[i]);
      l.grad = d_grad.back()->p;
      if (s.accumulate != MCGQ_ACCUM_NONE) l.accum = d_accum.back()->p;
    } else {
      l.grad = grad[i].data();
      if (s.accumulate != MCGQ_ACCUM_NONE) l.accum = accum[i].data();
    }
  }
  // Both ranks always make the same calls (a refusal is every rank's).
  if (mcgqCommSetLayers(comm, table.data(), kLayerCount) != mcgqSuccess)
    fail(std::string("mcgqCommSetLayers: ") + mcgqCommGetLastError(comm));
  if (mcgqCommSetExchangeMode(comm, mode) != mcgqSuccess)
    fail(std::string("mcgqCommSetExchangeMode: ") + mcgqCommGetLastError(comm));
  for (int step = 0; step < kSteps; ++step) {  // in lockstep, errors or not
    for (int i = 0; i < kLayerCount; ++i) {
      std::vector<float> g =
          make_data(kLayers[i].data, kLayers[i].n, 100 * step + 10 * i + t->rank);
      if (nan_rank(step) == t->rank && i == 0) g[g.size() / 2] = NAN;
      g = pack_input(g, dtype);
      if (t->on_device)
        d_grad[i]->upload(g);
      else
        std::memcpy(grad[i].data(), g.data(), g.size() * sizeof(float));
    }
    out->status.push_back(
        mcgqCommStep(comm, (uint64_t)step, 77, t->on_device ? t->stream : nullptr, nullptr));
    if (t->on_device && cudaStreamSynchronize(t->stream) != cudaSuccess)
      fail("cudaStreamSynchronize");
    std::vector<float> grads, accums;
    for (int i = 0; i < kLayerCount; ++i) {
      std::vector<float> g = t->on_device ? d_grad[i]->download(kLayers[i].n) : grad[i];
      std::vector<float> a = t->on_device ? d_accum[i]->download(kLayers[i].n) : accum[i];
      grads.insert(grads.end(), g.begin(), g.end());
      accums.insert(accums.end(), a.begin(), a.end());
    }
    out->grads.push_back(grads);
    out->accums.push_back(accums);
    uint64_t owner_n = 0;
    std::vector<float> owner;
    if (mcgqCommGetOwnerStateSize(comm, &owner_n) == mcgqSuccess && owner_n) {
      owner.resize(owner_n);
      if (mcgqCommGetOwnerState(comm, owner.data(), owner_n) != mcgqSuccess)
        fail(std::string("mcgqCommGetOwnerState: ") + mcgqCommGetLastError(comm));
    }
    out->owner.push_back(owner);
  }
  mcgqCommDestroy(comm);
  for (auto *b : d_grad) delete b;
  for (auto *b : d_accum) delete b;
}

// Rank 0 on this thread (on the device if asked), rank 1 on a host thread.
void run_pair(int32_t mode, const std::vector<spec> &layers, int32_t dtype,
              bool rank0_on_device, bool device_blocks, cudaStream_t stream,
              rank_trace out[2], std::string errors[2]) {
  group g;
  member m0{&g, 0, rank0_on_device ? 1 : 0, stream, device_blocks ? 1 : 0};
  member m1{&g, 1, 0, nullptr};
  std::thread other(run_rank, &m1, mode, &layers, dtype, &out[1], &errors[1]);
  run_rank(&m0, mode, &layers, dtype, &out[0], &errors[0]);
  other.join();
}

void expect_same(const rank_trace &a, const rank_trace &b, const std::string &what) {
  ASSERT_EQ(a.status, b.status) << what;
  for (int s = 0; s < kSteps; ++s) {
    const std::string at = what + ", step " + std::to_string(s);
    EXPECT_TRUE(same_bits(a.grads[s], b.grads[s])) << at << ": gradients";
    EXPECT_TRUE(same_bits(a.accums[s], b.accums[s])) << at << ": accumulators";
    EXPECT_TRUE(same_bits(a.owner[s], b.owner[s])) << at << ": owner state";
  }
}

// device_blocks: rank 0 gathers the step blocks on the device
// (allgather_device: the agreement's one host wait); else through host
// memory (a wait for the encode status, one for the blocks).
void check_mode(int32_t mode, const char *name,
                const std::vector<spec> &layers = kMixed,
                int32_t dtype = MCGQ_DTYPE_F32, bool device_blocks = true) {
  cudaStream_t stream = nullptr;  // the simulator's cudaStreamQuery needs a real one
  ASSERT_EQ(cudaSuccess, cudaStreamCreate(&stream));
  rank_trace dev[2], host[2];
  std::string dev_err[2], host_err[2];
  run_pair(mode, layers, dtype, true, device_blocks, stream, dev, dev_err);
  run_pair(mode, layers, dtype, false, false, nullptr, host, host_err);
  cudaStreamDestroy(stream);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ("", dev_err[r]) << name;
    ASSERT_EQ("", host_err[r]) << name;
  }
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(nan_rank(s) >= 0 ? mcgqNonFinite : mcgqSuccess, dev[0].status[s])
        << name << ", step " << s;
  }
  expect_same(dev[0], host[0], std::string(name) + ", rank 0 on the GPU vs the CPU");
  expect_same(dev[1], host[1], std::string(name) + ", rank 1 beside a GPU rank 0");
  if (mode != MCGQ_EXCHANGE_REDUCE_SCATTER) {
    for (int s = 0; s < kSteps; ++s) {  // (a refused step leaves each rank its input)
      if (nan_rank(s) >= 0) continue;
      EXPECT_TRUE(same_bits(dev[0].grads[s], dev[1].grads[s]))
          << name << ", step " << s << ": the ranks' averages differ";
    }
  }
  if (mode == MCGQ_EXCHANGE_TWO_STAGE) {  // some rank owns shards (kTiny: rank 1 only)
    EXPECT_FALSE(dev[0].owner.back().empty() && dev[1].owner.back().empty()) << name;
  }
  // the refused step changed nothing on either rank
  for (int r = 0; r < 2; ++r) {
    for (int s = kNanStep; s <= kNanStep + 1; ++s) {
      EXPECT_TRUE(same_bits(dev[r].accums[kNanStep - 1], dev[r].accums[s])) << name;
      EXPECT_TRUE(same_bits(dev[r].owner[kNanStep - 1], dev[r].owner[s])) << name;
    }
  }
}

}  // namespace

TEST(GpuCodecTwoRanks, AllGatherMatchesHostRanks) {
  MCGQ_REQUIRE_GPU();
  check_mode(MCGQ_EXCHANGE_ALL_GATHER, "all-gather");
}

// The same without allgather_device: the blocks go through host memory.
TEST(GpuCodecTwoRanks, AllGatherHostBlocksMatchesHostRanks) {
  MCGQ_REQUIRE_GPU();
  check_mode(MCGQ_EXCHANGE_ALL_GATHER, "all-gather, host blocks", kMixed,
             MCGQ_DTYPE_F32, false);
}

TEST(GpuCodecTwoRanks, ReduceScatterMatchesHostRanks) {
  MCGQ_REQUIRE_GPU();
  check_mode(MCGQ_EXCHANGE_REDUCE_SCATTER, "reduce-scatter");
}

TEST(GpuCodecTwoRanks, TwoStageMatchesHostRanks) {
  MCGQ_REQUIRE_GPU();
  check_mode(MCGQ_EXCHANGE_TWO_STAGE, "two-stage");
}

TEST(GpuCodecTwoRanks, OwnerWithoutShardsMatchesHostRanks) {
  MCGQ_REQUIRE_GPU();
  check_mode(MCGQ_EXCHANGE_REDUCE_SCATTER, "reduce-scatter, no shard on rank 0", kTiny);
  check_mode(MCGQ_EXCHANGE_TWO_STAGE, "two-stage, no shard on rank 0", kTiny);
}

// 16-bit gradients (all-gather mode): the device codec's typed decode
// writes what the host codec's per-layer rounding writes.
TEST(GpuCodecTwoRanks, AllGatherSixteenBitMatchesHostRanks) {
  MCGQ_REQUIRE_GPU();
  check_mode(MCGQ_EXCHANGE_ALL_GATHER, "all-gather, bf16", kMixed, MCGQ_DTYPE_BF16);
  check_mode(MCGQ_EXCHANGE_ALL_GATHER, "all-gather, binary16", kMixed, MCGQ_DTYPE_F16);
}

// A device communicator decodes its table in one typed pass: a table of
// mixed gradient dtypes is refused, and the table before it stays.
TEST(GpuCodecTwoRanks, DeviceTableOfMixedDtypesIsRefused) {
  MCGQ_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaSuccess, cudaStreamCreate(&stream));
  group g;
  member m{&g, 0, 1, stream};
  mcgqComm_t comm = make_comm(&m);
  ASSERT_NE(comm, nullptr);
  dbuf<float> a(64), b(64);
  mcgqLayer_t layers[2];
  for (int i = 0; i < 2; ++i) {
    std::memset(&layers[i], 0, sizeof layers[i]);
    layers[i].struct_size = sizeof layers[i];
    layers[i].grad = i == 0 ? a.p : b.p;
    layers[i].n = 64;
    layers[i].cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  }
  ASSERT_EQ(mcgqCommSetLayers(comm, layers, 2), mcgqSuccess) << mcgqCommGetLastError(comm);
  layers[1].cfg.dtype = MCGQ_DTYPE_F16;
  EXPECT_EQ(mcgqCommSetLayers(comm, layers, 2), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("one gradient dtype per table"),
            std::string::npos)
      << mcgqCommGetLastError(comm);
  layers[0].cfg.dtype = MCGQ_DTYPE_F16;  // one dtype: accepted
  EXPECT_EQ(mcgqCommSetLayers(comm, layers, 2), mcgqSuccess) << mcgqCommGetLastError(comm);
  mcgqCommDestroy(comm);
  cudaStreamDestroy(stream);
}
