// Hierarchical exchange under mpirun (mcgq.h, "hierarchical exchange";
// mcgqCommInitMpiHierarchical): the job is split into nodes of L = 2 ranks
// (4 ranks: 2 nodes x 2; 2 ranks: 1 node x 2; an odd count: nodes of 1).
// Checked against a single-process simulation built only from the public
// host API (the node mean summed in local rank order, the share cut of the
// concatenated layers, mcgqEncodeHost / mcgqDecodeAverageHost of the
// cross-node messages, the two-stage owner re-encode), bit for bit on every
// rank; the failure protocol across the whole job (a NaN on one rank, a node
// sum that overflows, tables that differ inside a node or between nodes, a
// bad node layout); one rank per node equals the flat exchange bit for bit.
#include <gtest/gtest.h>
#include <mpi.h>

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

using namespace mcgq_test;


int local_size() { return world_size() % 2 == 0 ? 2 : 1; }

// 5669 elements: the share cut (at 2834 for L = 2) falls inside layer 3;
// tiny layers; every accumulation mode.
std::vector<LayerSpec> table() {
  return {{1001, MCGQ_ACCUM_NONE, 0.5, 1.0f},   {1, MCGQ_ACCUM_RESIDUAL, 1.0, 2.0f},
          {37, MCGQ_ACCUM_RESET, 0.3, 0.01f},   {4099, MCGQ_ACCUM_RESIDUAL, 0.1, 3.0f},
          {2, MCGQ_ACCUM_NONE, 1.0, 0.5f},      {3, MCGQ_ACCUM_RESET, 2.0, 1.0f},
          {526, MCGQ_ACCUM_RESIDUAL, 0.2, 0.5f}};
}

// A piece of layer `layer`: [begin, begin + n) of it, at `at` in the share.
struct Piece {
  size_t layer;
  uint64_t begin, n, at;
};

// The documented cut: local rank l owns [floor(l T / L), floor((l+1) T / L))
// of the layers concatenated in table order.
std::vector<Piece> pieces_of(const std::vector<LayerSpec> &spec, int L, int l, uint64_t *lo_out,
                             uint64_t *hi_out) {
  uint64_t T = 0;
  for (auto &s : spec) T += s.n;
  const uint64_t lo = (uint64_t)l * T / (uint64_t)L, hi = (uint64_t)(l + 1) * T / (uint64_t)L;
  std::vector<Piece> out;
  uint64_t off = 0;
  for (size_t i = 0; i < spec.size(); ++i) {
    uint64_t a = off, b = off + spec[i].n;
    off = b;
    if (b <= lo || a >= hi) continue;
    uint64_t from = a > lo ? a : lo, to = b < hi ? b : hi;
    out.push_back({i, from - a, to - from, from - lo});
  }
  *lo_out = lo;
  *hi_out = hi;
  return out;
}

// The whole job in one process: N nodes of L ranks, global rank c * L + l.
struct Simulation {
  std::vector<LayerSpec> spec;
  int N, L;
  int32_t mode;
  std::vector<Worker> ranks;
  std::vector<std::vector<float>> owner_accum;  // two-stage: per (l, owner c)

  Simulation(const std::vector<LayerSpec> &s, int nodes, int per_node, int32_t m)
      : spec(s), N(nodes), L(per_node), mode(m), ranks(nodes * per_node, Worker(s)),
        owner_accum((size_t)nodes * per_node) {}

