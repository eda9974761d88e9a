/* encode_state.h - what the encode stages of one layer share in device
 * scratch, and the host-side launch wrappers of each stage file.  Internal
 * to kernels/. */
#ifndef MCGQ_KERNELS_ENCODE_STATE_H_
#define MCGQ_KERNELS_ENCODE_STATE_H_

#include <cuda_runtime.h>
#include <stdint.h>

#include "launch.h"

/* Device-resident results of one layer, filled stage by stage.  Integer
 * fields reached by atomics start at 0 (the dispatch clears the array). */
struct mcgq_layer_state {
  uint32_t max_bits;   /* magnitude bits of max|x| (reduction output) */
  uint32_t status;     /* mcgqResult_t of the data checks */
  uint32_t zero;       /* 1: g_int is all zero (m = 0 or a failed check) */
  float m;
  uint64_t T;          /* sum of q */
  float scale;
  uint32_t max_mag;    /* max |g_int| (atomicMax) */
  uint32_t longest;    /* longest zero run (atomicMax) */
  uint32_t bits_value, bits_run, encoding;
  uint64_t nonzeros;   /* atomicAdd */
  uint64_t runs;       /* atomicAdd */
  uint64_t stream_bits, bit_length, region_bytes, offset;
  uint64_t N;          /* samples: host-resolved, or from the K state */
  double k;            /* K reported in the stats */
  unsigned long long w1_lo, w1_hi; /* 128-bit W1 sum (dynamic K) */
  double w1;           /* -1 unless dynamic K */
  /* Dynamic K: the state the next step starts from, written to the
   * caller's K state by the plan stage only if the layer succeeded (a range
   * error is known only once the widths are). */
  mcgqKState_t kstate_next;
  uint32_t has_kstate_next;
};

/* Per-element scratch of the largest layer (reused layer after layer). */
struct mcgq_encode_scratch {
  float *x;            /* accum + g (accumulated modes) */
  uint64_t *wide_a;    /* q, later token bit lengths */
  uint64_t *wide_b;    /* prefix C, later token bit offsets */
  int32_t *g_int;
  uint32_t *narrow_a;  /* magnitude bits, later last-nonzero markers */
  uint32_t *narrow_b;  /* last nonzero + 1 at or before k */
};

/* quantize.cu */
void mcgq_launch_accumulate(const mcgq_gpu_layer_t *L, float *x, cudaStream_t s);
void mcgq_launch_magnitudes(const float *x, uint64_t n, uint32_t *mag, cudaStream_t s);
void mcgq_launch_check_max(mcgq_layer_state *st, cudaStream_t s);
void mcgq_launch_fixed_point(const float *x, uint64_t n, const mcgq_layer_state *st,
                             uint64_t *q, cudaStream_t s);
void mcgq_launch_check_scale(const mcgq_gpu_layer_t *L, const uint64_t *C,
                             mcgq_layer_state *st, cudaStream_t s);
void mcgq_launch_counts(const mcgq_gpu_layer_t *L, const float *x, const uint64_t *C,
                        const mcgq_layer_state *st, int32_t *g_int, cudaStream_t s);
void mcgq_launch_sample(const mcgq_gpu_layer_t *L, const float *x, const uint64_t *C,
                        const mcgq_layer_state *st, int32_t *g_int, cudaStream_t s);
void mcgq_launch_commit(const mcgq_gpu_layer_t *L, const float *x, const int32_t *g_int,
                        const mcgq_layer_state *st, cudaStream_t s);

/* dynamic_k.cu */
void mcgq_launch_resolve_samples(const mcgq_gpu_layer_t *L, mcgq_layer_state *st,
                                 cudaStream_t s);
void mcgq_launch_signed_fixed_point(const float *x, uint64_t n, const mcgq_layer_state *st,
                                    int32_t *a, cudaStream_t s);
void mcgq_launch_w1_sum(const int32_t *a_sorted, const int32_t *b_sorted, uint64_t n,
                        mcgq_layer_state *st, cudaStream_t s);
void mcgq_launch_kstate_update(const mcgq_gpu_layer_t *L, mcgq_layer_state *st,
                               cudaStream_t s);

/* rle.cu */
void mcgq_launch_run_markers(const int32_t *g_int, uint64_t n, uint32_t *marks,
                             cudaStream_t s);
void mcgq_launch_measure(const int32_t *g_int, const uint32_t *last, uint64_t n,
                         mcgq_layer_state *st, cudaStream_t s);
void mcgq_launch_token_bits(const int32_t *g_int, const uint32_t *last, uint64_t n,
                            const mcgq_layer_state *st, uint64_t *bits, cudaStream_t s);
void mcgq_launch_write_tokens(const int32_t *g_int, const uint32_t *last,
                              const uint64_t *offsets, uint64_t n,
                              const mcgq_layer_state *st, uint8_t *msg, cudaStream_t s);

/* container.cu */
void mcgq_launch_plan(const mcgq_gpu_layer_t *L, int index, mcgq_layer_state *states,
                      int count, uint8_t *msg, mcgqLayerStats_t *stats, cudaStream_t s);
void mcgq_launch_zero_region(uint64_t max_region, const mcgq_layer_state *st,
                             uint8_t *msg, cudaStream_t s);
void mcgq_launch_crc(const mcgq_layer_state *st, int index, uint8_t *msg, cudaStream_t s);
/* All `count` layers' CRCs in one launch, from the written directory (after
 * the last layer's tokens and entry; replaces `count` mcgq_launch_crc). */
void mcgq_launch_crc_all(uint8_t *msg, int count, cudaStream_t s);
void mcgq_launch_header(const mcgq_layer_state *states, int count, int checksum,
                        uint64_t total_n, uint8_t *msg, size_t *out_bytes,
                        cudaStream_t s);

#endif /* MCGQ_KERNELS_ENCODE_STATE_H_ */
