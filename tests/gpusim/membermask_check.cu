// membermask_check.cu - exercises the project's simulator patch
// tests/gpusim/patches/3-sync-membermask-check.patch: the simulator must run
// shfl.sync and vote.sync with a correct membermask and stop, naming the
// instruction, when a lane executes one without being in its mask.
//
//   mcgq_gpusim_membermask full          exit 0, prints "full masks: ok"
//   mcgq_gpusim_membermask wrong-ballot  the simulator stops (ctest expects its message)
//   mcgq_gpusim_membermask wrong-shfl    likewise
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

__global__ void ballot_kernel(unsigned mask, unsigned *out) {
  unsigned b = __ballot_sync(mask, threadIdx.x & 1u);
  if (threadIdx.x == 0) out[0] = b;
}

__global__ void shfl_kernel(unsigned mask, unsigned *out) {
  unsigned v = __shfl_xor_sync(mask, threadIdx.x, 1);
  if (threadIdx.x == 0) out[1] = v;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "full";
  unsigned full = 0xffffffffu, half = 0x0000ffffu, *d = nullptr, h[2] = {0, 0};
  if (cudaMalloc(&d, sizeof h) != cudaSuccess) return 2;
  ballot_kernel<<<1, 32>>>(strcmp(mode, "wrong-ballot") == 0 ? half : full, d);
  shfl_kernel<<<1, 32>>>(strcmp(mode, "wrong-shfl") == 0 ? half : full, d);
  if (cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess) return 2;
  cudaFree(d);
  if (h[0] != 0xaaaaaaaau || h[1] != 1u) {
    printf("wrong results: ballot 0x%08x (want 0xaaaaaaaa), shfl %u (want 1)\n", h[0], h[1]);
    return 1;
  }
  printf("%s masks: ok\n", mode);
  return strcmp(mode, "full") == 0 ? 0 : 1;  // a wrong mask must not get here
}
