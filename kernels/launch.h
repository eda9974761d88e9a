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

/* One validated layer of an encode (device pointers, host-resolved N). */
typedef struct {
  const float *g;
  float *accum;          /* NULL iff accumulate == NONE */
  uint64_t n;
  uint64_t samples;      /* N */
  double k;              /* K reported in the stats */
  uint32_t u;
  int32_t accumulate;    /* MCGQ_ACCUM_* */
  int32_t algo;          /* MCGQ_ALGO_* */
  /* dynamic K (Alg 3): N comes from kstate->k on the device */
  mcgqKState_t *kstate;  /* device; NULL iff !dynamic_k */
  int32_t dynamic_k;
  int32_t reserved;
  double k_min, k_max, delta_k;
} mcgq_gpu_layer_t;

/* Scratch of an encode whose largest layer has max_n elements. */
int mcgq_gpu_encode_temp_bytes(uint64_t max_n, int count, size_t *bytes);

/* Encodes `count` layers into one container at d_out (capacity checked by
 * the caller against mcgqEncodeGetMaxOutputSize, 8-byte aligned).
 * checksum: 1 = CRC32C flag set and every region summed.
 * An encode is enqueued in three steps so that the host walks the caller's
 * descriptors one at a time and needs no table of its own (nothing is
 * allocated inside mcgqEncodeAsync): begin once, then layer for
 * index = 0 .. count-1 in order, then end once.  Every step carves the same
 * scratch from (max_n, count, d_temp). */
int mcgq_gpu_encode_begin(int count, uint64_t max_n, void *d_temp,
                          size_t temp_bytes, mcgqStream_t stream);
int mcgq_gpu_encode_layer(const mcgq_gpu_layer_t *layer, int index, int count,
                          int checksum, uint64_t max_n, void *d_out,
                          mcgqLayerStats_t *d_stats, void *d_temp,
                          mcgqStream_t stream);
int mcgq_gpu_encode_end(int count, int checksum, uint64_t max_n,
                        uint64_t total_n, void *d_out, size_t *d_out_bytes,
                        void *d_temp, mcgqStream_t stream);

/* Scratch of a decode-and-average of nranks messages of in_capacity bytes
 * each holding n elements. */
int mcgq_gpu_decode_temp_bytes(int nranks, uint64_t n, size_t in_capacity,
                               size_t *bytes);

int mcgq_gpu_decode_average(const void *const *d_in, const size_t *in_bytes,
                            int nranks, float *d_out, uint64_t n,
                            size_t in_capacity, uint32_t *d_status,
                            void *d_temp, size_t temp_bytes,
                            mcgqStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_KERNELS_LAUNCH_H_ */
