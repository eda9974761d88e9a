// The wire container (docs/FORMAT.md 2-3) through mcgqEncodeHost and the
// host decoders: identity against the quantizer and the vectors, the byte
// layout read back with this file's own parser and CRC32C, the size bound
// on adversarial data, the canonical encoding choice, every corruption
// class, decode-and-average against a direct computation, and the
// accumulated / dynamic-K variants with their all-or-nothing guarantee.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "mcgq.h"
#include "support/bits.hpp"
#include "support/vectors.hpp"

namespace {

using Bytes = std::vector<uint8_t>;

// ------------------------------------------------------------ test helpers

uint64_t Le(const Bytes &b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[at + i];
  return v;
}
void PutLe(Bytes &b, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t Align8(uint64_t x) { return (x + 7) / 8 * 8; }

// Bitwise CRC32C, the definition itself (reflected 0x82f63b78).
uint32_t Crc32c(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  return ~c;
}

// Directory entry as the test reads it.
struct Dir {
  uint64_t n, n_coded, samples, bit_length, byte_offset;
  uint32_t scale_bits, crc, encoding, bits_value, bits_run, chunk_log2, flags, reserved;
};
Dir ReadDir(const Bytes &m, uint32_t i) {
  size_t p = 32 + 56 * size_t{i};
  return Dir{Le(m, p, 8), Le(m, p + 8, 8), Le(m, p + 16, 8), Le(m, p + 24, 8), Le(m, p + 32, 8),
             static_cast<uint32_t>(Le(m, p + 40, 4)), static_cast<uint32_t>(Le(m, p + 44, 4)),
             m[p + 48], m[p + 49], m[p + 50], m[p + 51],
             static_cast<uint32_t>(Le(m, p + 52, 2)), static_cast<uint32_t>(Le(m, p + 54, 2))};
}
uint64_t IndexEntries(uint64_t n, uint32_t encoding) {
  uint64_t c = (n + 8191) / 8192;
  return encoding == 0 && c > 1 ? c - 1 : 0;
}
uint64_t RegionBytes(const Dir &d) {
  uint64_t e = IndexEntries(d.n_coded, d.encoding);
  return Align8((d.bit_length + 7) / 8) + 8 * e + Align8(4 * e);
}

// Owns the buffers a descriptor points to.
struct Layer {
  std::vector<float> g, accum;
  mcgqKState_t ks{};
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  uint32_t u = 0;
};
std::vector<mcgqLayerDesc_t> Descs(std::vector<Layer> &layers) {
  std::vector<mcgqLayerDesc_t> d(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    mcgqLayerDescInit(&d[i]);
    d[i].g = layers[i].g.data();
    d[i].n = layers[i].g.size();
    d[i].u = layers[i].u;
    d[i].cfg = layers[i].cfg;
    d[i].accum = layers[i].cfg.accumulate ? layers[i].accum.data() : nullptr;
    d[i].kstate = layers[i].cfg.dynamic_k ? &layers[i].ks : nullptr;
  }
  return d;
}
Bytes EncodeLayers(std::vector<Layer> &layers, std::vector<mcgqLayerStats_t> *stats = nullptr) {
  std::vector<mcgqLayerDesc_t> d = Descs(layers);
  size_t bound = 0;
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), static_cast<int>(d.size()), &bound), mcgqSuccess);
  Bytes out(bound);
  size_t bytes = 0;
  std::vector<mcgqLayerStats_t> st(d.size());
  EXPECT_EQ(mcgqEncodeHost(d.data(), static_cast<int>(d.size()), out.data(), out.size(), &bytes, st.data()),
            mcgqSuccess) << mcgqGetLastErrorDetail();
  EXPECT_LE(bytes, bound);
  out.resize(bytes);
  if (stats) *stats = st;
  return out;
}
// The reference of one layer: the public quantizer.
struct Quantized {
  std::vector<int32_t> g_int;
  mcgqLayerStats_t st{};
};
Quantized Quantize(const std::vector<float> &g, double k, uint64_t samples, uint32_t u, int damped = 0) {
  Quantized q;
  q.g_int.resize(g.size());
  EXPECT_EQ(mcgqQuantizeHost(g.data(), g.size(), k, samples, u, damped, q.g_int.data(), &q.st), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  return q;
}
uint64_t TotalN(const std::vector<Layer> &layers) {
  uint64_t n = 0;
  for (const Layer &l : layers) n += l.g.size();
  return n;
}
mcgqResult_t DecodeInts(const Bytes &m, uint64_t n, std::vector<int32_t> *g, std::vector<float> *scales,
                        uint32_t count) {
  Bytes copy(m);  // exact size on the heap: ASan sees every overread
  g->assign(n, 0x5a5a5a5a);
  scales->assign(count, -1.0f);
  return mcgqDecodeIntsHost(copy.data(), copy.size(), g->data(), n, scales->data(), count);
}

std::vector<float> RandomLayer(std::mt19937_64 &rng, size_t n, double density) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<float> g(n, 0.0f);
  for (float &v : g)
    if (unit(rng) < density) v = normal(rng);
  return g;
}

// Two layers: 0 sparse and RLE with a chunk index, 1 dense and fixed width.
std::vector<Layer> TwoLayerModel(int checksum) {
  std::mt19937_64 rng(7);
  std::vector<Layer> layers(2);
  layers[0].g = RandomLayer(rng, 20000, 1.0);
  layers[0].cfg.k = 0.02;
  layers[0].u = 12345;
  layers[1].g = RandomLayer(rng, 16, 1.0);
  layers[1].cfg.k = 4.0;
  layers[1].u = 999;
  for (Layer &l : layers) l.cfg.checksum = checksum;
  return layers;
}

