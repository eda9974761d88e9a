// MPI exchange (DESIGN.md section 5) under mpirun: the communicator's step
// (the library's one protocol, over the MPI transport and over the callback
// transport)
// against a single-process simulation of the same P workers built only from
// the public CPU reference (mcgqEncodeHost per simulated rank with the same
// u, then mcgqDecodeAverageHost), and the failure protocol (table mismatch,
// non-finite on one rank) on every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mcgq.h"
#include "mcgq_mpi.h"
#include "support/mpi_worker.hpp"

namespace {

using mcgq_test::fnv;
using mcgq_test::gather;
using mcgq_test::grad_value;
using mcgq_test::world_rank;
using mcgq_test::world_size;

// Deterministic gradient of (rank, step, layer) (support/mpi_worker.hpp).
std::vector<float> make_grad(int rank, uint64_t step, int layer, uint64_t n,
                             float amp) {
  std::vector<float> g(n);
  for (uint64_t k = 0; k < n; ++k) g[k] = grad_value(rank, step, (size_t)layer, k, amp);
  return g;
}

// One worker's state for a layer table: gradients, accumulators, K state.
struct LayerSpec {
  uint64_t n;
  int32_t accumulate;
  int32_t dynamic_k;
  double k;
  float amp;
};

struct Worker {
  std::vector<LayerSpec> spec;
  std::vector<std::vector<float>> grad, accum;
  std::vector<mcgqKState_t> kstate;

  explicit Worker(const std::vector<LayerSpec> &s) : spec(s) {
    grad.resize(s.size());
    accum.resize(s.size());
    kstate.resize(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      grad[i].assign(s[i].n, 0.0f);
      if (s[i].accumulate != MCGQ_ACCUM_NONE) accum[i].assign(s[i].n, 0.0f);
      mcgqLayerConfig_t cfg = config(i);
      EXPECT_EQ(mcgqKStateInit(&cfg, &kstate[i]), mcgqSuccess);
    }
  }
  mcgqLayerConfig_t config(size_t i) const {
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = spec[i].k;
    cfg.accumulate = spec[i].accumulate;
    cfg.dynamic_k = spec[i].dynamic_k;
    cfg.k_min = 0.05;
    cfg.k_max = 2.0;
    cfg.delta_k = 0.5;
    return cfg;
  }
  void load(int rank, uint64_t step) {
    // In place: the communicator keeps pointers to these buffers.
    for (size_t i = 0; i < spec.size(); ++i) {
      auto g = make_grad(rank, step, (int)i, spec[i].n, spec[i].amp);
      std::copy(g.begin(), g.end(), grad[i].begin());
    }
  }
  std::vector<mcgqLayer_t> comm_layers() {
    std::vector<mcgqLayer_t> out(spec.size());
    for (size_t i = 0; i < spec.size(); ++i) {
      mcgqLayer_t &l = out[i];
      std::memset(&l, 0, sizeof l);
      l.struct_size = sizeof(mcgqLayer_t);
      l.grad = grad[i].data();
      l.accum = accum[i].empty() ? nullptr : accum[i].data();
      l.kstate = spec[i].dynamic_k ? &kstate[i] : nullptr;
      l.n = spec[i].n;
      l.cfg = config(i);
    }
    return out;
  }
  std::vector<mcgqLayerDesc_t> descs(uint64_t seed, uint64_t step, int rank) {
    std::vector<mcgqLayerDesc_t> out(spec.size());
    for (size_t i = 0; i < spec.size(); ++i) {
      mcgqLayerDescInit(&out[i]);
      out[i].u = mcgqRandomWord(seed, step, (uint32_t)i, (uint32_t)rank);
      out[i].g = grad[i].data();
      out[i].accum = accum[i].empty() ? nullptr : accum[i].data();
      out[i].kstate = spec[i].dynamic_k ? &kstate[i] : nullptr;
      out[i].n = spec[i].n;
      out[i].cfg = config(i);
    }
    return out;
  }
  uint64_t hash() const {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < spec.size(); ++i) {
      h = fnv(grad[i].data(), grad[i].size() * sizeof(float), h);
      h = fnv(accum[i].data(), accum[i].size() * sizeof(float), h);
      h = fnv(&kstate[i], sizeof(mcgqKState_t), h);
    }
    return h;
  }
};

