// cuda_runtime.h stand-in for tests/test_kernels_emulated.cpp: lets the stage
// kernels of kernels/*.cu compile as plain host C++ and run as ONE thread of
// ONE block (grid-stride loops then visit every element).  Atomics become
// plain read-modify-writes, warp reductions and __match_any_sync see a
// single lane.  The _rn intrinsics go through volatile so that the host
// compiler cannot contract or reorder them (the build uses -ffp-contract=off).
// Only for this test: it checks the kernels' logic, not their parallelism.
#pragma once
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <algorithm>
typedef struct CUstream_st *cudaStream_t;
typedef int cudaError_t;
#define cudaSuccess 0
struct sim_dim { unsigned x, y, z; };
extern sim_dim threadIdx, blockIdx, blockDim, gridDim;
#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __grid_constant__
#define __shared__ static
inline void __syncthreads() {}
inline unsigned atomicOr(unsigned *p, unsigned v) { unsigned o = *p; *p |= v; return o; }
inline unsigned atomicMax(unsigned *p, unsigned v) { unsigned o = *p; if (v > o) *p = v; return o; }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { unsigned long long o = *p; *p += v; return o; }
inline int atomicAdd(int *p, int v) { int o = *p; *p += v; return o; }
inline unsigned atomicCAS(unsigned *p, unsigned c, unsigned v) { unsigned o = *p; if (o == c) *p = v; return o; }
inline unsigned __byte_perm(unsigned x, unsigned, unsigned sel) { return sel == 0x0123 ? __builtin_bswap32(x) : 0xdeadbeef; }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline unsigned __float2uint_rn(float f) { return (unsigned)nearbyintf(f); }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
inline double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
inline float __double2float_rn(double d) { return (float)d; }
inline unsigned __reduce_max_sync(unsigned, unsigned v) { return v; }
inline unsigned __reduce_add_sync(unsigned, unsigned v) { return v; }
inline unsigned __match_any_sync(unsigned, unsigned long long) { return 1u; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