// Test-side message builder for crafted layers (CUT, non-canonical choices).
struct Spec {
  uint64_t n, n_coded, samples;
  float scale;
  uint32_t encoding, bits_value, bits_run;
  uint64_t bit_length;
  Bytes region;  // stream padded to 8 (+ index)
};
Bytes Build(const std::vector<Spec> &specs, bool crc) {
  Bytes m(32 + 56 * specs.size(), 0);
  uint64_t total_n = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec &s = specs[i];
    size_t p = 32 + 56 * i;
    PutLe(m, p, s.n, 8);
    PutLe(m, p + 8, s.n_coded, 8);
    PutLe(m, p + 16, s.samples, 8);
    PutLe(m, p + 24, s.bit_length, 8);
    PutLe(m, p + 32, m.size(), 8);
    uint32_t sb;
    std::memcpy(&sb, &s.scale, 4);
    PutLe(m, p + 40, sb, 4);
    PutLe(m, p + 44, crc ? Crc32c(s.region.data(), s.region.size()) : 0, 4);
    m[p + 48] = static_cast<uint8_t>(s.encoding);
    m[p + 49] = static_cast<uint8_t>(s.bits_value);
    m[p + 50] = static_cast<uint8_t>(s.bits_run);
    m[p + 51] = 13;
    PutLe(m, p + 52, (s.encoding ? 1u : 0u) | (s.n_coded < s.n ? 2u : 0u), 2);
    m.insert(m.end(), s.region.begin(), s.region.end());
    total_n += s.n;
  }
  m[0] = 'M'; m[1] = 'C'; m[2] = 'G'; m[3] = 'Q';
  PutLe(m, 4, 1, 2);
  PutLe(m, 6, crc ? 1 : 0, 2);
  PutLe(m, 8, specs.size(), 4);
  PutLe(m, 16, m.size(), 8);
  PutLe(m, 24, total_n, 8);
  return m;
}
Bytes PaperRegion(const std::vector<int32_t> &g, uint64_t *bits) {
  EXPECT_EQ(mcgqRleEncodeHost(g.data(), g.size(), nullptr, 0, bits), mcgqSuccess);
  Bytes r(Align8((*bits + 7) / 8), 0);
  EXPECT_EQ(mcgqRleEncodeHost(g.data(), g.size(), r.data(), r.size(), bits), mcgqSuccess);
  return r;
}

// Chunk index from first principles: token start bits of the paper stream.
void ExpectIndexMatches(const Bytes &m, const Dir &d, const std::vector<int32_t> &g) {
  uint64_t entries = IndexEntries(d.n_coded, d.encoding);
  if (!entries) return;
  std::vector<uint64_t> tok_bit(g.size()), tok_start(g.size());
  uint64_t pos = 64;
  for (size_t k = 0; k < g.size();) {
    size_t s = k;
    if (g[k] != 0) {
      ++k;
    } else {
      while (k < g.size() && g[k] == 0) ++k;
    }
    for (size_t j = s; j < k; ++j) { tok_bit[j] = pos; tok_start[j] = s; }
    pos += d.bits_value + (g[s] == 0 ? d.bits_run : 0);
  }
  size_t idx = d.byte_offset + Align8((d.bit_length + 7) / 8);
  for (uint64_t e = 0; e < entries; ++e) {
    uint64_t el = (e + 1) * 8192;
    EXPECT_EQ(Le(m, idx + 8 * e, 8), tok_bit[el]) << "entry " << e;
    EXPECT_EQ(Le(m, idx + 8 * entries + 4 * e, 4), el - tok_start[el]) << "entry " << e;
  }
}


}  // namespace

// -------------------------------------------------------------------- CRC

TEST(Container, TestCrcIsCastagnoli) {
  EXPECT_EQ(Crc32c(reinterpret_cast<const uint8_t *>("123456789"), 9), 0xe3069283u);
}

// ---------------------------------------------------------------- identity

TEST(Container, QuantizeVectorsRoundTrip) {
  std::vector<QuantizeCase> cases = LoadQuantizeVectors();
  ASSERT_FALSE(cases.empty());
  for (size_t i = 0; i < cases.size(); ++i) {
    const QuantizeCase &c = cases[i];
    std::vector<Layer> layers(1);
    layers[0].g = c.g;
    layers[0].cfg.k = c.k;
    layers[0].cfg.checksum = static_cast<int>(i & 1);
    layers[0].u = c.u;
    std::vector<mcgqLayerStats_t> st;
    Bytes m = EncodeLayers(layers, &st);
    std::vector<int32_t> g;
    std::vector<float> scales;
    ASSERT_EQ(DecodeInts(m, c.n, &g, &scales, 1), mcgqSuccess) << mcgqGetLastErrorDetail();
    EXPECT_EQ(g, c.g_int) << "case " << i << " " << c.kind;
    EXPECT_EQ(Bits(scales[0]), Bits(c.scale)) << "case " << i;
    std::vector<float> out(c.n);
    ASSERT_EQ(mcgqDecodeHost(m.data(), m.size(), out.data(), c.n), mcgqSuccess);
    for (size_t k = 0; k < c.n; ++k)
      EXPECT_EQ(Bits(out[k]), Bits(c.scale * static_cast<float>(c.g_int[k]))) << "case " << i;
  }
}

