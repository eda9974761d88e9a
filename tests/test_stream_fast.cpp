// test_stream_fast.cpp - the fast paths of the CPU encoder against plain,
// independent re-implementations of DESIGN.md 3 written here element by
// element and bit by bit:
//   - mcgq_rle_measure and the block-wise tally (word masks, run halving)
//     against a serial count of B_g, B_RLE and the stream length;
//   - the measurement the quantizer folds into its count pass
//     (mcgq_quantize_ref stats) against the same serial count of its g_int;
//   - mcgq_rle_write (branch-free word path, chunk index) and
//     mcgq_fixed_write (joined tokens) against a one-bit-at-a-time writer;
//   - the fixed-width reader (groups of eight through fixed_groups.c where
//     the CPU has AVX2, the bit reader elsewhere) against the values written
//     bit by bit: values, sums, tally, the -2^(B_g-1) and truncation errors,
//     with exact-size inputs so that ASan sees any read past the end.
// Data covers the shapes that stress the word logic: runs that end exactly
// at, cross, or fill whole 64-element words, runs longer than 64, layer
// lengths around multiples of 64 and of the 8192-element chunk, wide values
// (2*B_g + B_RLE > 32 takes the token-by-token writer).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/bitstream.h"
#include "format.h"
#include "internal.h"

namespace {

struct Measure {
  uint32_t bg = 0, br = 0;
  uint64_t bits = 0;
};

uint32_t BitLen(uint64_t x) {
  uint32_t b = 0;
  while (x) { ++b; x >>= 1; }
  return b;
}

// DESIGN.md 3 literally: scan tokens one element at a time.
Measure SerialMeasure(const std::vector<int32_t> &v) {
  Measure m;
  uint64_t max_mag = 0, longest = 0, run = 0, nonzeros = 0, runs = 0;
  for (int32_t x : v) {
    if (x == 0) {
      if (run == 0) ++runs;
      ++run;
      if (run > longest) longest = run;
    } else {
      run = 0;
      ++nonzeros;
      uint64_t mag = x < 0 ? uint64_t(-int64_t(x)) : uint64_t(x);
      if (mag > max_mag) max_mag = mag;
    }
  }
  m.bg = v.empty() ? 0 : 1 + BitLen(max_mag);
  m.br = BitLen(longest);
  m.bits = 64 + uint64_t(m.bg) * (nonzeros + runs) + uint64_t(m.br) * runs;
  return m;
}

struct BitSink {
  std::vector<uint8_t> bytes;
  uint64_t pos = 0;
  void Put(uint64_t v, uint32_t width) {
    for (uint32_t i = width; i-- > 0;) {
      if (pos % 8 == 0) bytes.push_back(0);
      if ((v >> i) & 1u) bytes.back() |= uint8_t(0x80u >> (pos % 8));
      ++pos;
    }
  }
};

// Paper stream and chunk index (FORMAT.md 2: u64 bit offsets, then u32 run
// offsets) bit by bit.
void SerialRle(const std::vector<int32_t> &v, const Measure &m,
               std::vector<uint8_t> *stream, std::vector<uint8_t> *index) {
  BitSink s;
  s.Put(m.bg, 32);
  s.Put(m.br, 32);
  const uint64_t n = v.size(), chunk = uint64_t(1) << MCGQ_CHUNK_LOG2;
  const uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, n);
  index->assign(12 * entries, 0);
  uint64_t k = 0;
  while (k < n) {
    uint64_t start = k, pos = s.pos;
    if (v[k] != 0) {
      s.Put(uint32_t(v[k]) & ((uint64_t(1) << m.bg) - 1), m.bg);
      ++k;
    } else {
      while (k < n && v[k] == 0) ++k;
      s.Put(0, m.bg);
      s.Put(k - start, m.br);
    }
    for (uint64_t e = 0; e < entries; ++e) {
      uint64_t b = (e + 1) * chunk;
      if (b >= start && b < k) {
        for (int i = 0; i < 8; ++i) (*index)[8 * e + i] = uint8_t(pos >> (8 * i));
        uint32_t off = uint32_t(b - start);
        for (int i = 0; i < 4; ++i)
          (*index)[8 * entries + 4 * e + i] = uint8_t(off >> (8 * i));
      }
    }
  }
  *stream = s.bytes;
}