// Mixed table: every accumulation mode, a dynamic-K layer, a tiny layer.
std::vector<LayerSpec> mixed_table() {
  return {{1000, MCGQ_ACCUM_NONE, 0, 0.5, 1.0f},
          {37, MCGQ_ACCUM_RESET, 0, 0.3, 0.01f},
          {4096, MCGQ_ACCUM_RESIDUAL, 0, 0.1, 3.0f},
          {513, MCGQ_ACCUM_RESIDUAL, 1, 0.2, 0.5f},
          {1, MCGQ_ACCUM_NONE, 0, 1.0, 2.0f}};
}

struct CommGuard {
  mcgqComm_t comm = nullptr;
  CommGuard() { EXPECT_EQ(mcgqCommInitMpi(&comm, MPI_COMM_WORLD), mcgqSuccess); }
  ~CommGuard() {
    if (comm) mcgqCommDestroy(comm);
  }
};

TEST(CommMpi, RankAndSize) {
  CommGuard c;
  int rank = -1, nranks = -1;
  ASSERT_EQ(mcgqCommGetRank(c.comm, &rank, &nranks), mcgqSuccess);
  EXPECT_EQ(rank, world_rank());
  EXPECT_EQ(nranks, world_size());
}

// The step equals the simulation of P workers bit for bit, over several steps
// so accumulators and dynamic K evolve; every rank ends bit-identical.
TEST(CommMpi, MatchesSimulationBitForBit) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 0x1234abcdull;
  auto table = mixed_table();
  Worker real(table);
  std::vector<Worker> sim(P, Worker(table));
  CommGuard c;
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  uint64_t total_n = 0;
  for (auto &s : table) total_n += s.n;

  for (uint64_t step = 0; step < 6; ++step) {
    real.load(me, step);
    mcgqStepStats_t st;
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, &st), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    EXPECT_EQ(st.found_nonfinite, 0);
    EXPECT_EQ(st.elements, total_n);

    // Simulation: P independent encodes, then the reference average.
    std::vector<std::vector<unsigned char>> msgs(P);
    std::vector<const void *> ptrs(P);
    std::vector<size_t> sizes(P);
    for (int r = 0; r < P; ++r) {
      sim[r].load(r, step);
      auto d = sim[r].descs(seed, step, r);
      size_t cap = 0;
      ASSERT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), (int)d.size(), &cap), mcgqSuccess);
      msgs[r].resize(cap);
      ASSERT_EQ(mcgqEncodeHost(d.data(), (int)d.size(), msgs[r].data(), cap, &sizes[r], nullptr),
                mcgqSuccess)
          << mcgqGetLastErrorDetail();
      ptrs[r] = msgs[r].data();
    }
    EXPECT_EQ(st.bytes_sent, sizes[me]);
    EXPECT_DOUBLE_EQ(st.wire_ratio, 4.0 * (double)total_n / (double)sizes[me]);
    std::vector<float> avg(total_n);
    ASSERT_EQ(mcgqDecodeAverageHost(ptrs.data(), sizes.data(), P, avg.data(), total_n),
              mcgqSuccess);
    size_t off = 0;
    for (size_t i = 0; i < table.size(); ++i) {
      ASSERT_EQ(std::memcmp(real.grad[i].data(), avg.data() + off, table[i].n * sizeof(float)), 0)
          << "step " << step << " layer " << i;
      off += table[i].n;
      EXPECT_EQ(real.accum[i], sim[me].accum[i]) << "accumulator, step " << step << " layer " << i;
      EXPECT_EQ(std::memcmp(&real.kstate[i], &sim[me].kstate[i], sizeof(mcgqKState_t)), 0)
          << "K state, step " << step << " layer " << i;
    }
    // Averaged gradients are equal on all ranks (accumulators are per rank).
    uint64_t h = 1469598103934665603ull;
    for (auto &g : real.grad) h = fnv(g.data(), g.size() * sizeof(float), h);
    for (uint64_t other : gather(h)) EXPECT_EQ(other, h) << "step " << step;
  }
  std::vector<mcgqLayerStats_t> ls(table.size());
  ASSERT_EQ(mcgqCommGetLayerStats(c.comm, ls.data(), (int)ls.size()), mcgqSuccess);
  for (size_t i = 0; i < table.size(); ++i) EXPECT_EQ(ls[i].n, table[i].n);
  EXPECT_NE(mcgqCommGetLayerStats(c.comm, ls.data(), (int)ls.size() + 1), mcgqSuccess);
}

