/* decode.cu - decode-and-average of P messages on the GPU (DESIGN.md 2,
 * averaging; FORMAT.md 3), in four passes on the caller's stream:
 *   header    one thread per message validates the header, the directory
 *             and the CRCs exactly as host/stream/decode.c does; thread 0 then
 *             reports the first failing rank in rank order and lays out the
 *             chunks of rank 0's layer table;
 *   chunks    one thread per chunk of 2^13 elements (the chunk index gives
 *             its start in each stream) decodes that chunk of every rank in
 *             rank order: out[k] = fmaf(scale_r, (float)v_r, out[k]) with
 *             out[k] starting at 0, so g_int is never materialized; every
 *             canonical-stream rule that is local to a chunk is checked, the
 *             chunk's end is checked against the next index entry, and the
 *             per-layer totals (max |v|, longest run, sum |v|) are gathered
 *             with integer atomics;
 *   layers    one thread per (rank, layer) checks the totals against the
 *             directory (B_g, B_RLE, samples, the RLE/fixed choice) and the
 *             zero padding;
 *   divide    out[k] = out[k] / (float)P.
 * A failure stores an mcgqResult_t in *d_status (header failures by rank
 * order; payload failures are all mcgqCorruptStream), and out is then
 * unspecified, as for mcgqDecodeAverageHost. */
#include <stdint.h>

#include "decode_state.h"
#include "device/bits.cuh"
#include "device/crc32c.cuh"
#include "format.h"
#include "range.h"
#include "reader.h"
#include "launch.h"
#include "tuning.h"

namespace mcgq_stage_decode {

const uint64_t kChunk = (uint64_t)1 << MCGQ_CHUNK_LOG2;

__device__ void fail(uint32_t *status, uint32_t code) { atomicCAS(status, 0u, code); }

/* ------------------------------------------------------------ header pass */

/* Header and directory of one message with format/reader.h's rules; 0 or
 * an mcgqResult_t. */
__device__ uint32_t parse_message(const mcgq_decode_args &a, int r, const uint32_t *table,
                                  mcgq_decode_layer *layers, uint32_t *count) {
  const uint8_t *m = a.msg[r];
  mcgq_header_fields h;
  /* The size is known only on the device: total_bytes must fit the
   * caller's bound (the host decoder: equal the message size). */
  mcgq_rule rule = mcgq_read_header(m, a.bytes[r], 0, &h);
  if (rule != MCGQ_RULE_OK) return mcgq_rule_status(rule);
  if (h.layer_count > a.max_layers) /* cannot sum to the caller's n */
    return h.total_n != a.n ? mcgqInvalidArgument : mcgqCorruptStream;
  uint64_t offset = mcgq_regions_start(h.layer_count), sum_n = 0;
  for (uint32_t i = 0; i < h.layer_count; ++i) {
    mcgq_decode_layer L;
    memset(&L, 0, sizeof L);
    mcgq_load_entry(m, i, &L.e);
    rule = mcgq_check_entry(&L.e);
    if (rule == MCGQ_RULE_OK) rule = mcgq_check_entry_region(&h, offset, &L.e);
    if (rule != MCGQ_RULE_OK) return mcgq_rule_status(rule);
    if ((h.flags & MCGQ_HDR_FLAG_CRC32C) &&
        mcgq_crc32c_with_table(table, 0, m + L.e.byte_offset, L.e.region_bytes) != L.e.crc)
      return mcgqCorruptStream;
    L.at = sum_n;
    sum_n += L.e.n;
    offset += L.e.region_bytes;
    layers[i] = L;
  }
  rule = mcgq_check_directory_end(&h, offset, sum_n);
  if (rule != MCGQ_RULE_OK) return mcgq_rule_status(rule);
  if (h.total_n != a.n) return mcgqInvalidArgument;
  *count = h.layer_count;
  return 0;
}

/* FORMAT.md 4's range rule over the P ranks' entries of each layer. */
__device__ uint32_t check_range(const mcgq_decode_args &a, const mcgq_decode_layer *layers,
                                uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) {
    double bound = 0.0;
    for (int r = 0; r < a.nranks; ++r) {
      const mcgq_entry_fields &e = layers[(uint64_t)r * a.max_layers + i].e;
      bound += mcgq_range_bound(e.scale, e.bits_value);
    }
    if (!mcgq_range_ok(bound, (uint32_t)a.nranks)) return mcgqRangeError;
  }
  return 0;
}