TEST(Container, RandomMultiLayerLayoutAndIdentity) {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 12; ++iter) {
    int count = 1 + static_cast<int>(rng() % 6);
    std::vector<Layer> layers(count);
    for (Layer &l : layers) {
      size_t n = 1 + rng() % (iter < 6 ? 3000 : 40000);
      l.g = RandomLayer(rng, n, std::uniform_real_distribution<double>(0.0, 1.0)(rng));
      const double ks[] = {0.01, 0.1, 0.5, 1.0, 3.0};
      l.cfg.k = ks[rng() % 5];
      l.u = static_cast<uint32_t>(rng());
      l.cfg.checksum = iter % 2;
    }
    std::vector<mcgqLayerStats_t> st;
    Bytes m = EncodeLayers(layers, &st);
    // Header.
    ASSERT_GE(m.size(), 32u);
    EXPECT_EQ(std::string(m.begin(), m.begin() + 4), "MCGQ");
    EXPECT_EQ(Le(m, 4, 2), 1u);
    EXPECT_EQ(Le(m, 6, 2), static_cast<uint64_t>(iter % 2));
    EXPECT_EQ(Le(m, 8, 4), static_cast<uint64_t>(count));
    EXPECT_EQ(Le(m, 12, 4), 0u);
    EXPECT_EQ(Le(m, 16, 8), m.size());
    EXPECT_EQ(Le(m, 24, 8), TotalN(layers));
    mcgqMessageInfo_t info;
    ASSERT_EQ(mcgqMessageGetInfo(m.data(), m.size(), &info), mcgqSuccess) << mcgqGetLastErrorDetail();
    EXPECT_EQ(info.layer_count, static_cast<uint32_t>(count));
    EXPECT_EQ(info.total_n, TotalN(layers));
    EXPECT_EQ(info.total_bytes, m.size());
    EXPECT_EQ(info.flags, static_cast<uint32_t>(iter % 2));

    std::vector<int32_t> all;
    std::vector<float> scales;
    ASSERT_EQ(DecodeInts(m, TotalN(layers), &all, &scales, count), mcgqSuccess) << mcgqGetLastErrorDetail();
    uint64_t offset = 32 + 56 * uint64_t(count), at = 0;
    for (int i = 0; i < count; ++i) {
      const Layer &l = layers[i];
      Quantized q = Quantize(l.g, l.cfg.k, 0, l.u);
      std::vector<int32_t> got(all.begin() + at, all.begin() + at + l.g.size());
      EXPECT_EQ(got, q.g_int) << "iter " << iter << " layer " << i;
      EXPECT_EQ(Bits(scales[i]), Bits(q.st.scale));
      at += l.g.size();

      Dir d = ReadDir(m, i);
      EXPECT_EQ(d.n, l.g.size());
      EXPECT_EQ(d.n_coded, d.n);
      EXPECT_EQ(d.samples, q.st.samples);
      EXPECT_EQ(d.byte_offset, offset);
      EXPECT_EQ(d.byte_offset % 8, 0u);
      EXPECT_EQ(d.scale_bits, Bits(q.st.scale));
      EXPECT_EQ(d.chunk_log2, 13u);
      EXPECT_EQ(d.reserved, 0u);
      // Paper stream measured by the standalone encoder; the canonical choice.
      uint64_t paper_bits = 0;
      Bytes paper = PaperRegion(q.g_int, &paper_bits);
      uint32_t bg = static_cast<uint32_t>(Le(Bytes{paper[3], paper[2], paper[1], paper[0]}, 0, 4));
      bool fixed = uint64_t{bg} * d.n < paper_bits;
      EXPECT_EQ(d.encoding, fixed ? 1u : 0u);
      EXPECT_EQ(d.flags, fixed ? 1u : 0u);
      EXPECT_EQ(d.bits_value, bg);
      EXPECT_EQ(d.bit_length, fixed ? bg * d.n : paper_bits);
      if (!fixed) {
        EXPECT_TRUE(std::equal(paper.begin(), paper.end(), m.begin() + d.byte_offset)) << "layer " << i;
        ExpectIndexMatches(m, d, q.g_int);
      }
      EXPECT_EQ(d.crc, iter % 2 ? Crc32c(m.data() + d.byte_offset, RegionBytes(d)) : 0u);
      // Stats.
      EXPECT_EQ(st[i].status, 0u);
      EXPECT_EQ(st[i].stream_bits, paper_bits);
      EXPECT_EQ(st[i].bits_value, bg);
      EXPECT_EQ(st[i].wire_bytes, RegionBytes(d) + 56);
      EXPECT_EQ(st[i].flags, fixed ? 1u : 0u);
      EXPECT_EQ(st[i].w1, -1.0);
      EXPECT_EQ(st[i].samples, q.st.samples);
      mcgqMessageLayer_t ml;
      ASSERT_EQ(mcgqMessageGetLayer(m.data(), m.size(), i, &ml), mcgqSuccess);
      EXPECT_EQ(ml.byte_offset, d.byte_offset);
      EXPECT_EQ(ml.byte_size, RegionBytes(d));
      EXPECT_EQ(ml.stream_bits, d.bit_length);
      offset += RegionBytes(d);
    }
    EXPECT_EQ(offset, m.size());
  }
}

TEST(Container, DeterministicForSeedAndStep) {
  auto encode_step = [](uint64_t step) {
    std::vector<Layer> layers = TwoLayerModel(1);
    for (size_t i = 0; i < layers.size(); ++i)
      layers[i].u = mcgqRandomWord(2026, step, static_cast<uint32_t>(i), 0);
    return EncodeLayers(layers);
  };
  EXPECT_EQ(encode_step(5), encode_step(5));
  EXPECT_NE(encode_step(5), encode_step(6));
}

// ------------------------------------------------------ size bound, choice

TEST(Container, MaxOutputSizeFormulaAndAdversarialPatterns) {
  struct Pattern { const char *name; std::function<float(size_t)> g; size_t n; uint64_t samples; };
  const Pattern patterns[] = {
      {"alternating 0 / large", [](size_t k) { return k % 2 ? 0.0f : 1.0f; }, 30001, 0x7fffffff},
      {"all distinct maximal", [](size_t k) { return 1.0f + static_cast<float>(k) * 1e-3f; }, 20000, 0x7fffffff},
      {"isolated zeros", [](size_t k) { return k % 3 == 2 ? 0.0f : 1.0f + static_cast<float>(k % 7); }, 50000, 0x7fffffff},
      {"isolated zeros, small counts", [](size_t k) { return k % 2 ? 0.0f : 1.0f; }, 16385, 16385},
      {"one element", [](size_t) { return -3.0f; }, 1, 0x7fffffff},
      {"sparse spikes", [](size_t k) { return k % 8192 == 0 ? 1.0f : 0.0f; }, 65537, 0x7fffffff},
  };
  for (const Pattern &p : patterns) {
    std::vector<Layer> layers(2);
    for (Layer &l : layers) {
      l.g.resize(p.n);
      for (size_t k = 0; k < p.n; ++k) l.g[k] = p.g(k);
      l.cfg.samples = p.samples;
    }
    layers[1].g.resize(p.n / 2 + 1);
    std::vector<mcgqLayerDesc_t> d = Descs(layers);
    size_t bound = 0;
    ASSERT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), 2, &bound), mcgqSuccess);
    // FORMAT.md 2: 32 + 56*count + sum align8(4n) + 8(C-1) + align8(4(C-1)).
    uint64_t want = 32 + 2 * 56;
    for (const Layer &l : layers) {
      uint64_t c = (l.g.size() + 8191) / 8192, e = c > 1 ? c - 1 : 0;
      want += Align8(4 * l.g.size()) + 8 * e + Align8(4 * e);
    }
    EXPECT_EQ(bound, want) << p.name;
    Bytes m = EncodeLayers(layers);
    EXPECT_LE(m.size(), bound) << p.name;
    std::vector<int32_t> g;
    std::vector<float> s;
    EXPECT_EQ(DecodeInts(m, TotalN(layers), &g, &s, 2), mcgqSuccess) << p.name << mcgqGetLastErrorDetail();
  }
}

