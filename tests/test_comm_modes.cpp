// Exchange modes under mpirun (mcgq.h, "exchange modes"): the compressed
// reduce-scatter and the two-stage all-reduce over the MPI transport,
// against a single-process simulation of the same protocol built only from
// the public host API (mcgqShardRange, mcgqEncodeHost per shard message,
// mcgqDecodeAverageHost per owner, mcgqEncodeHost of the owner's re-encode,
// mcgqDecodeHost of each owner message), bit for bit on every rank; the
// failure protocol (non-finite, table and mode mismatch); the owner-side
// residual's conservation over 1000 steps; bytes at the transport.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mcgq.h"
#include "mcgq_mpi.h"
#include "support/mpi_callbacks.hpp"
#include "support/mpi_worker.hpp"

namespace {

using namespace mcgq_test;


// n not divisible by 2, 3 or 4; layers smaller than P (1, 2, 3 elements);
// every accumulation mode.
std::vector<LayerSpec> shard_table() {
  return {{1001, MCGQ_ACCUM_NONE, 0.5, 1.0f},   {1, MCGQ_ACCUM_RESIDUAL, 1.0, 2.0f},
          {37, MCGQ_ACCUM_RESET, 0.3, 0.01f},   {4099, MCGQ_ACCUM_RESIDUAL, 0.1, 3.0f},
          {2, MCGQ_ACCUM_NONE, 1.0, 0.5f},      {3, MCGQ_ACCUM_RESET, 2.0, 1.0f},
          {513, MCGQ_ACCUM_RESIDUAL, 0.2, 0.5f}};
}

struct Shard {
  size_t layer;
  uint64_t begin, end;
};

// Owner j's shards: the non-empty shard j of every layer, layer order.
std::vector<Shard> shards_of(const std::vector<LayerSpec> &spec, int P, int j) {
  std::vector<Shard> out;
  for (size_t i = 0; i < spec.size(); ++i) {
    uint64_t b = 0, e = 0;
    EXPECT_EQ(mcgqShardRange(spec[i].n, P, j, &b, &e), mcgqSuccess);
    if (e > b) out.push_back({i, b, e});
  }
  return out;
}

// The P workers and owners of the protocol in one process.
struct Simulation {
  std::vector<LayerSpec> spec;
  int P;
  int32_t mode;
  std::vector<Worker> ranks;
  std::vector<std::vector<float>> owner_accum;  // per owner, its shards concatenated
  std::vector<std::vector<float>> averaged;     // per owner: last stage-1 average
  uint64_t received_stage1 = 0, received_stage2 = 0;  // bytes into rank 0
  std::vector<uint32_t> ids;                          // empty: the positions

  uint32_t id(size_t layer) const { return ids.empty() ? (uint32_t)layer : ids[layer]; }

  Simulation(const std::vector<LayerSpec> &s, int p, int32_t m)
      : spec(s), P(p), mode(m), ranks(p, Worker(s)), owner_accum(p), averaged(p) {
    for (int j = 0; j < P; ++j) {
      uint64_t n = 0;
      for (auto &sh : shards_of(spec, P, j)) n += sh.end - sh.begin;
      owner_accum[j].assign(n, 0.0f);
    }
  }