__global__ void header_kernel(const __grid_constant__ mcgq_decode_args a,
                              mcgq_decode_layer *layers, uint64_t *chunk_prefix,
                              uint32_t *layer_count, uint32_t *status) {
  __shared__ uint32_t table[256];
  __shared__ uint32_t rank_status[MCGQ_TUNE_MAX_DECODE_RANKS];
  __shared__ uint32_t rank_layers[MCGQ_TUNE_MAX_DECODE_RANKS];
  mcgq_dev::block_crc32c_table(table);
  for (int r = threadIdx.x; r < a.nranks; r += blockDim.x) {
    rank_layers[r] = 0;
    rank_status[r] = parse_message(a, r, table, layers + (uint64_t)r * a.max_layers,
                                   &rank_layers[r]);
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  uint32_t s = 0;
  for (int r = 0; r < a.nranks && !s; ++r) {
    s = rank_status[r];
    if (s || r == 0) continue;
    if (rank_layers[r] != rank_layers[0]) s = mcgqCorruptStream;
    for (uint32_t i = 0; i < rank_layers[0] && !s; ++i)
      if (layers[(uint64_t)r * a.max_layers + i].e.n != layers[i].e.n) s = mcgqCorruptStream;
  }
  if (!s) s = check_range(a, layers, rank_layers[0]);
  *status = s;
  uint32_t lc = s ? 0 : rank_layers[0];
  *layer_count = lc;
  uint64_t chunks = 0;
  for (uint32_t i = 0; i < lc; ++i) {
    chunk_prefix[i] = chunks;
    chunks += mcgq_chunk_count(layers[i].e.n);
  }
  chunk_prefix[lc] = chunks;
}

/* ------------------------------------------------------------- chunk pass */

__device__ __forceinline__ int32_t token_value(uint32_t t, uint32_t width, uint32_t *mag) {
  uint32_t sign = 1u << (width - 1);
  if (!(t & sign)) {
    *mag = t;
    return (int32_t)t;
  }
  uint32_t mask = width == 32 ? 0xffffffffu : (sign << 1) - 1u;
  *mag = (0u - t) & mask;
  return -(int32_t)*mag;
}

/* Adds one value of rank r (first: acc starts at 0) into out. */
__device__ __forceinline__ void accumulate(float *out, uint64_t k, float scale, int32_t v,
                                           int first) {
  float acc = first ? 0.0f : out[k];
  out[k] = __fmaf_rn(scale, (float)v, acc);
}

struct chunk_totals {
  uint32_t max_mag = 0, longest = 0;
  unsigned long long abs_sum = 0, nonzeros = 0, runs = 0;
};

__device__ void flush_totals(mcgq_decode_layer *L, const chunk_totals &t) {
  if (t.max_mag) atomicMax(&L->max_mag, t.max_mag);
  if (t.longest) atomicMax(&L->longest, t.longest);
  if (t.abs_sum) atomicAdd(&L->abs_sum, t.abs_sum);
  if (t.nonzeros) atomicAdd(&L->nonzeros, t.nonzeros);
  if (t.runs) atomicAdd(&L->runs, t.runs);
}

/* Fixed width: values are independent; the paper size of the values needs
 * the zero runs, counted by the chunk holding their first element. */
__device__ bool fixed_chunk(const uint8_t *region, const mcgq_decode_layer *L,
                            uint64_t lo, uint64_t hi, float *out, int first,
                            chunk_totals *t) {
  const uint32_t bg = L->e.bits_value;
  const uint32_t min_token = 1u << (bg - 1);
  for (uint64_t e = lo; e < hi; ++e) {
    uint32_t raw = mcgq_dev::get_bits(region, e * bg, bg);
    if (raw == min_token) return false;
    uint32_t mag = 0;
    int32_t v = raw ? token_value(raw, bg, &mag) : 0;
    accumulate(out, L->at + e, L->e.scale, v, first);
    if (v) {
      t->max_mag = mag > t->max_mag ? mag : t->max_mag;
      t->abs_sum += mag;
      t->nonzeros += 1;
      continue;
    }
    if (e > 0 && mcgq_dev::get_bits(region, (e - 1) * bg, bg) == 0) continue;
    uint64_t end = e + 1; /* a run head: measure the whole run */
    while (end < L->e.n_coded && mcgq_dev::get_bits(region, end * bg, bg) == 0) ++end;
    t->runs += 1;
    uint64_t len = end - e;
    if (len > t->longest) t->longest = (uint32_t)len;
  }
  return true;
}

/* The chunk index entry j (element (j+1) * 2^13). */
__device__ void index_entry(const uint8_t *region, const mcgq_decode_layer *L, uint64_t j,
                            uint64_t *bit, uint32_t *run) {
  uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, L->e.n_coded);
  const uint8_t *index = region + mcgq_stream_part_bytes(L->e.bit_length);
  *bit = mcgq_load_le64(index + 8u * j);
  *run = mcgq_load_le32(index + 8u * entries + 4u * j);
}

