// Argument validation (host/api/validate.c, compiled into this test with
// host/api/errors.c so the internal checks can be called directly): every limit
// of mcgq.h and DESIGN.md section 7, every error code and its detail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "internal.h"

namespace {

void ExpectDetail(const char *fn, const char *needle) {
  std::string detail = mcgqGetLastErrorDetail();
  EXPECT_NE(detail.find(fn), std::string::npos) << detail;
  EXPECT_NE(detail.find(needle), std::string::npos) << detail;
}

uint64_t Resolve(double k, uint64_t n, mcgqResult_t want = mcgqSuccess) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = k;
  uint64_t N = 0;
  EXPECT_EQ(mcgqResolveSamples(&cfg, nullptr, n, &N), want) << mcgqGetLastErrorDetail();
  return N;
}

TEST(Validate, SamplesFromKInDouble) {
  EXPECT_EQ(Resolve(0.1, 100), 10u);  // DESIGN 2: float K would give 11
  EXPECT_EQ(Resolve(0.07, 100), 8u);  // 0.07's binary value is above 0.07
  EXPECT_EQ(Resolve(1.0, 1), 1u);
  EXPECT_EQ(Resolve(1e-300, 1), 1u);  // a tiny K still draws one sample
  EXPECT_EQ(Resolve(64.0, 1), 64u);
  EXPECT_EQ(Resolve(0.5, 0xfffffffeull), 0x7fffffffull);  // N = 2^31 - 1, the limit
  Resolve(0.5, 0xffffffffull, mcgqInvalidArgument);        // ceil(2^31 - 0.5) = 2^31
  EXPECT_EQ(Resolve(64.0, (1u << 25) - 1), (uint64_t)64 * ((1u << 25) - 1));
  // N = 2^31 is one too many.
  Resolve(1.0, 0x80000000ull, mcgqInvalidArgument);
  ExpectDetail("mcgqResolveSamples", "2^31-1");
  Resolve(64.0, 1u << 25, mcgqInvalidArgument);
}

TEST(Validate, SamplesOverrideAndDynamicK) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  uint64_t N = 0;
  cfg.samples = 77;
  cfg.k = std::nan("");  // not consulted when N is given
  ASSERT_EQ(mcgqResolveSamples(&cfg, nullptr, 10, &N), mcgqSuccess);
  EXPECT_EQ(N, 77u);
  cfg.samples = MCGQ_MAX_SAMPLES + 1;
  EXPECT_EQ(mcgqResolveSamples(&cfg, nullptr, 10, &N), mcgqInvalidArgument);
  ExpectDetail("mcgqResolveSamples", "samples");

  mcgqLayerConfig_t dyn = MCGQ_LAYER_CONFIG_INITIALIZER;
  dyn.dynamic_k = 1;
  mcgqKState_t ks;
  ASSERT_EQ(mcgqKStateInit(&dyn, &ks), mcgqSuccess);
  EXPECT_EQ(ks.k, 1.0);
  EXPECT_EQ(ks.started, 0);
  ks.k = 2.5;
  ASSERT_EQ(mcgqResolveSamples(&dyn, &ks, 10, &N), mcgqSuccess);
  EXPECT_EQ(N, 25u);
  EXPECT_EQ(mcgqResolveSamples(&dyn, nullptr, 10, &N), mcgqInvalidArgument);
  ExpectDetail("mcgqResolveSamples", "kstate is NULL");
  ks.k = 65.0;
  EXPECT_EQ(mcgqResolveSamples(&dyn, &ks, 10, &N), mcgqInvalidArgument);
  ExpectDetail("mcgqResolveSamples", "kstate.k = 65");
}

