/* cuda_check.h - the one idiom for CUDA runtime and NCCL calls in host/
 * (in the spirit of NCCL's own checks.h): the call's error is turned into
 * an mcgqResult_t and its detail is written once, where the failure
 * happens, naming the API function, what it was doing and the runtime's own
 * message.  A caller with a handle (the communicator) copies that detail
 * into the handle as it is; nothing edits it afterwards.
 *
 *   MCGQ_CUDA_CHECK(fn, what, call)   returns mcgqCudaError on failure
 *   MCGQ_NCCL_CHECK(fn, what, call)   returns mcgqNcclError on failure
 *
 * `call` is anything returning cudaError_t / ncclResult_t (or the kernels'
 * int status of launch.h, which is a cudaError_t).  Only built with CUDA. */
#ifndef MCGQ_HOST_GPU_CUDA_CHECK_H_
#define MCGQ_HOST_GPU_CUDA_CHECK_H_

#include "internal.h"

/* mcgqSuccess when err is 0, else the detail "fn: what: <runtime message>"
 * and mcgqCudaError / mcgqNcclError. */
mcgqResult_t mcgq_cuda_result(int err, const char *fn, const char *what);
mcgqResult_t mcgq_nccl_result(int err, const char *fn, const char *what);

#define MCGQ_CUDA_CHECK(fn, what, call)                                        \
  do {                                                                         \
    const mcgqResult_t mcgq_cuda_res_ = mcgq_cuda_result((int)(call), (fn), (what)); \
    if (mcgq_cuda_res_ != mcgqSuccess) return mcgq_cuda_res_;                  \
  } while (0)

#define MCGQ_NCCL_CHECK(fn, what, call)                                        \
  do {                                                                         \
    const mcgqResult_t mcgq_nccl_res_ = mcgq_nccl_result((int)(call), (fn), (what)); \
    if (mcgq_nccl_res_ != mcgqSuccess) return mcgq_nccl_res_;                  \
  } while (0)

#endif /* MCGQ_HOST_GPU_CUDA_CHECK_H_ */
