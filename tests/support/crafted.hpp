// crafted.hpp - paper streams and one-layer containers written token by
// token with any widths and padding (docs/FORMAT.md 1-2), so that a test can
// build the non-canonical streams the encoder never writes and check that a
// decoder rejects each of them.  Test-side code, written from the format
// description, not from the library's writer.
#ifndef MCGQ_TESTS_SUPPORT_CRAFTED_HPP_
#define MCGQ_TESTS_SUPPORT_CRAFTED_HPP_

#include <cstdint>
#include <cstring>
#include <vector>

namespace crafted {

using Bytes = std::vector<uint8_t>;

// value != 0: a value token; value == 0: a zero run of `run` elements.
struct Token {
  int32_t value;
  uint64_t run;
};

// MSB-first bit writer: stream bit 0 is the most significant bit of byte 0.
struct BitWriter {
  Bytes bytes;
  uint64_t bits = 0;
  void put(uint64_t v, unsigned width) {
    for (unsigned i = width; i-- > 0;) {
      if (bits / 8 >= bytes.size()) bytes.push_back(0);
      if ((v >> i) & 1u) bytes[bits / 8] |= static_cast<uint8_t>(0x80u >> (bits % 8));
      ++bits;
    }
  }
  // Pads to a multiple of 8 bytes; dirty = 1-bits in the padding.
  Bytes padded(bool dirty) const {
    Bytes r = bytes;
    if (dirty && bits % 8) r.back() |= static_cast<uint8_t>(0xffu >> (bits % 8));
    r.resize((r.size() + 7) / 8 * 8, dirty ? 0xff : 0);
    return r;
  }
};

inline uint64_t twos(int32_t v, unsigned width) {
  return static_cast<uint64_t>(static_cast<uint32_t>(v)) & ((width >= 64 ? 0 : 1ull << width) - 1);
}

// The paper stream of the tokens with widths bg, br.
inline BitWriter paper_stream(const std::vector<Token> &tokens, unsigned bg, unsigned br) {
  BitWriter w;
  w.put(bg, 32);
  w.put(br, 32);
  for (const Token &t : tokens) {
    w.put(twos(t.value, bg), bg);
    if (t.value == 0) w.put(t.run, br);
  }
  return w;
}

// Fixed-width stream: every element as a bg-bit two's complement value.
inline BitWriter fixed_stream(const std::vector<int32_t> &values, unsigned bg) {
  BitWriter w;
  for (int32_t v : values) w.put(twos(v, bg), bg);
  return w;
}

inline void put_le(Bytes &b, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// One layer of n <= 2^13 elements (no chunk index), no CRC: header (32
// bytes), one directory entry (56 bytes), the region.
struct Layer {
  uint64_t n, samples;
  float scale;
  unsigned encoding;  // 0 RLE, 1 fixed width
  unsigned bits_value, bits_run;
  uint64_t bit_length;
  Bytes region;
};

inline Bytes one_layer_message(const Layer &l) {
  Bytes m(32 + 56, 0);
  const size_t e = 32;
  put_le(m, e + 0, l.n, 8);
  put_le(m, e + 8, l.n, 8);  // n_coded: no CUT
  put_le(m, e + 16, l.samples, 8);
  put_le(m, e + 24, l.bit_length, 8);
  put_le(m, e + 32, m.size(), 8);  // byte offset of the region
  uint32_t scale_bits;
  std::memcpy(&scale_bits, &l.scale, 4);
  put_le(m, e + 40, scale_bits, 4);
  m[e + 48] = static_cast<uint8_t>(l.encoding);
  m[e + 49] = static_cast<uint8_t>(l.bits_value);
  m[e + 50] = static_cast<uint8_t>(l.bits_run);
  m[e + 51] = 13;  // chunk log2
  put_le(m, e + 52, l.encoding ? 1u : 0u, 2);
  m.insert(m.end(), l.region.begin(), l.region.end());
  m[0] = 'M'; m[1] = 'C'; m[2] = 'G'; m[3] = 'Q';
  put_le(m, 4, 1, 2);  // format version
  put_le(m, 8, 1, 4);  // layer count
  put_le(m, 16, m.size(), 8);
  put_le(m, 24, l.n, 8);
  return m;
}

}  // namespace crafted

#endif  // MCGQ_TESTS_SUPPORT_CRAFTED_HPP_