TEST(Validate, ConfigErrors) {
  const char *fn = "mcgqResolveSamples";
  uint64_t N = 0;
  struct Case {
    void (*edit)(mcgqLayerConfig_t *);
    mcgqResult_t want;
    const char *needle;
  };
  const Case cases[] = {
      {[](mcgqLayerConfig_t *c) { c->struct_size = 0; }, mcgqUnsupportedVersion, "struct_size = 0"},
      {[](mcgqLayerConfig_t *c) { c->struct_size = 8; }, mcgqUnsupportedVersion, "struct_size = 8"},
      {[](mcgqLayerConfig_t *c) { c->dtype = 3; }, mcgqInvalidArgument, "dtype = 3"},
      {[](mcgqLayerConfig_t *c) { c->k = 0.0; }, mcgqInvalidArgument, "cfg.k = 0"},
      {[](mcgqLayerConfig_t *c) { c->k = -2.0; }, mcgqInvalidArgument, "cfg.k = -2"},
      {[](mcgqLayerConfig_t *c) { c->k = std::nan(""); }, mcgqInvalidArgument, "cfg.k = nan"},
      {[](mcgqLayerConfig_t *c) { c->k = 64.000001; }, mcgqInvalidArgument, "cfg.k = 64"},
      {[](mcgqLayerConfig_t *c) { c->accumulate = 3; }, mcgqInvalidArgument, "cfg.accumulate = 3"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 2; }, mcgqInvalidArgument, "cfg.dynamic_k = 2"},
      {[](mcgqLayerConfig_t *c) { c->algo = 9; }, mcgqInvalidArgument, "cfg.algo = 9"},
      {[](mcgqLayerConfig_t *c) { c->checksum = -1; }, mcgqInvalidArgument, "cfg.checksum = -1"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->k_min = 0.0; }, mcgqInvalidArgument, "k_min"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->k_min = 4.0; c->k_max = 2.0; }, mcgqInvalidArgument, "k_max"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->k_max = 65.0; }, mcgqInvalidArgument, "k_max = 65"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->k_max = std::nan(""); }, mcgqInvalidArgument, "k_max = nan"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->delta_k = INFINITY; }, mcgqInvalidArgument, "delta_k = inf"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->delta_k = std::nan(""); }, mcgqInvalidArgument, "delta_k = nan"},
      {[](mcgqLayerConfig_t *c) { c->dynamic_k = 1; c->samples = 5; }, mcgqInvalidArgument, "samples = 5"},
  };
  int i = 0;
  for (const Case &c : cases) {
    SCOPED_TRACE(i++);
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    c.edit(&cfg);
    mcgqKState_t ks = {1.0, 0.0, 0, 0};
    EXPECT_EQ(mcgqResolveSamples(&cfg, &ks, 10, &N), c.want);
    ExpectDetail(fn, c.needle);
  }
  EXPECT_EQ(mcgqResolveSamples(nullptr, nullptr, 10, &N), mcgqInvalidArgument);
  ExpectDetail(fn, "cfg is NULL");
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  EXPECT_EQ(mcgqResolveSamples(&cfg, nullptr, 10, nullptr), mcgqInvalidArgument);
  ExpectDetail(fn, "samples is NULL");
  EXPECT_EQ(mcgqResolveSamples(&cfg, nullptr, 0, &N), mcgqInvalidArgument);
  ExpectDetail(fn, "n = 0");
  EXPECT_EQ(mcgqResolveSamples(&cfg, nullptr, 1ull << 32, &N), mcgqInvalidArgument);
  ExpectDetail(fn, "n = 4294967296");
  // A larger struct_size (a newer caller) is accepted.
  cfg.struct_size += 16;
  EXPECT_EQ(mcgqResolveSamples(&cfg, nullptr, 10, &N), mcgqSuccess);
  EXPECT_STREQ(mcgqGetLastErrorDetail(), "");
}

TEST(Validate, LayerDescInitAndKStateInit) {
  mcgqLayerDesc_t d;
  std::memset(&d, 0xab, sizeof d);
  mcgqLayerDescInit(&d);
  EXPECT_EQ(d.struct_size, sizeof(mcgqLayerDesc_t));
  EXPECT_EQ(d.cfg.struct_size, sizeof(mcgqLayerConfig_t));
  EXPECT_EQ(d.cfg.k, 1.0);
  EXPECT_EQ(d.g, nullptr);
  EXPECT_EQ(d.accum, nullptr);
  EXPECT_EQ(d.kstate, nullptr);
  EXPECT_EQ(d.n, 0u);
  EXPECT_EQ(d.u, 0u);
  mcgqLayerDescInit(nullptr);  // no crash

  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = 3.5;
  mcgqKState_t ks = {9.0, 9.0, 9, 9};
  ASSERT_EQ(mcgqKStateInit(&cfg, &ks), mcgqSuccess);
  EXPECT_EQ(ks.k, 3.5);
  EXPECT_EQ(ks.d_prev, 0.0);
  EXPECT_EQ(ks.started, 0);
  EXPECT_EQ(mcgqKStateInit(&cfg, nullptr), mcgqInvalidArgument);
  ExpectDetail("mcgqKStateInit", "kstate is NULL");
  cfg.k = 0.0;
  EXPECT_EQ(mcgqKStateInit(&cfg, &ks), mcgqInvalidArgument);
  ExpectDetail("mcgqKStateInit", "cfg.k = 0");
  EXPECT_EQ(ks.k, 3.5);  // untouched on failure
}

// ------------------------------------------------ internal descriptor checks

struct Layer {
  std::vector<float> g = std::vector<float>(16, 1.0f);
  std::vector<float> accum = std::vector<float>(16, 0.0f);
  mcgqKState_t ks = {1.0, 0.0, 0, 0};
  mcgqLayerDesc_t d;
  Layer() {
    mcgqLayerDescInit(&d);
    d.g = g.data();
    d.n = g.size();
  }
};

