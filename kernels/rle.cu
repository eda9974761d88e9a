/* rle.cu - the warp-level encoder of the paper's bitstream (FORMAT.md 1)
 * and of fixed-width layers, over every layer of an encode call at once:
 *   tile runs    card path: the run summary of each tile of g_int (the fused
 *                path measures its runs in its counts pass, quantize.cu);
 *   layer runs   one block per layer: an exclusive scan of the layer's tile
 *                summaries (encode_tiles.cuh's monoid), in place, and the
 *                layer's totals: max|g_int|, nonzeros, runs, longest run;
 *   write        one block per tile: per 32-element row, ballots give the
 *                nonzero mask and the run heads (zeros whose predecessor is
 *                nonzero), popcounts below the lane give each token's place
 *                among the row's tokens; warp totals meet in shared memory and
 *                the tile's prefix comes from the layer scan, so every token's
 *                bit position is
 *                  64 + B_g * (nonzeros before k) + (B_g + B_RLE) * (heads <= k)
 *                with no scan over bit lengths.  A run's head writes the
 *                run's length (the next nonzero comes from the row's mask,
 *                the warp's later rows, later warps, or the layer scan's
 *                "first nonzero after this tile").  So every token lies in
 *                its tile's span of the stream: the tile assembles its words
 *                in shared memory and stores them; only the two boundary
 *                words, shared with neighbouring tiles, are ORed into the
 *                zeroed region (tokens never overlap: order-independent).
 * A layer sent all zero (st->zero: m = 0, a failed check, or the plan's
 * range rule, decided after g_int exists) is written as one run of n zeros
 * whatever g_int holds. */
#include <stdint.h>

#include "device/bits.cuh"
#include "encode_tiles.cuh"

namespace mcgq_stage_rle {

using namespace mcgq_tile;

__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS) tile_runs_kernel(mcgq_encode_scratch S) {
  __shared__ mcgq_run_summary warp_summaries[kWarps];
  const tile_ref t = locate_tile(S, blockIdx.x);
  if (t.rec.algo != MCGQ_ALGO_SAMPLE) return; /* uniform: fused tiles are measured */
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const uint64_t warp_start = t.start + (uint64_t)warp * kWarpElements;
  const int32_t *g = S.g_int + t.slot + (uint64_t)warp * kWarpElements;
  int32_t v[kRows];
  for (unsigned r = 0; r < kRows; ++r)
    v[r] = warp_start + 32u * r + lane < t.rec.n ? g[32u * r + lane] : 0;
  const mcgq_run_summary s = block_runs(warp_runs(v, warp_start, t.rec.n), warp_summaries);
  if (threadIdx.x == 0) S.tile_runs[blockIdx.x] = s;
}

/* One block per layer: each thread folds a contiguous run of tiles, thread
 * 0 chains the threads' summaries in shared memory (exclusive prefixes, and
 * the first nonzero after each thread's run), and each thread rewrites its
 * tiles with their exclusive prefixes and records the first nonzero after
 * each tile (where a run that reaches the tile's end stops). */
