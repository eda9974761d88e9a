/* decode_state.h - what the decode stages share (internal to kernels/). */
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
  uint32_t max_layers;  /* entries per rank in `layers` */
  uint64_t n;
};

/* One directory entry of one rank, validated by the header pass. */
struct mcgq_decode_layer {
  mcgq_entry_fields e; /* format/reader.h */
  uint64_t at;         /* first element of the layer in the output */
  /* filled by the chunk pass (atomics), checked by the final pass with
   * format/reader.h's mcgq_check_layer_totals */
  uint32_t max_mag, longest;
  unsigned long long abs_sum, nonzeros, runs;
};

#endif /* MCGQ_KERNELS_DECODE_STATE_H_ */