TEST(Validate, DescriptorChecks) {
  const char *fn = "mcgqEncodeHost";
  uint64_t N = 0;
  Layer ok;
  ASSERT_EQ(mcgq_check_desc(fn, &ok.d, 0, &N), mcgqSuccess);
  EXPECT_EQ(N, 16u);

  struct Case {
    void (*edit)(Layer *);
    mcgqResult_t want;
    const char *needle;
  };
  const Case cases[] = {
      {[](Layer *l) { l->d.struct_size = 0; }, mcgqUnsupportedVersion, "layers[3].struct_size = 0"},
      {[](Layer *l) { l->d.struct_size -= 8; }, mcgqUnsupportedVersion, "struct_size"},
      {[](Layer *l) { l->d.g = nullptr; }, mcgqInvalidArgument, "layers[3].g is NULL"},
      {[](Layer *l) { l->d.n = 0; }, mcgqInvalidArgument, "layers[3].n = 0"},
      {[](Layer *l) { l->d.n = 1ull << 32; }, mcgqInvalidArgument, "n = 4294967296"},
      {[](Layer *l) { l->d.accum = l->accum.data(); }, mcgqInvalidArgument, "accum must be NULL"},
      {[](Layer *l) { l->d.cfg.accumulate = MCGQ_ACCUM_RESET; }, mcgqInvalidArgument, "accum must be non-NULL"},
      {[](Layer *l) { l->d.kstate = &l->ks; }, mcgqInvalidArgument, "kstate must be NULL"},
      {[](Layer *l) { l->d.cfg.dynamic_k = 1; }, mcgqInvalidArgument, "kstate must be non-NULL"},
      {[](Layer *l) { l->d.cfg.dtype = -1; }, mcgqInvalidArgument, "dtype = -1"},
      {[](Layer *l) { l->d.cfg.k = std::nan(""); }, mcgqInvalidArgument, "cfg.k = nan"},
      {[](Layer *l) { l->d.n = 1u << 30; l->d.cfg.k = 2.0; }, mcgqInvalidArgument, "2^31-1"},
      {[](Layer *l) {
         l->d.cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
         l->d.accum = static_cast<float *>(const_cast<void *>(l->d.g)) + 4;
       },
       mcgqInvalidArgument, "accum overlaps"},
      {[](Layer *l) {
         l->d.cfg.dynamic_k = 1;
         l->d.kstate = reinterpret_cast<mcgqKState_t *>(l->g.data() + 2);
       },
       mcgqInvalidArgument, "kstate overlaps"},
      {[](Layer *l) {
         l->d.cfg.dynamic_k = 1;
         l->d.kstate = &l->ks;
         l->ks.k = 0.0;
       },
       mcgqInvalidArgument, "kstate.k = 0"},
  };
  int i = 0;
  for (const Case &c : cases) {
    SCOPED_TRACE(i++);
    Layer l;
    c.edit(&l);
    EXPECT_EQ(mcgq_check_desc(fn, &l.d, 3, &N), c.want);
    ExpectDetail(fn, c.needle);
  }
  EXPECT_EQ(mcgq_check_desc(fn, nullptr, 0, &N), mcgqInvalidArgument);
  ExpectDetail(fn, "layers[0] is NULL");
  // Valid modes.
  Layer reset;
  reset.d.cfg.accumulate = MCGQ_ACCUM_RESET;
  reset.d.accum = reset.accum.data();
  EXPECT_EQ(mcgq_check_desc(fn, &reset.d, 0, &N), mcgqSuccess);
  Layer dyn;
  dyn.d.cfg.dynamic_k = 1;
  dyn.d.kstate = &dyn.ks;
  dyn.ks.k = 0.5;
  EXPECT_EQ(mcgq_check_desc(fn, &dyn.d, 0, &N), mcgqSuccess);
  EXPECT_EQ(N, 8u);
}

TEST(Validate, DescriptorStrideIsTheCallersStructSize) {
  // A caller built against a larger descriptor: 32 extra bytes per entry.
  struct Bigger {
    mcgqLayerDesc_t d;
    char future[32];
  } arr[3];
  for (Bigger &b : arr) {
    mcgqLayerDescInit(&b.d);
    b.d.struct_size = sizeof(Bigger);
  }
  EXPECT_EQ(mcgq_desc_at(&arr[0].d, 0), &arr[0].d);
  EXPECT_EQ(mcgq_desc_at(&arr[0].d, 2), &arr[2].d);
  EXPECT_EQ(mcgq_desc_at(&arr[0].d, -1), nullptr);
  EXPECT_EQ(mcgq_desc_at(nullptr, 0), nullptr);
  arr[0].d.struct_size = 8;  // too small a stride would overlap entries
  EXPECT_EQ(mcgq_desc_at(&arr[0].d, 1), nullptr);
  EXPECT_EQ(mcgq_desc_at(&arr[0].d, 0), &arr[0].d);
}

TEST(Validate, RangesOverlap) {
  char buf[64] = {0};
  EXPECT_TRUE(mcgq_ranges_overlap(buf, 10, buf + 9, 10));
  EXPECT_FALSE(mcgq_ranges_overlap(buf, 10, buf + 10, 10));
  EXPECT_TRUE(mcgq_ranges_overlap(buf + 20, 10, buf, 21));
  EXPECT_FALSE(mcgq_ranges_overlap(buf + 20, 10, buf, 20));
  EXPECT_TRUE(mcgq_ranges_overlap(buf, 64, buf + 30, 1));
  EXPECT_FALSE(mcgq_ranges_overlap(buf, 0, buf, 10));  // empty ranges never overlap
  EXPECT_FALSE(mcgq_ranges_overlap(nullptr, 10, buf, 10));
}

}  // namespace
