/*
 * mcgq_nccl.h - the NCCL exchange (part of libmcgq when it was built with
 * NCCL).
 *
 * A communicator over the caller's ncclComm_t: grad, accum and kstate of
 * every registered layer are device memory on the communicator's GPU, and
 * mcgqCommStep runs on the caller's stream (encode with mcgqEncodeAsync,
 * size and payload exchange with NCCL, decode with mcgqDecodeAverageAsync).
 * mcgqCommSetLayers allocates the device buffers a step needs; mcgqCommStep
 * allocates nothing.  The step synchronizes the stream twice (to read the
 * encode status and the message sizes), so it is not graph capturable.
 * NCCL's asynchronous errors (ncclCommGetAsyncError) are returned as
 * mcgqNcclError.  The library never creates or destroys NCCL communicators.
 */
#ifndef MCGQ_NCCL_H_
#define MCGQ_NCCL_H_

#include <nccl.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates *comm over `nccl` (borrowed; must outlive *comm).  The current CUDA
 * device must be the communicator's device.  A library built without NCCL
 * does not define this function. */
MCGQ_API mcgqResult_t mcgqCommInitNccl(mcgqComm_t *comm, ncclComm_t nccl);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCGQ_NCCL_H_ */
