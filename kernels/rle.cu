/* rle.cu - the warp-level encoder of the paper's bitstream (FORMAT.md 1)
 * and of fixed-width layers, in element-parallel stages:
 *   run markers   marks[k] = k+1 where g_int[k] != 0, else 0; a CUB max-scan
 *                 (dispatch.cu) turns them into last[k] = 1 + the last
 *                 nonzero index <= k, so a zero at k starts its run at last[k]
 *                 and is the run head iff last[k] == k;
 *   measure       max|g_int|, nonzeros, runs, longest run (block reductions,
 *                 then one integer atomic per block: order-independent);
 *   token bits    bit length of the token starting at k (0 inside runs); a
 *                 CUB exclusive sum gives every token's stream position;
 *   write         every token ORed into the zeroed region at its position,
 *                 the run length by the run's last element (it knows the
 *                 length), the chunk index by the elements at chunk starts. */
#include <stdint.h>

#include "device/bits.cuh"
#include "device/block.cuh"
#include "encode_state.h"
#include "format.h"
#include "tuning.h"

namespace mcgq_stage_rle {

unsigned grid_for(uint64_t items, unsigned threads) {
  uint64_t blocks = (items + threads - 1) / threads;
  if (blocks == 0) blocks = 1;
  return blocks > MCGQ_TUNE_MAX_GRID ? MCGQ_TUNE_MAX_GRID : (unsigned)blocks;
}

__device__ __forceinline__ uint32_t magnitude(int32_t v) {
  return v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
}

/* The value an element is sent with: g_int[k], or 0 in a layer sent all
 * zero (st->zero: no samples, a failed check, or the plan's range rule,
 * which is decided after g_int and the run markers exist). */
__device__ __forceinline__ int32_t sent_value(const int32_t *g_int, uint64_t k, int zero) {
  return zero ? 0 : g_int[k];
}
/* last[k] of the sent values (0 throughout an all-zero layer). */
__device__ __forceinline__ uint32_t sent_last(const uint32_t *last, uint64_t k, int zero) {
  return zero ? 0u : last[k];
}

__global__ void run_markers_kernel(const int32_t *g_int, uint64_t n, uint32_t *marks) {
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x)
    marks[k] = g_int[k] != 0 ? (uint32_t)(k + 1) : 0u;
}

/* Each thread folds its elements of the grid-stride loop, then the block
 * reduces and thread 0 makes one atomic per quantity: one atomic per block
 * on each of the four addresses, not one per warp and iteration.  (Block
 * sums fit 32 bits: n < 2^32.) */
__global__ void measure_kernel(const int32_t *g_int, const uint32_t *last,
                               uint64_t n, mcgq_layer_state *st) {
  __shared__ uint32_t scratch[32];
  uint32_t mag = 0, nz = 0, heads = 0, run = 0;
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x) {
    int32_t v = g_int[k];
    if (v != 0) {
      mag = max(mag, magnitude(v));
      ++nz;
    } else {
      heads += last[k] == (uint32_t)k;
      int end = k + 1 == n || g_int[k + 1] != 0;
      if (end) run = max(run, (uint32_t)(k + 1 - last[k]));
    }
  }
  mag = mcgq_dev::block_max_u32(mag, scratch);
  run = mcgq_dev::block_max_u32(run, scratch);
  nz = mcgq_dev::block_sum_u32(nz, scratch);
  heads = mcgq_dev::block_sum_u32(heads, scratch);
  if (threadIdx.x == 0) {
    if (mag) atomicMax(&st->max_mag, mag);
    if (run) atomicMax(&st->longest, run);
    if (nz) atomicAdd((unsigned long long *)&st->nonzeros, (unsigned long long)nz);
    if (heads) atomicAdd((unsigned long long *)&st->runs, (unsigned long long)heads);
  }
}

__global__ void token_bits_kernel(const int32_t *g_int, const uint32_t *last,
                                  uint64_t n, const mcgq_layer_state *st,
                                  uint64_t *bits) {
  const uint32_t bg = st->bits_value, br = st->bits_run;
  const int zero = st->zero;
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x) {
    uint64_t b = 0;
    if (sent_value(g_int, k, zero) != 0) b = bg;
    else if (sent_last(last, k, zero) == (uint32_t)k) b = (uint64_t)bg + br;
    bits[k] = b;
  }
}

