// bf16 and binary16 layers (mcgq.h MCGQ_DTYPE_*, issue 13 item 7) on the CPU
// path: a 16-bit layer's message equals the float32 layer's of its widened
// values byte for byte (the plain reference agrees), on the shared vectors
// whose values are exactly 16-bit and on random layers, in every
// accumulation mode and with dynamic K; accumulators stay float32; the
// typed decoders equal the float32 decoders' results rounded once.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dtype.h"
#include "mcgq.h"
#include "mcgq_reference.h"
#include "support/bits.hpp"
#include "support/vectors.hpp"

namespace {

using Bytes = std::vector<uint8_t>;

uint16_t Narrow(float f, int32_t dtype) {
  return dtype == MCGQ_DTYPE_BF16 ? mcgq_f32_to_bf16(f) : mcgq_f32_to_f16(f);
}
float Widen(uint16_t h, int32_t dtype) {
  return dtype == MCGQ_DTYPE_BF16 ? mcgq_bf16_to_f32(h) : mcgq_f16_to_f32(h);
}
const char *Name(int32_t dtype) { return dtype == MCGQ_DTYPE_BF16 ? "bf16" : "fp16"; }

// One layer's buffers: the 16-bit values, their float32 widening, and an
// accumulator per path.
struct Layer {
  std::vector<uint16_t> g16;
  std::vector<float> g32, acc16, acc32;
  mcgqKState_t ks16{}, ks32{};
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  uint32_t u = 0;
};

mcgqLayerDesc_t Desc(Layer &l, bool sixteen, int32_t dtype) {
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.cfg = l.cfg;
  d.cfg.dtype = sixteen ? dtype : MCGQ_DTYPE_F32;
  d.n = l.g32.size();
  d.u = l.u;
  d.g = sixteen ? static_cast<const void *>(l.g16.data()) : l.g32.data();
  if (l.cfg.accumulate != MCGQ_ACCUM_NONE) d.accum = sixteen ? l.acc16.data() : l.acc32.data();
  if (l.cfg.dynamic_k) d.kstate = sixteen ? &l.ks16 : &l.ks32;
  return d;
}

mcgqResult_t Encode(std::vector<mcgqLayerDesc_t> &d, Bytes *out, bool reference = false) {
  size_t cap = 0, bytes = 0;
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), static_cast<int>(d.size()), &cap), mcgqSuccess);
  out->assign(cap, 0);
  std::vector<mcgqLayerStats_t> st(d.size());
  mcgqResult_t r = reference
                       ? mcgq_ref_encode(d.data(), static_cast<int>(d.size()), out->data(), cap,
                                         &bytes, st.data())
                       : mcgqEncodeHost(d.data(), static_cast<int>(d.size()), out->data(), cap,
                                        &bytes, st.data());
  out->resize(r == mcgqSuccess ? bytes : 0);
  return r;
}

// The shared vectors (../shared/vectors) whose g values are all exactly
// representable in the 16-bit type give the vector's g_int and scale.
TEST(DtypeLayers, SharedVectorsWithExactSixteenBitValues) {
  const auto cases = mcgq_test::LoadQuantizeVectors();
  for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
    int used = 0;
    for (const auto &c : cases) {
      std::vector<uint16_t> g16(c.g.size());
      bool exact = !c.g.empty();
      for (size_t k = 0; k < c.g.size() && exact; ++k) {
        g16[k] = Narrow(c.g[k], dtype);
        exact = Bits(Widen(g16[k], dtype)) == Bits(c.g[k]);
      }
      if (!exact) continue;
      mcgqLayerDesc_t d;
      mcgqLayerDescInit(&d);
      d.cfg.dtype = dtype;
      d.cfg.samples = c.N;
      d.n = c.n;
      d.u = c.u;
      d.g = g16.data();
      std::vector<mcgqLayerDesc_t> descs = {d};
      Bytes msg;
      ASSERT_EQ(Encode(descs, &msg), mcgqSuccess) << mcgqGetLastErrorDetail();
      std::vector<int32_t> ints(c.n);
      float scale = 0;
      ASSERT_EQ(mcgqDecodeIntsHost(msg.data(), msg.size(), ints.data(), c.n, &scale, 1), mcgqSuccess);
      EXPECT_EQ(ints, c.g_int) << Name(dtype) << " n=" << c.n;
      EXPECT_EQ(Bits(scale), Bits(c.scale)) << Name(dtype) << " n=" << c.n;
      ++used;
    }
    EXPECT_GT(used, 3) << Name(dtype) << ": too few vectors with exact 16-bit values";
  }
}