// A table that differs on one rank fails on every rank before any payload
// moves, and nothing changes anywhere.
TEST(CommMpi, LayerTableMismatchFailsEverywhere) {
  const int P = world_size(), me = world_rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  // What the last rank gets wrong, and a word of the message every rank gives.
  const char *expected[] = {"layer tables differ", "layer tables differ", "layer tables differ",
                            "layer settings differ", "layer settings differ",
                            "layer settings differ", "step counters differ"};
  for (int variant = 0; variant < 7; ++variant) {
    auto table = mixed_table();
    const bool odd_one = me == P - 1;
    if (odd_one) {
      if (variant == 0) table[2].n += 1;                          // an n
      if (variant == 1) table.pop_back();                         // the count
      if (variant == 2) table[0].accumulate = MCGQ_ACCUM_RESET;   // a mode
      if (variant == 3) table[1].k *= 2.0;                        // a layer's K
    }
    Worker w(table);
    w.load(me, 0);
    uint64_t before = w.hash();
    CommGuard c;
    auto layers = w.comm_layers();
    if (odd_one && variant == 4) layers[0].cfg.checksum = 1;       // the checksum flag
    if (odd_one && variant == 5) layers[1].cfg.samples = 7;        // N given directly
    ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
    const uint64_t step = odd_one && variant == 6 ? 1 : 0;         // one step ahead
    EXPECT_EQ(mcgqCommStep(c.comm, step, 1, nullptr, nullptr), mcgqInvalidUsage) << variant;
    EXPECT_NE(std::string(mcgqCommGetLastError(c.comm)).find(expected[variant]),
              std::string::npos)
        << variant << ": " << mcgqCommGetLastError(c.comm);
    EXPECT_EQ(w.hash(), before);
  }
}

// NaN on one rank: every rank returns mcgqNonFinite, found_nonfinite = 1, and
// no rank's gradients, accumulators or K state change; the next finite step
// works again.
TEST(CommMpi, NonFiniteOnOneRankChangesNothing) {
  const int P = world_size(), me = world_rank();
  auto table = mixed_table();
  Worker w(table);
  CommGuard c;
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  w.load(me, 0);
  ASSERT_EQ(mcgqCommStep(c.comm, 0, 9, nullptr, nullptr), mcgqSuccess);  // non-trivial state
  for (float bad : {NAN, INFINITY}) {
    w.load(me, 1);
    if (me == P - 1) w.grad[3][17] = bad;  // dynamic-K residual layer
    uint64_t before = w.hash();
    mcgqStepStats_t st;
    EXPECT_EQ(mcgqCommStep(c.comm, 1, 9, nullptr, &st), mcgqNonFinite);
    EXPECT_EQ(st.found_nonfinite, 1);
    EXPECT_EQ(w.hash(), before);
    EXPECT_NE(std::strlen(mcgqCommGetLastError(c.comm)), 0u);
  }
  w.load(me, 1);
  EXPECT_EQ(mcgqCommStep(c.comm, 1, 9, nullptr, nullptr), mcgqSuccess)
      << mcgqCommGetLastError(c.comm);
}

