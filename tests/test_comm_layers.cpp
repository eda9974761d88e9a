// Layer ids and 16-bit gradients in the all-gather step, under mpirun
// (mcgq.h: mcgqCommSetLayerIds, mcgqLayer_t.grad of cfg.dtype), against a
// single-process simulation built from the public host API: every rank's
// mcgqEncodeHost message with u = mcgqRandomWord(seed, step, id, rank), the
// average from mcgqDecodeAverageHostTyped, bit for bit on every rank.  Plus
// the refusals: duplicate or miscounted ids, ids that differ between ranks,
// 16-bit layers where the exchange cannot take them.
#include <gtest/gtest.h>
#include <mpi.h>

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

struct CommGuard {
  mcgqComm_t comm = nullptr;
  CommGuard() { EXPECT_EQ(mcgqCommInitMpi(&comm, MPI_COMM_WORLD), mcgqSuccess); }
  ~CommGuard() {
    if (comm) mcgqCommDestroy(comm);
  }
};

std::vector<LayerSpec> id_table() {
  return {{1001, MCGQ_ACCUM_NONE, 0.5, 1.0f},
          {1, MCGQ_ACCUM_RESIDUAL, 1.0, 2.0f},
          {4099, MCGQ_ACCUM_RESET, 0.1, 3.0f},
          {37, MCGQ_ACCUM_RESIDUAL, 2.0, 0.01f}};
}

// A rank's message of worker w's table, layer i sampling with ids[i].
template <typename W>
std::vector<unsigned char> rank_message(W &w, const std::vector<uint32_t> &ids, uint64_t seed,
                                        uint64_t step, int rank) {
  std::vector<mcgqLayerDesc_t> descs;
  for (size_t i = 0; i < w.spec.size(); ++i) {
    mcgqLayerDesc_t d;
    mcgqLayerDescInit(&d);
    d.u = mcgqRandomWord(seed, step, ids[i], (uint32_t)rank);
    d.g = w.grad[i].data();
    d.accum = w.accum[i].empty() ? nullptr : w.accum[i].data();
    d.n = w.spec[i].n;
    d.cfg = config_of(w.spec[i]);
    descs.push_back(d);
  }
  return encode(descs);
}

// P workers, each step: every rank's message, then the average (float32).
struct IdSimulation {
  std::vector<Worker> ranks;
  explicit IdSimulation(const std::vector<LayerSpec> &s, int P) : ranks(P, Worker(s)) {}
  std::vector<float> step(const std::vector<uint32_t> &ids, uint64_t seed, uint64_t step) {
    const int P = (int)ranks.size();
    std::vector<std::vector<unsigned char>> msgs(P);
    std::vector<const void *> in(P);
    std::vector<size_t> sizes(P);
    uint64_t total_n = 0;
    for (auto &s : ranks[0].spec) total_n += s.n;
    for (int r = 0; r < P; ++r) {
      ranks[r].load(r, step);
      msgs[r] = rank_message(ranks[r], ids, seed, step, r);
      in[r] = msgs[r].data();
      sizes[r] = msgs[r].size();
    }
    std::vector<float> avg(total_n);
    EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, avg.data(), total_n),
              mcgqSuccess)
        << mcgqGetLastErrorDetail();
    return avg;
  }
};

std::vector<uint32_t> positions(size_t count) {
  std::vector<uint32_t> ids(count);
  for (size_t i = 0; i < count; ++i) ids[i] = (uint32_t)i;
  return ids;
}

// This rank's grads equal the simulation's average, its accumulators the
// simulated rank's.
void expect_matches(const Worker &real, const IdSimulation &sim, const std::vector<float> &avg,
                    int me, uint64_t step) {
  size_t off = 0;
  for (size_t i = 0; i < real.spec.size(); ++i) {
    EXPECT_EQ(std::memcmp(real.grad[i].data(), avg.data() + off, real.spec[i].n * sizeof(float)), 0)
        << "step " << step << " layer " << i;
    EXPECT_TRUE(same_bits(real.accum[i], sim.ranks[me].accum[i])) << "step " << step << " layer " << i;
    off += real.spec[i].n;
  }
}

// The ids, not the positions, pick the random words; mcgqCommSetLayers and
// (NULL, 0) go back to the positions.
TEST(CommLayerIds, TheIdsPickTheRandomWords) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 0x5eedull;
  auto table = id_table();
  const std::vector<uint32_t> ids = {4000000000u, 7, 12345, 3};
  Worker real(table);
  IdSimulation sim(table, P);
  CommGuard c;
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  ASSERT_EQ(mcgqCommSetLayerIds(c.comm, ids.data(), (int)ids.size()), mcgqSuccess)
      << mcgqCommGetLastError(c.comm);
  uint64_t step = 0;
  for (; step < 3; ++step) {
    real.load(me, step);
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    expect_matches(real, sim, sim.step(ids, seed, step), me, step);
  }
  // Positions again, by (NULL, 0) and by a new table.
  ASSERT_EQ(mcgqCommSetLayerIds(c.comm, nullptr, 0), mcgqSuccess);
  real.load(me, step);
  ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess);
  expect_matches(real, sim, sim.step(positions(table.size()), seed, step), me, step);
  ++step;
  ASSERT_EQ(mcgqCommSetLayerIds(c.comm, ids.data(), (int)ids.size()), mcgqSuccess);
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  real.load(me, step);
  ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess);
  expect_matches(real, sim, sim.step(positions(table.size()), seed, step), me, step);
}