__global__ void __launch_bounds__(MCGQ_TUNE_LAYER_THREADS) layer_runs_kernel(mcgq_encode_scratch S) {
  __shared__ mcgq_run_summary prefix[MCGQ_TUNE_LAYER_THREADS + 1];
  __shared__ uint32_t next_after[MCGQ_TUNE_LAYER_THREADS + 1];
  const int layer = blockIdx.x;
  const mcgq_layer_rec rec = S.recs[layer];
  const uint64_t tiles = ((uint64_t)rec.n + kTile - 1) / kTile;
  const uint64_t per = (tiles + blockDim.x - 1) / blockDim.x;
  const uint64_t lo = min((uint64_t)threadIdx.x * per, tiles), hi = min(lo + per, tiles);
  mcgq_run_summary *runs = S.tile_runs + rec.first_tile;
  uint32_t *next = S.tile_next + rec.first_tile;
  mcgq_run_summary mine = runs_empty();
  for (uint64_t i = lo; i < hi; ++i) mine = runs_combine(mine, runs[i]);
  prefix[threadIdx.x + 1] = mine;
  next_after[threadIdx.x] = mine.first;
  __syncthreads();
  if (threadIdx.x == 0) {
    prefix[0] = runs_empty();
    for (unsigned i = 1; i <= blockDim.x; ++i) prefix[i] = runs_combine(prefix[i - 1], prefix[i]);
    uint32_t after = MCGQ_RUN_NONE; /* first nonzero after thread i's tiles */
    for (unsigned i = blockDim.x; i-- > 0;) {
      const uint32_t own = next_after[i];
      next_after[i] = after;
      if (own != MCGQ_RUN_NONE) after = own;
    }
  }
  __syncthreads();
  uint32_t after = next_after[threadIdx.x];
  for (uint64_t i = hi; i-- > lo;) {
    const uint32_t own = runs[i].first;
    next[i] = after;
    if (own != MCGQ_RUN_NONE) after = own;
  }
  mcgq_run_summary running = prefix[threadIdx.x];
  for (uint64_t i = lo; i < hi; ++i) {
    const mcgq_run_summary v = runs[i];
    runs[i] = running;
    running = runs_combine(running, v);
  }
  if (threadIdx.x != 0) return;
  const mcgq_run_summary all = prefix[blockDim.x];
  mcgq_layer_state *st = &S.states[layer];
  const uint32_t n = rec.n;
  st->max_mag = all.max_mag;
  st->nonzeros = all.nonzeros;
  if (all.first == MCGQ_RUN_NONE) { /* one run of n zeros */
    st->runs = 1;
    st->longest = n;
  } else {
    const uint32_t trailing = n - 1u - all.last;
    st->runs = (uint64_t)all.gaps + (all.first > 0) + (trailing > 0);
    st->longest = max(all.longest, max(all.first, trailing));
  }
}

__device__ void write_index_entry(uint8_t *region, const mcgq_layer_state *st,
                                  uint64_t n, uint64_t k, uint64_t bit_offset,
                                  uint32_t run_offset) {
  const uint64_t entries = mcgq_index_entries(MCGQ_ENCODING_RLE, n);
  const uint64_t e = (k >> MCGQ_CHUNK_LOG2) - 1;
  uint8_t *index = region + mcgq_stream_part_bytes(st->bit_length);
  /* index is 8-aligned (regions and stream parts are multiples of 8) */
  *(uint64_t *)(index + 8u * e) = bit_offset;
  *(uint32_t *)(index + 8u * entries + 4u * e) = run_offset;
}

__device__ __forceinline__ bool chunk_start(uint64_t k) {
  return k > 0 && (k & ((1ull << MCGQ_CHUNK_LOG2) - 1)) == 0;
}

/* A layer sent all zero: B_g = 1, one run token (a 1-bit zero, then n in
 * B_RLE bits); every chunk starts inside that run. */
__device__ void write_zero_tile(const tile_ref &t, const mcgq_layer_state *st,
                                uint8_t *region) {
  if (threadIdx.x != 0 || st->encoding == MCGQ_ENCODING_FIXED) return; /* all zero bits */
  uint32_t *words = (uint32_t *)region;
  if (t.start == 0) {
    mcgq_dev::put_bits(words, 0, st->bits_value, 32);
    mcgq_dev::put_bits(words, 32, st->bits_run, 32);
    mcgq_dev::put_bits(words, MCGQ_RLE_HEADER_BITS + st->bits_value, t.rec.n,
                       st->bits_run);
  }
  if (chunk_start(t.start))
    write_index_entry(region, st, t.rec.n, t.start, MCGQ_RLE_HEADER_BITS, (uint32_t)t.start);
}

/* Heads (zero runs started) before element p of the layer, from the
 * summary of [0, p). */
__device__ __forceinline__ uint64_t heads_before(const mcgq_run_summary &P, uint64_t p) {
  if (p == 0) return 0;
  if (P.first == MCGQ_RUN_NONE) return 1; /* one run from 0 reaches p */
  return (uint64_t)P.gaps + (P.first > 0) + ((uint64_t)P.last + 1u < p);
}

/* Words of a tile's share of the stream: a token starts at each nonzero
 * (<= 32 bits) and each run head (<= 64 bits); heads are never adjacent, so
 * at most kTile * 32 + (kTile / 2) * 32 bits, plus the 64-bit stream header
 * (first tile) and a misaligned first word. */
const unsigned kSpanWords = kTile + kTile / 2u + 3u;

/* The tile's words, assembled in shared memory, go out as plain stores;
 * only the first and last word, which neighbouring tiles share, are ORed
 * into the zeroed region. */
__device__ __forceinline__ void store_span(const uint32_t *span, uint64_t first_word,
                                           uint64_t words_count, uint32_t *words) {
  for (uint64_t i = threadIdx.x; i < words_count; i += blockDim.x) {
    const uint32_t w = span[i];
    if (i == 0 || i + 1 == words_count) {
      if (w) atomicOr(&words[first_word + i], w);
    } else {
      words[first_word + i] = w;
    }
  }
}

