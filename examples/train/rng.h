/* rng.h - the demo's own random numbers (shuffling, initialization and the
 * baselines' stochastic rounding).  MCGQ itself draws its words with
 * mcgqRandomWord inside the library; these streams are independent of it.
 * splitmix64: tiny, seedable from (seed, purpose, step, rank) so every run
 * and every rank is reproducible. */
#ifndef MCGQ_TRAIN_RNG_H_
#define MCGQ_TRAIN_RNG_H_

#include <math.h>
#include <stdint.h>

typedef struct {
  uint64_t state;
} rng_t;

static inline uint64_t rng_next(rng_t *r) {
  uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A stream for (seed, purpose, a, b): different purposes never overlap in
 * practice because each field is mixed through one splitmix64 round. */
static inline rng_t rng_make(uint64_t seed, uint64_t purpose, uint64_t a,
                             uint64_t b) {
  rng_t r = {seed};
  r.state = rng_next(&r) ^ purpose;
  r.state = rng_next(&r) ^ a;
  r.state = rng_next(&r) ^ b;
  return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_uniform(rng_t *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller; one value per call is enough here). */
static inline double rng_normal(rng_t *r) {
  double u1 = rng_uniform(r), u2 = rng_uniform(r);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

enum { RNG_INIT = 1, RNG_SHUFFLE = 2, RNG_QSGD = 3 };

#endif
