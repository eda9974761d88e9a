/*
 * fixed_groups.h - fixed-width values eight at a time (fixed_groups.c), for
 * the fixed-width reader of bitstream.c.  Internal.
 *
 * Eight values of B_g bits take exactly B_g bytes, so every group of eight
 * starts on a byte boundary and needs no bit-reader state: one 16-byte load
 * holds a whole group for B_g <= MCGQ_FIXED_GROUP_MAX_BITS, and a byte
 * shuffle plus one variable shift per lane cuts it into eight int32 values.
 * The statistics that the canonical checks need (OR and sum of |v|, the
 * zero mask that the paper-stream tally reads, whether -2^(B_g-1) occurs)
 * are taken from the same registers, so the values are touched once.
 */
#ifndef MCGQ_FIXED_GROUPS_H_
#define MCGQ_FIXED_GROUPS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Widest B_g the group kernel takes: lane 7 reads bytes floor(7*B_g/8) ..
 * floor(7*B_g/8) + 3 of the 16 loaded (and 7 + B_g <= 32 bits of them). */
#define MCGQ_FIXED_GROUP_MAX_BITS 12u

typedef struct {
  uint32_t mag_or;   /* OR of |v| */
  uint32_t has_min;  /* 1 if some v == -2^(B_g-1) */
  uint64_t abs_sum;  /* sum of |v| */
} mcgq_fixed_group_stats_t;

/* 1 when this CPU runs the group kernel for values of bits_value bits. */
int mcgq_fixed_groups_supported(uint32_t bits_value);

/* Decodes up to `groups` groups of eight bits_value-bit values, MSB-first
 * two's complement, from in (byte aligned) into out[0 .. 8*done), where
 * done is returned: the groups whose 16-byte load stays below end (the
 * caller reads the rest with its bit reader).  zero_masks[w] receives bit i
 * set where out[64w + i] == 0 for every word begun (a last partial word has
 * 8*(done % 8) bits); stats are accumulated into *st.  Call only where
 * mcgq_fixed_groups_supported(bits_value). */
uint64_t mcgq_fixed_groups(const uint8_t *in, const uint8_t *end,
                           uint32_t bits_value, uint64_t groups, int32_t *out,
                           uint64_t *zero_masks, mcgq_fixed_group_stats_t *st);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_FIXED_GROUPS_H_ */