// Values with the given share of zeros, magnitudes below 2^(bits-1), and
// now and then a long zero run.
std::vector<int32_t> Values(std::mt19937_64 &rng, uint64_t n, double zeros,
                            uint32_t bits, bool long_runs) {
  std::vector<int32_t> v(n);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int32_t top = bits >= 32 ? INT32_MAX : (int32_t(1) << (bits - 1)) - 1;
  std::uniform_int_distribution<int32_t> mag(1, top < 1 ? 1 : top);
  for (uint64_t k = 0; k < n; ++k) {
    if (u(rng) < zeros) {
      v[k] = 0;
    } else {
      v[k] = mag(rng) * (u(rng) < 0.5 ? -1 : 1);
    }
    if (long_runs && u(rng) < 0.001) {
      uint64_t len = 1 + rng() % 300;
      for (uint64_t i = 0; i < len && k + 1 < n; ++i) v[++k] = 0;
    }
  }
  return v;
}

const uint64_t kLengths[] = {1, 2, 63, 64, 65, 127, 128, 129, 1000,
                             8191, 8192, 8193, 40000, 100003};

void ExpectMeasure(const std::vector<int32_t> &v, const char *what) {
  Measure want = SerialMeasure(v);
  Measure got;
  mcgq_rle_measure(v.data(), v.size(), &got.bg, &got.br, &got.bits);
  EXPECT_EQ(got.bg, want.bg) << what << " n=" << v.size();
  EXPECT_EQ(got.br, want.br) << what << " n=" << v.size();
  EXPECT_EQ(got.bits, want.bits) << what << " n=" << v.size();
}

TEST(StreamMeasure, MatchesSerialCountOnRandomData) {
  std::mt19937_64 rng(7);
  for (uint64_t n : kLengths)
    for (double zeros : {0.0, 0.1, 0.5, 0.9, 0.99, 1.0})
      for (bool long_runs : {false, true})
        ExpectMeasure(Values(rng, n, zeros, 5, long_runs), "random");
}

// Runs of every length 1..200 placed at every offset within a word: this
// is where the word boundaries and the run halving could go wrong.
TEST(StreamMeasure, RunsAtEveryOffsetAndLength) {
  for (uint64_t len = 1; len <= 200; ++len)
    for (uint64_t at = 0; at < 64; at += (len < 70 ? 1 : 7)) {
      std::vector<int32_t> v(at + len + 70, 3);
      for (uint64_t i = 0; i < len; ++i) v[at + i] = 0;
      ExpectMeasure(v, "one run");
      v.resize(at + len);  // the run ends the layer
      ExpectMeasure(v, "trailing run");
    }
}

TEST(StreamMeasure, TallyInPiecesEqualsWhole) {
  std::mt19937_64 rng(11);
  for (double zeros : {0.3, 0.95}) {
    std::vector<int32_t> v = Values(rng, 50000, zeros, 9, true);
    Measure want = SerialMeasure(v);
    mcgq_rle_tally_t t;
    mcgq_rle_tally_init(&t);
    for (uint64_t k = 0; k < v.size();) {
      uint64_t len = std::min<uint64_t>(1 + rng() % 3000, v.size() - k);
      mcgq_rle_tally_add(&t, v.data() + k, len);
      k += len;
    }
    Measure got;
    mcgq_rle_tally_finish(&t, &got.bg, &got.br, &got.bits);
    EXPECT_EQ(got.bg, want.bg);
    EXPECT_EQ(got.br, want.br);
    EXPECT_EQ(got.bits, want.bits);
  }
}

// The quantizer's folded measurement equals the serial count of its g_int.
TEST(StreamMeasure, QuantizerStatsEqualSerialCount) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  for (uint64_t n : {uint64_t(1), uint64_t(64), uint64_t(5000), uint64_t(70001)})
    for (double k : {0.01, 0.1, 1.0, 8.0}) {
      std::vector<float> g(n);
      for (float &x : g) x = normal(rng);
      uint64_t N = uint64_t(std::ceil(double(n) * k));
      std::vector<int32_t> g_int(n, 12345);
      mcgqLayerStats_t st;
      std::memset(&st, 0, sizeof st);
      ASSERT_EQ(mcgq_quantize_ref(g.data(), n, N, uint32_t(rng()), 0,
                                  g_int.data(), &st),
                mcgqSuccess);
      Measure want = SerialMeasure(g_int);
      EXPECT_EQ(st.bits_value, want.bg) << "n=" << n << " K=" << k;
      EXPECT_EQ(st.bits_run, want.br) << "n=" << n << " K=" << k;
      EXPECT_EQ(st.stream_bits, want.bits) << "n=" << n << " K=" << k;
      uint64_t nonzeros = 0;
      for (int32_t x : g_int) nonzeros += x != 0;
      EXPECT_EQ(st.nonzeros, nonzeros);
    }
  // All-zero layer: B_g = 1, one run of n.
  std::vector<float> zero(1000, 0.0f);
  std::vector<int32_t> g_int(1000, 7);
  mcgqLayerStats_t st;
  ASSERT_EQ(mcgq_quantize_ref(zero.data(), 1000, 10, 0, 0, g_int.data(), &st),
            mcgqSuccess);
  EXPECT_EQ(st.bits_value, 1u);
  EXPECT_EQ(st.bits_run, 10u);  // bitlen(1000)
  EXPECT_EQ(st.stream_bits, 64u + 1u + 10u);
}