TEST(Container, FixedWidthChosenForDenseLayersAndRoundTrips) {
  std::mt19937_64 rng(3);
  std::vector<Layer> layers(3);
  layers[0].g = RandomLayer(rng, 5000, 1.0);  // K = 8: almost no zeros
  layers[0].cfg.k = 8.0;
  layers[1].g = RandomLayer(rng, 40, 1.0);    // tiny: the 64-bit header dominates
  layers[1].cfg.k = 0.5;
  layers[2].g = std::vector<float>(60, 0.0f);  // all zero: 60 bits fixed < 64+1+6
  std::vector<mcgqLayerStats_t> st;
  Bytes m = EncodeLayers(layers, &st);
  for (int i = 0; i < 3; ++i) {
    Dir d = ReadDir(m, i);
    EXPECT_EQ(d.encoding, 1u) << i;
    EXPECT_EQ(st[i].flags, static_cast<uint32_t>(MCGQ_LAYER_FLAG_FIXED_WIDTH)) << i;
    EXPECT_EQ(d.bit_length, d.n * d.bits_value);
    EXPECT_EQ(d.bits_run, 0u);
  }
  EXPECT_EQ(ReadDir(m, 2).samples, 0u);
  EXPECT_EQ(ReadDir(m, 2).bits_value, 1u);
  std::vector<int32_t> g;
  std::vector<float> s;
  ASSERT_EQ(DecodeInts(m, TotalN(layers), &g, &s, 3), mcgqSuccess) << mcgqGetLastErrorDetail();
  Quantized q0 = Quantize(layers[0].g, 8.0, 0, 0);
  EXPECT_TRUE(std::equal(q0.g_int.begin(), q0.g_int.end(), g.begin()));
  for (size_t k = 5040; k < 5100; ++k) EXPECT_EQ(g[k], 0);
}

// ------------------------------------------------------------- corruption

TEST(Container, TruncationAtEveryByteIsCorrupt) {
  for (int crc = 0; crc < 2; ++crc) {
    std::vector<Layer> layers = TwoLayerModel(crc);
    layers[0].g.resize(300);  // small message, so every prefix is tried
    Bytes m = EncodeLayers(layers);
    uint64_t n = TotalN(layers);
    for (size_t len = 0; len < m.size(); ++len) {
      Bytes prefix(m.begin(), m.begin() + len);
      prefix.shrink_to_fit();
      mcgqMessageInfo_t info;
      const uint8_t dummy = 0;
      const void *p = len ? static_cast<const void *>(prefix.data()) : &dummy;
      EXPECT_EQ(mcgqMessageGetInfo(p, len, &info), mcgqCorruptStream) << len;
      std::vector<int32_t> g(n);
      EXPECT_EQ(mcgqDecodeIntsHost(p, len, g.data(), n, nullptr, 0), mcgqCorruptStream) << len;
    }
    Bytes longer = m;
    longer.push_back(0);
    mcgqMessageInfo_t info;
    EXPECT_EQ(mcgqMessageGetInfo(longer.data(), longer.size(), &info), mcgqCorruptStream);
    EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("total_bytes"), std::string::npos);
  }
}

TEST(Container, EveryHeaderAndDirectoryFieldIsChecked) {
  std::vector<Layer> layers = TwoLayerModel(0);
  const Bytes good = EncodeLayers(layers);
  const uint64_t n = TotalN(layers);
  ASSERT_EQ(ReadDir(good, 0).encoding, 0u);
  ASSERT_EQ(ReadDir(good, 1).encoding, 1u);
  const size_t d0 = 32, d1 = 32 + 56;
  struct Mut { const char *name; size_t at; uint64_t value; int bytes; mcgqResult_t want; const char *detail; bool info_fails; };
  const Mut muts[] = {
      {"magic", 1, 'X', 1, mcgqCorruptStream, "bad magic", true},
      {"version", 4, 2, 2, mcgqUnsupportedVersion, "format version 2", true},
      {"header flags", 6, 2, 2, mcgqCorruptStream, "unknown header flags", true},
      {"layer_count 0", 8, 0, 4, mcgqCorruptStream, "layer_count = 0", true},
      {"layer_count 2^31", 8, 0x80000000u, 4, mcgqCorruptStream, "layer_count = 2147483648", true},
      {"layer_count huge dir", 8, 0x7fffffff, 4, mcgqCorruptStream, "does not fit", true},
      {"header reserved", 12, 1, 4, mcgqCorruptStream, "reserved header field", true},
      {"total_bytes", 16, good.size() + 8, 8, mcgqCorruptStream, "total_bytes", true},
      {"total_n", 24, n + 1, 8, mcgqCorruptStream, "total_n", true},
      {"n = 0", d0 + 0, 0, 8, mcgqCorruptStream, "n = 0 is not in", true},
      {"n = 2^32", d0 + 0, uint64_t{1} << 32, 8, mcgqCorruptStream, "is not in [1, 2^32-1]", true},
      {"n_coded", d0 + 8, 19999, 8, mcgqCorruptStream, "n_coded = 19999", true},
      {"samples over limit", d0 + 16, uint64_t{1} << 31, 8, mcgqCorruptStream, "exceeds 2^31-1", true},
      {"samples mismatch", d0 + 16, 401, 8, mcgqCorruptStream, "does not match samples", false},
      {"samples 0 with scale", d0 + 16, 0, 8, mcgqCorruptStream, "all-zero layer", true},
      {"bit_length short", d0 + 24, 63, 8, mcgqCorruptStream, "shorter than the 64-bit", true},
      {"bit_length huge", d0 + 24, ~uint64_t{0}, 8, mcgqCorruptStream, "where fixed width takes", true},
      {"byte_offset", d0 + 32, 32 + 2 * 56 + 8, 8, mcgqCorruptStream, "byte_offset =", true},
      {"scale negative", d0 + 40, 0xbf800000u, 4, mcgqCorruptStream, "negative or not finite", true},
      {"scale inf", d0 + 40, 0x7f800000u, 4, mcgqCorruptStream, "negative or not finite", true},
      {"scale nan", d0 + 40, 0x7fc00000u, 4, mcgqCorruptStream, "negative or not finite", true},
      {"crc without flag", d0 + 44, 1, 4, mcgqCorruptStream, "without the header's CRC flag", true},
      {"encoding 2", d0 + 48, 2, 1, mcgqCorruptStream, "unknown encoding 2", true},
      {"encoding vs flag", d0 + 48, 1, 1, mcgqCorruptStream, "FIXED_WIDTH flag and encoding", true},
      {"bits_value 33", d0 + 49, 33, 1, mcgqCorruptStream, "bits_value = 33", true},
      {"bits_value 0", d0 + 49, 0, 1, mcgqCorruptStream, "bits_value = 0", true},
      {"bits_run 33", d0 + 50, 33, 1, mcgqCorruptStream, "bits_run = 33 > 32", true},
      {"bits_run vs stream", d0 + 50, 20, 1, mcgqCorruptStream, "the directory", false},
      {"chunk_log2", d0 + 51, 12, 1, mcgqCorruptStream, "chunk_log2 = 12", true},
      {"layer flags", d0 + 52, 4, 2, mcgqCorruptStream, "unknown layer flags", true},
      {"CUT with n_coded = n", d0 + 52, 2, 2, mcgqCorruptStream, "CUT = 1", true},
      {"dir reserved", d0 + 54, 1, 2, mcgqCorruptStream, "reserved field is not 0", true},
      {"fixed bit_length", d1 + 24, 17, 8, mcgqCorruptStream, "fixed width bit_length", true},
      {"fixed bits_run", d1 + 50, 1, 1, mcgqCorruptStream, "fixed width with bits_run", true},
      {"fixed encoding 0", d1 + 48, 0, 1, mcgqCorruptStream, "FIXED_WIDTH flag and encoding", true},
  };
  for (const Mut &mu : muts) {
    Bytes m = good;
    PutLe(m, mu.at, mu.value, mu.bytes);
    mcgqMessageInfo_t info;
    mcgqResult_t r = mcgqMessageGetInfo(m.data(), m.size(), &info);
    if (mu.info_fails) {
      EXPECT_EQ(r, mu.want) << mu.name;
      EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find(mu.detail), std::string::npos)
          << mu.name << ": " << mcgqGetLastErrorDetail();
    } else {
      EXPECT_EQ(r, mcgqSuccess) << mu.name << ": " << mcgqGetLastErrorDetail();
    }
    std::vector<int32_t> g;
    std::vector<float> s;
    EXPECT_EQ(DecodeInts(m, n, &g, &s, 2), mu.want) << mu.name;
    EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find(mu.detail), std::string::npos)
        << mu.name << ": " << mcgqGetLastErrorDetail();
  }
}