  void step(uint64_t step, uint64_t seed) {
    for (int r = 0; r < P; ++r) ranks[r].load(r, step);
    // Stage 1: msgs[r][j] from rank r to owner j.
    std::vector<std::vector<std::vector<unsigned char>>> msgs(P, std::vector<std::vector<unsigned char>>(P));
    for (int r = 0; r < P; ++r)
      for (int j = 0; j < P; ++j) {
        std::vector<mcgqLayerDesc_t> descs;
        for (auto &sh : shards_of(spec, P, j)) {
          mcgqLayerDesc_t d;
          mcgqLayerDescInit(&d);
          d.u = mcgqRandomWord(seed, step, id(sh.layer), (uint32_t)(r * P + j));
          d.g = ranks[r].grad[sh.layer].data() + sh.begin;
          d.accum = ranks[r].accum[sh.layer].empty() ? nullptr
                                                     : ranks[r].accum[sh.layer].data() + sh.begin;
          d.n = sh.end - sh.begin;
          d.cfg = config_of(spec[sh.layer]);
          descs.push_back(d);
        }
        msgs[r][j] = encode(descs);
      }
    received_stage1 = 0;
    for (int r = 1; r < P; ++r) received_stage1 += msgs[r][0].size();
    // Each owner's average, written into its shards (reduce-scatter).
    std::vector<std::vector<unsigned char>> owner_msgs(P);
    for (int j = 0; j < P; ++j) {
      auto shards = shards_of(spec, P, j);
      uint64_t n = owner_accum[j].size();
      averaged[j].assign(n, 0.0f);
      if (shards.empty()) continue;
      std::vector<const void *> in(P);
      std::vector<size_t> sizes(P);
      for (int r = 0; r < P; ++r) {
        in[r] = msgs[r][j].data();
        sizes[r] = msgs[r][j].size();
      }
      ASSERT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, averaged[j].data(), n),
                mcgqSuccess)
          << mcgqGetLastErrorDetail();
      if (mode == MCGQ_EXCHANGE_REDUCE_SCATTER) {
        uint64_t off = 0;
        for (auto &sh : shards) {
          std::memcpy(ranks[j].grad[sh.layer].data() + sh.begin, averaged[j].data() + off,
                      (sh.end - sh.begin) * sizeof(float));
          off += sh.end - sh.begin;
        }
        continue;
      }
      // Two-stage: the owner's re-encode with its own accumulator.
      std::vector<mcgqLayerDesc_t> descs;
      uint64_t off = 0;
      for (auto &sh : shards) {
        mcgqLayerDesc_t d;
        mcgqLayerDescInit(&d);
        d.u = mcgqRandomWord(seed, step, id(sh.layer), (uint32_t)(P * P + j));
        d.g = averaged[j].data() + off;
        d.accum = spec[sh.layer].accumulate != MCGQ_ACCUM_NONE ? owner_accum[j].data() + off
                                                                : nullptr;
        d.n = sh.end - sh.begin;
        d.cfg = config_of(spec[sh.layer]);
        descs.push_back(d);
        off += d.n;
      }
      owner_msgs[j] = encode(descs);
    }
    if (mode != MCGQ_EXCHANGE_TWO_STAGE) return;
    received_stage2 = 0;
    for (int j = 1; j < P; ++j) received_stage2 += owner_msgs[j].size();
    // Every rank decodes every owner's message into that owner's shards.
    for (int j = 0; j < P; ++j) {
      auto shards = shards_of(spec, P, j);
      if (shards.empty()) continue;
      std::vector<float> out(owner_accum[j].size());
      ASSERT_EQ(mcgqDecodeHost(owner_msgs[j].data(), owner_msgs[j].size(), out.data(), out.size()),
                mcgqSuccess)
          << mcgqGetLastErrorDetail();
      for (int r = 0; r < P; ++r) {
        uint64_t off = 0;
        for (auto &sh : shards) {
          std::memcpy(ranks[r].grad[sh.layer].data() + sh.begin, out.data() + off,
                      (sh.end - sh.begin) * sizeof(float));
          off += sh.end - sh.begin;
        }
      }
    }
  }
};

struct CommGuard {
  mcgqComm_t comm = nullptr;
  explicit CommGuard(int32_t mode) {
    EXPECT_EQ(mcgqCommInitMpi(&comm, MPI_COMM_WORLD), mcgqSuccess);
    EXPECT_EQ(mcgqCommSetExchangeMode(comm, mode), mcgqSuccess) << mcgqCommGetLastError(comm);
  }
  ~CommGuard() {
    if (comm) mcgqCommDestroy(comm);
  }
};

