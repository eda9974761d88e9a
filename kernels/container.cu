/* container.cu - the container stages of an encode (FORMAT.md 2): per layer
 * the plan (widths, RLE vs fixed width, region size and offset, directory
 * entry, stats), zeroing the region before the token writes, the optional
 * CRC32C; per message the header.  Single-thread kernels where the work is
 * O(1) per layer: they chain the layers' offsets on the device, so the host
 * never reads a size back (graph-capturable). */
#include <stdint.h>

#include "device/bits.cuh"
#include "device/crc32c.cuh"
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
 * token stages read g_int as zero once st->zero is set), and it keeps its
 * accumulator and K state (the commit stages check status). */
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

__global__ void plan_kernel(uint64_t n, int index, int count,
                            mcgq_layer_state *states, uint8_t *msg,
                            mcgqLayerStats_t *stats, mcgqKState_t *kstate) {
  mcgq_layer_state *st = &states[index];
  const uint64_t N = st->N;
  choose_encoding(n, st);
  check_range(n, st);
  if (kstate && st->status == 0 && st->has_kstate_next) *kstate = st->kstate_next;
  st->offset = index == 0 ? mcgq_regions_start((uint64_t)count)
                          : states[index - 1].offset + states[index - 1].region_bytes;
  uint64_t samples = st->zero ? 0 : N;
  write_entry(mcgq_dir_entry_at(msg, (uint64_t)index), n, samples, st);
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
  stats[index] = s;
}

__global__ void zero_region_kernel(const mcgq_layer_state *st, uint8_t *msg) {
  uint64_t *words = (uint64_t *)(msg + st->offset); /* 8-aligned */
  const uint64_t count = st->region_bytes / 8u;
  for (uint64_t w = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; w < count;
       w += (uint64_t)gridDim.x * blockDim.x)
    words[w] = 0;
}

/* One block per layer: the block-parallel CRC of device/crc32c.cuh. */
__global__ void crc_kernel(const mcgq_layer_state *st, int index, uint8_t *msg) {
  __shared__ uint32_t table[256], scratch[32];
  mcgq_dev::block_crc32c_table(table);
  uint32_t crc = mcgq_dev::block_crc32c(table, msg + st->offset, st->region_bytes, scratch);
  if (threadIdx.x == 0)
    mcgq_store_le32(mcgq_dir_entry_at(msg, (uint64_t)index) + MCGQ_DIR_CRC32C, crc);
}

/* Every layer of a message in one launch, once all regions and directory
 * entries are written: block b sums layers b, b + gridDim.x, ..., taking the
 * region from the entry (offset, encoding, n_coded, bit length). */
__global__ void crc_all_kernel(uint8_t *msg, int count) {
  __shared__ uint32_t table[256], scratch[32];
  mcgq_dev::block_crc32c_table(table);
  for (int i = blockIdx.x; i < count; i += gridDim.x) {
    uint8_t *entry = mcgq_dir_entry_at(msg, (uint64_t)i);
    const uint64_t offset = mcgq_load_le64(entry + MCGQ_DIR_BYTE_OFFSET);
    const uint64_t bytes = mcgq_region_bytes(entry[MCGQ_DIR_ENCODING],
                                             mcgq_load_le64(entry + MCGQ_DIR_N_CODED),
                                             mcgq_load_le64(entry + MCGQ_DIR_BIT_LENGTH));
    uint32_t crc = mcgq_dev::block_crc32c(table, msg + offset, bytes, scratch);
    if (threadIdx.x == 0) mcgq_store_le32(entry + MCGQ_DIR_CRC32C, crc);
  }
}

__global__ void header_kernel(const mcgq_layer_state *states, int count, int checksum,
                              uint64_t total_n, uint8_t *msg, size_t *out_bytes) {
  uint64_t total = states[count - 1].offset + states[count - 1].region_bytes;
  mcgq_write_header(msg, (uint32_t)count, checksum, total, total_n);
  *out_bytes = (size_t)total;
}

}  // namespace mcgq_stage_container

using namespace mcgq_stage_container;

void mcgq_launch_plan(const mcgq_gpu_layer_t *L, int index, mcgq_layer_state *states,
                      int count, uint8_t *msg, mcgqLayerStats_t *stats, cudaStream_t s) {
  plan_kernel<<<1, 1, 0, s>>>(L->n, index, count, states, msg, stats,
                              L->dynamic_k ? L->kstate : nullptr);
}
void mcgq_launch_zero_region(uint64_t max_region, const mcgq_layer_state *st,
                             uint8_t *msg, cudaStream_t s) {
  unsigned t = MCGQ_TUNE_ZERO_THREADS;
  uint64_t blocks = (max_region / 8u + t - 1) / t;
  if (blocks == 0) blocks = 1;
  if (blocks > MCGQ_TUNE_MAX_GRID) blocks = MCGQ_TUNE_MAX_GRID;
  zero_region_kernel<<<(unsigned)blocks, t, 0, s>>>(st, msg);
}
void mcgq_launch_crc(const mcgq_layer_state *st, int index, uint8_t *msg, cudaStream_t s) {
  crc_kernel<<<1, MCGQ_TUNE_CRC_THREADS, 0, s>>>(st, index, msg);
}
void mcgq_launch_crc_all(uint8_t *msg, int count, cudaStream_t s) {
  unsigned blocks = count < MCGQ_TUNE_CRC_MAX_BLOCKS ? (unsigned)count : MCGQ_TUNE_CRC_MAX_BLOCKS;
  crc_all_kernel<<<blocks ? blocks : 1u, MCGQ_TUNE_CRC_THREADS, 0, s>>>(msg, count);
}
void mcgq_launch_header(const mcgq_layer_state *states, int count, int checksum,
                        uint64_t total_n, uint8_t *msg, size_t *out_bytes,
                        cudaStream_t s) {
  header_kernel<<<1, 1, 0, s>>>(states, count, checksum, total_n, msg, out_bytes);
}