// The range rule across ranks (docs/FORMAT.md): every rank's message decodes
// finite alone, but their sum could overflow float32.  Every rank refuses the
// step with mcgqRangeError and nothing changes; at a smaller magnitude the
// same step succeeds with finite averages.
TEST(CommMpi, RangeOverflowAcrossRanksChangesNothing) {
  const int P = world_size();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  // [a, a] at K = 1: g_int = [1, 1], scale = a, so each rank's bound is a.
  std::vector<LayerSpec> table = {{2, MCGQ_ACCUM_RESIDUAL, 0, 1.0, 1.0f}};
  for (float a : {0.6f * FLT_MAX, 0.9f * FLT_MAX / (float)P}) {
    Worker w(table);
    CommGuard c;
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
    w.grad[0] = {a, a};
    uint64_t before = w.hash();
    mcgqResult_t res = mcgqCommStep(c.comm, 0, 3, nullptr, nullptr);
    if (a == 0.6f * FLT_MAX) {
      EXPECT_EQ(res, mcgqRangeError) << mcgqCommGetLastError(c.comm);
      EXPECT_EQ(w.hash(), before);
    } else {
      ASSERT_EQ(res, mcgqSuccess) << mcgqCommGetLastError(c.comm);
      EXPECT_TRUE(std::isfinite(w.grad[0][0]) && std::isfinite(w.grad[0][1]));
    }
    EXPECT_EQ(gather((uint64_t)res), std::vector<uint64_t>((size_t)P, (uint64_t)res));
  }
}

// Residual error feedback over 1000 steps: nothing is lost.  Per element,
//   sum_t g_t  =  sum_t scale_t * g_int_t  +  accum_T  +  rounding,
// because exactly, accum_t = accum_{t-1} + g_t - scale_t*g_int_t.  The library
// rounds twice per step: ag = fl(accum + g) (error <= 2^-24 |ag|) and
// accum' = fmaf(-scale, g_int, ag) (one rounding, error <= 2^-24 |accum'|),
// so |rounding| <= sum_t 2^-24 (|ag_t| + |accum'_t|), which the test
// accumulates.  The test's own double sums add at most 1000 * 2^-53 relative
// to the sum of magnitudes, bounded by 2^-40 * sum_t (|g_t| + |sent_t|).
TEST(CommMpi, ResidualErrorFeedbackLosesNothing) {
  const int me = world_rank();
  const uint64_t n = 96, seed = 77;
  std::vector<LayerSpec> table = {{n, MCGQ_ACCUM_RESIDUAL, 0, 0.1, 1.0f}};
  Worker w(table);
  CommGuard c;
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), 1), mcgqSuccess);
  std::vector<double> sum_in(n, 0.0), sum_sent(n, 0.0), bound(n, 0.0), mags(n, 0.0);
  std::vector<float> ag(n);
  std::vector<int32_t> g_int(n);
  for (uint64_t step = 0; step < 1000; ++step) {
    w.load(me, step);
    for (uint64_t k = 0; k < n; ++k) ag[k] = w.accum[0][k] + w.grad[0][k];
    // This rank's sent integers, by the quantizer alone (damped scale).
    mcgqLayerStats_t qs;
    uint32_t u = mcgqRandomWord(seed, step, 0, (uint32_t)me);
    ASSERT_EQ(mcgqQuantizeHost(ag.data(), n, 0.1, 0, u, 1, g_int.data(), &qs), mcgqSuccess);
    for (uint64_t k = 0; k < n; ++k) sum_in[k] += (double)w.grad[0][k];
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    for (uint64_t k = 0; k < n; ++k) {
      double sent = (double)qs.scale * (double)g_int[k];
      sum_sent[k] += sent;
      // Bit-exact commit rule of DESIGN.md section 2.
      ASSERT_EQ(w.accum[0][k], std::fmaf(-qs.scale, (float)g_int[k], ag[k])) << step;
      bound[k] += std::ldexp(std::fabs((double)ag[k]) + std::fabs((double)w.accum[0][k]), -24);
      mags[k] += std::fabs(sent) + std::fabs((double)w.grad[0][k]);
    }
  }
  for (uint64_t k = 0; k < n; ++k) {
    double err = std::fabs(sum_sent[k] + (double)w.accum[0][k] - sum_in[k]);
    EXPECT_LE(err, bound[k] + std::ldexp(mags[k], -40)) << "element " << k;
  }
}