TEST(Container, RegionDefectsAreNamed) {
  std::vector<Layer> layers = TwoLayerModel(0);
  const Bytes good = EncodeLayers(layers);
  const uint64_t n = TotalN(layers);
  const Dir d = ReadDir(good, 0);
  ASSERT_GT(IndexEntries(d.n_coded, 0), 0u);
  const size_t stream_end = d.byte_offset + (d.bit_length + 7) / 8;
  const size_t index = d.byte_offset + Align8((d.bit_length + 7) / 8);
  const uint64_t entries = IndexEntries(d.n_coded, 0);
  struct Case { const char *name; std::function<void(Bytes &)> mutate; const char *detail; };
  std::vector<Case> cases = {
      {"index bit offset", [&](Bytes &m) { PutLe(m, index, Le(m, index, 8) + 1, 8); }, "chunk index entry 0"},
      {"index run offset", [&](Bytes &m) { PutLe(m, index + 8 * entries + 4, Le(m, index + 8 * entries + 4, 4) ^ 1, 4); },
       "chunk index entry 1"},
  };
  if (stream_end % 8)
    cases.push_back({"stream padding", [&](Bytes &m) { m[stream_end] = 1; }, "nonzero stream padding"});
  if (entries % 2)
    cases.push_back({"index padding", [&](Bytes &m) { m[index + 12 * entries] = 1; }, "nonzero chunk index padding"});
  ASSERT_EQ(cases.size(), 2u + (stream_end % 8 ? 1 : 0) + (entries % 2));
  for (const Case &c : cases) {
    Bytes m = good;
    c.mutate(m);
    std::vector<int32_t> g;
    std::vector<float> s;
    EXPECT_EQ(DecodeInts(m, n, &g, &s, 2), mcgqCorruptStream) << c.name;
    std::string detail = mcgqGetLastErrorDetail();
    EXPECT_NE(detail.find(c.detail), std::string::npos) << c.name << ": " << detail;
    EXPECT_NE(detail.find("layer 0"), std::string::npos) << detail;
  }
}