void ExpectRleWrite(const std::vector<int32_t> &v, const char *what) {
  Measure m = SerialMeasure(v);
  ASSERT_LE(m.bg, 32u);
  std::vector<uint8_t> want, want_index;
  SerialRle(v, m, &want, &want_index);
  const uint64_t n = v.size();
  const uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, n);
  // Guard bytes after the stream and the index catch stray stores.
  std::vector<uint8_t> out(want.size() + 64, 0xa5), index(12 * entries + 64, 0x5a);
  mcgq_rle_write(v.data(), n, m.bg, m.br, m.bits, out.data(),
                 entries ? index.data() : nullptr);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), out.begin()))
      << what << " n=" << n << " B_g=" << m.bg << " B_RLE=" << m.br;
  for (size_t i = want.size(); i < out.size(); ++i)
    ASSERT_EQ(out[i], 0xa5) << what << ": store past the stream at byte " << i;
  EXPECT_TRUE(std::equal(want_index.begin(), want_index.end(), index.begin()))
      << what << " n=" << n << ": chunk index";
  for (size_t i = want_index.size(); i < index.size(); ++i)
    ASSERT_EQ(index[i], 0x5a) << what << ": store past the index";
}

TEST(StreamWrite, RleMatchesBitByBitWriter) {
  std::mt19937_64 rng(5);
  for (uint64_t n : kLengths)
    for (double zeros : {0.0, 0.2, 0.6, 0.9, 0.999})
      for (uint32_t bits : {2u, 4u, 12u, 20u, 31u})  // 31: the token-by-token path
        ExpectRleWrite(Values(rng, n, zeros, bits, true), "random");
}

TEST(StreamWrite, FixedMatchesBitByBitWriter) {
  std::mt19937_64 rng(9);
  for (uint64_t n : {uint64_t(1), uint64_t(7), uint64_t(64), uint64_t(1001),
                     uint64_t(30011)})
    for (uint32_t width = 1; width <= 32; ++width) {
      std::vector<int32_t> v = Values(rng, n, 0.3, width, false);
      BitSink s;
      for (int32_t x : v) s.Put(uint32_t(x) & ((uint64_t(1) << width) - 1), width);
      std::vector<uint8_t> out(s.bytes.size() + 16, 0xa5);
      mcgq_fixed_write(v.data(), n, width, out.data());
      EXPECT_TRUE(std::equal(s.bytes.begin(), s.bytes.end(), out.begin()))
          << "n=" << n << " width=" << width;
      for (size_t i = s.bytes.size(); i < out.size(); ++i)
        ASSERT_EQ(out[i], 0xa5) << "store past the stream, width " << width;
    }
}

// Fixed-width stream of v, bit by bit.
std::vector<uint8_t> SerialFixed(const std::vector<int32_t> &v, uint32_t width) {
  BitSink s;
  for (int32_t x : v) s.Put(uint32_t(x) & ((uint64_t(1) << width) - 1), width);
  return s.bytes;
}

// Values that need exactly `width` bits, other than -2^(width-1) (the one
// value a canonical stream never holds); width 1 holds only zeros.
std::vector<int32_t> FixedValues(std::mt19937_64 &rng, uint64_t n, uint32_t width) {
  if (width == 1) return std::vector<int32_t>(n, 0);
  std::vector<int32_t> v = Values(rng, n, 0.3, width, false);
  const int32_t top = width >= 32 ? INT32_MAX : (int32_t(1) << (width - 1)) - 1;
  v[rng() % n] = rng() % 2 ? top : -top;
  return v;
}

// Reads v's fixed-width stream (exact-size heap copy) block by block.
mcgqResult_t ReadFixed(const std::vector<uint8_t> &stream, uint64_t n, uint32_t width,
                       uint64_t block, std::vector<int32_t> *out,
                       mcgq_layer_reader_t *r) {
  std::vector<uint8_t> in(stream);  // exactly the stream's bytes
  out->assign(n, 0x7eadbeef);
  mcgqResult_t res = mcgq_fixed_reader_open(r, "test", in.data(), in.size(), n, width);
  for (uint64_t base = 0; res == mcgqSuccess && base < n; base += block)
    res = mcgq_layer_reader_next(r, base, std::min(block, n - base), out->data() + base);
  return res;
}

