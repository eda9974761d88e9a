/*
 * comm_internal.h - the transport-independent communicator (comm.c) and the
 * small vtable a transport (MPI: comm_mpi.c, NCCL: comm_nccl.c) implements.
 * Not installed.
 *
 * The step protocol (DESIGN.md section 5) needs only three collectives, so a
 * transport is three functions plus destroy.  Every collective is called by
 * every rank in the same order with arguments that are equal on all ranks
 * (sizes are exchanged before they are used), so a failure that depends on
 * those arguments happens on every rank alike and nobody hangs.
 *
 * libmcgq_mpi is a separate shared library and libmcgq exports only its
 * API, so mcgq_comm_create is exported (MCGQ_API) although it is not part of
 * the public header: it is the one door through which a transport library
 * builds a communicator.
 */
#ifndef MCGQ_COMM_INTERNAL_H_
#define MCGQ_COMM_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MCGQ_COMM_DETAIL_BYTES 512

/* A transport's collectives.  `detail` (detail_size bytes) receives a message
 * when a call fails; the return value is then mcgqMpiError / mcgqNcclError /
 * mcgqCudaError / mcgqInvalidArgument.  Buffers are host memory. */
typedef struct mcgq_transport_ops {
  const char *name; /* "MPI", "NCCL" */
  /* recv (nranks * bytes) receives every rank's `bytes` bytes, rank order. */
  mcgqResult_t (*allgather)(void *ctx, const void *send, void *recv,
                            size_t bytes, char *detail, size_t detail_size);
  /* Rank r contributes counts[r] bytes (send_bytes == counts[rank]); they land
   * at recv + displs[r].  counts and displs are equal on every rank. */
  mcgqResult_t (*allgatherv)(void *ctx, const void *send, size_t send_bytes,
                             void *recv, const size_t *counts,
                             const size_t *displs, char *detail,
                             size_t detail_size);
  /* *value becomes the maximum over ranks. */
  mcgqResult_t (*allreduce_max_int)(void *ctx, int32_t *value, char *detail,
                                    size_t detail_size);
  /* Optional: a transport that runs the step itself (NCCL: device memory).
   * Called after the layer tables were found equal on all ranks. */
  mcgqResult_t (*step)(void *ctx, mcgqComm_t comm, uint64_t step,
                       uint64_t seed, mcgqStream_t stream,
                       mcgqStepStats_t *stats);
  /* Optional: told about a new layer table (to size device buffers). */
  mcgqResult_t (*set_layers)(void *ctx, mcgqComm_t comm);
  /* Optional: the stream of the current step (collectives of the NCCL
   * transport run on it). */
  void (*set_stream)(void *ctx, mcgqStream_t stream);
  /* Frees ctx (never the caller's communicator). */
  void (*destroy)(void *ctx);
} mcgq_transport_ops_t;

/* Builds a communicator over a transport; takes ownership of ctx (destroyed
 * through ops->destroy, also when this call fails). */
MCGQ_API mcgqResult_t mcgq_comm_create(const mcgq_transport_ops_t *ops,
                                       void *ctx, int rank, int nranks,
                                       mcgqComm_t *comm);

/* For transports that run the step themselves (comm.c owns the table). */
const mcgqLayer_t *mcgq_comm_layers(mcgqComm_t comm, int *count);
uint64_t mcgq_comm_total_elements(mcgqComm_t comm);
mcgqLayerStats_t *mcgq_comm_layer_stats(mcgqComm_t comm);
/* The handle's detail buffer (MCGQ_COMM_DETAIL_BYTES), for transports. */
char *mcgq_comm_detail(mcgqComm_t comm);
/* Records a formatted detail on the handle and returns status. */
mcgqResult_t mcgq_comm_fail(mcgqComm_t comm, mcgqResult_t status,
                            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_COMM_INTERNAL_H_ */
