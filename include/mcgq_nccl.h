/*
 * mcgq_nccl.h - the NCCL exchange (part of libmcgq when it was built with
 * NCCL).
 *
 * A communicator over the caller's ncclComm_t: grad, accum and kstate of
 * every registered layer are device memory on the communicator's GPU, and
 * mcgqCommStep runs the library's one step protocol (mcgq.h, "exchange") on
 * the caller's stream: encode with mcgqEncodeAsync, the small step block
 * with ncclAllGather, the messages with grouped ncclSend/ncclRecv, decode
 * with mcgqDecodeAverageAsync.  mcgqCommSetLayers allocates the buffers of
 * a step; a step allocates only when the gathered messages outgrow the
 * receive buffer (it grows to the largest step seen, never P worst-case
 * bounds).  Host waits per step, all-gather mode: two, each by polling
 * (cudaStreamQuery and ncclCommGetAsyncError, which is returned as
 * mcgqNcclError), never a blind cudaStreamSynchronize: the agreement (this
 * rank's status flag and message size are written into its step block on
 * the device, the blocks gathered with ncclAllGather, and one wait reads
 * them back with the encode's stats) and the decode status; a third, the
 * receive agreement (an ncclAllReduce of one flag), only in a step whose
 * messages outgrow some rank's receive buffer.  With a timeout
 * (mcgqCommSetTimeout) a wait that passes the deadline calls ncclCommAbort
 * on the caller's communicator (which frees it: do not use or destroy it
 * afterwards) and returns mcgqTimeout.  Fixed capacity
 * (mcgqCommSetCapacity) is refused with mcgqInvalidUsage: the GPU encoder
 * of this version cannot cut layers, so the graph-capturable step does not
 * exist yet.  No backups: the encode writes the new accumulators and K
 * states to scratch, and one launch commits them once every rank agreed.
 * Apart from ncclCommAbort on timeout, the library never creates or
 * destroys NCCL communicators.
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