  // Cross-node step of local rank l: returns the average of the share.
  std::vector<float> cross(int l, const std::vector<std::vector<float>> &mean, uint64_t step,
                           uint64_t seed) {
    uint64_t lo = 0, hi = 0;
    auto pieces = pieces_of(spec, L, l, &lo, &hi);
    const uint64_t own = hi - lo;
    const uint64_t seed_l = seed ^ ((uint64_t)l * 0x9e3779b97f4a7c15ull);
    auto desc = [&](const Piece &p, int c, uint64_t from, uint64_t n, const float *g,
                    float *accum, uint32_t word) {
      mcgqLayerDesc_t d;
      mcgqLayerDescInit(&d);
      d.u = mcgqRandomWord(seed_l, step, (uint32_t)(&p - pieces.data()), word);
      d.g = g;
      d.accum = accum;
      d.n = n;
      d.cfg = config_of(spec[p.layer]);
      (void)c;
      (void)from;
      return d;
    };
    std::vector<float> out(own);
    if (mode == MCGQ_EXCHANGE_ALL_GATHER) {
      std::vector<std::vector<unsigned char>> msgs(N);
      for (int c = 0; c < N; ++c) {
        std::vector<mcgqLayerDesc_t> descs;
        Worker &w = ranks[c * L + l];
        for (auto &p : pieces)
          descs.push_back(desc(p, c, 0, p.n, mean[c].data() + p.at,
                               w.accum[p.layer].empty() ? nullptr
                                                        : w.accum[p.layer].data() + p.begin,
                               (uint32_t)c));
        msgs[c] = encode(descs);
      }
      std::vector<const void *> in(N);
      std::vector<size_t> sizes(N);
      for (int c = 0; c < N; ++c) {
        in[c] = msgs[c].data();
        sizes[c] = msgs[c].size();
      }
      EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), N, out.data(), own), mcgqSuccess)
          << mcgqGetLastErrorDetail();
      return out;
    }
    // Two-stage over the pieces: shard j of piece p is mcgqShardRange(n_p, N, j).
    auto shard = [&](const Piece &p, int j, uint64_t *b, uint64_t *e) {
      EXPECT_EQ(mcgqShardRange(p.n, N, j, b, e), mcgqSuccess);
    };
    std::vector<std::vector<std::vector<unsigned char>>> msgs(
        N, std::vector<std::vector<unsigned char>>(N));
    for (int c = 0; c < N; ++c)
      for (int j = 0; j < N; ++j) {
        std::vector<mcgqLayerDesc_t> descs;
        Worker &w = ranks[c * L + l];
        for (auto &p : pieces) {
          uint64_t b = 0, e = 0;
          shard(p, j, &b, &e);
          if (e == b) continue;
          descs.push_back(desc(p, c, b, e - b, mean[c].data() + p.at + b,
                               w.accum[p.layer].empty()
                                   ? nullptr
                                   : w.accum[p.layer].data() + p.begin + b,
                               (uint32_t)(c * N + j)));
        }
        msgs[c][j] = encode(descs);
      }
    for (int j = 0; j < N; ++j) {
      uint64_t n = 0;
      for (auto &p : pieces) {
        uint64_t b = 0, e = 0;
        shard(p, j, &b, &e);
        n += e - b;
      }
      if (n == 0) continue;
      std::vector<float> &oacc = owner_accum[(size_t)l * N + j];
      if (oacc.empty()) oacc.assign(n, 0.0f);
      std::vector<float> avg(n);
      std::vector<const void *> in(N);
      std::vector<size_t> sizes(N);
      for (int c = 0; c < N; ++c) {
        in[c] = msgs[c][j].data();
        sizes[c] = msgs[c][j].size();
      }
      EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), N, avg.data(), n), mcgqSuccess);
      std::vector<mcgqLayerDesc_t> descs;
      uint64_t off = 0;
      for (auto &p : pieces) {
        uint64_t b = 0, e = 0;
        shard(p, j, &b, &e);
        if (e == b) continue;
        descs.push_back(desc(p, j, b, e - b, avg.data() + off,
                             spec[p.layer].accumulate != MCGQ_ACCUM_NONE ? oacc.data() + off
                                                                         : nullptr,
                             (uint32_t)(N * N + j)));
        off += e - b;
      }
      auto msg = encode(descs);
      std::vector<float> dec(n);
      EXPECT_EQ(mcgqDecodeHost(msg.data(), msg.size(), dec.data(), n), mcgqSuccess);
      off = 0;
      for (auto &p : pieces) {
        uint64_t b = 0, e = 0;
        shard(p, j, &b, &e);
        std::memcpy(out.data() + p.at + b, dec.data() + off, (e - b) * sizeof(float));
        off += e - b;
      }
    }
    return out;
  }

  void step(uint64_t step, uint64_t seed) {
    for (int r = 0; r < N * L; ++r) ranks[r].load(r, step);
    // Node means of every share, local rank order, then the cross steps.
    std::vector<std::vector<std::vector<float>>> averaged(L);  // [l] share
    std::vector<std::vector<std::vector<float>>> means(L, std::vector<std::vector<float>>(N));
    for (int l = 0; l < L; ++l) {
      uint64_t lo = 0, hi = 0;
      auto pieces = pieces_of(spec, L, l, &lo, &hi);
      for (int c = 0; c < N; ++c) {
        std::vector<float> &m = means[l][c];
        m.assign(hi - lo, 0.0f);
        for (auto &p : pieces)
          for (uint64_t k = 0; k < p.n; ++k) {
            float acc = 0.0f;
            for (int r = 0; r < L; ++r) acc += ranks[c * L + r].grad[p.layer][p.begin + k];
            m[p.at + k] = acc / (float)L;
          }
      }
    }
    std::vector<std::vector<float>> result(L);
    for (int l = 0; l < L; ++l) result[l] = cross(l, means[l], step, seed);
    for (int l = 0; l < L; ++l) {
      uint64_t lo = 0, hi = 0;
      for (auto &p : pieces_of(spec, L, l, &lo, &hi))
        for (int r = 0; r < N * L; ++r)
          std::memcpy(ranks[r].grad[p.layer].data() + p.begin, result[l].data() + p.at,
                      p.n * sizeof(float));
    }
  }
};