struct rle_reader {
  const uint8_t *region;
  uint64_t bits;      /* bit_length: nothing past it may be read */
  uint32_t bg, br;
};

/* Reads a run token at pos; false if it is malformed (not a run, past the
 * stream, length 0). */
__device__ bool read_run(const rle_reader &R, uint64_t pos, uint32_t *len) {
  if (pos + R.bg + R.br > R.bits) return false;
  if (mcgq_dev::get_bits(R.region, pos, R.bg) != 0) return false;
  *len = mcgq_dev::get_bits(R.region, pos + R.bg, R.br);
  return *len != 0;
}

__device__ bool rle_chunk(const uint8_t *region, const mcgq_decode_layer *L, uint64_t c,
                          uint64_t lo, uint64_t hi, float *out, int first,
                          chunk_totals *t) {
  rle_reader R = {region, L->e.bit_length, L->e.bits_value, L->e.bits_run};
  const uint64_t n = L->e.n_coded;
  const uint32_t min_token = 1u << (R.bg - 1);
  uint64_t pos = MCGQ_RLE_HEADER_BITS, e = lo;
  int prev_run = 0;
  uint64_t run_pos = 0, run_head = 0; /* the run token holding element e - 1 */
  if (c == 0) {
    if (mcgq_dev::get_bits(region, 0, 32) != R.bg ||
        mcgq_dev::get_bits(region, 32, 32) != R.br)
      return false;
  } else {
    uint32_t ro = 0;
    index_entry(region, L, c - 1, &pos, &ro);
    if (pos < MCGQ_RLE_HEADER_BITS || pos >= R.bits) return false;
    if (ro) { /* the chunk starts inside a run that began in an earlier chunk */
      uint32_t len = 0;
      if (!read_run(R, pos, &len) || ro >= len) return false;
      run_pos = pos;
      run_head = lo - ro;
      uint64_t stop = run_head + len < hi ? run_head + len : hi;
      for (; e < stop; ++e) accumulate(out, L->at + e, L->e.scale, 0, first);
      pos += R.bg + R.br;
      prev_run = 1;
    }
  }
  while (e < hi) {
    if (pos + R.bg > R.bits) return false; /* missing tokens */
    uint32_t raw = mcgq_dev::get_bits(region, pos, R.bg);
    if (raw) {
      if (raw == min_token) return false;
      uint32_t mag = 0;
      int32_t v = token_value(raw, R.bg, &mag);
      accumulate(out, L->at + e, L->e.scale, v, first);
      t->max_mag = mag > t->max_mag ? mag : t->max_mag;
      t->abs_sum += mag;
      t->nonzeros += 1;
      pos += R.bg;
      ++e;
      prev_run = 0;
      continue;
    }
    uint32_t len = 0;
    if (prev_run || !read_run(R, pos, &len) || len > n - e) return false;
    t->runs += 1;
    if (len > t->longest) t->longest = len;
    run_pos = pos;
    run_head = e;
    uint64_t stop = e + len < hi ? e + len : hi;
    for (; e < stop; ++e) accumulate(out, L->at + e, L->e.scale, 0, first);
    pos += R.bg + R.br;
    prev_run = 1;
  }
  if (hi == n) return pos == R.bits; /* the last token ends the stream */
  /* The next chunk's entry must point where this chunk stopped. */
  uint64_t want_bit = 0;
  uint32_t want_run = 0;
  index_entry(region, L, c, &want_bit, &want_run);
  /* A run that reaches past hi holds element hi. */
  if (prev_run) {
    uint32_t len = mcgq_dev::get_bits(region, run_pos + R.bg, R.br);
    if (run_head + len > hi) return want_bit == run_pos && want_run == hi - run_head;
    /* the run ended at hi: the next token must not be another run */
    if (pos + R.bg <= R.bits && mcgq_dev::get_bits(region, pos, R.bg) == 0) return false;
  }
  return want_bit == pos && want_run == 0;
}