// The paper's reset (Alg 4): an element not sampled keeps exactly its
// accumulated sum fl(accum + g); a sampled one restarts from 0.
TEST(CommMpi, PaperResetKeepsUnsampledSums) {
  const int me = world_rank();
  const uint64_t n = 300, seed = 5;
  std::vector<LayerSpec> table = {{n, MCGQ_ACCUM_RESET, 0, 0.05, 1.0f}};
  Worker w(table);
  CommGuard c;
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), 1), mcgqSuccess);
  std::vector<float> ag(n);
  std::vector<int32_t> g_int(n);
  uint64_t kept = 0, reset = 0;
  for (uint64_t step = 0; step < 50; ++step) {
    w.load(me, step);
    for (uint64_t k = 0; k < n; ++k) ag[k] = w.accum[0][k] + w.grad[0][k];
    mcgqLayerStats_t qs;
    uint32_t u = mcgqRandomWord(seed, step, 0, (uint32_t)me);
    ASSERT_EQ(mcgqQuantizeHost(ag.data(), n, 0.05, 0, u, 0, g_int.data(), &qs), mcgqSuccess);
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess);
    for (uint64_t k = 0; k < n; ++k) {
      if (g_int[k] == 0) {
        ASSERT_EQ(std::memcmp(&w.accum[0][k], &ag[k], sizeof(float)), 0) << step << " " << k;
        ++kept;
      } else {
        ASSERT_EQ(w.accum[0][k], 0.0f);
        ++reset;
      }
    }
  }
  EXPECT_GT(kept, 0u);
  EXPECT_GT(reset, 0u);
}

uint64_t grads_hash(const Worker &w) {
  uint64_t h = 1469598103934665603ull;
  for (auto &g : w.grad) h = fnv(g.data(), g.size() * sizeof(float), h);
  return h;
}

size_t align8(size_t x) { return (x + 7) / 8 * 8; }

// A capacity that holds every message (the bound, and the largest exact
// message of the step) cuts nothing: the step is bit for bit the exact-size
// step, every rank sends exactly `capacity` bytes.
TEST(CommMpi, FixedCapacityThatFitsEqualsExactSizes) {
  const int me = world_rank();
  const uint64_t seed = 99;
  auto table = mixed_table();
  for (int exact_fit = 0; exact_fit < 2; ++exact_fit) {
    Worker exact(table), fixed(table);
    CommGuard ce, cf;
    auto le = exact.comm_layers(), lf = fixed.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(ce.comm, le.data(), (int)le.size()), mcgqSuccess);
    ASSERT_EQ(mcgqCommSetLayers(cf.comm, lf.data(), (int)lf.size()), mcgqSuccess);
    for (uint64_t step = 0; step < 4; ++step) {
      exact.load(me, step);
      fixed.load(me, step);
      mcgqStepStats_t se, sf;
      ASSERT_EQ(mcgqCommStep(ce.comm, step, seed, nullptr, &se), mcgqSuccess)
          << mcgqCommGetLastError(ce.comm);
      size_t capacity = 0;
      if (exact_fit) {  // the largest message of this step, 8-aligned
        uint64_t most = 0;
        for (uint64_t b : gather(se.bytes_sent)) most = std::max(most, b);
        capacity = align8((size_t)most);
      } else {
        auto d = fixed.descs(seed, step, me);
        ASSERT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), (int)d.size(), &capacity), mcgqSuccess);
        capacity = align8(capacity);
      }
      ASSERT_EQ(mcgqCommSetCapacity(cf.comm, capacity), mcgqSuccess);
      ASSERT_EQ(mcgqCommStep(cf.comm, step, seed, nullptr, &sf), mcgqSuccess)
          << mcgqCommGetLastError(cf.comm);
      EXPECT_EQ(sf.bytes_sent, capacity);
      EXPECT_EQ(sf.layers_cut, 0);
      EXPECT_EQ(fixed.hash(), exact.hash()) << "step " << step << " exact_fit " << exact_fit;
    }
  }
}

// Collectives of the callback transport over MPI_COMM_WORLD that keep a copy
// of what the payload all-gather delivered, so the test sees the messages.
struct Recorder {
  std::vector<unsigned char> gathered;
  std::vector<size_t> counts, displs;
  int calls = 0;
};

