/* decode_state.h - what the decode stages share (internal to kernels/).
 * The directory is read in place from the messages; the scratch holds only
 * what cannot be: per rank a few words, every 32nd layer's start, and the
 * totals of layers longer than one chunk (at most one such layer starts in
 * each 2^13 elements of the output). */
#ifndef MCGQ_KERNELS_DECODE_STATE_H_
#define MCGQ_KERNELS_DECODE_STATE_H_

#include <stdint.h>

#include "reader.h"
#include "tuning.h"

/* The messages, passed by value to every decode kernel: no host-to-device
 * copy is needed (a pageable copy would break graph capture). */
struct mcgq_decode_args {
  const uint8_t *msg[MCGQ_TUNE_MAX_DECODE_RANKS];
  uint64_t bytes[MCGQ_TUNE_MAX_DECODE_RANKS]; /* caller's size or capacity */
  int nranks;
  uint32_t max_layers;      /* layers a message of this n and capacity can hold */
  uint64_t n;
  uint64_t slots_per_rank;  /* n / 2^13 + 1 */
};

/* What the header pass found in one rank's message. */
struct mcgq_rank_check {
  uint32_t status;      /* first failure of header and directory, CRCs aside */
  uint32_t checked;     /* entries that passed their rules (CRCs apply to these) */
  uint32_t layer_count;
  uint32_t crc;         /* 1: the header's CRC32C flag */
  uint32_t crc_fail;    /* lowest entry whose CRC differs (atomicMin), or ~0 */
  uint32_t n_differs;   /* the layer table differs from rank 0's */
};

/* Rank 0's layer table, every 32nd layer: the rest is found by a warp scan
 * over 32 directory entries. */
struct mcgq_layer_group {
  uint64_t at;          /* first element of layer 32 k in the output */
  uint64_t first_chunk; /* its first chunk in the decode's chunk numbering */
};

struct mcgq_decode_plan {
  uint64_t chunks;      /* chunks of all layers */
  uint32_t layer_count; /* 0 when the header pass failed */
  uint32_t reserved;
};

/* Decoded totals of one rank's layer longer than a chunk, gathered with
 * integer atomics by its chunks and checked by the layer pass with
 * format/reader.h's mcgq_check_layer_totals.  Slot at / 2^13 of the rank. */
struct mcgq_totals_slot {
  uint32_t layer_plus1; /* 0: no such layer starts in these 2^13 elements */
  uint32_t max_mag, longest, reserved;
  unsigned long long abs_sum, nonzeros, runs;
};

#endif /* MCGQ_KERNELS_DECODE_STATE_H_ */