__device__ uint32_t layer_of(const uint64_t *prefix, uint32_t count, uint64_t chunk) {
  uint32_t lo = 0, hi = count - 1; /* last i with prefix[i] <= chunk */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (prefix[mid] <= chunk) lo = mid; else hi = mid - 1;
  }
  return lo;
}

__global__ void chunk_kernel(const __grid_constant__ mcgq_decode_args a,
                             mcgq_decode_layer *layers, const uint64_t *prefix,
                             const uint32_t *layer_count, float *out, uint32_t *status) {
  if (*status) return;
  const uint32_t lc = *layer_count;
  const uint64_t chunks = prefix[lc];
  for (uint64_t g = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; g < chunks;
       g += (uint64_t)gridDim.x * blockDim.x) {
    uint32_t i = layer_of(prefix, lc, g);
    uint64_t c = g - prefix[i];
    for (int r = 0; r < a.nranks; ++r) {
      mcgq_decode_layer *L = layers + (uint64_t)r * a.max_layers + i;
      const uint8_t *region = a.msg[r] + L->e.byte_offset;
      uint64_t lo = c * kChunk;
      uint64_t hi = lo + kChunk < L->e.n ? lo + kChunk : L->e.n;
      uint64_t coded_hi = hi < L->e.n_coded ? hi : L->e.n_coded;
      chunk_totals t;
      bool ok = true;
      if (lo < coded_hi)
        ok = L->e.encoding == MCGQ_ENCODING_FIXED
                 ? fixed_chunk(region, L, lo, coded_hi, out, r == 0, &t)
                 : rle_chunk(region, L, c, lo, coded_hi, out, r == 0, &t);
      if (!ok) {
        fail(status, mcgqCorruptStream);
        return;
      }
      for (uint64_t e = lo > coded_hi ? lo : coded_hi; e < hi; ++e) /* CUT tail */
        accumulate(out, L->at + e, L->e.scale, 0, r == 0);
      flush_totals(L, t);
    }
  }
}

/* ------------------------------------------------------------- layer pass */

__device__ bool zero_bytes(const uint8_t *p, uint64_t bytes) {
  for (uint64_t b = 0; b < bytes; ++b)
    if (p[b]) return false;
  return true;
}

__device__ bool check_layer(const uint8_t *region, const mcgq_decode_layer *L) {
  mcgq_layer_totals t;
  t.max_magnitude = L->max_mag;
  t.longest_run = L->longest;
  t.abs_sum = L->abs_sum;
  t.nonzeros = L->nonzeros;
  t.runs = L->runs;
  if (mcgq_check_layer_totals(&L->e, &t) != MCGQ_RULE_OK) return false;
  /* padding bits of the last byte, the 8-byte padding, the index padding */
  uint64_t stream_bytes = mcgq_bits_to_bytes(L->e.bit_length);
  uint32_t pad = (uint32_t)((8u - (L->e.bit_length & 7u)) & 7u);
  if (pad && mcgq_dev::get_bits(region, L->e.bit_length, pad) != 0) return false;
  uint64_t part = mcgq_align8(stream_bytes);
  if (!zero_bytes(region + stream_bytes, part - stream_bytes)) return false;
  uint64_t entries = mcgq_index_entries(L->e.encoding, L->e.n_coded);
  return zero_bytes(region + part + 12u * entries,
                    mcgq_index_part_bytes(entries) - 12u * entries);
}

__global__ void layer_kernel(const __grid_constant__ mcgq_decode_args a,
                             const mcgq_decode_layer *layers, const uint32_t *layer_count,
                             uint32_t *status) {
  if (*status) return;
  const uint64_t lc = *layer_count, pairs = lc * (uint64_t)a.nranks;
  for (uint64_t p = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; p < pairs;
       p += (uint64_t)gridDim.x * blockDim.x) {
    int r = (int)(p / lc);
    const mcgq_decode_layer *L = layers + (uint64_t)r * a.max_layers + (p % lc);
    if (!check_layer(a.msg[r] + L->e.byte_offset, L)) fail(status, mcgqCorruptStream);
  }
}