TEST(Container, BitFlipsWithCrcAreCaught) {
  std::vector<Layer> layers = TwoLayerModel(1);
  layers[0].g.resize(2000);
  const Bytes good = EncodeLayers(layers);
  const uint64_t n = TotalN(layers);
  const size_t regions = 32 + 2 * 56;
  for (size_t bit = regions * 8; bit < good.size() * 8; ++bit) {
    Bytes m = good;
    m[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    mcgqMessageInfo_t info;
    ASSERT_EQ(mcgqMessageGetInfo(m.data(), m.size(), &info), mcgqCorruptStream) << bit;
    ASSERT_NE(std::string(mcgqGetLastErrorDetail()).find("CRC32C mismatch"), std::string::npos) << bit;
  }
  // Header and directory are not under the CRC: a flip there is either
  // caught by the field checks or yields another valid message; never a
  // crash or an out-of-bounds access (ASan build).
  for (size_t bit = 0; bit < regions * 8; ++bit) {
    Bytes m = good;
    m[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    std::vector<int32_t> g;
    std::vector<float> s;
    mcgqResult_t r = DecodeInts(m, n, &g, &s, 2);
    EXPECT_TRUE(r == mcgqSuccess || r == mcgqCorruptStream || r == mcgqUnsupportedVersion ||
                r == mcgqInvalidArgument) << bit;
  }
}

TEST(Container, BitFlipsWithoutCrcNeverEscape) {
  std::vector<Layer> layers = TwoLayerModel(0);
  layers[0].g.resize(2000);
  const Bytes good = EncodeLayers(layers);
  const uint64_t n = TotalN(layers);
  int accepted = 0;
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    Bytes m = good;
    m[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    std::vector<int32_t> g;
    std::vector<float> s;
    mcgqResult_t r = DecodeInts(m, n, &g, &s, 2);
    ASSERT_TRUE(r == mcgqSuccess || r == mcgqCorruptStream || r == mcgqUnsupportedVersion ||
                r == mcgqInvalidArgument) << bit;
    if (r == mcgqSuccess) ++accepted;
  }
  // A flip of a payload bit moves one count between elements or changes a
  // sign: the sum |g_int| = samples check or the canonical rules catch most.
  EXPECT_LT(accepted, static_cast<int>(good.size()));
}

TEST(Container, CraftedCutAndNonCanonicalLayers) {
  // CUT: 200 of 300 elements coded, sum |g_int| = 4 <= samples = 9.
  std::vector<int32_t> coded(200, 0);
  coded[3] = 3;
  coded[150] = -1;
  uint64_t bits = 0;
  Bytes region = PaperRegion(coded, &bits);
  Spec cut{300, 200, 9, 0.5f, 0, 3, 8, bits, region};
  Bytes m = Build({cut}, true);
  std::vector<int32_t> g;
  std::vector<float> s;
  ASSERT_EQ(DecodeInts(m, 300, &g, &s, 1), mcgqSuccess) << mcgqGetLastErrorDetail();
  std::vector<int32_t> want(300, 0);
  want[3] = 3;
  want[150] = -1;
  EXPECT_EQ(g, want);
  mcgqMessageLayer_t ml;
  ASSERT_EQ(mcgqMessageGetLayer(m.data(), m.size(), 0, &ml), mcgqSuccess);
  EXPECT_EQ(ml.flags, static_cast<uint32_t>(MCGQ_LAYER_FLAG_CUT));
  EXPECT_EQ(ml.n_coded, 200u);
  // CUT before the first element: fixed width, B_g = 0, empty region
  // (FORMAT.md 2), followed by the CUT layer above.
  Spec empty{50, 0, 7, 0.25f, 1, 0, 0, 0, {}};
  m = Build({empty, cut}, true);
  ASSERT_EQ(DecodeInts(m, 350, &g, &s, 2), mcgqSuccess) << mcgqGetLastErrorDetail();
  EXPECT_EQ(std::vector<int32_t>(g.begin(), g.begin() + 50), std::vector<int32_t>(50, 0));
  EXPECT_EQ(std::vector<int32_t>(g.begin() + 50, g.end()), want);
  Spec empty_rle = empty;  // the same as RLE would need the 64-bit header
  empty_rle.encoding = 0;
  m = Build({empty_rle}, false);
  EXPECT_EQ(DecodeInts(m, 50, &g, &s, 1), mcgqCorruptStream);
  // CUT whose coded sum exceeds samples.
  Spec over = cut;
  over.samples = 3;
  m = Build({over}, false);
  EXPECT_EQ(DecodeInts(m, 300, &g, &s, 1), mcgqCorruptStream);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("does not match samples"), std::string::npos);
  // Without CUT the sum must equal samples.
  Spec exact{200, 200, 5, 0.5f, 0, 3, 8, bits, region};
  m = Build({exact}, false);
  EXPECT_EQ(DecodeInts(m, 200, &g, &s, 1), mcgqCorruptStream);
  exact.samples = 4;
  m = Build({exact}, false);
  EXPECT_EQ(DecodeInts(m, 200, &g, &s, 1), mcgqSuccess) << mcgqGetLastErrorDetail();

  // Fixed width where the paper stream is smaller: 200 values * 3 bits =
  // 600 > 64 + 3 + 3*(3+8) + ... bits.
  Bytes fixed(Align8((200 * 3 + 7) / 8), 0);
  for (size_t k = 0; k < 200; ++k) {
    uint32_t v = static_cast<uint32_t>(coded[k]) & 7u;
    for (int b = 2; b >= 0; --b) {
      size_t bit = k * 3 + (2 - b);
      if ((v >> b) & 1) fixed[bit / 8] |= static_cast<uint8_t>(0x80u >> (bit % 8));
    }
  }
  Spec nc{200, 200, 4, 0.5f, 1, 3, 0, 600, fixed};
  m = Build({nc}, true);
  EXPECT_EQ(DecodeInts(m, 200, &g, &s, 1), mcgqCorruptStream);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("(not canonical)"), std::string::npos)
      << mcgqGetLastErrorDetail();
  // RLE where fixed width is smaller: [1,1,1,1] is 72 paper bits vs 8.
  std::vector<int32_t> dense = {1, 1, 1, 1};
  Bytes dregion = PaperRegion(dense, &bits);
  Spec rle{4, 4, 4, 0.25f, 0, 2, 0, bits, dregion};
  m = Build({rle}, false);
  EXPECT_EQ(DecodeInts(m, 4, &g, &s, 1), mcgqCorruptStream);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("where fixed width takes 8"), std::string::npos)
      << mcgqGetLastErrorDetail();
}

TEST(Container, CallerBufferMismatchesAreInvalidArguments) {
  std::vector<Layer> layers = TwoLayerModel(0);
  Bytes m = EncodeLayers(layers);
  uint64_t n = TotalN(layers);
  std::vector<int32_t> g(n + 1);
  std::vector<float> s(3), f(n + 1);
  EXPECT_EQ(mcgqDecodeIntsHost(m.data(), m.size(), g.data(), n + 1, nullptr, 0), mcgqInvalidArgument);
  EXPECT_EQ(mcgqDecodeIntsHost(m.data(), m.size(), g.data(), n, s.data(), 3), mcgqInvalidArgument);
  EXPECT_EQ(mcgqDecodeIntsHost(m.data(), m.size(), nullptr, n, nullptr, 0), mcgqInvalidArgument);
  EXPECT_EQ(mcgqDecodeIntsHost(nullptr, m.size(), g.data(), n, nullptr, 0), mcgqInvalidArgument);
  EXPECT_EQ(mcgqDecodeHost(m.data(), m.size(), f.data(), n - 1), mcgqInvalidArgument);
  EXPECT_EQ(mcgqDecodeIntsHost(m.data(), m.size(), g.data(), n, nullptr, 0), mcgqSuccess);
  mcgqMessageLayer_t ml;
  EXPECT_EQ(mcgqMessageGetLayer(m.data(), m.size(), 2, &ml), mcgqInvalidArgument);
  // Decoding into the message itself.
  EXPECT_EQ(mcgqDecodeIntsHost(m.data(), m.size(), reinterpret_cast<int32_t *>(m.data()), n, nullptr, 0),
            mcgqInvalidArgument);
}

