/* layer_table.cu - the device-side layer table of an encode call.  The
 * caller's descriptors are host memory; they reach the device as a kernel
 * parameter block (by value, MCGQ_GPU_TABLE_CHUNK records at a time, within
 * CUDA 11.8's 4 KB of parameters), never as a host-to-device copy: a graph
 * captures the values, and the caller need not keep anything alive.  The
 * same kernel clears the layers' result records. */
#include <stdint.h>
#include <string.h>

#include "encode_state.h"

namespace mcgq_stage_table {

struct table_chunk {
  uint32_t first, count;
  mcgq_layer_rec recs[MCGQ_GPU_TABLE_CHUNK];
};
static_assert(sizeof(table_chunk) + 2 * sizeof(void *) <= 4096,
              "a chunk of records fits one kernel's parameter space");

__global__ void layer_table_kernel(const table_chunk chunk, mcgq_layer_rec *recs,
                                   mcgq_layer_state *states) {
  for (uint32_t i = threadIdx.x; i < chunk.count; i += blockDim.x) {
    recs[chunk.first + i] = chunk.recs[i];
    memset(&states[chunk.first + i], 0, sizeof(mcgq_layer_state));
  }
}

}  // namespace mcgq_stage_table

using namespace mcgq_stage_table;

void mcgq_launch_layer_table(const mcgq_gpu_layer_t *layers, int first, int chunk,
                             const mcgq_encode_scratch *S, cudaStream_t s) {
  table_chunk c;
  memset(&c, 0, sizeof c);
  c.first = (uint32_t)first;
  c.count = (uint32_t)chunk;
  for (int i = 0; i < chunk; ++i) {
    const mcgq_gpu_layer_t *L = &layers[i];
    mcgq_layer_rec *r = &c.recs[i];
    r->g = L->g;
    r->accum = L->accum;
    r->accum_out = L->accum_out;
    r->k = L->k;
    r->n = (uint32_t)L->n;
    r->N = (uint32_t)L->samples;
    r->u = L->u;
    r->first_tile = L->first_tile;
    r->first_sample_tile = L->first_sample_tile;
    r->accumulate = (uint8_t)L->accumulate;
    r->algo = (uint8_t)L->algo;
    r->dynamic_k = (uint8_t)(L->dynamic_k != 0);
    r->dtype = (uint8_t)L->dtype;
  }
  layer_table_kernel<<<1, MCGQ_GPU_TABLE_CHUNK, 0, s>>>(c, S->recs, S->states);
}
