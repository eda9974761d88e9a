/* range.h - the overflow rule of docs/FORMAT.md 4 ("Range"): no message
 * that an encoder accepts, and no set of messages that a decoder accepts,
 * decodes or averages to a non-finite value.
 *
 * A decoder computes acc = fmaf(scale_r, (float)g_int_r[k], acc) over the P
 * messages and then acc / P (DESIGN.md 2, averaging).  From the directory
 * alone, |g_int| of a layer is at most G = 2^(B_g - 1) - 1 (B_g-bit two's
 * complement values; 0 when B_g <= 1), so each product is at most
 *       bound_r = scale_r * (float)G_r
 * ((float) is monotonic, so this bounds |(float)g_int| too).  bound_r is
 * exact in double (two 24-bit significands).  Each fmaf rounds once, so with
 * S = sum_r bound_r and u = 2^-24 the exact value each fmaf rounds is at most
 * S (1 + u)^(P-1), and rounding to nearest reaches infinity only from
 * FLT_MAX + 2^103 up.  (1 + u)^(P-1) <= 1 / (1 - (P-1) u), so the chain stays
 * finite when S <= FLT_MAX (1 - (P-1) u).  Summing S in double adds a
 * relative (P-1) 2^-53 at most, which one more u covers for P < 2^29:
 *       P = 1:   bound <= FLT_MAX             (exact: one rounding)
 *       P >= 2:  S <= FLT_MAX * (1 - P * 2^-24)
 * Every party evaluates the same sum in the same (rank) order in double, so
 * they agree bit for bit:
 *   - an encoder refuses a layer that fails the rule with P = 1
 *     (mcgqRangeError, nothing changed): its own decode is finite;
 *   - a decoder or decode-average refuses a set that fails it for its P
 *     (mcgqRangeError) before it writes anything;
 *   - the exchange checks it across the ranks' messages before any rank
 *     commits, so every rank refuses together.
 * The rule is conservative by at most a factor 2 (max |g_int| may be as low
 * as 2^(B_g - 2)), and it only bites within a factor 2P of FLT_MAX. */
#ifndef MCGQ_FORMAT_RANGE_H_
#define MCGQ_FORMAT_RANGE_H_

#include <stdint.h>

#include "hd.h"

#define MCGQ_FLT_MAX 0x1.fffffep+127

/* Largest |product| a layer can contribute: scale * (float)(2^(B_g-1) - 1),
 * exact in double. */
static inline MCGQ_HD double mcgq_range_bound(float scale, uint32_t bits_value) {
  if (bits_value <= 1) return 0.0;
  const float largest = (float)(uint32_t)((1ull << (bits_value - 1)) - 1u);
  return (double)scale * (double)largest;
}

/* The sum of P bounds (summed in rank order) that P messages may reach;
 * exact in double for P < 2^24. */
static inline MCGQ_HD double mcgq_range_limit(uint32_t P) {
  return P <= 1 ? MCGQ_FLT_MAX : MCGQ_FLT_MAX * (1.0 - (double)P * 0x1p-24);
}

/* 1 when P messages whose bounds sum to bound_sum average to finite values. */
static inline MCGQ_HD int mcgq_range_ok(double bound_sum, uint32_t P) {
  return bound_sum <= mcgq_range_limit(P);
}

#endif /* MCGQ_FORMAT_RANGE_H_ */