// Node = ranks [c L, (c+1) L), cross = local rank l of every node.
struct Split {
  MPI_Comm node = MPI_COMM_NULL, cross = MPI_COMM_NULL;
  Split() {
    const int me = world_rank(), L = local_size();
    MPI_Comm_split(MPI_COMM_WORLD, me / L, me % L, &node);
    MPI_Comm_split(MPI_COMM_WORLD, me % L, me / L, &cross);
  }
  ~Split() {
    MPI_Comm_free(&node);
    MPI_Comm_free(&cross);
  }
};

struct HierComm {
  Split split;
  mcgqComm_t comm = nullptr;
  explicit HierComm(int32_t mode) {
    EXPECT_EQ(mcgqCommInitMpiHierarchical(&comm, split.node, split.cross), mcgqSuccess);
    EXPECT_EQ(mcgqCommSetExchangeMode(comm, mode), mcgqSuccess) << mcgqCommGetLastError(comm);
  }
  ~HierComm() {
    if (comm) mcgqCommDestroy(comm);
  }
};

void run_matches_simulation(int32_t mode, uint64_t steps) {
  const int P = world_size(), me = world_rank(), L = local_size();
  const uint64_t seed = 0xfeedull;
  auto spec = table();
  Worker real(spec);
  Simulation sim(spec, P / L, L, mode);
  HierComm c(mode);
  int rank = -1, nranks = -1;
  ASSERT_EQ(mcgqCommGetRank(c.comm, &rank, &nranks), mcgqSuccess);
  EXPECT_EQ(rank, me);
  EXPECT_EQ(nranks, P);
  auto layers = real.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess)
      << mcgqCommGetLastError(c.comm);
  for (uint64_t step = 0; step < steps; ++step) {
    real.load(me, step);
    mcgqStepStats_t st;
    ASSERT_EQ(mcgqCommStep(c.comm, step, seed, nullptr, &st), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    EXPECT_EQ(st.elements, 5669u);
    sim.step(step, seed);
    for (size_t i = 0; i < spec.size(); ++i) {
      ASSERT_TRUE(same_bits(real.grad[i], sim.ranks[me].grad[i])) << "step " << step << " layer " << i;
      ASSERT_TRUE(same_bits(real.accum[i], sim.ranks[me].accum[i])) << "step " << step << " layer " << i;
    }
    uint64_t h = 1469598103934665603ull;
    for (auto &g : real.grad) h = fnv(g.data(), g.size() * sizeof(float), h);
    for (uint64_t x : gather(h)) ASSERT_EQ(x, h) << "ranks differ at step " << step;
  }
  // The stats of a layer come from this rank's piece of it (zero elsewhere).
  std::vector<mcgqLayerStats_t> ls(spec.size());
  ASSERT_EQ(mcgqCommGetLayerStats(c.comm, ls.data(), (int)ls.size()), mcgqSuccess);
  uint64_t lo = 0, hi = 0, seen = 0;
  for (auto &p : pieces_of(spec, L, me % L, &lo, &hi)) EXPECT_EQ(ls[p.layer].n, p.n);
  for (auto &s : ls) seen += s.n;
  EXPECT_EQ(seen, hi - lo);
}

TEST(CommHierarchical, AllGatherAcrossNodesMatchesSimulationBitForBit) {
  run_matches_simulation(MCGQ_EXCHANGE_ALL_GATHER, 4);
}

