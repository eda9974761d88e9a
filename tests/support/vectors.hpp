// vectors.hpp - reader of the independent expected outputs in tests/vectors
// (quantize.jsonl, rle.jsonl; format in tests/vectors/README.md).
//
// Header-only so any test can include it without adding a source file.  The
// JSON subset parsed is what the vector files use: one object per line with
// string, number and array-of-number values.  Floats are decoded from the
// *_bits hex fields (little-endian IEEE bytes), never from the decimal text, so
// the expected values are exact.  A malformed file throws std::runtime_error,
// which GoogleTest reports as a failure of the calling test.
#ifndef MCGQ_TESTS_SUPPORT_VECTORS_HPP_
#define MCGQ_TESTS_SUPPORT_VECTORS_HPP_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef MCGQ_VECTORS_DIR
#error "MCGQ_VECTORS_DIR must name tests/vectors (set by tests/CMakeLists.txt)"
#endif

namespace mcgq_test {

struct QuantizeCase {
  std::string kind;
  uint64_t n = 0;
  double k = 0;
  uint32_t u = 0;
  uint64_t N = 0;
  std::vector<float> g;         // from g_bits, exact
  std::vector<int32_t> g_int;
  float scale = 0;              // from scale_bits
  double w1 = 0;                // from w1_bits
  float scale_residual = 0;     // from scale_residual_bits
};

struct RleCase {
  std::vector<int32_t> g_int;
  uint64_t bits = 0;
  std::vector<uint8_t> bytes;   // from hex
};

namespace detail {

// One JSON value of the subset: a string, a number kept as its text (so
// integers above 2^53 stay exact) or an array of number texts.
struct JsonValue {
  enum Type { kString, kNumber, kArray } type = kNumber;
  std::string text;
  std::vector<std::string> items;
};
using JsonObject = std::map<std::string, JsonValue>;

class LineParser {
 public:
  explicit LineParser(const std::string &line) : s_(line) {}

  JsonObject ParseObject() {
    JsonObject obj;
    Expect('{');
    SkipSpace();
    if (Peek() == '}') { ++pos_; return obj; }
    for (;;) {
      std::string key = ParseString();
      Expect(':');
      obj[key] = ParseValue();
      SkipSpace();
      char c = Next();
      if (c == '}') break;
      if (c != ',') Fail("expected , or }");
    }
    return obj;
  }