__global__ void divide_kernel(float *out, uint64_t n, float P) {
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x)
    out[k] = __fdiv_rn(out[k], P);
}

/* ---------------------------------------------------------------- layout */

size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

/* Layers a message of in_capacity bytes with n elements can hold. */
uint64_t max_layers(uint64_t n, size_t in_capacity) {
  uint64_t by_bytes = in_capacity > MCGQ_HEADER_BYTES
                          ? (in_capacity - MCGQ_HEADER_BYTES) / MCGQ_DIR_BYTES : 0;
  uint64_t most = n < by_bytes ? n : by_bytes;
  return most ? most : 1;
}

struct decode_layout {
  mcgq_decode_layer *layers;
  uint64_t *prefix;
  uint32_t *layer_count;
  size_t total;
};

void carve(int nranks, uint64_t max_l, uint8_t *base, decode_layout *L) {
  size_t at = 0;
  auto take = [&](size_t bytes) {
    uint8_t *p = base ? base + at : nullptr;
    at += align_up(bytes);
    return (void *)p;
  };
  L->layers = (mcgq_decode_layer *)take((size_t)nranks * max_l * sizeof(mcgq_decode_layer));
  L->prefix = (uint64_t *)take((max_l + 1) * sizeof(uint64_t));
  L->layer_count = (uint32_t *)take(sizeof(uint32_t));
  L->total = at;
}

unsigned grid_for(uint64_t items, unsigned threads) {
  uint64_t blocks = (items + threads - 1) / threads;
  if (blocks == 0) blocks = 1;
  return blocks > MCGQ_TUNE_MAX_GRID ? MCGQ_TUNE_MAX_GRID : (unsigned)blocks;
}

}  // namespace mcgq_stage_decode

using namespace mcgq_stage_decode;

extern "C" int mcgq_gpu_decode_temp_bytes(int nranks, uint64_t n, size_t in_capacity,
                                          size_t *bytes) {
  decode_layout lay;
  carve(nranks, max_layers(n, in_capacity), nullptr, &lay);
  *bytes = lay.total;
  return 0;
}

extern "C" int mcgq_gpu_decode_average(const void *const *d_in, const size_t *in_bytes,
                                       int nranks, float *d_out, uint64_t n,
                                       size_t in_capacity, uint32_t *d_status,
                                       void *d_temp, size_t temp_bytes,
                                       mcgqStream_t stream) {
  cudaStream_t s = (cudaStream_t)stream;
  mcgq_decode_args a;
  memset(&a, 0, sizeof a);
  for (int r = 0; r < nranks; ++r) {
    a.msg[r] = (const uint8_t *)d_in[r];
    a.bytes[r] = in_bytes[r];
  }
  a.nranks = nranks;
  uint64_t max_l = max_layers(n, in_capacity);
  a.max_layers = (uint32_t)(max_l > 0xffffffffu ? 0xffffffffu : max_l);
  a.n = n;
  decode_layout lay;
  carve(nranks, max_l, (uint8_t *)d_temp, &lay);
  if (lay.total > temp_bytes) return (int)cudaErrorInvalidValue;
  cudaError_t e = cudaMemsetAsync(lay.layers, 0,
                                  (size_t)nranks * max_l * sizeof(mcgq_decode_layer), s);
  if (e != cudaSuccess) return (int)e;
  header_kernel<<<1, MCGQ_TUNE_MAX_DECODE_RANKS, 0, s>>>(a, lay.layers, lay.prefix,
                                                          lay.layer_count, d_status);
  /* chunks <= n / 2^13 + layers, and layers <= max_l */
  uint64_t chunk_bound = n / kChunk + max_l;
  unsigned t = MCGQ_TUNE_DECODE_THREADS;
  chunk_kernel<<<grid_for(chunk_bound, t), t, 0, s>>>(a, lay.layers, lay.prefix,
                                                      lay.layer_count, d_out, d_status);
  layer_kernel<<<grid_for(max_l * (uint64_t)nranks, t), t, 0, s>>>(a, lay.layers,
                                                                   lay.layer_count, d_status);
  divide_kernel<<<grid_for(n, MCGQ_TUNE_ELEMENT_THREADS), MCGQ_TUNE_ELEMENT_THREADS, 0, s>>>(
      d_out, n, (float)nranks);
  return (int)cudaGetLastError();
}
