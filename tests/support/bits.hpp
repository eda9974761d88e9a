// bits.hpp - the bit patterns of floats and doubles, for tests that compare
// results bit for bit (a NaN, -0.0 or a denormal compares by its bits).
#ifndef MCGQ_TESTS_SUPPORT_BITS_HPP_
#define MCGQ_TESTS_SUPPORT_BITS_HPP_

#include <cstdint>
#include <cstring>

inline uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
inline uint64_t Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}
inline float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

#endif  // MCGQ_TESTS_SUPPORT_BITS_HPP_