__device__ __forceinline__ void clear_span(uint32_t *span, uint64_t words_count) {
  for (uint64_t i = threadIdx.x; i < words_count; i += blockDim.x) span[i] = 0;
  __syncthreads();
}

/* Fixed width: element k's B_g bits at k * B_g. */
__device__ void write_fixed_tile(const tile_ref &t, const int32_t *g, uint32_t bg,
                                 uint32_t *span, uint32_t *words) {
  const uint64_t first_bit = t.start * bg, end_bit = (t.start + t.count) * bg;
  const uint64_t first_word = first_bit >> 5, words_count = ((end_bit + 31) >> 5) - first_word;
  clear_span(span, words_count);
  for (unsigned i = threadIdx.x; i < t.count; i += blockDim.x)
    mcgq_dev::put_bits(span, (t.start + i) * bg - first_word * 32u, (uint32_t)g[i], bg);
  __syncthreads();
  store_span(span, first_word, words_count, words);
}

__global__ void __launch_bounds__(MCGQ_TUNE_TILE_THREADS)
write_tokens_kernel(mcgq_encode_scratch S, uint8_t *msg) {
  using namespace mcgq_dev;
  __shared__ uint32_t span[kSpanWords];
  __shared__ uint32_t warp_nonzeros[kWarps], warp_heads[kWarps], warp_first[kWarps];
  const tile_ref t = locate_tile(S, blockIdx.x);
  const mcgq_layer_state *st = &S.states[t.layer];
  uint8_t *region = msg + st->offset;
  uint32_t *words = (uint32_t *)region;
  const uint64_t n = t.rec.n;
  const uint32_t bg = st->bits_value, br = st->bits_run;
  if (st->zero) { /* uniform */
    write_zero_tile(t, st, region);
    return;
  }
  if (st->encoding == MCGQ_ENCODING_FIXED) {
    write_fixed_tile(t, S.g_int + t.slot, bg, span, words);
    return;
  }
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const uint64_t warp_start = t.start + (uint64_t)warp * kWarpElements;
  const int32_t *g = S.g_int + t.slot + (uint64_t)warp * kWarpElements;
  const mcgq_run_summary P = S.tile_runs[blockIdx.x]; /* [0, tile start) */

  /* Is the element before this warp's first one nonzero?  Before the
   * layer counts as nonzero, so that element 0, if zero, heads a run. */
  unsigned before_nonzero;
  if (warp_start == 0) before_nonzero = 1;
  else if (warp == 0) before_nonzero = P.last != MCGQ_RUN_NONE && P.last + 1ull == t.start;
  else before_nonzero = warp_start - 1 < n && g[-1] != 0;

  int32_t v[kRows];
  unsigned nonzero_mask[kRows], head_mask[kRows];
  uint32_t nonzeros = 0, heads = 0, first = MCGQ_RUN_NONE;
  for (unsigned r = 0; r < kRows; ++r) {
    const uint64_t row = warp_start + 32u * r;
    const bool valid = row + lane < n;
    v[r] = valid ? g[32u * r + lane] : 0;
    nonzero_mask[r] = __ballot_sync(kFullWarp, valid && v[r] != 0);
    const unsigned zeros = __ballot_sync(kFullWarp, valid && v[r] == 0);
    head_mask[r] = zeros & ((nonzero_mask[r] << 1) | before_nonzero);
    before_nonzero = nonzero_mask[r] >> 31;
    nonzeros += __popc(nonzero_mask[r]);
    heads += __popc(head_mask[r]);
    if (nonzero_mask[r] && first == MCGQ_RUN_NONE)
      first = (uint32_t)row + lowest_set_lane(nonzero_mask[r]);
  }
  if (lane == 0) {
    warp_nonzeros[warp] = nonzeros;
    warp_heads[warp] = heads;
    warp_first[warp] = first;
  }
  __syncthreads();
  /* Stream positions: 64 + B_g * (nonzeros before k) + (B_g + B_RLE) * (heads <= k). */
  uint64_t nz_before = P.nonzeros, heads_upto = heads_before(P, t.start);
  uint64_t tile_nonzeros = 0, tile_heads = 0;
  uint32_t run_end = S.tile_next[blockIdx.x]; /* first nonzero after this warp */
  for (unsigned w = 0; w < kWarps; ++w) {
    if (w < warp) {
      nz_before += warp_nonzeros[w];
      heads_upto += warp_heads[w];
    }
    tile_nonzeros += warp_nonzeros[w];
    tile_heads += warp_heads[w];
  }
  for (unsigned w = kWarps; w-- > warp + 1;)
    if (warp_first[w] != MCGQ_RUN_NONE) run_end = warp_first[w];
  const uint64_t tile_nz_before = P.nonzeros, tile_heads_before = heads_before(P, t.start);
  const uint64_t first_bit = t.start == 0 ? 0 : MCGQ_RLE_HEADER_BITS + bg * tile_nz_before +
                                                    (uint64_t)(bg + br) * tile_heads_before;
  const uint64_t end_bit = MCGQ_RLE_HEADER_BITS + bg * (tile_nz_before + tile_nonzeros) +
                           (uint64_t)(bg + br) * (tile_heads_before + tile_heads);
  const uint64_t first_word = first_bit >> 5, words_count = ((end_bit + 31) >> 5) - first_word;
  const uint64_t origin = first_word * 32u;
  clear_span(span, words_count);
  if (t.start == 0 && threadIdx.x == 0) {
    put_bits(span, 0, bg, 32);
    put_bits(span, 32, br, 32);
  }
  /* Where the run holding each row's elements ends: the next nonzero after
   * the row (rows later in the warp, later warps, later tiles), else n. */
  uint32_t end_after[kRows];
  {
    uint64_t after = run_end == MCGQ_RUN_NONE ? n : run_end;
    for (unsigned r = kRows; r-- > 0;) {
      end_after[r] = (uint32_t)(after - (warp_start + 32u * r)); /* relative: fits */
      if (nonzero_mask[r]) after = warp_start + 32u * r + lowest_set_lane(nonzero_mask[r]);
    }
  }
  /* Chunk starts are tile starts (encode_tiles.cuh): the run holding one
   * began after the tile prefix's last nonzero. */
  const uint64_t run_start = P.last == MCGQ_RUN_NONE ? 0u : (uint64_t)P.last + 1u;
  const unsigned below = (1u << lane) - 1u;
  for (unsigned r = 0; r < kRows; ++r) {
    const uint64_t row = warp_start + 32u * r;
    const uint64_t k = row + lane;
    const unsigned nz = nonzero_mask[r];
    const uint64_t pos = MCGQ_RLE_HEADER_BITS + (uint64_t)bg * (nz_before + __popc(nz & below)) +
                         (uint64_t)(bg + br) * (heads_upto + __popc(head_mask[r] & (below | (1u << lane))));
    if (k < n) {
      if (v[r] != 0) {
        put_bits(span, pos - origin, (uint32_t)v[r], bg);
        if (chunk_start(k)) write_index_entry(region, st, n, k, pos, 0);
      } else {
        if ((head_mask[r] >> lane) & 1u) { /* the head writes its run's length */
          const unsigned above = lane == 31u ? 0u : nz & (~0u << (lane + 1u));
          const uint64_t end = above ? row + lowest_set_lane(above) : row + end_after[r];
          put_bits(span, pos - br - origin, (uint32_t)(end - k), br);
        }
        if (chunk_start(k)) /* a tile's first element */
          write_index_entry(region, st, n, k, pos - bg - br, (uint32_t)(k - run_start));
      }
    }
    nz_before += __popc(nz);
    heads_upto += __popc(head_mask[r]);
  }
  __syncthreads();
  store_span(span, first_word, words_count, words);
}

}  // namespace mcgq_stage_rle

using namespace mcgq_stage_rle;

void mcgq_launch_tile_runs(const mcgq_encode_scratch *S, uint64_t tiles, cudaStream_t s) {
  tile_runs_kernel<<<(unsigned)tiles, MCGQ_TUNE_TILE_THREADS, 0, s>>>(*S);
}
void mcgq_launch_layer_runs(const mcgq_encode_scratch *S, cudaStream_t s) {
  layer_runs_kernel<<<(unsigned)S->count, MCGQ_TUNE_LAYER_THREADS, 0, s>>>(*S);
}
void mcgq_launch_write_tokens(const mcgq_encode_scratch *S, uint64_t tiles, uint8_t *msg,
                              cudaStream_t s) {
  write_tokens_kernel<<<(unsigned)tiles, MCGQ_TUNE_TILE_THREADS, 0, s>>>(*S, msg);
}