TEST(ShardRange, CoversEveryLayerExactlyOnce) {
  for (int P = 1; P <= 9; ++P)
    for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 8ull, 1000ull, 4099ull, 4294967295ull}) {
      uint64_t expect = 0;
      for (int j = 0; j < P; ++j) {
        uint64_t b = 0, e = 0;
        ASSERT_EQ(mcgqShardRange(n, P, j, &b, &e), mcgqSuccess);
        EXPECT_EQ(b, expect) << "n " << n << " P " << P << " shard " << j;
        EXPECT_LE(e - b, n / P + 1);
        EXPECT_GE(e - b, n / P);
        expect = e;
      }
      EXPECT_EQ(expect, n);
    }
  uint64_t b = 0, e = 0;
  // floor(j n / P): n = 2 over P = 3 is {}, [0,1), [1,2).
  ASSERT_EQ(mcgqShardRange(2, 3, 0, &b, &e), mcgqSuccess);
  EXPECT_EQ(e - b, 0u);
  ASSERT_EQ(mcgqShardRange(2, 3, 2, &b, &e), mcgqSuccess);
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(e, 2u);
  EXPECT_EQ(mcgqShardRange(10, 3, 3, &b, &e), mcgqInvalidArgument);
  EXPECT_EQ(mcgqShardRange(10, 0, 0, &b, &e), mcgqInvalidArgument);
  EXPECT_EQ(mcgqShardRange(10, 2, 0, nullptr, &e), mcgqInvalidArgument);
}

void run_matches_simulation(int32_t mode, uint64_t steps,
                            const std::vector<uint32_t> &ids = {}) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 0xfeedull;
  auto table = shard_table();
  Worker real(table);
  Simulation sim(table, P, mode);
  sim.ids = ids;
  CommGuard c(mode);
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess)
      << mcgqCommGetLastError(c.comm);
  if (!ids.empty()) {
    ASSERT_EQ(mcgqCommSetLayerIds(c.comm, ids.data(), (int)ids.size()), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
  }
  uint64_t owner_n = 0;
  ASSERT_EQ(mcgqCommGetOwnerStateSize(c.comm, &owner_n), mcgqSuccess);
  EXPECT_EQ(owner_n, mode == MCGQ_EXCHANGE_TWO_STAGE ? sim.owner_accum[me].size() : 0u);
  for (uint64_t step = 0; step < steps; ++step) {
    real.load(me, step);
    mcgqStepStats_t st;
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, &st), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    sim.step(step, seed);
    for (size_t i = 0; i < table.size(); ++i) {
      ASSERT_TRUE(same_bits(real.grad[i], sim.ranks[me].grad[i])) << "step " << step << " layer " << i;
      ASSERT_TRUE(same_bits(real.accum[i], sim.ranks[me].accum[i])) << "step " << step << " layer " << i;
    }
    if (mode == MCGQ_EXCHANGE_TWO_STAGE) {
      std::vector<float> owner(owner_n);
      ASSERT_EQ(mcgqCommGetOwnerState(c.comm, owner.data(), owner_n), mcgqSuccess);
      ASSERT_TRUE(same_bits(owner, sim.owner_accum[me])) << "step " << step;
      // Every rank ends with the same bits.
      uint64_t h = 1469598103934665603ull;
      for (auto &g : real.grad) h = fnv(g.data(), g.size() * sizeof(float), h);
      for (uint64_t x : gather(h)) EXPECT_EQ(x, h);
    }
  }
}

TEST(CommModes, ReduceScatterMatchesSimulationBitForBit) {
  run_matches_simulation(MCGQ_EXCHANGE_REDUCE_SCATTER, 5);
}

TEST(CommModes, TwoStageMatchesSimulationBitForBit) {
  run_matches_simulation(MCGQ_EXCHANGE_TWO_STAGE, 5);
}

// Layer ids (mcgqCommSetLayerIds) pick both stages' random words.
TEST(CommModes, TwoStageSamplesWithTheLayerIds) {
  run_matches_simulation(MCGQ_EXCHANGE_TWO_STAGE, 2, {70, 60, 50, 40, 30, 20, 10});
}