TEST(StreamRead, FixedWidthMatchesBitByBitWriter) {
  std::mt19937_64 rng(21);
  // 2048: the decoders' block (groups stay byte aligned); 1001: blocks
  // that start off a byte boundary for odd widths (the bit reader's turn).
  for (uint64_t n : kLengths)
    for (uint32_t width = 1; width <= 32; ++width)
      for (uint64_t block : {uint64_t(2048), uint64_t(1001)}) {
        std::vector<int32_t> v = FixedValues(rng, n, width), got;
        mcgq_layer_reader_t r;
        ASSERT_EQ(ReadFixed(SerialFixed(v, width), n, width, block, &got, &r),
                  mcgqSuccess) << mcgqGetLastErrorDetail() << " n=" << n
                               << " width=" << width;
        ASSERT_EQ(got, v) << "n=" << n << " width=" << width << " block=" << block;
        mcgq_decoded_t info;
        ASSERT_EQ(mcgq_layer_reader_finish(&r, &info), mcgqSuccess)
            << mcgqGetLastErrorDetail();
        uint64_t abs_sum = 0, nonzeros = 0;
        for (int32_t x : v) {
          abs_sum += uint64_t(x < 0 ? -int64_t(x) : x);
          nonzeros += x != 0;
        }
        EXPECT_EQ(info.abs_sum, abs_sum) << "n=" << n << " width=" << width;
        EXPECT_EQ(info.nonzeros, nonzeros) << "n=" << n << " width=" << width;
        Measure want = SerialMeasure(v), tally;
        mcgq_rle_tally_finish(&r.tally, &tally.bg, &tally.br, &tally.bits);
        EXPECT_EQ(tally.bg, want.bg) << "n=" << n << " width=" << width;
        EXPECT_EQ(tally.br, want.br) << "n=" << n << " width=" << width;
        EXPECT_EQ(tally.bits, want.bits) << "n=" << n << " width=" << width;
      }
}

// -2^(B_g-1) anywhere (inside the groups, in the tail, first and last
// element) is refused, naming the first element that holds it.
TEST(StreamRead, FixedWidthRefusesMinimumValueAtItsElement) {
  std::mt19937_64 rng(22);
  const uint64_t n = 5000;
  for (uint32_t width = 2; width <= 16; ++width)
    for (uint64_t at : {uint64_t(0), uint64_t(7), uint64_t(8), uint64_t(2047),
                        uint64_t(3001), uint64_t(4992), n - 1}) {
      std::vector<int32_t> v = FixedValues(rng, n, width), got;
      v[at] = -(int32_t(1) << (width - 1));
      if (at + 100 < n) v[at + 100] = v[at];  // a later one is not named
      mcgq_layer_reader_t r;
      ASSERT_EQ(ReadFixed(SerialFixed(v, width), n, width, 2048, &got, &r),
                mcgqCorruptStream) << "width=" << width << " at=" << at;
      std::string want = "at element " + std::to_string(at);
      EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find(want), std::string::npos)
          << mcgqGetLastErrorDetail() << " (want " << want << ")";
    }
}

// A stream cut short ends at the last whole value it holds, on every path.
TEST(StreamRead, FixedWidthTruncatedStreamNamesWhereItEnds) {
  std::mt19937_64 rng(23);
  const uint64_t n = 3000;
  for (uint32_t width = 2; width <= 16; ++width) {
    std::vector<int32_t> v = FixedValues(rng, n, width), got;
    std::vector<uint8_t> stream = SerialFixed(v, width);
    for (uint64_t cut : {uint64_t(1), uint64_t(17), uint64_t(600)}) {
      std::vector<uint8_t> shorter(stream.begin(), stream.end() - cut);
      mcgq_layer_reader_t r;
      ASSERT_EQ(ReadFixed(shorter, n, width, 2048, &got, &r), mcgqCorruptStream);
      uint64_t ends = shorter.size() * 8 / width;
      std::string want = "ends at element " + std::to_string(ends) + " of";
      EXPECT_NE(std::string(mcgqGetLastErrorDetail()).find(want), std::string::npos)
          << mcgqGetLastErrorDetail() << " (want " << want << ")";
      EXPECT_TRUE(std::equal(v.begin(), v.begin() + std::min(ends, uint64_t(2048)),
                             got.begin()))
          << "values before the end, width " << width;
    }
  }
}

}  // namespace
