/* encode_state.h - what the encode stages share in device scratch (the
 * layer table, per-layer results, per-tile partials), and the host-side
 * launch wrappers of each stage file.  Internal to kernels/.
 *
 * Every stage of an encode is ONE launch over all layers of the call
 * (kernels/README.md, "Segmented execution"): element kernels run one block
 * per tile and find their layer in the table; per-layer kernels run one
 * block per layer; the plan runs one block over all layers. */
#ifndef MCGQ_KERNELS_ENCODE_STATE_H_
#define MCGQ_KERNELS_ENCODE_STATE_H_

#include <cuda_runtime.h>
#include <stdint.h>

#include "launch.h"

/* One layer of the device-side table (written by the table kernel from a
 * by-value parameter block; read-only afterwards). */
struct mcgq_layer_rec {
  const void *g;            /* n values of dtype (MCGQ_DTYPE_*) */
  float *accum;             /* NULL iff accumulate == NONE */
  float *accum_out;         /* the new accumulator goes here; NULL: to accum */
  double k;                 /* K reported in the stats (host layers) */
  uint32_t n;               /* n <= MCGQ_MAX_LAYER_ELEMENTS < 2^32 */
  uint32_t N;               /* host-resolved samples (< 2^31) */
  uint32_t u;
  uint32_t first_tile;
  uint32_t first_sample_tile;
  uint8_t accumulate, algo, dynamic_k, dtype;
};

/* Device-resident results of one layer, filled stage by stage; the table
 * kernel zeroes it.  Integer fields reached by atomics start at 0. */
struct mcgq_layer_state {
  uint32_t max_bits;   /* magnitude bits of max|x| (one atomicMax per block) */
  uint32_t status;     /* mcgqResult_t of the data checks */
  uint32_t zero;       /* 1: g_int is sent all zero (m = 0 or a failed check) */
  float m;
  uint64_t T;          /* sum of q */
  float scale;
  uint32_t max_mag;    /* max |g_int| */
  uint32_t longest;    /* longest zero run */
  uint32_t bits_value, bits_run, encoding;
  uint64_t nonzeros;
  uint64_t runs;
  uint64_t stream_bits, bit_length, region_bytes, offset;
  uint64_t N;          /* samples: host-resolved, or from the K state */
  double k;            /* K reported in the stats */
  unsigned long long w1_lo, w1_hi; /* 128-bit W1 sum (dynamic K) */
  double w1;           /* -1 unless dynamic K */
  mcgqKState_t *kstate;  /* dynamic K: the caller's state (device) */
  mcgqKState_t *kstate_out; /* the plan writes kstate_next here; NULL: to kstate */
  /* Dynamic K: the state the next step starts from, written to the
   * caller's K state by the plan only if the layer succeeded (a range
   * error is known only once the widths are). */
  mcgqKState_t kstate_next;
  uint32_t has_kstate_next;
};

/* The zero runs and nonzeros of a range of a layer's sent values, as a
 * monoid (rle.cu): positions are layer-relative, MCGQ_RUN_NONE when the range
 * has no nonzero.  Concatenating two ranges combines their summaries, so a
 * layer's totals and every tile's exclusive prefix come from a scan. */
#define MCGQ_RUN_NONE 0xffffffffu
struct mcgq_run_summary {
  uint32_t nonzeros;
  uint32_t gaps;     /* zero runs with a nonzero on both sides */
  uint32_t longest;  /* longest such run */
  uint32_t first;    /* first nonzero position, or MCGQ_RUN_NONE */
  uint32_t last;     /* last nonzero position, or MCGQ_RUN_NONE */
  uint32_t max_mag;  /* max |g_int| */
};

/* The scratch of one encode call, carved once from d_temp (dispatch.cu).
 * Per-element arrays are in tile order: element e of the layer whose
 * first tile is f lives at f * MCGQ_TUNE_TILE_ELEMENTS + e. */
struct mcgq_encode_scratch {
  mcgq_layer_rec *recs;
  mcgq_layer_state *states;
  uint64_t *tile_cdf;             /* per tile: sum of q, then the exclusive prefix */
  mcgq_run_summary *tile_runs;    /* per tile: summary, then the exclusive prefix */
  uint32_t *tile_next;            /* per tile: first nonzero after it, or MCGQ_RUN_NONE */
  unsigned long long *message_bytes; /* the plan's total, for the zeroing grid */
  int32_t *g_int;
  uint64_t *cdf;                  /* card path: inclusive C per element */
  int32_t *signed_q;              /* dynamic K: a_k = sign(x) q_k */
  int32_t *sorted_a, *sorted_g;   /* dynamic K: one layer at a time */
  void *sort_temp;                /* CUB merge sort scratch (dynamic K) */
  size_t sort_bytes;
  int count;
};

/* layer_table.cu */
void mcgq_launch_layer_table(const mcgq_gpu_layer_t *layers, int first, int chunk,
                             const mcgq_encode_scratch *S, cudaStream_t s);

/* quantize.cu (one launch each over all layers) */
void mcgq_launch_max(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s);
void mcgq_launch_tile_sums(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s);
void mcgq_launch_scale(const mcgq_encode_scratch *S, cudaStream_t s);
void mcgq_launch_counts(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s);
void mcgq_launch_sample(const mcgq_encode_scratch *S, uint64_t sample_tiles,
                        cudaStream_t s);
void mcgq_launch_commit(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s);

/* state_commit.cu (after an encode with deferred state: one launch) */
void mcgq_launch_state_commit(const mcgq_encode_scratch *S, uint64_t tiles,
                              cudaStream_t s);

/* dynamic_k.cu (resolve and the W1 stages: one launch per dynamic-K layer) */
void mcgq_launch_resolve_samples(const mcgq_gpu_layer_t *L, int index,
                                 const mcgq_encode_scratch *S, cudaStream_t s);
void mcgq_launch_w1_sum(const mcgq_gpu_layer_t *L, int index,
                        const mcgq_encode_scratch *S, cudaStream_t s);
void mcgq_launch_kstate_update(const mcgq_gpu_layer_t *L, int index,
                               const mcgq_encode_scratch *S, cudaStream_t s);

/* rle.cu */
void mcgq_launch_tile_runs(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s);
void mcgq_launch_layer_runs(const mcgq_encode_scratch *S, cudaStream_t s);
void mcgq_launch_write_tokens(const mcgq_encode_scratch *S, uint64_t tiles, uint8_t *msg,
                              cudaStream_t s);

/* container.cu */
void mcgq_launch_plan(const mcgq_encode_scratch *S, int checksum, uint64_t total_n,
                      uint8_t *msg, size_t *out_bytes, mcgqLayerStats_t *stats,
                      cudaStream_t s);
void mcgq_launch_zero_regions(const mcgq_encode_scratch *S, uint64_t regions_bound,
                              uint8_t *msg, cudaStream_t s);
/* One launch for the whole message: one block per layer. */
void mcgq_launch_crc(const mcgq_layer_state *states, int count, uint8_t *msg,
                     cudaStream_t s);

#endif /* MCGQ_KERNELS_ENCODE_STATE_H_ */