// Checkpoint: the owner state saved and restored into a fresh communicator
// continues the run bit for bit.
TEST(CommModes, OwnerStateCheckpointRestores) {
  const int me = world_rank();
  const uint64_t seed = 99;
  auto table = shard_table();
  Worker a(table), b(table);
  CommGuard ca(MCGQ_EXCHANGE_TWO_STAGE), cb(MCGQ_EXCHANGE_TWO_STAGE);
  auto la = a.comm_layers(), lb = b.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(ca.comm, la.data(), (int)la.size()), mcgqSuccess);
  for (uint64_t step = 0; step < 3; ++step) {
    a.load(me, step);
    ASSERT_EQ(mcgqCommStep(ca.comm, step, seed, nullptr, nullptr), mcgqSuccess);
  }
  uint64_t n = 0;
  ASSERT_EQ(mcgqCommGetOwnerStateSize(ca.comm, &n), mcgqSuccess);
  std::vector<float> saved(n);
  ASSERT_EQ(mcgqCommGetOwnerState(ca.comm, saved.data(), n), mcgqSuccess);
  b.accum = a.accum;
  ASSERT_EQ(mcgqCommSetLayers(cb.comm, lb.data(), (int)lb.size()), mcgqSuccess);
  ASSERT_EQ(mcgqCommSetOwnerState(cb.comm, saved.data(), n), mcgqSuccess);
  EXPECT_EQ(mcgqCommSetOwnerState(cb.comm, saved.data(), n + 1), mcgqInvalidArgument);
  a.load(me, 3);
  b.load(me, 3);
  ASSERT_EQ(mcgqCommStep(ca.comm, 3, seed, nullptr, nullptr), mcgqSuccess);
  ASSERT_EQ(mcgqCommStep(cb.comm, 3, seed, nullptr, nullptr), mcgqSuccess);
  EXPECT_EQ(a.hash(), b.hash());
}

// A NaN on the last rank: every rank reports it, nothing changes anywhere
// (gradients, accumulators, owner state).
void run_nonfinite(int32_t mode) {
  const int P = world_size(), me = world_rank();
  auto table = shard_table();
  Worker w(table);
  CommGuard c(mode);
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  w.load(me, 0);
  ASSERT_EQ(mcgqCommStep(c.comm, 0, 5, nullptr, nullptr), mcgqSuccess);
  w.load(me, 1);
  if (me == P - 1) w.grad[3][17] = NAN;
  uint64_t before = w.hash();
  uint64_t owner_n = 0;
  mcgqCommGetOwnerStateSize(c.comm, &owner_n);
  std::vector<float> owner_before(owner_n), owner_after(owner_n);
  if (owner_n) mcgqCommGetOwnerState(c.comm, owner_before.data(), owner_n);
  mcgqStepStats_t st;
  EXPECT_EQ(mcgqCommStep(c.comm, 1, 5, nullptr, &st), mcgqNonFinite);
  EXPECT_EQ(st.found_nonfinite, 1);
  EXPECT_EQ(w.hash(), before);
  if (owner_n) {
    mcgqCommGetOwnerState(c.comm, owner_after.data(), owner_n);
    EXPECT_TRUE(same_bits(owner_before, owner_after));
  }
}

TEST(CommModes, NonFiniteOnOneRankChangesNothing) {
  run_nonfinite(MCGQ_EXCHANGE_REDUCE_SCATTER);
  run_nonfinite(MCGQ_EXCHANGE_TWO_STAGE);
}

