/* launch.h - the C-callable entry points of the GPU kernels (the .cu files of kernels/),
 * used by host/gpu/gpu_api.c.  Arguments are validated by the caller; these
 * functions only carve the scratch and enqueue work on `stream` (no
 * allocation, no synchronization, no other stream), returning the
 * cudaError_t of the launches as an int (0 = success). */
#ifndef MCGQ_KERNELS_LAUNCH_H_
#define MCGQ_KERNELS_LAUNCH_H_

#include <stddef.h>
#include <stdint.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One validated layer of an encode (device pointers, host-resolved N),
 * with its place in the call's tile grid (kernels/README.md, "Segmented
 * execution"): the layer's elements are tiles first_tile ..
 * first_tile + ceil(n / MCGQ_TUNE_TILE_ELEMENTS) - 1 of every element kernel,
 * and its samples (card path only) tiles first_sample_tile .. of the sample
 * kernel.  The host fills both as running sums over the layers. */
typedef struct {
  const void *g;         /* n values of dtype */
  float *accum;          /* NULL iff accumulate == NONE */
  /* Deferred state (codec_device.c): where the encode writes the new
   * accumulator (n floats) and the new K state instead of accum / kstate,
   * which it then only reads; mcgq_gpu_encode_commit_state copies them in
   * for the layers that succeeded.  NULL: written in place, as the public
   * mcgqEncodeAsync does. */
  float *accum_out;      /* device; NULL unless accum */
  mcgqKState_t *kstate_out; /* device; NULL unless kstate */
  uint64_t n;
  uint64_t samples;      /* N */
  double k;              /* K reported in the stats */
  uint32_t u;
  int32_t accumulate;    /* MCGQ_ACCUM_* */
  int32_t algo;          /* MCGQ_ALGO_* */
  /* dynamic K (Alg 3): N comes from kstate->k on the device */
  mcgqKState_t *kstate;  /* device; NULL iff !dynamic_k */
  int32_t dynamic_k;
  int32_t dtype;         /* MCGQ_DTYPE_* of g */
  double k_min, k_max, delta_k;
  uint32_t first_tile;        /* filled by mcgq_gpu_encode_shape_add */
  uint32_t first_sample_tile; /* likewise (card path; 0 tiles otherwise) */
} mcgq_gpu_layer_t;

/* What sizes the scratch and the grids of one encode call, summed over its
 * layers by mcgq_gpu_encode_shape_add (which also places each layer). */
typedef struct {
  int count;
  int checksum;             /* 1 = CRC32C flag set and every region summed */
  uint64_t total_n;
  uint64_t tiles;           /* element tiles of all layers */
  uint64_t sample_tiles;    /* sample tiles of all card-path layers */
  uint64_t regions_bound;   /* sum of mcgq_max_region_bytes (zeroing grid) */
  uint64_t max_dynamic_n;   /* largest dynamic-K layer, 0 if none */
  int any_accumulate;
  int any_sample;
} mcgq_gpu_encode_shape_t;

/* Starts a shape (all zero, count layers). */
void mcgq_gpu_encode_shape_init(mcgq_gpu_encode_shape_t *shape, int count,
                                int checksum);
/* Places *layer at the end of the shape's tile grids and adds it to the
 * sums; call for every layer in index order.  Returns 0, or 1 when the
 * call's tiles no longer fit the 2^31 - 1 blocks of a grid. */
int mcgq_gpu_encode_shape_add(mcgq_gpu_encode_shape_t *shape, mcgq_gpu_layer_t *layer);

/* Scratch of an encode of this shape. */
int mcgq_gpu_encode_temp_bytes(const mcgq_gpu_encode_shape_t *shape, size_t *bytes);

/* Layers whose table records travel in one kernel parameter block
 * (CUDA 11.8's 4 KB limit): the table costs ceil(count / this) launches. */
#define MCGQ_GPU_TABLE_CHUNK 72

/* An encode of `shape.count` layers into one container at d_out (capacity
 * checked by the caller against mcgqEncodeGetMaxOutputSize, 8-byte
 * aligned), enqueued in this order, all on `stream`:
 *   mcgq_gpu_encode_table     once per chunk of <= MCGQ_GPU_TABLE_CHUNK
 *                             layers, in index order: writes their table
 *                             records into d_temp from a by-value parameter
 *                             block (no host-to-device copy: graphs capture
 *                             it) and, for dynamic-K layers, resolves N;
 *   mcgq_gpu_encode_quantize  once: every layer's m, T, scale and g_int;
 *   mcgq_gpu_encode_dynamic_k once per dynamic-K layer (two sorts each);
 *   mcgq_gpu_encode_finish    once: widths, plan, tokens, CRC, commit.
 * The host walks the caller's descriptors one chunk at a time on its stack,
 * so nothing is allocated.  temp_bytes was checked by the caller. */
int mcgq_gpu_encode_table(const mcgq_gpu_layer_t *layers, int first, int chunk,
                          const mcgq_gpu_encode_shape_t *shape, void *d_temp,
                          mcgqStream_t stream);
int mcgq_gpu_encode_quantize(const mcgq_gpu_encode_shape_t *shape, void *d_temp,
                             mcgqStream_t stream);
int mcgq_gpu_encode_dynamic_k(const mcgq_gpu_layer_t *layer, int index,
                              const mcgq_gpu_encode_shape_t *shape, void *d_temp,
                              mcgqStream_t stream);
int mcgq_gpu_encode_finish(const mcgq_gpu_encode_shape_t *shape, void *d_out,
                           size_t *d_out_bytes, mcgqLayerStats_t *d_stats,
                           void *d_temp, mcgqStream_t stream);

/* After an encode of this shape whose layers had accum_out / kstate_out,
 * with d_temp untouched since: one launch that copies accum_out into accum
 * and kstate_out into kstate for every layer whose status word (the
 * encode's, in d_temp) is 0; layers with NULL outputs are skipped. */
int mcgq_gpu_encode_commit_state(const mcgq_gpu_encode_shape_t *shape, void *d_temp,
                                 mcgqStream_t stream);

/* Scratch of a decode-and-average of nranks messages of in_capacity bytes
 * each holding n elements. */
int mcgq_gpu_decode_temp_bytes(int nranks, uint64_t n, size_t in_capacity,
                               int32_t out_dtype, size_t *bytes);

/* d_out: n values of out_dtype (MCGQ_DTYPE_*); a 16-bit output is written
 * from float32 results kept in d_temp, once every check passed. */
int mcgq_gpu_decode_average(const void *const *d_in, const size_t *in_bytes,
                            int nranks, void *d_out, int32_t out_dtype, uint64_t n,
                            size_t in_capacity, uint32_t *d_status,
                            void *d_temp, size_t temp_bytes,
                            mcgqStream_t stream);

/* The exchange's agreement flag of a non-finite status: it outranks every
 * other failure (host/comm/comm.c, MCGQ_FLAG_NONFINITE, the same value). */
#define MCGQ_GPU_FLAG_NONFINITE INT32_MAX

/* The status flag and message size words of this rank's agreement block
 * (kernels/agreement.cu): d_words[0] = the maximum over the count layers of
 * d_stats[i].status, mcgqNonFinite counted as MCGQ_GPU_FLAG_NONFINITE;
 * d_words[1] = *d_size when that is 0, else 0.  One launch. */
int mcgq_gpu_agreement_words(const mcgqLayerStats_t *d_stats, int count,
                             const size_t *d_size, uint64_t *d_words,
                             mcgqStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_KERNELS_LAUNCH_H_ */
