/*
 * dequantize.h - g_int blocks to floats, as DESIGN.md 2 prescribes them
 * bit for bit: scale * g_int for one message, and the rank-order fmaf
 * accumulation then division by P of decode-and-average.  Not installed.
 *
 * Every function is elementwise over `count` values of host memory; out must
 * not overlap g_int.  The caller has set round-to-nearest with denormals
 * honoured (mcgq_fpenv_enter).
 */
#ifndef MCGQ_DEQUANTIZE_H_
#define MCGQ_DEQUANTIZE_H_

#include <stdint.h>

/* out[k] = scale * (float)g_int[k] */
void mcgq_dequantize_store(float *out, const int32_t *g_int, uint64_t count,
                           float scale);
/* Rank 0 of an average: out[k] = fmaf(scale, (float)g_int[k], +0.0f). */
void mcgq_dequantize_first(float *out, const int32_t *g_int, uint64_t count,
                           float scale);
/* Ranks 1..P-1: out[k] = fmaf(scale, (float)g_int[k], out[k]). */
void mcgq_dequantize_accumulate(float *out, const int32_t *g_int,
                                uint64_t count, float scale);
/* The end of an average: out[k] = out[k] / ranks. */
void mcgq_dequantize_divide(float *out, uint64_t count, float ranks);

#endif /* MCGQ_DEQUANTIZE_H_ */
