/* container.cu - the container stages of an encode (FORMAT.md 2), each one
 * launch for every layer of the call:
 *   plan     one block over the layer table: widths, RLE vs fixed width, the
 *            range rule, region sizes; a block scan of the region sizes
 *            chains the layers' offsets on the device (the host never reads
 *            a size back: graph-capturable); directory entries, stats, the
 *            K states of successful dynamic-K layers, and the header;
 *   zero     the regions of the whole message, before the token writes;
 *   crc      optional CRC32C, one block per layer. */
#include <stdint.h>

#include "device/bits.cuh"
#include "device/crc32c.cuh"
#include "device/scan.cuh"
#include "encode_state.h"
#include "format.h"
#include "range.h"
#include "tuning.h"

namespace mcgq_stage_container {

__device__ void choose_encoding(uint64_t n, mcgq_layer_state *st) {
  uint32_t bg = 1u + mcgq_dev::bitlen32(st->max_mag);
  uint32_t br = st->longest ? mcgq_dev::bitlen32(st->longest) : 0u;
  uint64_t runs = st->runs;
  st->bits_value = bg;
  st->bits_run = br;
  st->stream_bits = MCGQ_RLE_HEADER_BITS + (uint64_t)bg * (st->nonzeros + runs) +
                    (uint64_t)br * runs;
  uint64_t fixed_bits = n * bg;
  st->encoding = fixed_bits < st->stream_bits ? MCGQ_ENCODING_FIXED : MCGQ_ENCODING_RLE;
  st->bit_length = st->encoding == MCGQ_ENCODING_FIXED ? fixed_bits : st->stream_bits;
  st->region_bytes = mcgq_region_bytes(st->encoding, n, st->bit_length);
}

__device__ void write_entry(uint8_t *e, uint64_t n, uint64_t samples,
                            const mcgq_layer_state *st) {
  mcgq_dir_entry_t d;
  d.n = n;
  d.n_coded = n;
  d.samples = samples;
  d.bit_length = st->bit_length;
  d.byte_offset = st->offset;
  d.scale_bits = __float_as_uint(st->scale);
  d.crc32c = 0; /* the CRC stage fills it in once the region is written */
  d.encoding = st->encoding;
  d.bits_value = st->bits_value;
  d.bits_run = st->bits_run;
  mcgq_write_dir_entry(e, &d);
}

/* FORMAT.md 4's range rule for this message alone (P = 1).  A refused layer
 * is sent as an all-zero layer, like every failed layer of the GPU path (the
 * token stage writes one run of n zeros once st->zero is set), and it keeps
 * its accumulator and K state (the commit stages check status). */
__device__ void check_range(uint64_t n, mcgq_layer_state *st) {
  if (st->status != 0 || mcgq_range_ok(mcgq_range_bound(st->scale, st->bits_value), 1u))
    return;
  st->status = mcgqRangeError;
  st->zero = 1;
  st->scale = 0.0f;
  st->max_mag = 0;
  st->nonzeros = 0;
  st->runs = 1; /* n >= 1: one run of n zeros */
  st->longest = (uint32_t)n;
  choose_encoding(n, st);
}

__device__ void write_stats(mcgqLayerStats_t *out, uint64_t n, uint64_t samples,
                            const mcgq_layer_state *st) {
  mcgqLayerStats_t s;
  memset(&s, 0, sizeof s);
  s.n = n;
  s.samples = samples;
  s.k = st->k;
  s.scale = st->scale;
  s.bits_value = st->bits_value;
  s.bits_run = st->bits_run;
  s.status = st->status;
  s.stream_bits = st->stream_bits;
  s.wire_bytes = st->region_bytes + MCGQ_DIR_BYTES;
  s.nonzeros = st->nonzeros;
  s.w1 = st->w1;
  s.flags = st->encoding == MCGQ_ENCODING_FIXED ? MCGQ_LAYER_FLAG_FIXED_WIDTH : 0u;
  *out = s;
}

/* One block; the layers in rounds of blockDim.x, a block scan of the
 * region sizes per round, the running offset carried between rounds. */
__global__ void __launch_bounds__(MCGQ_TUNE_LAYER_THREADS)
plan_kernel(mcgq_encode_scratch S, int checksum, uint64_t total_n, uint8_t *msg,
            size_t *out_bytes, mcgqLayerStats_t *stats) {
  __shared__ uint64_t scratch[33];
  const int count = S.count;
  uint64_t offset = mcgq_regions_start((uint64_t)count);
  for (int base = 0; base < count; base += (int)blockDim.x) {
    const int i = base + (int)threadIdx.x;
    mcgq_layer_state *st = i < count ? &S.states[i] : nullptr;
    const uint64_t n = i < count ? S.recs[i].n : 0;
    uint64_t bytes = 0;
    if (st) {
      choose_encoding(n, st);
      check_range(n, st);
      bytes = st->region_bytes;
    }
    uint64_t round_bytes = 0;
    const uint64_t before = mcgq_dev::block_exclusive_sum_u64(bytes, scratch, &round_bytes);
    if (st) {
      st->offset = offset + before;
      if (st->kstate && st->status == 0 && st->has_kstate_next)
        *(st->kstate_out ? st->kstate_out : st->kstate) = st->kstate_next;
      const uint64_t samples = st->zero ? 0 : st->N;
      write_entry(mcgq_dir_entry_at(msg, (uint64_t)i), n, samples, st);
      write_stats(&stats[i], n, samples, st);
    }
    offset += round_bytes;
  }
  if (threadIdx.x == 0) {
    mcgq_write_header(msg, (uint32_t)count, checksum, offset, total_n);
    *out_bytes = (size_t)offset;
    *S.message_bytes = offset;
  }
}

/* Zeroes [regions start, message end) in 8-byte words (the end is the
 * plan's, on the device; the grid covers the host's bound). */
__global__ void zero_regions_kernel(const unsigned long long *message_bytes, uint64_t first,
                                    uint8_t *msg) {
  uint64_t *words = (uint64_t *)msg; /* 8-aligned; regions start and end on 8 */
  const uint64_t end = *message_bytes / 8u;
  for (uint64_t w = first + (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; w < end;
       w += (uint64_t)gridDim.x * blockDim.x)
    words[w] = 0;
}

/* One block per layer (blockIdx.x is the layer): the block-parallel CRC of
 * device/crc32c.cuh, pieces combined with format/crc32c.h's shift operator. */
__global__ void crc_kernel(const mcgq_layer_state *states, uint8_t *msg) {
  __shared__ uint32_t table[256], scratch[32];
  mcgq_dev::block_crc32c_table(table);
  const mcgq_layer_state *st = &states[blockIdx.x];
  uint32_t crc = mcgq_dev::block_crc32c(table, msg + st->offset, st->region_bytes, scratch);
  if (threadIdx.x == 0)
    mcgq_store_le32(mcgq_dir_entry_at(msg, (uint64_t)blockIdx.x) + MCGQ_DIR_CRC32C, crc);
}

}  // namespace mcgq_stage_container

using namespace mcgq_stage_container;

void mcgq_launch_plan(const mcgq_encode_scratch *S, int checksum, uint64_t total_n,
                      uint8_t *msg, size_t *out_bytes, mcgqLayerStats_t *stats,
                      cudaStream_t s) {
  plan_kernel<<<1, MCGQ_TUNE_LAYER_THREADS, 0, s>>>(*S, checksum, total_n, msg, out_bytes,
                                                    stats);
}
void mcgq_launch_zero_regions(const mcgq_encode_scratch *S, uint64_t regions_bound,
                              uint8_t *msg, cudaStream_t s) {
  const unsigned t = MCGQ_TUNE_ZERO_THREADS;
  uint64_t blocks = (regions_bound / 8u + t - 1) / t;
  if (blocks == 0) blocks = 1;
  if (blocks > MCGQ_TUNE_MAX_GRID) blocks = MCGQ_TUNE_MAX_GRID;
  zero_regions_kernel<<<(unsigned)blocks, t, 0, s>>>(
      S->message_bytes, mcgq_regions_start((uint64_t)S->count) / 8u, msg);
}
void mcgq_launch_crc(const mcgq_layer_state *states, int count, uint8_t *msg,
                     cudaStream_t s) {
  crc_kernel<<<(unsigned)count, MCGQ_TUNE_CRC_THREADS, 0, s>>>(states, msg);
}
