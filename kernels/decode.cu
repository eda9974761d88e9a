/* decode.cu - decode-and-average of P messages on the GPU (DESIGN.md 2,
 * averaging; FORMAT.md 3), in five launches on the caller's stream whatever
 * the number of layers:
 *   header    a block per message: warp 0 checks the header and the
 *             directory in place (32 entries per step) with format/reader.h's
 *             rules, as host/stream/decode.c does except the CRCs; rank 0 writes
 *             every 32nd layer's start; the block zeroes its totals slots;
 *   crc       blocks over the layers whose entries passed: the block-parallel
 *             CRC32C of device/crc32c.cuh, compared with the entry;
 *   plan      one block: the first failing rank in rank order (a CRC failure
 *             counts where the host decoder meets it: before any later
 *             entry's failure), then FORMAT.md 4's range rule, one thread
 *             per layer;
 *   chunks    a warp per 2^13-element chunk decodes that chunk of every rank
 *             in rank order: out[k] = fmaf(scale_r, (float)v_r, acc) with acc
 *             starting at 0, the last rank's result divided by P, so g_int is
 *             never materialized.  Lane l owns the elements lo + l + 32 j of
 *             its chunk for every rank, so acc passes between ranks in one
 *             thread.  Fixed width: a value per lane; RLE: the warp parses
 *             up to 32 tokens in lockstep (one token per step, reading
 *             32-bit words), lane t keeps token t, then the lanes expand the
 *             tokens over their elements.  Every canonical-stream rule local
 *             to a chunk is checked, the chunk's end against the next index
 *             entry; a one-chunk layer's totals are checked at once, longer
 *             layers' are gathered with integer atomics;
 *   layers    a thread per gathered layer checks the totals against the
 *             directory (B_g, B_RLE, samples, RLE/fixed choice) and padding.
 * A failure stores an mcgqResult_t in *d_status (header failures by rank
 * order; payload failures are all mcgqCorruptStream), and out is then
 * unspecified, as for mcgqDecodeAverageHost. */
#include <stdint.h>

#include "decode_state.h"
#include "device/crc32c.cuh"
#include "device/warp.cuh"
#include "dtype.h"
#include "format.h"
#include "range.h"
#include "reader.h"
#include "launch.h"
#include "tuning.h"