// ------------------------------------------------------ decode and average

TEST(Container, DecodeAverageMatchesDirectComputation) {
  const int P = 4;
  std::vector<Bytes> msgs;
  std::vector<std::vector<int32_t>> ints(P);
  std::vector<std::vector<float>> scales(P);
  std::vector<Layer> shape = TwoLayerModel(1);
  uint64_t n = TotalN(shape);
  for (int r = 0; r < P; ++r) {
    std::vector<Layer> layers = TwoLayerModel(r % 2);
    for (size_t i = 0; i < layers.size(); ++i) layers[i].u = mcgqRandomWord(1, 2, static_cast<uint32_t>(i), r);
    msgs.push_back(EncodeLayers(layers));
    ASSERT_EQ(DecodeInts(msgs.back(), n, &ints[r], &scales[r], 2), mcgqSuccess);
  }
  std::vector<const void *> in;
  std::vector<size_t> sizes;
  for (const Bytes &m : msgs) { in.push_back(m.data()); sizes.push_back(m.size()); }
  std::vector<float> out(n);
  ASSERT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, out.data(), n), mcgqSuccess)
      << mcgqGetLastErrorDetail();
  size_t mismatches = 0;
  for (uint64_t k = 0; k < n; ++k) {
    int layer = k < shape[0].g.size() ? 0 : 1;
    float acc = 0.0f;
    for (int r = 0; r < P; ++r) acc = std::fmaf(scales[r][layer], static_cast<float>(ints[r][k]), acc);
    if (Bits(out[k]) != Bits(acc / static_cast<float>(P))) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0u);

  // A corrupt rank is named; a different layer table is refused.
  Bytes bad = msgs[2];
  bad[bad.size() - 1] ^= 0x10;
  in[2] = bad.data();
  EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, out.data(), n), mcgqCorruptStream);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("rank 2"), std::string::npos) << mcgqGetLastErrorDetail();
  std::vector<Layer> other = TwoLayerModel(0);
  other[0].g.resize(other[0].g.size() - 1);
  other[1].g.push_back(1.0f);
  Bytes o = EncodeLayers(other);
  in[2] = o.data();
  sizes[2] = o.size();
  EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, out.data(), n), mcgqCorruptStream);
  EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("rank 2: layer 0 has n"), std::string::npos)
      << mcgqGetLastErrorDetail();
  EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), 0, out.data(), n), mcgqInvalidArgument);
  EXPECT_EQ(mcgqDecodeAverageHost(in.data(), sizes.data(), P, out.data(), n + 1), mcgqInvalidArgument);
}

// ------------------------------------------------- accumulation, dynamic K

TEST(Container, ResetAccumulationInvariantsBitForBit) {
  std::mt19937_64 rng(11);
  std::vector<Layer> layers(1);
  layers[0].g = RandomLayer(rng, 5000, 1.0);
  layers[0].accum = RandomLayer(rng, 5000, 0.5);
  layers[0].cfg.accumulate = MCGQ_ACCUM_RESET;
  layers[0].cfg.k = 0.1;
  layers[0].u = 77;
  const std::vector<float> before = layers[0].accum;
  std::vector<float> ag(5000);
  for (size_t k = 0; k < ag.size(); ++k) ag[k] = before[k] + layers[0].g[k];
  Bytes m = EncodeLayers(layers);
  Quantized q = Quantize(ag, 0.1, 0, 77);
  std::vector<int32_t> g;
  std::vector<float> s;
  ASSERT_EQ(DecodeInts(m, 5000, &g, &s, 1), mcgqSuccess);
  EXPECT_EQ(g, q.g_int);
  for (size_t k = 0; k < ag.size(); ++k)
    ASSERT_EQ(Bits(layers[0].accum[k]), Bits(g[k] != 0 ? 0.0f : ag[k])) << k;
}

TEST(Container, ResidualAccumulationInvariantsBitForBit) {
  std::mt19937_64 rng(12);
  std::vector<Layer> layers(1);
  layers[0].g = RandomLayer(rng, 5000, 1.0);
  layers[0].accum = RandomLayer(rng, 5000, 0.5);
  layers[0].cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
  layers[0].cfg.k = 0.25;
  layers[0].u = 78;
  const std::vector<float> before = layers[0].accum;
  std::vector<float> ag(5000);
  for (size_t k = 0; k < ag.size(); ++k) ag[k] = before[k] + layers[0].g[k];
  Bytes m = EncodeLayers(layers);
  Quantized q = Quantize(ag, 0.25, 0, 78, /*damped=*/1);
  std::vector<int32_t> g;
  std::vector<float> s;
  ASSERT_EQ(DecodeInts(m, 5000, &g, &s, 1), mcgqSuccess);
  EXPECT_EQ(g, q.g_int);
  EXPECT_EQ(Bits(s[0]), Bits(q.st.scale));  // the damped scale travels
  for (size_t k = 0; k < ag.size(); ++k)
    ASSERT_EQ(Bits(layers[0].accum[k]), Bits(std::fmaf(-s[0], static_cast<float>(g[k]), ag[k]))) << k;
}

TEST(Container, DynamicKStateFollowsAlg3) {
  std::mt19937_64 rng(13);
  std::vector<Layer> layers(1);
  layers[0].g = RandomLayer(rng, 3000, 1.0);
  layers[0].cfg.dynamic_k = 1;
  layers[0].cfg.k = 0.5;
  layers[0].cfg.delta_k = 2.0;
  layers[0].cfg.k_min = 0.1;
  layers[0].cfg.k_max = 4.0;
  ASSERT_EQ(mcgqKStateInit(&layers[0].cfg, &layers[0].ks), mcgqSuccess);
  double d_prev = 0;
  for (int step = 0; step < 3; ++step) {
    layers[0].u = mcgqRandomWord(9, step, 0, 0);
    const mcgqKState_t ks = layers[0].ks;
    std::vector<mcgqLayerStats_t> st;
    Bytes m = EncodeLayers(layers, &st);
    Quantized q = Quantize(layers[0].g, ks.k, 0, layers[0].u);
    double w1 = 0;
    ASSERT_EQ(mcgqWassersteinHost(layers[0].g.data(), q.g_int.data(), 3000, &w1), mcgqSuccess);
    EXPECT_EQ(st[0].k, ks.k);
    EXPECT_EQ(st[0].w1, w1);
    EXPECT_EQ(layers[0].ks.started, 1);
    EXPECT_EQ(layers[0].ks.d_prev, w1);
    double want_k = step == 0 ? ks.k : std::min(4.0, std::max(0.1, ks.k + 2.0 * (d_prev - w1)));
    EXPECT_EQ(layers[0].ks.k, want_k) << step;
    d_prev = w1;
  }
}