int32_t rec_allgather(void *user, const void *send, void *recv, size_t bytes) {
  ++static_cast<Recorder *>(user)->calls;
  return MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                       MPI_COMM_WORLD) == MPI_SUCCESS ? mcgqSuccess : mcgqMpiError;
}
int32_t rec_allgatherv(void *user, const void *send, size_t send_bytes, void *recv,
                       const size_t *counts, const size_t *displs) {
  auto *r = static_cast<Recorder *>(user);
  ++r->calls;
  const int P = world_size();
  std::vector<int> c(P), d(P);
  for (int i = 0; i < P; ++i) {
    c[i] = (int)counts[i];
    d[i] = (int)displs[i];
  }
  int rc = MPI_Allgatherv(send, (int)send_bytes, MPI_BYTE, recv, c.data(), d.data(),
                          MPI_BYTE, MPI_COMM_WORLD);
  size_t total = displs[P - 1] + counts[P - 1];
  r->gathered.assign(static_cast<unsigned char *>(recv),
                     static_cast<unsigned char *>(recv) + total);
  r->counts.assign(counts, counts + P);
  r->displs.assign(displs, displs + P);
  return rc == MPI_SUCCESS ? mcgqSuccess : mcgqMpiError;
}
int32_t rec_allreduce_max(void *user, int32_t *value) {
  ++static_cast<Recorder *>(user)->calls;
  int32_t in = *value;
  return MPI_Allreduce(&in, value, 1, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD) == MPI_SUCCESS
             ? mcgqSuccess
             : mcgqMpiError;
}

mcgqComm_t recording_comm(Recorder *rec) {
  mcgqTransportCallbacks_t cb;
  std::memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.user = rec;
  cb.allgather = rec_allgather;
  cb.allgatherv = rec_allgatherv;
  cb.allreduce_max_int = rec_allreduce_max;
  mcgqComm_t comm = nullptr;
  EXPECT_EQ(mcgqCommInitCallbacks(&comm, world_rank(), world_size(), &cb), mcgqSuccess);
  return comm;
}

uint64_t message_bytes(const unsigned char *msg) {
  uint64_t v = 0;
  for (int b = 7; b >= 0; --b) v = (v << 8) | msg[16 + b];  // header total_bytes
  return v;
}