namespace mcgq_stage_decode {

using mcgq_dev::kFullWarp;

const uint64_t kChunk = (uint64_t)1 << MCGQ_CHUNK_LOG2;

__device__ void fail(uint32_t *status, uint32_t code) { atomicCAS(status, 0u, code); }

__device__ __forceinline__ uint64_t entry_n(const uint8_t *msg, uint64_t i) {
  return mcgq_load_le64(msg + MCGQ_HEADER_BYTES + i * MCGQ_DIR_BYTES + MCGQ_DIR_N);
}

/* ------------------------------------------------------------ header pass */

__device__ uint64_t warp_exclusive_sum_u64(uint64_t v, unsigned lane) {
  uint64_t sum = v;
  for (unsigned d = 1; d < 32; d <<= 1) {
    const uint64_t o = __shfl_up_sync(kFullWarp, sum, d);
    if (lane >= d) sum += o;
  }
  return sum - v;
}

__device__ unsigned long long warp_sum_u64(unsigned long long v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(kFullWarp, v, d);
  return v;
}

/* Header and directory of message r with format/reader.h's rules, CRCs
 * aside, by one warp, 32 entries per step: each lane checks its entry on
 * its own, a warp scan of the region sizes gives every lane the offset its
 * region must start at, and the lowest failing lane is the first failure
 * (lanes past it may have used garbage offsets; their answers are unused).
 * Lane 0 writes *rc: status 0 or an mcgqResult_t, and the entries that
 * passed.  Rank 0 writes its layer groups and chunk count. */
__device__ void check_message(const mcgq_decode_args &a, int r, unsigned lane,
                              mcgq_layer_group *groups, mcgq_decode_plan *plan,
                              mcgq_rank_check *out) {
  mcgq_rank_check rc = {0, 0, 0, 0, 0xffffffffu, 0};
  const uint8_t *m = a.msg[r];
  mcgq_header_fields h;
  /* The size is known only on the device: total_bytes must fit the
   * caller's bound (the host decoder: equal the message size). */
  mcgq_rule rule = mcgq_read_header(m, a.bytes[r], 0, &h);
  if (rule == MCGQ_RULE_OK) rc.crc = (h.flags & MCGQ_HDR_FLAG_CRC32C) != 0;
  if (rule != MCGQ_RULE_OK) {
    rc.status = mcgq_rule_status(rule);
  } else if (h.layer_count > a.max_layers) { /* cannot sum to the caller's n */
    rc.status = h.total_n != a.n ? mcgqInvalidArgument : mcgqCorruptStream;
  } else {
    /* Rank 0's table, to compare the layer sizes with (in bounds once its
     * header reads: its directory fits its message). */
    mcgq_header_fields h0;
    const bool compare =
        r > 0 && mcgq_read_header(a.msg[0], a.bytes[0], 0, &h0) == MCGQ_RULE_OK;
    if (compare && h0.layer_count != h.layer_count) rc.n_differs = 1;
    uint64_t offset = mcgq_regions_start(h.layer_count), sum_n = 0, chunks = 0;
    for (uint32_t base = 0; base < h.layer_count && !rc.status; base += 32) {
      const uint32_t i = base + lane;
      const bool valid = i < h.layer_count;
      mcgq_entry_fields e;
      memset(&e, 0, sizeof e);
      mcgq_rule mine = MCGQ_RULE_OK;
      if (valid) {
        mcgq_load_entry(m, i, &e);
        mine = mcgq_check_entry(&e);
      }
      const uint64_t region = valid && mine == MCGQ_RULE_OK ? e.region_bytes : 0;
      const uint64_t start = offset + warp_exclusive_sum_u64(region, lane);
      if (valid && mine == MCGQ_RULE_OK) mine = mcgq_check_entry_region(&h, start, &e);
      const unsigned failed = __ballot_sync(kFullWarp, valid && mine != MCGQ_RULE_OK);
      if (failed) {
        const unsigned first = mcgq_dev::lowest_set_lane(failed);
        rc.status = mcgq_rule_status((mcgq_rule)__shfl_sync(kFullWarp, (int)mine, first));
        rc.checked = base + first;
        break;
      }
      if (__ballot_sync(kFullWarp, compare && valid && entry_n(a.msg[0], i) != e.n))
        rc.n_differs = 1;
      if (r == 0 && lane == 0) groups[base / 32u] = mcgq_layer_group{sum_n, chunks};
      sum_n += warp_sum_u64(e.n);
      chunks += warp_sum_u64(valid ? mcgq_chunk_count(e.n) : 0);
      offset += warp_sum_u64(region);
      rc.checked = base + 32 < h.layer_count ? base + 32 : h.layer_count;
    }
    if (!rc.status) {
      rule = mcgq_check_directory_end(&h, offset, sum_n);
      if (rule != MCGQ_RULE_OK) rc.status = mcgq_rule_status(rule);
      else if (h.total_n != a.n) rc.status = mcgqInvalidArgument;
      else rc.layer_count = h.layer_count;
    }
    if (!rc.status && r == 0 && lane == 0) plan->chunks = chunks;
  }
  if (lane == 0) *out = rc;
}

__global__ void header_kernel(const __grid_constant__ mcgq_decode_args a,
                              mcgq_rank_check *ranks, mcgq_layer_group *groups,
                              mcgq_decode_plan *plan, mcgq_totals_slot *slots) {
  const int r = blockIdx.x;
  mcgq_totals_slot *mine = slots + (uint64_t)r * a.slots_per_rank;
  for (uint64_t s = threadIdx.x; s < a.slots_per_rank; s += blockDim.x)
    mine[s] = mcgq_totals_slot{};
  if (threadIdx.x < 32) check_message(a, r, threadIdx.x, groups, plan, &ranks[r]);
}

/* --------------------------------------------------------------- crc pass */

__global__ void crc_kernel(const __grid_constant__ mcgq_decode_args a,
                           mcgq_rank_check *ranks) {
  __shared__ uint32_t table[256], scratch[32];
  bool work = false; /* the same answer in every thread: the block leaves whole */
  for (int r = 0; r < a.nranks; ++r) work |= ranks[r].crc && blockIdx.x < ranks[r].checked;
  if (!work) return;
  mcgq_dev::block_crc32c_table(table);
  for (int r = 0; r < a.nranks; ++r) {
    if (!ranks[r].crc) continue;
    const uint32_t checked = ranks[r].checked;
    for (uint32_t i = blockIdx.x; i < checked; i += gridDim.x) {
      mcgq_entry_fields e;
      mcgq_load_entry(a.msg[r], i, &e);
      uint32_t crc = mcgq_dev::block_crc32c(table, a.msg[r] + e.byte_offset,
                                            e.region_bytes, scratch);
      if (threadIdx.x == 0 && crc != e.crc) atomicMin(&ranks[r].crc_fail, i);
    }
  }
}

/* -------------------------------------------------------------- plan pass */

__global__ void plan_kernel(const __grid_constant__ mcgq_decode_args a,
                            const mcgq_rank_check *ranks, mcgq_decode_plan *plan,
                            uint32_t *status) {
  __shared__ uint32_t first_failure, out_of_range;
  if (threadIdx.x == 0) {
    uint32_t s = 0;
    for (int r = 0; r < a.nranks && !s; ++r) {
      const mcgq_rank_check &rc = ranks[r];
      /* the host decoder checks entry i's CRC right after its rules */
      s = rc.crc_fail < rc.checked ? (uint32_t)mcgqCorruptStream : rc.status;
      if (!s && r > 0 && rc.n_differs) s = mcgqCorruptStream;
    }
    first_failure = s;
    out_of_range = 0;
  }
  __syncthreads();
  const uint32_t count = ranks[0].layer_count;
  if (!first_failure) {
    for (uint32_t i = threadIdx.x; i < count; i += blockDim.x) {
      double bound = 0.0; /* rank order, as every party sums it */
      for (int r = 0; r < a.nranks; ++r) {
        mcgq_entry_fields e;
        mcgq_load_entry(a.msg[r], i, &e);
        bound += mcgq_range_bound(e.scale, e.bits_value);
      }
      if (!mcgq_range_ok(bound, (uint32_t)a.nranks)) out_of_range = 1;
    }
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  const uint32_t s = first_failure ? first_failure : out_of_range ? (uint32_t)mcgqRangeError : 0u;
  *status = s;
  plan->layer_count = s ? 0 : count;
}

/* ------------------------------------------------------------- chunk pass */

/* The stream part of a region as 32-bit words in stream order (first byte
 * most significant); words past the stream part read as 0, so no read
 * leaves the region whatever a corrupt stream claims.  A message that is
 * not 4-byte aligned is read byte by byte. */
struct stream_words {
  const uint8_t *region;
  uint64_t words;
  bool aligned;
  __device__ uint32_t word(uint64_t w) const {
    if (w >= words) return 0;
    if (aligned) return __byte_perm(((const uint32_t *)region)[w], 0u, 0x0123);
    const uint8_t *p = region + 4u * w;
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
  }
  /* `width` (0..32) bits at stream bit pos. */
  __device__ uint32_t get(uint64_t pos, uint32_t width) const {
    if (width == 0) return 0;
    const uint64_t w = pos >> 5;
    const uint32_t shift = (uint32_t)(pos & 31u);
    uint64_t two = (uint64_t)word(w) << 32;
    if (shift + width > 32) two |= word(w + 1);
    return (uint32_t)((two << shift) >> (64u - width));
  }
};

__device__ stream_words stream_of(const uint8_t *region, const mcgq_entry_fields &e) {
  return stream_words{region, mcgq_stream_part_bytes(e.bit_length) / 4u,
                      ((uintptr_t)region & 3u) == 0};
}

/* A sequential reader over stream_words: 33 to 64 bits buffered, MSB first. */
struct bit_cursor {
  stream_words S;
  uint64_t pos, buf, next;
  uint32_t avail;
  __device__ void start(uint64_t at) {
    pos = at;
    next = at >> 5;
    buf = 0;
    avail = 0;
    fill();
    const uint32_t skip = (uint32_t)(at & 31u);
    buf <<= skip;
    avail -= skip;
  }
  __device__ void fill() {
    while (avail <= 32) {
      buf |= (uint64_t)S.word(next++) << (32u - avail);
      avail += 32;
    }
  }
  __device__ uint32_t peek(uint32_t width) {
    if (avail < width) fill();
    return width ? (uint32_t)(buf >> (64u - width)) : 0u;
  }
  __device__ void skip(uint32_t width) {
    if (avail < width) fill();
    buf = width ? buf << width : buf;
    avail -= width;
    pos += width;
  }
};

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

/* One chunk of one rank: where its values go and how they combine. */
struct chunk_job {
  float *out;       /* out + the layer's first element */
  float scale, P;
  int first, last;  /* rank 0 starts acc at 0; the last rank divides by P */
  uint64_t lo, hi;  /* the chunk's elements [lo, hi) of the layer */
  unsigned lane;
};

/* Adds value v of this rank to element k (owned by this lane). */
__device__ __forceinline__ void accumulate(const chunk_job &J, uint64_t k, int32_t v) {
  float acc = J.first ? 0.0f : J.out[k];
  acc = __fmaf_rn(J.scale, (float)v, acc);
  J.out[k] = J.last ? __fdiv_rn(acc, J.P) : acc;
}

/* Zeros for [from, to) of the chunk, each by its owning lane. */
__device__ void accumulate_zeros(const chunk_job &J, uint64_t from, uint64_t to) {
  for (uint64_t k = J.lo + J.lane; k < to; k += 32)
    if (k >= from) accumulate(J, k, 0);
}

/* Per-lane totals, reduced over the warp by reduce_totals. */
struct chunk_totals {
  uint32_t max_mag = 0, longest = 0;
  unsigned long long abs_sum = 0, nonzeros = 0, runs = 0;
};

/* Fixed width: a value per lane.  The paper size of the values needs the
 * zero runs, which the warp follows on the ballot of zero values; a run is
 * counted by the chunk holding its first element (one that starts here and
 * passes hi is followed past hi). */
__device__ bool fixed_chunk(const stream_words &S, const mcgq_entry_fields &e,
                            const chunk_job &J, chunk_totals *t) {
  const uint32_t bg = e.bits_value;
  const uint32_t min_token = 1u << (bg - 1);
  const uint64_t n = e.n_coded;
  /* the run holding element lo - 1, if any, is not this chunk's */
  bool open = J.lo > 0 && S.get((J.lo - 1) * bg, bg) == 0, owned = false;
  uint64_t run_start = 0;
  uint32_t nonzeros = 0;
  for (uint64_t b = J.lo; b < J.hi; b += 32) {
    const uint64_t k = b + J.lane;
    const bool valid = k < J.hi;
    const uint32_t raw = valid ? S.get(k * bg, bg) : 1u;
    if (__ballot_sync(kFullWarp, valid && raw == min_token)) return false;
    uint32_t mag = 0;
    const int32_t v = raw && valid ? token_value(raw, bg, &mag) : 0;
    if (valid) accumulate(J, k, v);
    if (v) {
      t->max_mag = mag > t->max_mag ? mag : t->max_mag;
      t->abs_sum += mag;
      nonzeros += 1;
    }
    /* walk the runs of this group of 32 on the ballot (warp-uniform) */
    unsigned zeros = __ballot_sync(kFullWarp, valid && raw == 0);
    unsigned stops = ~zeros; /* nonzero values and the lanes past hi */
    unsigned from = 0;       /* lanes below are done */
    while (from < 32) {
      const unsigned above = from ? ~((1u << from) - 1u) : ~0u;
      if (open) {
        const unsigned s = stops & above;
        if (!s) break;
        const unsigned at = mcgq_dev::lowest_set_lane(s);
        if (b + at >= J.hi) break; /* past the chunk: still open */
        if (owned) {
          const uint64_t len = b + at - run_start;
          t->runs += 1;
          if (len > t->longest) t->longest = (uint32_t)len;
        }
        open = false;
        from = at + 1;
      } else {
        const unsigned z = zeros & above;
        if (!z) break;
        const unsigned at = mcgq_dev::lowest_set_lane(z);
        open = owned = true;
        run_start = b + at;
        from = at + 1;
      }
    }
  }
  if (open && owned) { /* follow the run past hi to its end */
    uint64_t end = n;
    for (uint64_t b = J.hi; b < n; b += 32) {
      const uint64_t k = b + J.lane;
      const unsigned stops = __ballot_sync(kFullWarp, k >= n || S.get(k * bg, bg) != 0);
      if (stops) {
        end = b + mcgq_dev::lowest_set_lane(stops);
        break;
      }
    }
    const uint64_t len = (end < n ? end : n) - run_start;
    t->runs += 1;
    if (len > t->longest) t->longest = (uint32_t)len;
  }
  t->nonzeros += nonzeros;
  return true;
}

/* The chunk index entry j (element (j+1) * 2^13). */
__device__ void index_entry(const uint8_t *region, const mcgq_entry_fields &e, uint64_t j,
                            uint64_t *bit, uint32_t *run) {
  uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, e.n_coded);
  const uint8_t *index = region + mcgq_stream_part_bytes(e.bit_length);
  *bit = mcgq_load_le64(index + 8u * j);
  *run = mcgq_load_le32(index + 8u * entries + 4u * j);
}

/* Up to 32 tokens parsed in lockstep: lane t holds token t's end (element
 * after it, ~0 when unused) and value; expand() gives every lane the values
 * of the elements it owns, in rounds of 32 so all lanes shuffle together. */
struct token_batch {
  uint64_t lo = 0, my_end = ~0ull;
  int32_t my_value = 0;
  unsigned count = 0;
  __device__ void add(const chunk_job &J, uint64_t end, int32_t value) {
    if (J.lane == count) {
      my_end = end;
      my_value = value;
    }
    ++count;
  }
  __device__ void expand(const chunk_job &J) {
    if (!count) return;
    const uint64_t hi = __shfl_sync(kFullWarp, my_end, count - 1);
    for (uint64_t b = lo - ((lo - J.lo) & 31u); b < hi; b += 32) {
      const uint64_t k = b + J.lane;
      unsigned t = 0; /* first token whose end passes k */
      for (unsigned step = 16; step; step >>= 1)
        if (__shfl_sync(kFullWarp, my_end, t + step - 1) <= k) t += step;
      const int32_t v = __shfl_sync(kFullWarp, my_value, t);
      if (k >= lo && k < hi) accumulate(J, k, v);
    }
    lo = hi;
    my_end = ~0ull;
    count = 0;
  }
};

/* RLE: the warp walks the tokens together (every lane the same steps, on
 * the same words), so control flow is uniform; the values go out in batches
 * of 32 tokens. */
__device__ bool rle_chunk(const uint8_t *region, const stream_words &S,
                          const mcgq_entry_fields &e, uint64_t c, const chunk_job &J,
                          chunk_totals *t) {
  const uint32_t bg = e.bits_value, br = e.bits_run;
  const uint64_t bits = e.bit_length, n = e.n_coded, lo = J.lo, hi = J.hi;
  const uint32_t min_token = 1u << (bg - 1);
  bit_cursor R;
  R.S = S;
  uint64_t k = lo;
  bool prev_run = false;
  uint64_t run_pos = 0, run_head = 0; /* the run token holding element k - 1 */
  token_batch batch;
  batch.lo = lo;
  if (c == 0) {
    if (S.get(0, 32) != bg || S.get(32, 32) != br) return false;
    R.start(MCGQ_RLE_HEADER_BITS);
  } else {
    uint64_t pos = 0;
    uint32_t ro = 0;
    index_entry(region, e, c - 1, &pos, &ro);
    if (pos < MCGQ_RLE_HEADER_BITS || pos >= bits) return false;
    R.start(pos);
    if (ro) { /* the chunk starts inside a run that began in an earlier chunk */
      if (pos + bg + br > bits || R.peek(bg) != 0) return false;
      R.skip(bg);
      const uint32_t len = R.peek(br);
      R.skip(br);
      if (len == 0 || ro >= len) return false;
      run_pos = pos;
      run_head = lo - ro;
      k = run_head + len < hi ? run_head + len : hi;
      batch.add(J, k, 0);
      prev_run = true;
    }
  }
  while (k < hi) {
    if (batch.count == 32) batch.expand(J);
    if (R.pos + bg > bits) return false; /* missing tokens */
    const uint64_t at = R.pos;
    const uint32_t raw = R.peek(bg);
    R.skip(bg);
    if (raw) {
      if (raw == min_token) return false;
      uint32_t mag = 0;
      const int32_t v = token_value(raw, bg, &mag);
      t->max_mag = mag > t->max_mag ? mag : t->max_mag;
      t->abs_sum += mag;
      t->nonzeros += 1;
      batch.add(J, ++k, v);
      prev_run = false;
      continue;
    }
    if (prev_run || at + bg + br > bits) return false; /* two runs; cut run */
    const uint32_t len = R.peek(br);
    R.skip(br);
    if (len == 0 || len > n - k) return false;
    t->runs += 1;
    if (len > t->longest) t->longest = len;
    run_pos = at;
    run_head = k;
    k = k + len < hi ? k + len : hi;
    batch.add(J, k, 0);
    prev_run = true;
  }
  batch.expand(J);
  if (hi == n) return R.pos == bits; /* the last token ends the stream */
  /* The next chunk's entry must point where this chunk stopped. */
  uint64_t want_bit = 0;
  uint32_t want_run = 0;
  index_entry(region, e, c, &want_bit, &want_run);
  if (prev_run) {
    const uint32_t len = S.get(run_pos + bg, br);
    /* a run that reaches past hi holds element hi */
    if (run_head + len > hi) return want_bit == run_pos && want_run == hi - run_head;
    /* the run ended at hi: the next token must not be another run */
    if (R.pos + bg <= bits && S.get(R.pos, bg) == 0) return false;
  }
  return want_bit == R.pos && want_run == 0;
}

/* ------------------------------------------------------------- layer rules */

__device__ bool zero_bytes(const uint8_t *p, uint64_t bytes) {
  for (uint64_t b = 0; b < bytes; ++b)
    if (p[b]) return false;
  return true;
}

/* The totals against the entry, and the zero padding of the region. */
__device__ bool check_layer(const uint8_t *region, const mcgq_entry_fields &e,
                            const mcgq_layer_totals &t) {
  if (mcgq_check_layer_totals(&e, &t) != MCGQ_RULE_OK) return false;
  /* padding bits of the last byte, the 8-byte padding, the index padding */
  const uint64_t stream_bytes = mcgq_bits_to_bytes(e.bit_length);
  const uint32_t pad = (uint32_t)((8u - (e.bit_length & 7u)) & 7u);
  if (pad && (region[stream_bytes - 1] & ((1u << pad) - 1u)) != 0) return false;
  const uint64_t part = mcgq_align8(stream_bytes);
  if (!zero_bytes(region + stream_bytes, part - stream_bytes)) return false;
  const uint64_t entries = mcgq_index_entries(e.encoding, e.n_coded);
  return zero_bytes(region + part + 12u * entries,
                    mcgq_index_part_bytes(entries) - 12u * entries);
}

/* ---------------------------------------------------------- chunk kernel */

/* Layer and chunk of the decode's chunk g: the group of 32 layers by binary
 * search, then a warp scan over their directory entries (rank 0's). */
struct chunk_place {
  uint32_t layer;
  uint64_t at, chunk;
};

__device__ chunk_place find_chunk(const uint8_t *msg0, const mcgq_layer_group *groups,
                                  uint32_t count, uint64_t g, unsigned lane) {
  uint32_t lo = 0, hi = (count - 1) / 32u; /* last group with first_chunk <= g */
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (groups[mid].first_chunk <= g) lo = mid; else hi = mid - 1;
  }
  const uint32_t i = lo * 32u + lane;
  const uint64_t n = i < count ? entry_n(msg0, i) : 0;
  uint64_t chunks = mcgq_chunk_count(n), sum_chunks = chunks, sum_n = n;
  for (unsigned d = 1; d < 32; d <<= 1) {
    const uint64_t c = __shfl_up_sync(kFullWarp, sum_chunks, d);
    const uint64_t m = __shfl_up_sync(kFullWarp, sum_n, d);
    if (lane >= d) {
      sum_chunks += c;
      sum_n += m;
    }
  }
  const uint64_t end = groups[lo].first_chunk + sum_chunks;
  const unsigned j = mcgq_dev::lowest_set_lane(__ballot_sync(kFullWarp, i < count && end > g));
  chunk_place p;
  p.layer = lo * 32u + j;
  p.at = groups[lo].at + __shfl_sync(kFullWarp, sum_n - n, j);
  p.chunk = g - (__shfl_sync(kFullWarp, end - chunks, j));
  return p;
}