// All-or-nothing: a failure anywhere leaves every layer's accumulator and K
// state, and the output buffer, exactly as they were.
TEST(Container, FailuresChangeNothing) {
  std::mt19937_64 rng(14);
  auto make = [&]() {
    std::vector<Layer> layers(3);
    const int32_t modes[] = {MCGQ_ACCUM_RESET, MCGQ_ACCUM_RESIDUAL, MCGQ_ACCUM_RESET};
    for (int i = 0; i < 3; ++i) {
      layers[i].g = RandomLayer(rng, 4000, 1.0);
      layers[i].accum = RandomLayer(rng, 4000, 1.0);
      layers[i].cfg.accumulate = modes[i];
      layers[i].cfg.dynamic_k = 1;
      layers[i].cfg.k = 0.3;
      EXPECT_EQ(mcgqKStateInit(&layers[i].cfg, &layers[i].ks), mcgqSuccess);
      layers[i].ks.started = 1;
      layers[i].ks.d_prev = 0.25;
    }
    return layers;
  };
  auto check_untouched = [](const std::vector<Layer> &a, const std::vector<Layer> &b) {
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(a[i].accum.data(), b[i].accum.data(), a[i].accum.size() * 4)) << i;
      EXPECT_EQ(0, std::memcmp(&a[i].ks, &b[i].ks, sizeof(mcgqKState_t))) << i;
    }
  };
  // Non-finite value in layer 2 of 3 (index 1).
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<Layer> layers = make();
    layers[1].g[1234] = bad;
    const std::vector<Layer> snapshot = layers;
    std::vector<mcgqLayerDesc_t> d = Descs(layers);
    size_t bound = 0, bytes = 7;
    ASSERT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), 3, &bound), mcgqSuccess);
    Bytes out(bound, 0xab);
    std::vector<mcgqLayerStats_t> st(3);
    EXPECT_EQ(mcgqEncodeHost(d.data(), 3, out.data(), out.size(), &bytes, st.data()), mcgqNonFinite);
    EXPECT_EQ(st[1].status, static_cast<uint32_t>(mcgqNonFinite));
    EXPECT_EQ(st[0].status, 0u);
    EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find("layers[1]"), std::string::npos);
    check_untouched(layers, snapshot);
    EXPECT_EQ(out, Bytes(bound, 0xab));
    EXPECT_EQ(bytes, 7u);
  }
  // A non-finite accumulator is the same failure.
  {
    std::vector<Layer> layers = make();
    layers[2].accum[5] = NAN;
    const std::vector<Layer> snapshot = layers;
    std::vector<mcgqLayerDesc_t> d = Descs(layers);
    Bytes out(1 << 20);
    size_t bytes = 0;
    EXPECT_EQ(mcgqEncodeHost(d.data(), 3, out.data(), out.size(), &bytes, nullptr), mcgqNonFinite);
    std::vector<float> a2 = layers[2].accum;
    EXPECT_TRUE(std::isnan(a2[5]));
    a2[5] = 0;
    std::vector<float> s2 = snapshot[2].accum;
    s2[5] = 0;
    EXPECT_EQ(a2, s2);
    EXPECT_EQ(0, std::memcmp(layers[0].accum.data(), snapshot[0].accum.data(), 4000 * 4));
  }
  // Capacity one byte short of the message.
  {
    std::vector<Layer> probe = make();
    std::vector<Layer> layers = probe;
    Bytes full = EncodeLayers(probe);
    const std::vector<Layer> snapshot = layers;
    std::vector<mcgqLayerDesc_t> d = Descs(layers);
    Bytes out(full.size() - 1, 0xcd);
    size_t bytes = 0;
    std::vector<mcgqLayerStats_t> st(3);
    EXPECT_EQ(mcgqEncodeHost(d.data(), 3, out.data(), out.size(), &bytes, st.data()), mcgqCapacityExceeded);
    EXPECT_EQ(st[2].status, static_cast<uint32_t>(mcgqCapacityExceeded));
    check_untouched(layers, snapshot);
    EXPECT_EQ(out, Bytes(full.size() - 1, 0xcd));
    // And the same buffer one byte larger works and gives the same bytes.
    Bytes exact(full.size());
    EXPECT_EQ(mcgqEncodeHost(d.data(), 3, exact.data(), exact.size(), &bytes, nullptr), mcgqSuccess);
    EXPECT_EQ(exact, full);
  }
}

TEST(Container, EncodeArgumentErrors) {
  std::vector<Layer> layers = TwoLayerModel(0);
  std::vector<mcgqLayerDesc_t> d = Descs(layers);
  Bytes out(1 << 16);
  size_t bytes = 0, bound = 0;
  EXPECT_EQ(mcgqEncodeHost(d.data(), 0, out.data(), out.size(), &bytes, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqEncodeHost(nullptr, 2, out.data(), out.size(), &bytes, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqEncodeHost(d.data(), 2, nullptr, out.size(), &bytes, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqEncodeHost(d.data(), 2, out.data(), out.size(), nullptr, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), 2, nullptr), mcgqInvalidArgument);
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), -1, &bound), mcgqInvalidArgument);
  d[1].n = 0;
  EXPECT_EQ(mcgqEncodeGetMaxOutputSize(d.data(), 2, &bound), mcgqInvalidArgument);
  // Output overlapping a gradient.
  d = Descs(layers);
  EXPECT_EQ(mcgqEncodeHost(d.data(), 2, layers[0].g.data(), 4 * layers[0].g.size(), &bytes, nullptr),
            mcgqInvalidArgument);
}