// Random 16-bit layers over steps, every accumulation mode, dynamic K: the
// 16-bit encode equals the float32 encode of the widened values (message,
// accumulators, K state), and the plain reference gives the same message.
TEST(DtypeLayers, MessagesEqualTheWidenedFloat32Layers) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
    std::vector<Layer> layers(5);
    const uint64_t sizes[] = {1, 33, 1000, 8193, 70000};
    const int32_t modes[] = {MCGQ_ACCUM_NONE, MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL,
                             MCGQ_ACCUM_RESIDUAL, MCGQ_ACCUM_NONE};
    for (size_t i = 0; i < layers.size(); ++i) {
      Layer &l = layers[i];
      l.cfg.k = i % 2 ? 0.3 : 2.0;
      l.cfg.accumulate = modes[i];
      l.cfg.dynamic_k = i == 3;
      l.cfg.checksum = i == 2;
      l.acc16.assign(sizes[i], 0.0f);
      l.acc32.assign(sizes[i], 0.0f);
      ASSERT_EQ(mcgqKStateInit(&l.cfg, &l.ks16), mcgqSuccess);
      l.ks32 = l.ks16;
    }
    for (int step = 0; step < 4; ++step) {
      std::vector<mcgqLayerDesc_t> d16, d32;
      for (size_t i = 0; i < layers.size(); ++i) {
        Layer &l = layers[i];
        l.g16.resize(sizes[i]);
        l.g32.resize(sizes[i]);
        for (uint64_t k = 0; k < sizes[i]; ++k) {
          float v = normal(rng) * (i == 4 ? 5e3f : 1.0f);  // near fp16's range for layer 4
          if (k % 7 == 3) v = 0.0f;
          l.g16[k] = Narrow(v, dtype);
          l.g32[k] = Widen(l.g16[k], dtype);
        }
        l.u = mcgqRandomWord(5, step, static_cast<uint32_t>(i), 0);
        d16.push_back(Desc(l, true, dtype));
        d32.push_back(Desc(l, false, dtype));
      }
      std::vector<float> ref_acc = layers[1].acc16;  // the reference encode's own copy
      Bytes m16, m32;
      ASSERT_EQ(Encode(d32, &m32), mcgqSuccess) << mcgqGetLastErrorDetail();
      ASSERT_EQ(Encode(d16, &m16), mcgqSuccess) << mcgqGetLastErrorDetail();
      EXPECT_TRUE(m16 == m32) << Name(dtype) << " step " << step;
      for (Layer &l : layers) {
        EXPECT_EQ(0, std::memcmp(l.acc16.data(), l.acc32.data(), l.acc16.size() * sizeof(float)))
            << Name(dtype) << " step " << step;
        EXPECT_EQ(0, std::memcmp(&l.ks16, &l.ks32, sizeof l.ks16));
      }
      (void)ref_acc;
    }
    // The plain reference on a fresh copy of the state gives the same bytes.
    std::vector<mcgqLayerDesc_t> d16, dref;
    std::vector<Layer> copy = layers;
    for (size_t i = 0; i < layers.size(); ++i) {
      d16.push_back(Desc(layers[i], true, dtype));
      dref.push_back(Desc(copy[i], true, dtype));
    }
    Bytes fast, ref;
    ASSERT_EQ(Encode(d16, &fast), mcgqSuccess);
    ASSERT_EQ(Encode(dref, &ref, true), mcgqSuccess);
    EXPECT_TRUE(fast == ref) << Name(dtype);
  }
}