__global__ void chunk_kernel(const __grid_constant__ mcgq_decode_args a,
                             const mcgq_layer_group *groups, const mcgq_decode_plan *plan,
                             mcgq_totals_slot *slots, float *out, uint32_t *status) {
  if (*status) return;
  const uint32_t count = plan->layer_count;
  const uint64_t chunks = plan->chunks;
  const unsigned lane = threadIdx.x & 31u;
  const uint64_t warps = (uint64_t)gridDim.x * (blockDim.x / 32u);
  for (uint64_t g = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32u; g < chunks;
       g += warps) {
    const chunk_place p = find_chunk(a.msg[0], groups, count, g, lane);
    for (int r = 0; r < a.nranks; ++r) {
      mcgq_entry_fields e;
      mcgq_load_entry(a.msg[r], p.layer, &e);
      const uint8_t *region = a.msg[r] + e.byte_offset;
      chunk_job J;
      J.out = out + p.at;
      J.scale = e.scale;
      J.P = (float)a.nranks;
      J.first = r == 0;
      J.last = r == a.nranks - 1;
      J.lane = lane;
      J.lo = p.chunk * kChunk;
      const uint64_t hi = J.lo + kChunk < e.n ? J.lo + kChunk : e.n;
      J.hi = hi < e.n_coded ? hi : e.n_coded;
      const stream_words S = stream_of(region, e);
      chunk_totals t;
      bool ok = true;
      if (J.lo < J.hi)
        ok = e.encoding == MCGQ_ENCODING_FIXED ? fixed_chunk(S, e, J, &t)
                                                : rle_chunk(region, S, e, p.chunk, J, &t);
      if (!ok) {
        if (lane == 0) fail(status, mcgqCorruptStream);
        return;
      }
      accumulate_zeros(J, J.lo > J.hi ? J.lo : J.hi, hi); /* CUT tail */
      /* RLE totals are warp-uniform (the lanes parse together); fixed-width
       * ones are per lane */
      const bool fixed = e.encoding == MCGQ_ENCODING_FIXED;
      mcgq_layer_totals sum;
      sum.max_magnitude = mcgq_dev::warp_max_u32(t.max_mag);
      sum.longest_run = t.longest;
      sum.abs_sum = fixed ? warp_sum_u64(t.abs_sum) : t.abs_sum;
      sum.nonzeros = fixed ? warp_sum_u64(t.nonzeros) : t.nonzeros;
      sum.runs = t.runs;
      bool bad = false;
      if (lane == 0) {
        if (mcgq_chunk_count(e.n) == 1) { /* the whole layer: check it now */
          bad = !check_layer(region, e, sum);
        } else {
          mcgq_totals_slot *slot = slots + (uint64_t)r * a.slots_per_rank + p.at / kChunk;
          if (p.chunk == 0) slot->layer_plus1 = p.layer + 1;
          if (sum.max_magnitude) atomicMax(&slot->max_mag, sum.max_magnitude);
          if (sum.longest_run) atomicMax(&slot->longest, sum.longest_run);
          if (sum.abs_sum) atomicAdd(&slot->abs_sum, (unsigned long long)sum.abs_sum);
          if (sum.nonzeros) atomicAdd(&slot->nonzeros, (unsigned long long)sum.nonzeros);
          if (sum.runs) atomicAdd(&slot->runs, (unsigned long long)sum.runs);
        }
      }
      if (__shfl_sync(kFullWarp, (int)bad, 0)) { /* the whole warp leaves */
        if (lane == 0) fail(status, mcgqCorruptStream);
        return;
      }
    }
  }
}