TEST(CommLayerIds, BadIdsAreRefusedAndChangeNothing) {
  auto table = id_table();
  Worker real(table);
  CommGuard c;
  const std::vector<uint32_t> dup = {5, 9, 2, 9};
  // No table yet: the count cannot match.
  EXPECT_EQ(mcgqCommSetLayerIds(c.comm, dup.data(), 4), mcgqInvalidArgument);
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  EXPECT_EQ(mcgqCommSetLayerIds(c.comm, dup.data(), 4), mcgqInvalidArgument);
  EXPECT_NE(std::string(mcgqCommGetLastError(c.comm)).find("ids[1] = ids[3] = 9"),
            std::string::npos)
      << mcgqCommGetLastError(c.comm);
  const std::vector<uint32_t> ok = {1, 2, 3, 4};
  EXPECT_EQ(mcgqCommSetLayerIds(c.comm, ok.data(), 3), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommSetLayerIds(c.comm, nullptr, 4), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommSetLayerIds(nullptr, ok.data(), 4), mcgqInvalidArgument);
  // The refusals left the positions: the step equals the positions' bits.
  const int P = world_size(), me = world_rank();
  IdSimulation sim(table, P);
  real.load(me, 0);
  ASSERT_EQ(mcgqCommStep(c.comm, 0, 99, nullptr, nullptr), mcgqSuccess);
  expect_matches(real, sim, sim.step(positions(table.size()), 99, 0), me, 0);
}

// Ids that differ on one rank fail the step on every rank, naming the
// settings, before anything changes.
TEST(CommLayerIds, IdsThatDifferBetweenRanksFailEverywhere) {
  const int P = world_size(), me = world_rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  auto table = id_table();
  Worker real(table);
  CommGuard c;
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
  std::vector<uint32_t> ids = {10, 11, 12, 13};
  if (me == 1) ids[2] = 99;
  ASSERT_EQ(mcgqCommSetLayerIds(c.comm, ids.data(), (int)ids.size()), mcgqSuccess);
  real.load(me, 0);
  const uint64_t before = real.hash();
  EXPECT_EQ(mcgqCommStep(c.comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(c.comm)).find("or id"), std::string::npos)
      << mcgqCommGetLastError(c.comm);
  EXPECT_EQ(real.hash(), before);
}

// ------------------------------------------------------ 16-bit gradients

// bf16 and binary16 layers, beside float32 ones in the same table: the
// message is the one mcgqEncodeHost makes of the 16-bit input, and each
// layer's result is mcgqDecodeAverageHostTyped's in the layer's type.
TEST(CommDtypes, SixteenBitGradsAverageAsTheTypedDecoderDoes) {
  const int P = world_size(), me = world_rank();
  const uint64_t seed = 0xb16ull;
  const std::vector<LayerSpec> table = {
      {1001, MCGQ_ACCUM_RESIDUAL, 0.5, 2.0f, MCGQ_DTYPE_BF16},
      {3, MCGQ_ACCUM_NONE, 1.0, 2.0f, MCGQ_DTYPE_F16},
      {4099, MCGQ_ACCUM_RESET, 0.2, 2.0f, MCGQ_DTYPE_F16},
      {64, MCGQ_ACCUM_NONE, 2.0, 2.0f, MCGQ_DTYPE_BF16}};
  uint64_t total_n = 0;
  for (auto &l : table) total_n += l.n;
  Worker16 real(table);
  std::vector<Worker16> sim(P, Worker16(table));
  CommGuard c;
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess)
      << mcgqCommGetLastError(c.comm);
  for (uint64_t step = 0; step < 3; ++step) {
    real.load(me, step);
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    std::vector<std::vector<unsigned char>> msgs(P);
    std::vector<const void *> in(P);
    std::vector<size_t> sizes(P);
    for (int r = 0; r < P; ++r) {
      sim[r].load(r, step);
      msgs[r] = rank_message(sim[r], positions(table.size()), seed, step, r);
      in[r] = msgs[r].data();
      sizes[r] = msgs[r].size();
    }
    for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
      std::vector<uint16_t> avg(total_n);
      ASSERT_EQ(mcgqDecodeAverageHostTyped(in.data(), sizes.data(), P, avg.data(), dtype, total_n),
                mcgqSuccess)
          << mcgqGetLastErrorDetail();
      size_t off = 0;
      for (size_t i = 0; i < table.size(); ++i) {
        if (table[i].dtype == dtype) {
          EXPECT_EQ(std::memcmp(real.grad[i].data(), avg.data() + off, table[i].n * 2), 0)
              << "step " << step << " layer " << i;
        }
        off += table[i].n;
      }
    }
    for (size_t i = 0; i < table.size(); ++i)
      EXPECT_TRUE(same_bits(real.accum[i], sim[me].accum[i])) << "step " << step << " layer " << i;
  }
}

