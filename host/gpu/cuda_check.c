/* cuda_check.c - the detail of a failed CUDA runtime or NCCL call
 * (cuda_check.h). */
#include "gpu/cuda_check.h"

#include <cuda_runtime_api.h>

mcgqResult_t mcgq_cuda_result(int err, const char *fn, const char *what) {
  if (err == 0) return mcgqSuccess;
  return mcgq_fail(mcgqCudaError, "%s: %s: %s", fn, what,
                   cudaGetErrorString((cudaError_t)err));
}

#ifdef MCGQ_HAVE_NCCL
#include <nccl.h>

mcgqResult_t mcgq_nccl_result(int err, const char *fn, const char *what) {
  if (err == 0) return mcgqSuccess;
  return mcgq_fail(mcgqNcclError, "%s: %s: %s", fn, what,
                   ncclGetErrorString((ncclResult_t)err));
}
#endif