/* ------------------------------------------------------------- layer pass */

__global__ void layer_kernel(const __grid_constant__ mcgq_decode_args a,
                             const mcgq_totals_slot *slots, uint32_t *status) {
  if (*status) return;
  const uint64_t total = a.slots_per_rank * (uint64_t)a.nranks;
  for (uint64_t s = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; s < total;
       s += (uint64_t)gridDim.x * blockDim.x) {
    const mcgq_totals_slot &slot = slots[s];
    if (!slot.layer_plus1) continue;
    const int r = (int)(s / a.slots_per_rank);
    mcgq_entry_fields e;
    mcgq_load_entry(a.msg[r], slot.layer_plus1 - 1u, &e);
    mcgq_layer_totals t;
    t.max_magnitude = slot.max_mag;
    t.longest_run = slot.longest;
    t.abs_sum = slot.abs_sum;
    t.nonzeros = slot.nonzeros;
    t.runs = slot.runs;
    if (!check_layer(a.msg[r] + e.byte_offset, e, t)) fail(status, mcgqCorruptStream);
  }
}

/* ---------------------------------------------------------------- layout */

size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

/* Layers a message of in_capacity bytes with n elements can hold. */
uint64_t max_layers(uint64_t n, size_t in_capacity) {
  uint64_t by_bytes = in_capacity > MCGQ_HEADER_BYTES
                          ? (in_capacity - MCGQ_HEADER_BYTES) / MCGQ_DIR_BYTES : 0;
  uint64_t most = n < by_bytes ? n : by_bytes;
  if (most > MCGQ_MAX_LAYERS) most = MCGQ_MAX_LAYERS;
  return most ? most : 1;
}