// A table that differs on one rank, and a mode that differs: every rank
// refuses the step with mcgqInvalidUsage, nothing changed.
TEST(CommModes, MismatchesAreRefusedOnEveryRank) {
  const int P = world_size(), me = world_rank();
  auto table = shard_table();
  if (me == P - 1) table[2].n += 1;
  Worker w(table);
  {
    CommGuard c(MCGQ_EXCHANGE_REDUCE_SCATTER);
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
    w.load(me, 0);
    uint64_t before = w.hash();
    EXPECT_EQ(mcgqCommStep(c.comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage);
    EXPECT_NE(std::string(mcgqCommGetLastError(c.comm)).find("differ"), std::string::npos)
        << mcgqCommGetLastError(c.comm);
    EXPECT_EQ(w.hash(), before);
  }
  Worker v(shard_table());
  CommGuard c(me == 0 ? MCGQ_EXCHANGE_TWO_STAGE : MCGQ_EXCHANGE_REDUCE_SCATTER);
  auto layers = v.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  v.load(me, 0);
  uint64_t before = v.hash();
  EXPECT_EQ(mcgqCommStep(c.comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(c.comm)).find("exchange modes differ"),
            std::string::npos)
      << mcgqCommGetLastError(c.comm);
  EXPECT_EQ(v.hash(), before);
}

TEST(CommModes, UnsupportedSettingsAreRefused) {
  mcgqComm_t comm = nullptr;
  ASSERT_EQ(mcgqCommInitMpi(&comm, MPI_COMM_WORLD), mcgqSuccess);
  EXPECT_EQ(mcgqCommSetExchangeMode(comm, MCGQ_EXCHANGE_NONE), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommSetExchangeMode(comm, 3), mcgqInvalidArgument);
  ASSERT_EQ(mcgqCommSetExchangeMode(comm, MCGQ_EXCHANGE_TWO_STAGE), mcgqSuccess);
  // dynamic K: one K state per layer cannot serve P shards
  std::vector<float> g(10), acc(10);
  mcgqKState_t ks;
  mcgqLayer_t l;
  std::memset(&l, 0, sizeof l);
  l.struct_size = sizeof l;
  l.grad = g.data();
  l.n = 10;
  l.cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  l.cfg.dynamic_k = 1;
  ASSERT_EQ(mcgqKStateInit(&l.cfg, &ks), mcgqSuccess);
  l.kstate = &ks;
  EXPECT_EQ(mcgqCommSetLayers(comm, &l, 1), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("dynamic K"), std::string::npos);
  // fixed capacity: refused at the step on every rank
  l.cfg.dynamic_k = 0;
  l.kstate = nullptr;
  ASSERT_EQ(mcgqCommSetLayers(comm, &l, 1), mcgqSuccess);
  ASSERT_EQ(mcgqCommSetCapacity(comm, 4096), mcgqSuccess);
  EXPECT_EQ(mcgqCommStep(comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage);
  EXPECT_EQ(mcgqCommDestroy(comm), mcgqSuccess);
}

// Residual error feedback at the owners, 1000 steps: on every owner, what
// the owner's encodes sent plus what its accumulator holds equals what it
// was given, up to the rounding of three float operations per element and
// step (ag = acc + avg, acc' = fmaf(-scale, g_int, ag) and the decode's
// float(scale * g_int)), each at most half an ulp of its result.  The test
// sums in double and accumulates that bound alongside.
TEST(CommModes, OwnerResidualMassIsConservedOver1000Steps) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 4242;
  std::vector<LayerSpec> table = {{61, MCGQ_ACCUM_RESIDUAL, 0.1, 1.0f},
                                  {3, MCGQ_ACCUM_RESIDUAL, 0.5, 0.25f}};
  Worker real(table);
  Simulation sim(table, P, MCGQ_EXCHANGE_TWO_STAGE);
  CommGuard c(MCGQ_EXCHANGE_TWO_STAGE);
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  auto shards = shards_of(table, P, me);
  uint64_t own_n = sim.owner_accum[me].size();
  std::vector<double> given(own_n, 0.0), sent(own_n, 0.0), bound(own_n, 0.0);
  auto half_ulp = [](float x) {
    return 0.5 * (double)(std::nextafter(std::fabs(x), INFINITY) - std::fabs(x));
  };
  std::vector<float> owner(own_n);
  for (uint64_t step = 0; step < 1000; ++step) {
    real.load(me, step);
    std::vector<float> acc_before = sim.owner_accum[me];
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    sim.step(step, seed);
    if (own_n) {
      ASSERT_EQ(mcgqCommGetOwnerState(c.comm, owner.data(), own_n), mcgqSuccess);
    }
    ASSERT_TRUE(same_bits(owner, sim.owner_accum[me])) << "step " << step;
    uint64_t off = 0;
    for (auto &sh : shards)
      for (uint64_t k = sh.begin; k < sh.end; ++k, ++off) {
        float avg = sim.averaged[me][off];
        float out = real.grad[sh.layer][k];
        given[off] += avg;
        sent[off] += out;
        bound[off] += half_ulp(acc_before[off] + avg) + half_ulp(owner[off]) + half_ulp(out);
      }
  }
  for (uint64_t k = 0; k < own_n; ++k)
    EXPECT_LE(std::fabs(given[k] - (sent[k] + owner[k])), bound[k]) << "element " << k;
}

// Bytes at the transport: received per rank in each mode, against the
// model's formulas.  All-gather: (P-1) messages of the whole gradient;
// reduce-scatter: the P-1 shard messages to this rank, (P-1)/P of that
// payload plus one container header and directory per message.
TEST(CommModes, BytesPerRankFollowTheModel) {
  const int P = world_size(), me = world_rank();
  if (P < 2) GTEST_SKIP();
  auto table = shard_table();
  Simulation rs(table, P, MCGQ_EXCHANGE_TWO_STAGE);
  rs.step(0, 3);
  // all-gather message of rank 1 at the same data (u differs: same N per layer)
  Worker w(table);
  w.load(1, 0);
  std::vector<mcgqLayerDesc_t> descs;
  for (size_t i = 0; i < table.size(); ++i) {
    mcgqLayerDesc_t d;
    mcgqLayerDescInit(&d);
    d.u = mcgqRandomWord(3, 0, (uint32_t)i, 1);
    d.g = w.grad[i].data();
    d.accum = nullptr;
    d.n = table[i].n;
    d.cfg = config_of(table[i]);
    d.cfg.accumulate = MCGQ_ACCUM_NONE;
    descs.push_back(d);
  }
  auto whole = encode(descs);
  if (me == 0)
    printf("[ bytes ] P=%d all-gather in=%llu  reduce-scatter in=%llu  two-stage in=%llu\n", P,
           (unsigned long long)((P - 1) * whole.size()), (unsigned long long)rs.received_stage1,
           (unsigned long long)(rs.received_stage1 + rs.received_stage2));
  double expect = (double)(P - 1) / P * (double)whole.size();
  double headers = (double)(P - 1) * (32.0 + 56.0 * (double)table.size());
  EXPECT_LT((double)rs.received_stage1, expect + headers);
  EXPECT_GT((double)rs.received_stage1, 0.5 * expect);
}

// The callback transport runs the same protocol: results equal the MPI
// transport's bit for bit, and the bytes it carries into each rank equal
// the simulation's messages: stage 1 the P-1 shard messages to this rank,
// two-stage also the P-1 other owners' messages.
TEST(CommModes, CallbackTransportCarriesTheSimulatedBytes) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 31;
  auto table = shard_table();
  for (int32_t mode : {MCGQ_EXCHANGE_REDUCE_SCATTER, MCGQ_EXCHANGE_TWO_STAGE}) {
    MpiTraffic counter;
    mcgqTransportCallbacks_t cb = mpi_callbacks(&counter, 0);
    mcgqComm_t comm = nullptr;
    ASSERT_EQ(mcgqCommInitCallbacks(&comm, me, P, &cb), mcgqSuccess);
    EXPECT_EQ(mcgqCommSetExchangeMode(comm, mode), mcgqInvalidUsage);  // no alltoallv
    EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("alltoallv"), std::string::npos);
    mcgqCommDestroy(comm);
    cb = mpi_callbacks(&counter);
    ASSERT_EQ(mcgqCommInitCallbacks(&comm, me, P, &cb), mcgqSuccess);
    ASSERT_EQ(mcgqCommSetExchangeMode(comm, mode), mcgqSuccess);
    Worker w(table);
    Simulation sim(table, P, mode);
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(comm, layers.data(), (int)layers.size()), mcgqSuccess);
    for (uint64_t step = 0; step < 3; ++step) {
      w.load(me, step);
      counter.received = 0;
      ASSERT_EQ(mcgqCommStep(comm, step, seed, nullptr, nullptr), mcgqSuccess)
          << mcgqCommGetLastError(comm);
      sim.step(step, seed);
      EXPECT_EQ(w.hash(), sim.ranks[me].hash());
      if (me == 0) {
        EXPECT_EQ(counter.received, sim.received_stage1 +
                                        (mode == MCGQ_EXCHANGE_TWO_STAGE ? sim.received_stage2 : 0));
      }
    }
    mcgqCommDestroy(comm);
  }
}

}  // namespace