__device__ void write_index_entry(uint8_t *region, const mcgq_layer_state *st,
                                  uint64_t n, uint64_t k, uint64_t bit_offset,
                                  uint32_t run_offset) {
  uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, n);
  uint64_t e = (k >> MCGQ_CHUNK_LOG2) - 1;
  uint8_t *index = region + mcgq_stream_part_bytes(st->bit_length);
  /* index is 8-aligned (regions and stream parts are multiples of 8) */
  *(uint64_t *)(index + 8u * e) = bit_offset;
  *(uint32_t *)(index + 8u * entries + 4u * e) = run_offset;
}

__device__ void write_rle_element(uint8_t *region, const int32_t *g_int,
                                  const uint32_t *last, const uint64_t *offsets,
                                  uint64_t n, uint64_t k,
                                  const mcgq_layer_state *st) {
  uint32_t *words = (uint32_t *)region;
  const uint32_t bg = st->bits_value, br = st->bits_run;
  const uint64_t H = MCGQ_RLE_HEADER_BITS;
  const int zero = st->zero;
  int32_t v = sent_value(g_int, k, zero);
  if (k == 0) {
    mcgq_dev::put_bits(words, 0, bg, 32);
    mcgq_dev::put_bits(words, 32, br, 32);
  }
  uint64_t start = k; /* element whose token holds k */
  if (v != 0) {
    mcgq_dev::put_bits(words, H + offsets[k], (uint32_t)v, bg);
  } else {
    start = sent_last(last, k, zero);
    int end = k + 1 == n || sent_value(g_int, k + 1, zero) != 0;
    if (end) /* the zero value needs no write; the length follows it */
      mcgq_dev::put_bits(words, H + offsets[start] + bg,
                         (uint32_t)(k + 1 - start), br);
  }
  if (k > 0 && (k & ((1ull << MCGQ_CHUNK_LOG2) - 1)) == 0)
    write_index_entry(region, st, n, k, H + offsets[start], (uint32_t)(k - start));
}

__global__ void write_tokens_kernel(const int32_t *g_int, const uint32_t *last,
                                    const uint64_t *offsets, uint64_t n,
                                    const mcgq_layer_state *st, uint8_t *msg) {
  uint8_t *region = msg + st->offset;
  const int fixed = st->encoding == MCGQ_ENCODING_FIXED;
  const uint32_t bg = st->bits_value;
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x) {
    if (fixed)
      mcgq_dev::put_bits((uint32_t *)region, k * bg, (uint32_t)sent_value(g_int, k, st->zero),
                         bg);
    else
      write_rle_element(region, g_int, last, offsets, n, k, st);
  }
}

}  // namespace mcgq_stage_rle

using namespace mcgq_stage_rle;

#define T_ELEM MCGQ_TUNE_ELEMENT_THREADS

void mcgq_launch_run_markers(const int32_t *g_int, uint64_t n, uint32_t *marks,
                             cudaStream_t s) {
  run_markers_kernel<<<grid_for(n, T_ELEM), T_ELEM, 0, s>>>(g_int, n, marks);
}
void mcgq_launch_measure(const int32_t *g_int, const uint32_t *last, uint64_t n,
                         mcgq_layer_state *st, cudaStream_t s) {
  measure_kernel<<<grid_for(n, T_ELEM), T_ELEM, 0, s>>>(g_int, last, n, st);
}
void mcgq_launch_token_bits(const int32_t *g_int, const uint32_t *last, uint64_t n,
                            const mcgq_layer_state *st, uint64_t *bits, cudaStream_t s) {
  token_bits_kernel<<<grid_for(n, T_ELEM), T_ELEM, 0, s>>>(g_int, last, n, st, bits);
}
void mcgq_launch_write_tokens(const int32_t *g_int, const uint32_t *last,
                              const uint64_t *offsets, uint64_t n,
                              const mcgq_layer_state *st, uint8_t *msg, cudaStream_t s) {
  write_tokens_kernel<<<grid_for(n, T_ELEM), T_ELEM, 0, s>>>(g_int, last, offsets, n,
                                                             st, msg);
}