// A capacity far below the messages: layers are cut at element boundaries,
// the decoders accept the CUT layers, every rank averages the same sent
// values, and what was not sent stays in the accumulators bit for bit
// (residual: accum = fmaf(-scale, g_int, ag) with g_int = 0 where not sent;
// reset: 0 where sampled and sent, ag elsewhere).
TEST(CommMpi, FixedCapacityTooSmallCutsAndKeepsTheRest) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 7;
  auto table = mixed_table();
  Worker w(table);
  Recorder rec;
  mcgqComm_t comm = recording_comm(&rec);
  ASSERT_NE(comm, nullptr);
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(comm, layers.data(), (int)layers.size()), mcgqSuccess);
  const size_t capacity = 32 + 56 * table.size() + 640;
  ASSERT_EQ(mcgqCommSetCapacity(comm, capacity), mcgqSuccess);
  uint64_t total_n = 0;
  for (auto &s : table) total_n += s.n;
  int cut_seen = 0;
  for (uint64_t step = 0; step < 4; ++step) {
    w.load(me, step);
    std::vector<std::vector<float>> ag(table.size());
    for (size_t i = 0; i < table.size(); ++i)
      if (!w.accum[i].empty()) {
        ag[i].resize(table[i].n);
        for (uint64_t k = 0; k < table[i].n; ++k) ag[i][k] = w.accum[i][k] + w.grad[i][k];
      }
    mcgqStepStats_t st;
    ASSERT_EQ(mcgqCommStep(comm, step, seed, nullptr, &st), mcgqSuccess)
        << mcgqCommGetLastError(comm);
    EXPECT_EQ(st.bytes_sent, capacity);
    EXPECT_GT(st.layers_cut, 0);
    ASSERT_EQ(rec.counts.size(), (size_t)P);
    std::vector<const void *> msgs(P);
    std::vector<size_t> sizes(P);
    for (int r = 0; r < P; ++r) {
      EXPECT_EQ(rec.counts[r], capacity);
      msgs[r] = rec.gathered.data() + rec.displs[r];
      sizes[r] = (size_t)message_bytes(rec.gathered.data() + rec.displs[r]);
      ASSERT_LE(sizes[r], capacity);
    }
    // The gradients are the average of exactly what was sent.
    std::vector<float> avg(total_n);
    ASSERT_EQ(mcgqDecodeAverageHost(msgs.data(), sizes.data(), P, avg.data(), total_n),
              mcgqSuccess)
        << mcgqGetLastErrorDetail();
    size_t off = 0;
    for (size_t i = 0; i < table.size(); ++i) {
      ASSERT_EQ(std::memcmp(w.grad[i].data(), avg.data() + off, table[i].n * 4), 0)
          << "step " << step << " layer " << i;
      off += table[i].n;
    }
    // This rank's own message: CUT layers and the accumulators.
    std::vector<int32_t> g_int(total_n);
    std::vector<float> scales(table.size());
    ASSERT_EQ(mcgqDecodeIntsHost(msgs[me], sizes[me], g_int.data(), total_n, scales.data(),
                                 (uint32_t)table.size()),
              mcgqSuccess)
        << mcgqGetLastErrorDetail();
    off = 0;
    for (size_t i = 0; i < table.size(); ++i) {
      mcgqMessageLayer_t ml;
      ASSERT_EQ(mcgqMessageGetLayer(msgs[me], sizes[me], (uint32_t)i, &ml), mcgqSuccess);
      if (ml.flags & MCGQ_LAYER_FLAG_CUT) {
        ++cut_seen;
        EXPECT_LT(ml.n_coded, ml.n);
        for (uint64_t k = ml.n_coded; k < ml.n; ++k) ASSERT_EQ(g_int[off + k], 0);
      } else {
        EXPECT_EQ(ml.n_coded, ml.n);
      }
      for (uint64_t k = 0; k < table[i].n && table[i].accumulate != MCGQ_ACCUM_NONE; ++k) {
        int32_t c = g_int[off + k];
        float want = table[i].accumulate == MCGQ_ACCUM_RESIDUAL
                         ? std::fmaf(-scales[i], (float)c, ag[i][k])
                         : (c != 0 ? 0.0f : ag[i][k]);
        ASSERT_EQ(std::memcmp(&w.accum[i][k], &want, 4), 0)
            << "step " << step << " layer " << i << " element " << k;
      }
      off += table[i].n;
    }
    for (uint64_t other : gather(grads_hash(w))) EXPECT_EQ(other, grads_hash(w));
  }
  EXPECT_GT(cut_seen, 0);
  // Fixed capacity: the block all-gather and the payload all-gather, no
  // size agreement.
  EXPECT_EQ(rec.calls, 4 * 2);
  mcgqCommDestroy(comm);
}

