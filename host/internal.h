/*
 * internal.h - what the host-side files of libmcgq share.  Not installed.
 *
 * Naming: public entry points are mcgqCamelCase (mcgq.h); internal functions
 * are mcgq_snake_case and live in the file named after their concern.
 */
#ifndef MCGQ_INTERNAL_H_
#define MCGQ_INTERNAL_H_

#include <stdint.h>
#include <stddef.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ errors.c
 * mcgq_fail records a formatted detail in this thread's last-error buffer
 * and returns `status`, so validation reads as
 *   if (!g) return mcgq_fail(mcgqInvalidArgument, "%s: g is NULL", fn);
 * mcgq_clear_error marks the thread's last call as successful. */
mcgqResult_t mcgq_fail(mcgqResult_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void mcgq_clear_error(void);
/* Formats into a caller buffer (a communicator's own detail). */
void mcgq_format_detail(char *buf, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Check macros in the spirit of NCCL's: propagate a failed status. */
#define MCGQ_CHECK(call)                 \
  do {                                   \
    mcgqResult_t mcgq_check_ = (call);   \
    if (mcgq_check_ != mcgqSuccess) return mcgq_check_; \
  } while (0)
#define MCGQ_CHECK_GOTO(call, res, label) \
  do {                                    \
    (res) = (call);                       \
    if ((res) != mcgqSuccess) goto label; \
  } while (0)

/* ------------------------------------------------------------ validate.c
 * Argument checks shared by the entry points; each records a detail
 * prefixed with `fn`. */
int mcgq_ranges_overlap(const void *a, size_t a_bytes, const void *b,
                        size_t b_bytes);
mcgqResult_t mcgq_check_config(const char *fn, const mcgqLayerConfig_t *cfg);
/* N of a layer: `samples` when nonzero, else ceil((double)n * k); checks n,
 * k and N against the limits of mcgq.h. */
mcgqResult_t mcgq_resolve_samples(const char *fn, uint64_t n, double k,
                                  uint64_t samples, uint64_t *N);
/* Validates one descriptor (struct_size, n, pointers vs modes, config) and
 * resolves its N.  Does not read the data. */
mcgqResult_t mcgq_check_desc(const char *fn, const mcgqLayerDesc_t *d,
                             int index, uint64_t *samples);
/* i-th descriptor of a caller array walked with the caller's struct_size. */
const mcgqLayerDesc_t *mcgq_desc_at(const mcgqLayerDesc_t *layers, int i);
/* Bytes of one value of an MCGQ_DTYPE_* (4 or 2; 0 for an unknown type). */
size_t mcgq_dtype_bytes(int32_t dtype);
/* "output dtype" check of the typed decoders. */
mcgqResult_t mcgq_check_dtype(const char *fn, const char *what, int32_t dtype);
/* dst[k] = the float32 value of src[k] (n values of dtype), exactly. */
void mcgq_widen(const void *src, int32_t dtype, uint64_t n, float *dst);
/* dst[k] = src[k] rounded once to nearest even into dtype (n values; a
 * float32 dst gets a copy). */
void mcgq_narrow(const float *src, int32_t dtype, uint64_t n, void *dst);

/* ------------------------------------------------------------ fpenv.c
 * Pins the FP state the reference needs (round to nearest, no FTZ/DAZ) and
 * restores the caller's afterwards. */
typedef struct { unsigned int saved; int valid; } mcgq_fpenv_t;
void mcgq_fpenv_enter(mcgq_fpenv_t *env);
void mcgq_fpenv_leave(const mcgq_fpenv_t *env);

/* ------------------------------------------------------------ quantize.c
 * The reference quantizer of DESIGN.md section 2 on an already validated
 * layer (N resolved, 1 <= N <= MCGQ_MAX_SAMPLES, n >= 1).  Checks
 * finiteness first and writes nothing on mcgqNonFinite / mcgqRangeError.
 * On success fills g_int and stats->{n, samples, scale, nonzeros,
 * bits_value, bits_run, stream_bits} (the last three as mcgq_rle_measure
 * gives them, measured while g_int is written). */
mcgqResult_t mcgq_quantize_ref(const float *g, uint64_t n, uint64_t N,
                               uint32_t u, int damped, int32_t *g_int,
                               mcgqLayerStats_t *stats);
/* Max |g_k| and a non-finite flag (1 when some value is NaN/Inf). */
float mcgq_max_abs(const float *g, uint64_t n, int *nonfinite);

/* ------------------------------------------------------------ accumulate.c
 * Accumulation modes (DESIGN.md section 2).  mcgq_accum_add: ag = accum + g
 * (one fp32 add per element; accum NULL: ag = g).  mcgq_accum_commit applies
 * the mode's update after a successful quantize of ag:
 *   RESET:    accum[k] = g_int[k] != 0 ? 0 : ag[k]
 *   RESIDUAL: accum[k] = fmaf(-scale, (float)g_int[k], ag[k])  */
void mcgq_accum_add(const float *g, const float *accum, uint64_t n, float *ag);
void mcgq_accum_commit(int32_t mode, float *accum, const float *ag,
                       const int32_t *g_int, float scale, uint64_t n);

/* ------------------------------------------------------------ wasserstein.c
 * Exact W1 of DESIGN.md Alg 3 (N = sum |g_int|, m and q of g).  Sorting needs
 * O(n) host scratch: returns -1.0 when it cannot be allocated (callers map
 * that to mcgqOutOfMemory).  g finite; g_int not all zero unless g is. */
double mcgq_w1_ref(const float *g, const int32_t *g_int, uint64_t n);

/* ------------------------------------------------------------ bitstream.c
 * The paper's bitstream (section 3.4). */
uint32_t mcgq_bitlen64(uint64_t x);                    /* 64 - clz, bitlen(0)=0 */
/* B_g, B_RLE and the paper stream's bit length (64-bit header included). */
void mcgq_rle_measure(const int32_t *g_int, uint64_t n, uint32_t *bits_value,
                      uint32_t *bits_run, uint64_t *stream_bits);

/* ------------------------------------------------------------ encode.c
 * Two-phase host encode, so the exchange can agree on finiteness across
 * ranks before any accumulator or K state changes (DESIGN.md section 5):
 *   prepare: validates, computes every layer into private scratch (ag,
 *            g_int, new K state), writes the message; changes nothing of
 *            the caller's.  On failure nothing is allocated in *enc.
 *            cut = 1: out_capacity is a fixed capacity (DESIGN.md 5);
 *            layers that do not fit are cut at an element boundary
 *            (MCGQ_LAYER_FLAG_CUT in stats) and their tails stay in the
 *            accumulator at commit; only a capacity below the header and
 *            directory fails.
 *   commit:  applies the accumulator and K-state updates of a prepared encode.
 *   release: frees the scratch (NULL is fine).
 * mcgqEncodeHost is prepare + commit + release. */
typedef struct mcgq_host_encode mcgq_host_encode_t;
mcgqResult_t mcgq_host_encode_prepare(const char *fn,
                                      const mcgqLayerDesc_t *layers, int count,
                                      void *out, size_t out_capacity,
                                      int cut, size_t *out_bytes,
                                      mcgqLayerStats_t *stats,
                                      mcgq_host_encode_t **enc);
void mcgq_host_encode_commit(mcgq_host_encode_t *enc);
void mcgq_host_encode_release(mcgq_host_encode_t *enc);

/* ------------------------------------------------------------ gpu_api.c
 * The GPU encode with deferred state, for the exchange's device codec
 * (codec_device.c), whose step must not change an accumulator or K state
 * before every rank agreed (DESIGN.md section 5):
 *   mcgq_encode_deferred_async: mcgqEncodeAsync, bit for bit the same
 *     message and stats, except that a layer with outs[i].accum_out gets
 *     its new accumulator there (n floats) and one with outs[i].kstate_out
 *     its new K state there; accum and kstate are then only read.  NULL
 *     outputs (or outs NULL) write in place, as mcgqEncodeAsync.  A layer
 *     whose status word is not 0 leaves its outputs unwritten.
 *   mcgq_encode_commit_async: one launch that copies the outputs into the
 *     live accumulators and K states, only for layers whose status word is
 *     0.  Same layers (and outs) and d_temp as the deferred encode, later
 *     on the same stream, with nothing writing d_temp in between (the
 *     encode's layer table and status words are read there).
 * All pointers in outs are device memory of the caller.  Exported (not in
 * mcgq.h) so that the GPU tests can call them; built without CUDA they
 * return mcgqInvalidUsage. */
typedef struct {
  float *accum_out;         /* NULL, or n floats; only with accum */
  mcgqKState_t *kstate_out; /* NULL, or one state; only with kstate */
} mcgq_state_out_t;
MCGQ_API mcgqResult_t mcgq_encode_deferred_async(
    const mcgqLayerDesc_t *layers, int count, const mcgq_state_out_t *outs,
    void *d_out, size_t out_capacity, size_t *d_out_bytes,
    mcgqLayerStats_t *d_stats, void *d_temp, size_t temp_bytes,
    mcgqStream_t stream);
MCGQ_API mcgqResult_t mcgq_encode_commit_async(const mcgqLayerDesc_t *layers,
                                               int count, void *d_temp,
                                               size_t temp_bytes,
                                               mcgqStream_t stream);

/* ------------------------------------------------------------ crc32c.c */
uint32_t mcgq_crc32c(uint32_t crc, const void *data, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_INTERNAL_H_ */