struct decode_layout {
  mcgq_rank_check *ranks;
  mcgq_decode_plan *plan;
  mcgq_layer_group *groups;
  mcgq_totals_slot *slots;
  float *results;  /* n float32 results of a 16-bit output, else NULL */
  size_t total;
};

/* The scratch: 24 bytes per rank, 16 per 32 layers the capacity allows,
 * 40 per rank per 2^13 elements; nothing scales with capacity x ranks. */
void carve(int nranks, uint64_t n, uint64_t max_l, int32_t out_dtype, uint8_t *base,
           decode_layout *L) {
  size_t at = 0;
  auto take = [&](size_t bytes) {
    uint8_t *p = base ? base + at : nullptr;
    at += align_up(bytes);
    return (void *)p;
  };
  L->ranks = (mcgq_rank_check *)take((size_t)nranks * sizeof(mcgq_rank_check));
  L->plan = (mcgq_decode_plan *)take(sizeof(mcgq_decode_plan));
  L->groups = (mcgq_layer_group *)take((max_l + 31) / 32 * sizeof(mcgq_layer_group));
  L->slots = (mcgq_totals_slot *)take((size_t)nranks * (n / kChunk + 1) *
                                      sizeof(mcgq_totals_slot));
  /* A 16-bit output cannot carry the rank-order float32 accumulation, so
   * the results are accumulated here and narrowed at the end. */
  L->results = out_dtype == MCGQ_DTYPE_F32 ? nullptr : (float *)take((size_t)n * sizeof(float));
  L->total = at;
}

