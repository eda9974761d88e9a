/* philox.c - Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11; the Random123 library) and the
 * per-layer random word u of DESIGN.md 2.8.
 *
 * A counter-based generator makes u a pure function of (seed, step, layer,
 * rank): every rank and every path (CPU, GPU, a replayed CUDA graph) derives
 * the same u without shared state, and a run is reproducible.
 */
#include "internal.h"

/* Round multipliers and key-schedule (Weyl) constants of Philox4x32. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */
#define PHILOX_ROUNDS 10

static void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

static void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo32(PHILOX_M0, ctr[0], &hi0, &lo0);
  mulhilo32(PHILOX_M1, ctr[2], &hi1, &lo1);
  uint32_t out0 = hi1 ^ ctr[1] ^ key[0];
  uint32_t out2 = hi0 ^ ctr[3] ^ key[1];
  ctr[0] = out0;
  ctr[1] = lo1;
  ctr[2] = out2;
  ctr[3] = lo0;
}

/* Philox4x32-10 of one counter block; exposed to the tests (not part of the
 * public API) so they can check Random123's known-answer vectors. */
void mcgq_philox4x32_10(const uint32_t counter[4], const uint32_t key[2],
                        uint32_t out[4]);
void mcgq_philox4x32_10(const uint32_t counter[4], const uint32_t key[2],
                        uint32_t out[4]) {
  uint32_t ctr[4] = {counter[0], counter[1], counter[2], counter[3]};
  uint32_t k[2] = {key[0], key[1]};
  for (int round = 0; round < PHILOX_ROUNDS; ++round) {
    if (round > 0) { /* the key is bumped before every round but the first */
      k[0] += PHILOX_W0;
      k[1] += PHILOX_W1;
    }
    philox_round(ctr, k);
  }
  for (int i = 0; i < 4; ++i) out[i] = ctr[i];
}

uint32_t mcgqRandomWord(uint64_t seed, uint64_t step, uint32_t layer,
                        uint32_t rank) {
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const uint32_t counter[4] = {(uint32_t)step, (uint32_t)(step >> 32), layer,
                               rank};
  uint32_t out[4];
  mcgq_philox4x32_10(counter, key, out);
  return out[0];
}