// The sharded modes re-encode float32 averages: a 16-bit table is refused
// there, whichever comes first, the table or the mode.
TEST(CommDtypes, ShardedModesRefuseSixteenBitTables) {
  const std::vector<LayerSpec> table = {{100, MCGQ_ACCUM_NONE, 1.0, 1.0f, MCGQ_DTYPE_BF16}};
  Worker16 w(table);
  auto layers = w.comm_layers();
  CommGuard c;
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), 1), mcgqSuccess);
  EXPECT_EQ(mcgqCommSetExchangeMode(c.comm, MCGQ_EXCHANGE_TWO_STAGE), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(c.comm)).find("float32"), std::string::npos);
  int32_t mode = -1;
  ASSERT_EQ(mcgqCommGetExchangeMode(c.comm, &mode), mcgqSuccess);
  EXPECT_EQ(mode, MCGQ_EXCHANGE_ALL_GATHER);
  // A float32 table, then the mode, then the 16-bit table: refused, the
  // float32 table stays registered.
  auto f32 = id_table();
  Worker fw(f32);
  auto flayers = fw.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, flayers.data(), (int)flayers.size()), mcgqSuccess);
  ASSERT_EQ(mcgqCommSetExchangeMode(c.comm, MCGQ_EXCHANGE_REDUCE_SCATTER), mcgqSuccess);
  EXPECT_EQ(mcgqCommSetLayers(c.comm, layers.data(), 1), mcgqInvalidUsage);
  fw.load(world_rank(), 0);
  EXPECT_EQ(mcgqCommStep(c.comm, 0, 5, nullptr, nullptr), mcgqSuccess)
      << mcgqCommGetLastError(c.comm);
}

// ------------------------------------------------------ receive buffer

// The receive buffer's agreement (a max-reduction) runs only when some
// rank's buffer must grow: the first step, and a step whose messages are
// larger than every step before; steps that fit need no collective for it.
// In every mode: all-gather (one reservation per step), reduce-scatter
// (each rank its own receive total; its decode-status agreement is a
// max-reduction of its own, every step), two-stage (two reservations).
TEST(CommReserve, TheMaxReductionRunsOnlyWhenABufferMustGrow) {
  const int me = world_rank();
  auto table = id_table();
  for (auto &l : table) l.accumulate = MCGQ_ACCUM_NONE;  // no state: equal steps
  struct Case {
    int32_t mode;
    std::vector<int> expect;  // max-reductions per step
  };
  for (const Case &c : {Case{MCGQ_EXCHANGE_ALL_GATHER, {1, 0, 0, 1, 0}},
                        Case{MCGQ_EXCHANGE_REDUCE_SCATTER, {2, 1, 1, 2, 1}},
                        Case{MCGQ_EXCHANGE_TWO_STAGE, {2, 0, 0, 2, 0}}}) {
    Worker w(table);
    MpiTraffic traffic;
    mcgqTransportCallbacks_t cb = mpi_callbacks(&traffic);
    mcgqComm_t comm = nullptr;
    ASSERT_EQ(mcgqCommInitCallbacks(&comm, me, world_size(), &cb), mcgqSuccess);
    ASSERT_EQ(mcgqCommSetExchangeMode(comm, c.mode), mcgqSuccess);
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(comm, layers.data(), (int)layers.size()), mcgqSuccess);
    std::vector<int> per_step;
    auto run = [&]() {
      traffic.max_reductions = 0;
      w.load(me, 0);  // the same gradients and step: the same message sizes
      ASSERT_EQ(mcgqCommStep(comm, 0, 7, nullptr, nullptr), mcgqSuccess)
          << mcgqCommGetLastError(comm);
      per_step.push_back(traffic.max_reductions);
    };
    run();  // the first step allocates
    run();
    run();
    for (auto &l : layers) l.cfg.k *= 4;  // 4x the samples: larger messages
    ASSERT_EQ(mcgqCommSetLayers(comm, layers.data(), (int)layers.size()), mcgqSuccess);
    run();
    run();
    EXPECT_EQ(per_step, c.expect) << "mode " << c.mode;
    mcgqCommDestroy(comm);
  }
}

}  // namespace
