/* agreement.cu - the device half of this rank's agreement block in the
 * exchange (host/comm/comm.c, step 2): its status flag and message size,
 * computed where the encode left its stats and size, so that the block
 * goes from the encode to the all-gather without a host read in between
 * (host/comm/codec_device.c: one host wait covers the encode status and
 * every rank's block).
 *
 * Grid: one block; each thread takes layers i, i + blockDim.x, ...; a warp
 * and then a block maximum; thread 0 writes the two words.  Integer max:
 * the result does not depend on the order. */
#include <stdint.h>

#include "launch.h"

namespace mcgq_stage_agreement {

constexpr unsigned kThreads = 256;

__global__ void __launch_bounds__(kThreads)
agreement_words_kernel(const mcgqLayerStats_t *stats, int count, const size_t *size,
                       uint64_t *words) {
  __shared__ int32_t warp_max[kThreads / 32];
  int32_t flag = 0;
  for (int i = (int)threadIdx.x; i < count; i += (int)blockDim.x) {
    const uint32_t s = stats[i].status;
    const int32_t f = s == (uint32_t)mcgqNonFinite ? MCGQ_GPU_FLAG_NONFINITE : (int32_t)s;
    flag = f > flag ? f : flag;
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const int32_t other = __shfl_down_sync(0xffffffffu, flag, offset);
    flag = other > flag ? other : flag;
  }
  if ((threadIdx.x & 31u) == 0) warp_max[threadIdx.x / 32u] = flag;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (unsigned w = 1; w < blockDim.x / 32u; ++w) flag = warp_max[w] > flag ? warp_max[w] : flag;
  words[0] = (uint64_t)(uint32_t)flag;
  words[1] = flag == 0 ? (uint64_t)*size : 0u;
}

}  // namespace mcgq_stage_agreement

int mcgq_gpu_agreement_words(const mcgqLayerStats_t *d_stats, int count,
                             const size_t *d_size, uint64_t *d_words,
                             mcgqStream_t stream) {
  using namespace mcgq_stage_agreement;
  agreement_words_kernel<<<1, kThreads, 0, (cudaStream_t)stream>>>(d_stats, count, d_size,
                                                                   d_words);
  return (int)cudaGetLastError();
}