/* A 16-bit output from the float32 results, rounded once to nearest even
 * (format/dtype.h), only when every check passed: on a failure the
 * caller's output is left as it was. */
__global__ void narrow_kernel(const float *results, uint64_t n, int32_t out_dtype,
                              uint16_t *out, const uint32_t *status) {
  if (*status) return;
  for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (uint64_t)gridDim.x * blockDim.x)
    out[k] = out_dtype == MCGQ_DTYPE_BF16 ? mcgq_f32_to_bf16(results[k])
                                          : mcgq_f32_to_f16(results[k]);
}

unsigned grid_for(uint64_t items, unsigned threads) {
  uint64_t blocks = (items + threads - 1) / threads;
  if (blocks == 0) blocks = 1;
  return blocks > MCGQ_TUNE_DECODE_MAX_BLOCKS ? MCGQ_TUNE_DECODE_MAX_BLOCKS : (unsigned)blocks;
}

}  // namespace mcgq_stage_decode

using namespace mcgq_stage_decode;

extern "C" int mcgq_gpu_decode_temp_bytes(int nranks, uint64_t n, size_t in_capacity,
                                          int32_t out_dtype, size_t *bytes) {
  decode_layout lay;
  carve(nranks, n, max_layers(n, in_capacity), out_dtype, nullptr, &lay);
  *bytes = lay.total;
  return 0;
}

