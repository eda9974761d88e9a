/*
 * mcgq_reference.h - the plain scalar reference of mcgq: DESIGN.md sections
 * 2-3 and docs/FORMAT.md written out literally, one short function per
 * step, with no SIMD, no bit tricks on floats and no concern for speed
 * beyond O(n log n).  It defines what correct output is; the library's fast
 * CPU path (host/quantize.c, bitstream.c, encode.c) and the GPU paths must
 * give the same bytes (tests/test_reference.cpp checks the CPU one).
 *
 * Internal: built as the static library mcgq_reference, linked by tests and
 * tools, never by libmcgq, and it shares no code with the fast path (its own
 * 128-bit helpers, bit writer, CRC32C and container writer), so a bug in
 * shared code cannot hide from the comparison.  docs/REFERENCE.md maps each
 * function to Algorithm 1 of the paper and to the spec.
 *
 * Floating point: the caller runs in the default IEEE mode (round to
 * nearest, no flush-to-zero / denormals-are-zero); the reference does not
 * pin it, so a test can see what the plain C expressions give.
 *
 * Arguments are trusted to be valid beyond what each function checks (the
 * public API's validation is tested elsewhere); what depends on the data
 * (NaN/Inf, scale overflow, INT32_MIN in g_int, capacity) is reported with
 * the status codes of mcgq.h, and nothing is written then.
 */
#ifndef MCGQ_REFERENCE_H_
#define MCGQ_REFERENCE_H_

#include <stddef.h>
#include <stdint.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------ quantize_reference.c
 * DESIGN.md 2: one layer, plain variant (Alg 1 / Alg 2). */

/* N of a layer: `samples` when nonzero, else ceil(n * K) of the product
 * rounded to double.  InvalidArgument when n is not in [1, 2^32-1], K not in
 * (0, 64] or N >= 2^31. */
mcgqResult_t mcgq_ref_samples(uint64_t n, double k, uint64_t samples,
                              uint64_t *N);

/* 2.2: q = round_nearest_even(|g| / m * 2^24), m = max|g| > 0. */
uint32_t mcgq_ref_fixed_point(float g, float m);

/* What one quantized layer is, besides its g_int. */
typedef struct {
  uint64_t samples; /* N drawn: 0 for an all-zero layer (no sampling) */
  uint64_t total;   /* T = sum of q_k (0 for an all-zero layer) */
  float max_abs;    /* m */
  float scale;      /* 2.7, damped with max(N, n) when asked */
} mcgq_ref_layer_t;

/* Counts by the closed form of 2.5 (b_k from divmod(N*C_k, T)).  damped = 1
 * gives the residual-error-feedback scale.  NonFinite (g holds NaN/Inf) or
 * RangeError (scale overflows float32): g_int and *out untouched. */
mcgqResult_t mcgq_ref_quantize(const float *g, uint64_t n, uint64_t N,
                               uint32_t u, int damped, int32_t *g_int,
                               mcgq_ref_layer_t *out);

/* Counts by Algorithm 1 itself: N stratified points x_i = (xi + i)/N, each
 * walked forward to the interval it hits (2.4's integer comparison).
 * O(n + N).  Same g_int as mcgq_ref_quantize; a second derivation inside
 * the reference, so the closed form is checked against the paper. */
mcgqResult_t mcgq_ref_quantize_by_sampling(const float *g, uint64_t n,
                                           uint64_t N, uint32_t u,
                                           int32_t *g_int);

/* ------------------------------------------------- variants_reference.c
 * DESIGN.md 2, variants: accumulation and Alg 3's exact W1 and K update. */

/* ag[k] = accum[k] + g[k], one float add each (Alg 4 and residual). */
void mcgq_ref_accumulate(const float *g, const float *accum, uint64_t n,
                         float *ag);
/* Alg 4: accum[k] = 0 where g_int[k] != 0, ag[k] elsewhere. */
void mcgq_ref_commit_reset(float *accum, const float *ag, const int32_t *g_int,
                           uint64_t n);
/* Residual error feedback: accum[k] = fmaf(-scale, (float)g_int[k], ag[k]). */
void mcgq_ref_commit_residual(float *accum, const float *ag,
                              const int32_t *g_int, float scale, uint64_t n);

/* Exact W1 of Alg 3 between g (finite) and g_int; 0 for an all-zero layer.
 * Returns -1 when its O(n) sort scratch cannot be allocated. */
double mcgq_ref_w1(const float *g, const int32_t *g_int, uint64_t n);

/* Alg 3 step with this step's distance d: first step remembers d, later
 * steps K = clamp(K + delta_k * (d_prev - d), k_min, k_max). */
void mcgq_ref_k_update(const mcgqLayerConfig_t *cfg, mcgqKState_t *state,
                       double d);

/* --------------------------------------------------- stream_reference.c
 * DESIGN.md 3 / FORMAT.md 1: the paper's bitstream of one layer. */

typedef struct {
  uint32_t bits_value; /* B_g */
  uint32_t bits_run;   /* B_RLE */
  uint64_t bits;       /* paper stream bits, 64-bit header included */
  uint64_t nonzeros;
} mcgq_ref_rle_size_t;

/* B_g, B_RLE and the length.  InvalidArgument when g_int holds INT32_MIN
 * (B_g would be 33). */
mcgqResult_t mcgq_ref_rle_size(const int32_t *g_int, uint64_t n,
                               mcgq_ref_rle_size_t *size);

/* Writes the stream (ceil(bits/8) bytes, padding zero) at out and returns
 * its bit length in *bits.  bit_offsets / run_offsets, when not NULL,
 * receive the chunk index of FORMAT.md 2 (C - 1 entries each).
 * CapacityExceeded when out_capacity is below ceil(bits/8). */
mcgqResult_t mcgq_ref_rle_encode(const int32_t *g_int, uint64_t n, void *out,
                                 size_t out_capacity, uint64_t *bits,
                                 uint64_t *bit_offsets, uint32_t *run_offsets);

/* FORMAT.md 2: n values of bits_value bits each, two's complement,
 * MSB-first, ceil(n*bits_value/8) bytes with zero padding. */
void mcgq_ref_fixed_encode(const int32_t *g_int, uint64_t n,
                           uint32_t bits_value, void *out);

/* ------------------------------------------------ container_reference.c
 * FORMAT.md 2: the message of several layers, and the host encode of
 * mcgqEncodeHost (accumulation, quantize, dynamic K, encode) over it. */

/* CRC32C (Castagnoli, reflected 0x82f63b78, init/xorout 0xffffffff), one
 * bit at a time. */
uint32_t mcgq_ref_crc32c(const void *data, size_t bytes);

/* Encodes count layers (a plain array, g/accum/kstate in host memory) into
 * one message, all or nothing, as mcgqEncodeHost specifies: on success the
 * accumulators and K states are updated and stats (count entries, may be
 * NULL) filled; on failure nothing of the caller's changes. */
mcgqResult_t mcgq_ref_encode(const mcgqLayerDesc_t *layers, int count,
                             void *out, size_t out_capacity, size_t *out_bytes,
                             mcgqLayerStats_t *stats);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_REFERENCE_H_ */
