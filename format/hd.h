/* hd.h - how the format part is compiled: every function in format/ is a
 * static inline that host C (C11) and CUDA device code both call, so the CPU
 * reference, the fast CPU path and the kernels share one definition of each
 * rule of docs/FORMAT.md and DESIGN.md 2. */
#ifndef MCGQ_FORMAT_HD_H_
#define MCGQ_FORMAT_HD_H_

#if defined(__CUDACC__)
#  define MCGQ_HD __host__ __device__
#else
#  define MCGQ_HD
#endif

/* Inside a device compilation pass (nvcc's device side), where intrinsics
 * such as __fdiv_rn pin the IEEE operation that the host expresses with a
 * plain operator under -ffp-contract=off. */
#if defined(__CUDA_ARCH__)
#  define MCGQ_DEVICE_PASS 1
#else
#  define MCGQ_DEVICE_PASS 0
#endif

#endif /* MCGQ_FORMAT_HD_H_ */