extern "C" int mcgq_gpu_decode_average(const void *const *d_in, const size_t *in_bytes,
                                       int nranks, void *d_out, int32_t out_dtype, uint64_t n,
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
  const uint64_t max_l = max_layers(n, in_capacity);
  a.max_layers = (uint32_t)max_l;
  a.n = n;
  a.slots_per_rank = n / kChunk + 1;
  decode_layout lay;
  carve(nranks, n, max_l, out_dtype, (uint8_t *)d_temp, &lay);
  float *results = lay.results ? lay.results : (float *)d_out;
  if (lay.total > temp_bytes) return (int)cudaErrorInvalidValue;
  const unsigned t = MCGQ_TUNE_DECODE_THREADS;
  header_kernel<<<nranks, t, 0, s>>>(a, lay.ranks, lay.groups, lay.plan, lay.slots);
  const unsigned crc_blocks =
      max_l < MCGQ_TUNE_CRC_MAX_BLOCKS ? (unsigned)max_l : MCGQ_TUNE_CRC_MAX_BLOCKS;
  crc_kernel<<<crc_blocks, MCGQ_TUNE_CRC_THREADS, 0, s>>>(a, lay.ranks);
  plan_kernel<<<1, t, 0, s>>>(a, lay.ranks, lay.plan, d_status);
  /* a warp per chunk: chunks <= n / 2^13 + layers */
  chunk_kernel<<<grid_for((n / kChunk + max_l) * 32u, t), t, 0, s>>>(
      a, lay.groups, lay.plan, lay.slots, results, d_status);
  layer_kernel<<<grid_for(a.slots_per_rank * (uint64_t)nranks, t), t, 0, s>>>(
      a, lay.slots, d_status);
  if (lay.results)
    narrow_kernel<<<grid_for(n, MCGQ_TUNE_DECODE_THREADS), MCGQ_TUNE_DECODE_THREADS, 0, s>>>(
        lay.results, n, out_dtype, (uint16_t *)d_out, d_status);
  return (int)cudaGetLastError();
}