// A capacity below the header and directory fails on every rank (also when
// one rank alone set it: then the capacities differ), nothing changes, and
// exact sizes work again afterwards.
TEST(CommMpi, FixedCapacityRefusalsAreCollective) {
  const int P = world_size(), me = world_rank();
  for (int only_last = 0; only_last < 2; ++only_last) {
    Worker w(mixed_table());
    w.load(me, 0);
    uint64_t before = w.hash();
    CommGuard c;
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
    if (!only_last || me == P - 1) {
      ASSERT_EQ(mcgqCommSetCapacity(c.comm, 64), mcgqSuccess);
    }
    mcgqResult_t want = only_last && P > 1 ? mcgqInvalidUsage : mcgqCapacityExceeded;
    EXPECT_EQ(mcgqCommStep(c.comm, 0, 1, nullptr, nullptr), want) << mcgqCommGetLastError(c.comm);
    EXPECT_EQ(w.hash(), before);
    ASSERT_EQ(mcgqCommSetCapacity(c.comm, 0), mcgqSuccess);  // back to exact sizes
    EXPECT_EQ(mcgqCommStep(c.comm, 0, 1, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
  }
  CommGuard c;
  EXPECT_EQ(mcgqCommSetCapacity(c.comm, 4097), mcgqInvalidArgument);  // not 8-aligned
  EXPECT_EQ(mcgqCommSetTimeout(c.comm, -1.0), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommSetTimeout(c.comm, NAN), mcgqInvalidArgument);
}

TEST(CommMpi, BadArguments) {
  CommGuard c;
  Worker w(mixed_table());
  auto layers = w.comm_layers();
  EXPECT_EQ(mcgqCommSetLayers(nullptr, layers.data(), 1), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommSetLayers(c.comm, nullptr, 1), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommSetLayers(c.comm, layers.data(), -1), mcgqInvalidArgument);
  auto bad = layers;
  bad[0].grad = nullptr;
  EXPECT_EQ(mcgqCommSetLayers(c.comm, bad.data(), (int)bad.size()), mcgqInvalidArgument);
  EXPECT_NE(std::strlen(mcgqCommGetLastError(c.comm)), 0u);
  bad = layers;
  bad[1].accum = nullptr;  // RESET needs an accumulator
  EXPECT_EQ(mcgqCommSetLayers(c.comm, bad.data(), (int)bad.size()), mcgqInvalidArgument);
  bad = layers;
  bad[0].struct_size = 8;
  EXPECT_EQ(mcgqCommSetLayers(c.comm, bad.data(), (int)bad.size()), mcgqUnsupportedVersion);
  bad = layers;
  bad[2].n = 0;
  EXPECT_EQ(mcgqCommSetLayers(c.comm, bad.data(), (int)bad.size()), mcgqInvalidArgument);
  bad = layers;
  bad[0].cfg.k = -1.0;
  EXPECT_EQ(mcgqCommSetLayers(c.comm, bad.data(), (int)bad.size()), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommStep(nullptr, 0, 0, nullptr, nullptr), mcgqInvalidArgument);
  // No table registered on any rank: collective InvalidUsage, no hang.
  EXPECT_EQ(mcgqCommStep(c.comm, 0, 0, nullptr, nullptr), mcgqInvalidUsage);
  mcgqComm_t none = nullptr;
  EXPECT_EQ(mcgqCommInitMpi(&none, MPI_COMM_NULL), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommInitMpi(nullptr, MPI_COMM_WORLD), mcgqInvalidArgument);
}

// A rank that stops calling: the others return mcgqTimeout within the
// deadline plus one second, change nothing, and their handles stay aborted.
// Runs last, because the timed-out ranks keep an unmatched all-gather posted
// on a duplicate of MPI_COMM_WORLD (it is never freed).
TEST(CommMpi, StalledRankTimesOutEverywhereElse) {
  const int P = world_size(), me = world_rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  MPI_Comm dup;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &dup), MPI_SUCCESS);
  Worker w(mixed_table());
  w.load(me, 0);
  uint64_t before = w.hash();
  mcgqComm_t comm = nullptr;
  ASSERT_EQ(mcgqCommInitMpi(&comm, dup), mcgqSuccess);
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(comm, layers.data(), (int)layers.size()), mcgqSuccess);
  const double timeout = 1.0;
  ASSERT_EQ(mcgqCommSetTimeout(comm, timeout), mcgqSuccess);
  if (me == P - 1) {
    // The stalled rank never calls the step; it waits until the others
    // have timed out.
    MPI_Barrier(MPI_COMM_WORLD);
  } else {
    double t0 = MPI_Wtime();
    EXPECT_EQ(mcgqCommStep(comm, 0, 1, nullptr, nullptr), mcgqTimeout);
    double waited = MPI_Wtime() - t0;
    EXPECT_GE(waited, timeout - 0.05);
    EXPECT_LE(waited, timeout + 1.0);
    EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("timeout"), std::string::npos)
        << mcgqCommGetLastError(comm);
    EXPECT_EQ(w.hash(), before);
    EXPECT_EQ(mcgqCommStep(comm, 1, 1, nullptr, nullptr), mcgqInvalidUsage);  // aborted
    EXPECT_EQ(w.hash(), before);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  // On the timed-out ranks the handle keeps the buffers the posted
  // all-gather writes.
  EXPECT_EQ(mcgqCommDestroy(comm), mcgqSuccess);
  // dup is not freed: the timed-out ranks' request on it was never waited for.
}

}  // namespace