 private:
  JsonValue ParseValue() {
    SkipSpace();
    JsonValue v;
    if (Peek() == '"') {
      v.type = JsonValue::kString;
      v.text = ParseString();
    } else if (Peek() == '[') {
      v.type = JsonValue::kArray;
      ++pos_;
      SkipSpace();
      if (Peek() == ']') { ++pos_; return v; }
      for (;;) {
        v.items.push_back(ParseNumber());
        SkipSpace();
        char c = Next();
        if (c == ']') break;
        if (c != ',') Fail("expected , or ]");
      }
    } else {
      v.type = JsonValue::kNumber;
      v.text = ParseNumber();
    }
    return v;
  }
  std::string ParseString() {
    Expect('"');
    std::string out;
    for (;;) {
      char c = Next();
      if (c == '"') return out;
      if (c == '\\') c = Next();  // the files hold no escapes beyond \" and \\ .
      out.push_back(c);
    }
  }
  std::string ParseNumber() {
    SkipSpace();
    size_t start = pos_;
    while (pos_ < s_.size() && std::strchr("+-0123456789.eE", s_[pos_]) && s_[pos_] != '\0') ++pos_;
    if (pos_ == start) Fail("expected a number");
    return s_.substr(start, pos_ - start);
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  void Expect(char c) {
    SkipSpace();
    if (Next() != c) Fail(std::string("expected ") + c);
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  char Next() {
    if (pos_ >= s_.size()) Fail("unexpected end of line");
    return s_[pos_++];
  }
  [[noreturn]] void Fail(const std::string &what) const {
    throw std::runtime_error("vectors: " + what + " at column " + std::to_string(pos_) +
                             " of: " + s_.substr(0, 80));
  }
  const std::string &s_;
  size_t pos_ = 0;
};

inline const JsonValue &Field(const JsonObject &o, const char *key) {
  auto it = o.find(key);
  if (it == o.end()) throw std::runtime_error(std::string("vectors: missing field ") + key);
  return it->second;
}
inline uint64_t ToU64(const std::string &t) {
  char *end = nullptr;
  unsigned long long v = std::strtoull(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || t[0] == '-') throw std::runtime_error("vectors: bad integer " + t);
  return v;
}
inline int64_t ToI64(const std::string &t) {
  char *end = nullptr;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0') throw std::runtime_error("vectors: bad integer " + t);
  return v;
}
inline std::vector<uint8_t> HexBytes(const std::string &hex) {
  if (hex.size() % 2) throw std::runtime_error("vectors: odd hex length");
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    char pair[3] = {hex[2 * i], hex[2 * i + 1], 0};
    char *end = nullptr;
    unsigned long b = std::strtoul(pair, &end, 16);
    if (*end != '\0') throw std::runtime_error("vectors: bad hex " + hex.substr(2 * i, 2));
    out[i] = static_cast<uint8_t>(b);
  }
  return out;
}
// Little-endian bytes to values of T (float or double).
template <typename T>
std::vector<T> HexValues(const std::string &hex) {
  std::vector<uint8_t> b = HexBytes(hex);
  if (b.size() % sizeof(T)) throw std::runtime_error("vectors: hex not a whole number of values");
  std::vector<T> out(b.size() / sizeof(T));
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t bits = 0;
    for (size_t j = 0; j < sizeof(T); ++j) bits |= static_cast<uint64_t>(b[i * sizeof(T) + j]) << (8 * j);
    if (sizeof(T) == 4) {
      uint32_t b32 = static_cast<uint32_t>(bits);
      std::memcpy(&out[i], &b32, sizeof(T));
    } else {
      std::memcpy(&out[i], &bits, sizeof(T));
    }
  }
  return out;
}
template <typename T>
T HexValue(const std::string &hex) {
  std::vector<T> v = HexValues<T>(hex);
  if (v.size() != 1) throw std::runtime_error("vectors: expected one value in " + hex);
  return v[0];
}
inline std::vector<int32_t> IntArray(const JsonValue &v) {
  std::vector<int32_t> out;
  for (const std::string &t : v.items) out.push_back(static_cast<int32_t>(ToI64(t)));
  return out;
}
inline std::vector<JsonObject> ReadJsonl(const char *file) {
  std::string path = std::string(MCGQ_VECTORS_DIR) + "/" + file;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("vectors: cannot open " + path);
  std::vector<JsonObject> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(LineParser(line).ParseObject());
  }
  return out;
}

}  // namespace detail

inline std::vector<QuantizeCase> LoadQuantizeVectors() {
  std::vector<QuantizeCase> cases;
  for (const detail::JsonObject &o : detail::ReadJsonl("quantize.jsonl")) {
    QuantizeCase c;
    c.kind = detail::Field(o, "kind").text;
    c.n = detail::ToU64(detail::Field(o, "n").text);
    c.k = std::strtod(detail::Field(o, "k").text.c_str(), nullptr);
    c.u = static_cast<uint32_t>(detail::ToU64(detail::Field(o, "u").text));
    c.N = detail::ToU64(detail::Field(o, "N").text);
    c.g = detail::HexValues<float>(detail::Field(o, "g_bits").text);
    c.g_int = detail::IntArray(detail::Field(o, "g_int"));
    c.scale = detail::HexValue<float>(detail::Field(o, "scale_bits").text);
    c.w1 = detail::HexValue<double>(detail::Field(o, "w1_bits").text);
    c.scale_residual = detail::HexValue<float>(detail::Field(o, "scale_residual_bits").text);
    if (c.g.size() != c.n || c.g_int.size() != c.n)
      throw std::runtime_error("vectors: quantize case with n != len(g) or len(g_int)");
    cases.push_back(std::move(c));
  }
  return cases;
}

inline std::vector<RleCase> LoadRleVectors() {
  std::vector<RleCase> cases;
  for (const detail::JsonObject &o : detail::ReadJsonl("rle.jsonl")) {
    RleCase c;
    c.g_int = detail::IntArray(detail::Field(o, "g_int"));
    c.bits = detail::ToU64(detail::Field(o, "bits").text);
    c.bytes = detail::HexBytes(detail::Field(o, "hex").text);
    if (c.bytes.size() != (c.bits + 7) / 8)
      throw std::runtime_error("vectors: rle case whose hex is not ceil(bits/8) bytes");
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace mcgq_test

// The names also at global scope, as the tests' shared brief spells them.
using mcgq_test::LoadQuantizeVectors;
using mcgq_test::LoadRleVectors;
using mcgq_test::QuantizeCase;
using mcgq_test::RleCase;

#endif  // MCGQ_TESTS_SUPPORT_VECTORS_HPP_
