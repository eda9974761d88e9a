/* state_commit.cu - the commit of an encode with deferred state: the
 * encode wrote each layer's new accumulator to accum_out and its new K
 * state to kstate_out (the caller's scratch) and left the live ones as they
 * were; once every rank agreed on the step (host/comm/codec_device.c), this
 * one launch copies the scratch into the live state, for exactly the layers
 * the in-place encode would have written: status word 0 (no non-finite
 * value, no range refusal), and for the K state a computed next state (the
 * plan's rule in container.cu).  It reads the encode's layer table and
 * status words where the encode left them in d_temp, so nothing may write
 * d_temp in between.
 *
 * Grid: one block per element tile of the call (encode_tiles.cuh), which
 * copies its tile of the layer's accumulator; block 0 also copies the K
 * states, a thread per layer.  Every write has one writer. */
#include <stdint.h>

#include "encode_tiles.cuh"

namespace mcgq_stage_state_commit {

using namespace mcgq_tile;

__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS)
state_commit_kernel(mcgq_encode_scratch S, uint32_t tiles) {
  if (blockIdx.x == 0)
    for (int i = (int)threadIdx.x; i < S.count; i += (int)blockDim.x) {
      const mcgq_layer_state *st = &S.states[i];
      if (st->kstate && st->kstate_out && st->status == 0 && st->has_kstate_next)
        *st->kstate = *st->kstate_out;
    }
  if (blockIdx.x >= tiles) return; /* a call without tiles still gets block 0 */
  const tile_ref t = locate_tile(S, blockIdx.x);
  if (!t.rec.accum_out || S.states[t.layer].status != 0) return; /* uniform */
  for (unsigned i = threadIdx.x; i < t.count; i += blockDim.x)
    t.rec.accum[t.start + i] = t.rec.accum_out[t.start + i];
}

}  // namespace mcgq_stage_state_commit

using namespace mcgq_stage_state_commit;

void mcgq_launch_state_commit(const mcgq_encode_scratch *S, uint64_t tiles,
                              cudaStream_t s) {
  const unsigned blocks = tiles ? (unsigned)tiles : 1u;
  state_commit_kernel<<<blocks, MCGQ_TUNE_TILE_THREADS, 0, s>>>(*S, (uint32_t)tiles);
}