// A 16-bit infinity or NaN is non-finite input like a float32 one.
TEST(DtypeLayers, NonFiniteSixteenBitValuesAreRefused) {
  for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
    const uint16_t inf = dtype == MCGQ_DTYPE_BF16 ? 0x7f80 : 0x7c00;
    std::vector<uint16_t> g = {Narrow(1.0f, dtype), inf, Narrow(-2.0f, dtype)};
    mcgqLayerDesc_t d;
    mcgqLayerDescInit(&d);
    d.cfg.dtype = dtype;
    d.n = g.size();
    d.g = g.data();
    std::vector<mcgqLayerDesc_t> descs = {d};
    Bytes msg;
    EXPECT_EQ(Encode(descs, &msg), mcgqNonFinite) << Name(dtype);
  }
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  float g = 1.0f;
  d.cfg.dtype = 7;
  d.n = 1;
  d.g = &g;
  std::vector<uint8_t> out(4096);
  size_t bytes = 0;
  EXPECT_EQ(mcgqEncodeHost(&d, 1, out.data(), out.size(), &bytes, nullptr), mcgqInvalidArgument);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("dtype = 7"), std::string::npos)
      << mcgqGetLastErrorDetail();
}

// Typed decoders: every output equals the float32 decoder's value rounded
// once to nearest even (so a 16-bit output may overflow to infinity where
// float32 does not: that is the 16-bit type's range, not an error).
TEST(DtypeLayers, TypedDecodersRoundTheFloat32ResultsOnce) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int P = 3;
  const uint64_t n = 20000;
  std::vector<Bytes> msgs(P);
  std::vector<const void *> in;
  std::vector<size_t> sizes;
  for (int r = 0; r < P; ++r) {
    std::vector<float> g(n);
    for (float &v : g) v = normal(rng) * (r == 2 ? 1e5f : 1e-3f);  // past fp16's range
    mcgqLayerDesc_t d;
    mcgqLayerDescInit(&d);
    d.n = n;
    d.g = g.data();
    d.cfg.k = 0.5;
    d.u = mcgqRandomWord(1, 0, 0, static_cast<uint32_t>(r));
    std::vector<mcgqLayerDesc_t> descs = {d};
    ASSERT_EQ(Encode(descs, &msgs[r]), mcgqSuccess);
    in.push_back(msgs[r].data());
    sizes.push_back(msgs[r].size());
  }
  std::vector<float> one(n), avg(n);
  ASSERT_EQ(mcgqDecodeHost(msgs[2].data(), msgs[2].size(), one.data(), n), mcgqSuccess);
  ASSERT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, avg.data(), n), mcgqSuccess);
  for (int32_t dtype : {MCGQ_DTYPE_BF16, MCGQ_DTYPE_F16}) {
    std::vector<uint16_t> one16(n), avg16(n);
    ASSERT_EQ(mcgqDecodeHostTyped(msgs[2].data(), msgs[2].size(), one16.data(), dtype, n),
              mcgqSuccess);
    ASSERT_EQ(mcgqDecodeAverageHostTyped(in.data(), sizes.data(), P, avg16.data(), dtype, n),
              mcgqSuccess);
    for (uint64_t k = 0; k < n; ++k) {
      ASSERT_EQ(one16[k], Narrow(one[k], dtype)) << Name(dtype) << " k " << k;
      ASSERT_EQ(avg16[k], Narrow(avg[k], dtype)) << Name(dtype) << " k " << k;
    }
  }
  std::vector<float> f32(n);
  ASSERT_EQ(mcgqDecodeAverageHostTyped(in.data(), sizes.data(), P, f32.data(), MCGQ_DTYPE_F32, n),
            mcgqSuccess);
  EXPECT_EQ(0, std::memcmp(f32.data(), avg.data(), n * sizeof(float)));
  std::vector<uint16_t> bad(n);
  EXPECT_EQ(mcgqDecodeHostTyped(msgs[0].data(), msgs[0].size(), bad.data(), 9, n),
            mcgqInvalidArgument);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("out_dtype = 9"), std::string::npos);
}

}  // namespace