TEST(CommHierarchical, TwoStageAcrossNodesMatchesSimulationBitForBit) {
  run_matches_simulation(MCGQ_EXCHANGE_TWO_STAGE, 4);
}

// One rank per node: the node stage is the identity (a sum of one value,
// divided by 1) and local rank 0 keeps the seed, so the step is the flat one.
TEST(CommHierarchical, OneRankPerNodeIsTheFlatExchange) {
  const int me = world_rank();
  auto spec = table();
  Worker a(spec), b(spec);
  mcgqComm_t flat = nullptr, hier = nullptr;
  ASSERT_EQ(mcgqCommInitMpi(&flat, MPI_COMM_WORLD), mcgqSuccess);
  ASSERT_EQ(mcgqCommInitMpiHierarchical(&hier, MPI_COMM_SELF, MPI_COMM_WORLD), mcgqSuccess);
  auto la = a.comm_layers(), lb = b.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(flat, la.data(), (int)la.size()), mcgqSuccess);
  ASSERT_EQ(mcgqCommSetLayers(hier, lb.data(), (int)lb.size()), mcgqSuccess);
  for (uint64_t step = 0; step < 3; ++step) {
    a.load(me, step);
    b.load(me, step);
    ASSERT_EQ(mcgqCommStep(flat, step, 9, nullptr, nullptr), mcgqSuccess);
    ASSERT_EQ(mcgqCommStep(hier, step, 9, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(hier);
    ASSERT_EQ(a.hash(), b.hash()) << "step " << step;
  }
  mcgqCommDestroy(flat);
  mcgqCommDestroy(hier);
}

// A NaN on one rank (in another local rank's share, then in its own), and a
// node sum that overflows although every input is finite: every rank of the
// job returns mcgqNonFinite and nothing changed anywhere.
TEST(CommHierarchical, NonFiniteAnywhereChangesNoRank) {
  const int P = world_size(), me = world_rank(), L = local_size();
  auto spec = table();
  struct Case {
    int rank;
    size_t layer;
    uint64_t k;
    float value;
  };
  const float nan = std::nanf("");
  const std::vector<std::vector<Case>> cases = {
      {{P - 1, 0, 3, nan}},                                 // share of local rank 0
      {{P - 1, 6, 500, nan}},                               // share of local rank L-1
      {{0, 3, 4000, FLT_MAX}, {L - 1, 3, 4000, FLT_MAX}}};  // Inf only in the sum
  for (size_t t = 0; t < cases.size(); ++t) {
    if (t == 2 && L < 2) continue;
    Worker w(spec);
    HierComm c(t == 1 ? MCGQ_EXCHANGE_TWO_STAGE : MCGQ_EXCHANGE_ALL_GATHER);
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
    // one good step first, so the accumulators hold something to keep
    w.load(me, 0);
    ASSERT_EQ(mcgqCommStep(c.comm, 0, 5, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
    w.load(me, 1);
    for (auto &x : cases[t])
      if (x.rank == me) w.grad[x.layer][x.k] = x.value;
    uint64_t before = w.hash();
    mcgqStepStats_t st;
    EXPECT_EQ(mcgqCommStep(c.comm, 1, 5, nullptr, &st), mcgqNonFinite)
        << "case " << t << ": " << mcgqCommGetLastError(c.comm);
    EXPECT_EQ(st.found_nonfinite, 1) << "case " << t;
    EXPECT_EQ(w.hash(), before) << "case " << t;
    // and the next step works on every rank
    w.load(me, 2);
    EXPECT_EQ(mcgqCommStep(c.comm, 2, 5, nullptr, nullptr), mcgqSuccess)
        << mcgqCommGetLastError(c.comm);
  }
}

// Tables that differ inside one node, or between nodes: refused on every
// rank with mcgqInvalidUsage, nothing changed.
TEST(CommHierarchical, TableMismatchIsRefusedEverywhere) {
  const int P = world_size(), me = world_rank(), L = local_size();
  for (int variant = 0; variant < 2; ++variant) {
    if (variant == 1 && P / L < 2) continue;  // needs two nodes
    auto spec = table();
    // 0: only the last rank differs (inside its node); 1: the whole last node
    bool differs = variant == 0 ? me == P - 1 : me / L == P / L - 1;
    if (differs) spec[2].n += 1;
    Worker w(spec);
    HierComm c(MCGQ_EXCHANGE_ALL_GATHER);
    auto layers = w.comm_layers();
    ASSERT_EQ(mcgqCommSetLayers(c.comm, layers.data(), (int)layers.size()), mcgqSuccess);
    w.load(me, 0);
    uint64_t before = w.hash();
    EXPECT_EQ(mcgqCommStep(c.comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage)
        << "variant " << variant;
    // the ranks that saw the mismatch name it; the others name the status
    const std::string detail = mcgqCommGetLastError(c.comm);
    const bool named = detail.find("differ") != std::string::npos;
    EXPECT_TRUE(named || detail.find("invalid usage") != std::string::npos) << detail;
    uint64_t namers = 0;
    for (uint64_t x : gather(named ? 1 : 0)) namers += x;
    EXPECT_GE(namers, 1u);
    EXPECT_EQ(w.hash(), before);
  }
}

// The cross communicator must join local rank l of every node at the node's
// place: ranks reversed in one cross communicator are refused everywhere.
TEST(CommHierarchical, InconsistentNodeLayoutIsRefused) {
  const int P = world_size(), me = world_rank(), L = local_size();
  if (L < 2 || P / L < 2) GTEST_SKIP() << "needs 2 nodes of 2";
  MPI_Comm node, cross;
  MPI_Comm_split(MPI_COMM_WORLD, me / L, me % L, &node);
  MPI_Comm_split(MPI_COMM_WORLD, me % L, me % L == 1 ? -me : me, &cross);
  mcgqComm_t comm = nullptr;
  ASSERT_EQ(mcgqCommInitMpiHierarchical(&comm, node, cross), mcgqSuccess);
  Worker w(table());
  auto layers = w.comm_layers();
  ASSERT_EQ(mcgqCommSetLayers(comm, layers.data(), (int)layers.size()), mcgqSuccess);
  w.load(me, 0);
  uint64_t before = w.hash();
  EXPECT_EQ(mcgqCommStep(comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage);
  EXPECT_EQ(w.hash(), before);
  mcgqCommDestroy(comm);
  MPI_Comm_free(&node);
  MPI_Comm_free(&cross);
}

TEST(CommHierarchical, BadArgumentsAreRefused) {
  Split s;
  mcgqComm_t comm = nullptr;
  EXPECT_EQ(mcgqCommInitMpiHierarchical(nullptr, s.node, s.cross), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommInitMpiHierarchical(&comm, MPI_COMM_NULL, s.cross), mcgqInvalidArgument);
  EXPECT_EQ(mcgqCommInitMpiHierarchical(&comm, s.node, MPI_COMM_NULL), mcgqInvalidArgument);
  ASSERT_EQ(mcgqCommInitMpiHierarchical(&comm, s.node, s.cross), mcgqSuccess);
  EXPECT_EQ(mcgqCommSetExchangeMode(comm, MCGQ_EXCHANGE_REDUCE_SCATTER), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("hierarchical"), std::string::npos);
  // fewer elements than local ranks: some share would be empty
  if (local_size() > 1) {
    float g = 0.0f;
    mcgqLayer_t l;
    std::memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.grad = &g;
    l.n = 1;
    l.cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    EXPECT_EQ(mcgqCommSetLayers(comm, &l, 1), mcgqInvalidArgument);
    EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("share"), std::string::npos);
  }
  // layer ids and 16-bit gradients: flat communicators only
  const uint32_t ids[1] = {7};
  EXPECT_EQ(mcgqCommSetLayerIds(comm, ids, 1), mcgqInvalidUsage);
  EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("hierarchical"), std::string::npos);
  {
    std::vector<uint16_t> g(64, 0);
    mcgqLayer_t l;
    std::memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.grad = g.data();
    l.n = g.size();
    l.cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    l.cfg.dtype = MCGQ_DTYPE_BF16;
    EXPECT_EQ(mcgqCommSetLayers(comm, &l, 1), mcgqInvalidUsage);
    EXPECT_NE(std::string(mcgqCommGetLastError(comm)).find("float32"), std::string::npos);
  }
  // no table: the step is refused on every rank
  EXPECT_EQ(mcgqCommStep(comm, 0, 1, nullptr, nullptr), mcgqInvalidUsage);
  EXPECT_EQ(mcgqCommDestroy(comm), mcgqSuccess);
}

}  // namespace
