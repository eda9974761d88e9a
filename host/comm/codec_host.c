/*
 * codec_host.c - the host codec of the exchange: the CPU encoder's two
 * phases (host/stream/encode.c) and the CPU decode-and-average, on host
 * memory (MPI, and the callback transport on host buffers).
 *
 * Nothing of the caller's is written before commit: prepare keeps the new
 * accumulators and K state in the encoder's private scratch, so a step that
 * fails on any rank needs no backup to undo.  The average is decoded into
 * the codec's scratch and copied into the gradients only when the whole
 * decode succeeded: a payload defect is found while decoding (without CRC
 * nothing finds it sooner), and the gradients must then be unchanged.
 * The sharded steps prepare several messages (and, two-stage, twice) before
 * one commit, so the prepared encodes are a list that commit applies whole.
 */
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "format.h"
#include "internal.h"

typedef struct {
  mcgq_codec_t base;
  void *send;
  size_t send_capacity;
  void *recv;
  size_t recv_capacity;
  float *average; /* total_n values */
  mcgq_host_encode_t **prepared; /* encodes that commit applies */
  int prepared_count, prepared_capacity;
} host_codec_t;

static host_codec_t *host(mcgq_codec_t *c) { return (host_codec_t *)c; }

static mcgqResult_t adopt_detail(const mcgq_call_t *call, mcgqResult_t res) {
  snprintf(call->detail, call->detail_size, "%s", mcgqGetLastErrorDetail());
  return res;
}

/* Grows *buf to `need` bytes; the old contents need not survive. */
static int ensure_bytes(void **buf, size_t *capacity, size_t need) {
  if (need <= *capacity) return 1;
  void *grown = malloc(need);
  if (!grown) return 0;
  free(*buf);
  *buf = grown;
  *capacity = need;
  return 1;
}

/* Room for `more` prepared encodes beyond those held. */
static mcgqResult_t ensure_prepared_slots(host_codec_t *h, int more,
                                          const mcgq_call_t *call) {
  if (h->prepared_count + more <= h->prepared_capacity) return mcgqSuccess;
  int want = h->prepared_count + more;
  void *grown = realloc(h->prepared, (size_t)want * sizeof *h->prepared);
  if (!grown) {
    snprintf(call->detail, call->detail_size, "mcgqCommStep: no host memory");
    return mcgqOutOfMemory;
  }
  h->prepared = grown;
  h->prepared_capacity = want;
  return mcgqSuccess;
}

static void release_prepared(host_codec_t *h, int apply) {
  for (int i = 0; i < h->prepared_count; ++i) {
    if (apply) mcgq_host_encode_commit(h->prepared[i]);
    mcgq_host_encode_release(h->prepared[i]);
  }
  h->prepared_count = 0;
}

static mcgqResult_t host_set_layers(mcgq_codec_t *c, const mcgqLayer_t *layers,
                                    int count, uint64_t total_n, char *detail,
                                    size_t detail_size) {
  (void)layers, (void)count;
  host_codec_t *h = host(c);
  float *average = total_n <= SIZE_MAX / sizeof(float)
                       ? malloc((size_t)(total_n > 0 ? total_n : 1) * sizeof(float))
                       : NULL;
  if (!average) {
    snprintf(detail, detail_size,
             "mcgqCommSetLayers: cannot allocate scratch for %llu elements",
             (unsigned long long)total_n);
    return mcgqOutOfMemory;
  }
  free(h->average);
  h->average = average;
  return mcgqSuccess;
}

static mcgqResult_t host_prepare(mcgq_codec_t *c, const mcgqLayerDesc_t *descs,
                                 int count, size_t capacity,
                                 const mcgq_call_t *call, const void **send,
                                 size_t *send_bytes, mcgqLayerStats_t *stats) {
  static const char fn[] = "mcgqCommStep";
  host_codec_t *h = host(c);
  size_t room = capacity;
  if (capacity == 0) {
    mcgqResult_t res = mcgqEncodeGetMaxOutputSize(descs, count, &room);
    if (res != mcgqSuccess) return adopt_detail(call, res);
  }
  if (!ensure_bytes(&h->send, &h->send_capacity, room)) {
    snprintf(call->detail, call->detail_size,
             "%s: cannot allocate a %zu-byte send buffer", fn, room);
    return mcgqOutOfMemory;
  }
  MCGQ_CHECK(ensure_prepared_slots(h, 1, call));
  size_t bytes = 0;
  mcgqResult_t res = mcgq_host_encode_prepare(fn, descs, count, h->send, room,
                                              capacity != 0, &bytes, stats,
                                              &h->prepared[h->prepared_count]);
  if (res != mcgqSuccess) return adopt_detail(call, res);
  ++h->prepared_count;
  if (capacity != 0) { /* every rank sends exactly capacity bytes */
    memset((char *)h->send + bytes, 0, capacity - bytes);
    bytes = capacity;
  }
  *send = h->send;
  *send_bytes = bytes;
  return mcgqSuccess;
}

static size_t host_recv_capacity(const mcgq_codec_t *c) {
  return ((const host_codec_t *)c)->recv_capacity;
}

static mcgqResult_t host_reserve(mcgq_codec_t *c, size_t bytes, void **recv,
                                 const mcgq_call_t *call) {
  host_codec_t *h = host(c);
  if (!ensure_bytes(&h->recv, &h->recv_capacity, bytes > 0 ? bytes : 1)) {
    snprintf(call->detail, call->detail_size,
             "mcgqCommStep: cannot allocate a %zu-byte receive buffer", bytes);
    return mcgqOutOfMemory;
  }
  *recv = h->recv;
  return mcgqSuccess;
}

/* A fixed-capacity slot holds a message and zero padding: the decoder
 * wants the message's own size, which its header states.  A header that
 * claims more than the slot (or is too short to say) keeps the slot's
 * size, and the decoder reports the defect. */
static void message_sizes(const void *const *in, const size_t *slot_bytes,
                          int padded, int nranks, size_t *sizes) {
  for (int r = 0; r < nranks; ++r) {
    sizes[r] = slot_bytes[r];
    if (!padded || slot_bytes[r] < MCGQ_HEADER_BYTES) continue;
    uint64_t claimed =
        mcgq_load_le64((const uint8_t *)in[r] + MCGQ_HDR_TOTAL_BYTES);
    if (claimed >= MCGQ_HEADER_BYTES && claimed <= slot_bytes[r])
      sizes[r] = (size_t)claimed;
  }
}

static mcgqResult_t host_decode_average(mcgq_codec_t *c, const void *const *in,
                                        const size_t *in_bytes, int padded,
                                        int nranks, const mcgqLayer_t *layers,
                                        int count, const mcgq_call_t *call) {
  host_codec_t *h = host(c);
  uint64_t total_n = 0;
  for (int i = 0; i < count; ++i) total_n += layers[i].n;
  size_t *sizes = malloc((size_t)nranks * sizeof *sizes);
  if (!sizes) {
    snprintf(call->detail, call->detail_size, "mcgqCommStep: no host memory");
    return mcgqOutOfMemory;
  }
  message_sizes(in, in_bytes, padded, nranks, sizes);
  mcgqResult_t res = mcgqDecodeAverageHost(in, sizes, nranks, h->average, total_n);
  free(sizes);
  if (res != mcgqSuccess) return adopt_detail(call, res);
  const float *src = h->average;
  for (int i = 0; i < count; ++i) {
    /* rounded once for a 16-bit layer, as mcgqDecodeAverageHostTyped does */
    mcgq_narrow(src, layers[i].cfg.dtype, layers[i].n, layers[i].grad);
    src += layers[i].n;
  }
  return mcgqSuccess;
}

static mcgqResult_t host_commit(mcgq_codec_t *c, const mcgq_call_t *call) {
  (void)call;
  release_prepared(host(c), 1);
  return mcgqSuccess;
}

static void host_discard(mcgq_codec_t *c, const mcgq_call_t *call) {
  (void)call;
  release_prepared(host(c), 0);
}

/* ------------------------------------------------------ sharded modes */

/* The exact messages of the ranges first[m]..first[m+1], back to back.  The
 * buffer is sized by the sum of the bounds before anything is encoded, so a
 * message's place never moves. */
static mcgqResult_t host_prepare_messages(mcgq_codec_t *c,
                                          const mcgqLayerDesc_t *descs,
                                          const int *first, int messages,
                                          const mcgq_call_t *call,
                                          const void **send, size_t *sizes,
                                          mcgqLayerStats_t *stats) {
  static const char fn[] = "mcgqCommStep";
  host_codec_t *h = host(c);
  size_t room = 0;
  for (int m = 0; m < messages; ++m) {
    int count = first[m + 1] - first[m];
    size_t bound = 0;
    if (count > 0) {
      mcgqResult_t res = mcgqEncodeGetMaxOutputSize(descs + first[m], count, &bound);
      if (res != mcgqSuccess) return adopt_detail(call, res);
    }
    if (bound > SIZE_MAX - room) {
      snprintf(call->detail, call->detail_size, "%s: the shard messages exceed size_t", fn);
      return mcgqOutOfMemory;
    }
    room += bound;
  }
  if (!ensure_bytes(&h->send, &h->send_capacity, room > 0 ? room : 1)) {
    snprintf(call->detail, call->detail_size,
             "%s: cannot allocate a %zu-byte send buffer", fn, room);
    return mcgqOutOfMemory;
  }
  MCGQ_CHECK(ensure_prepared_slots(h, messages, call));
  const int held = h->prepared_count;
  size_t offset = 0;
  for (int m = 0; m < messages; ++m) {
    int count = first[m + 1] - first[m];
    sizes[m] = 0;
    if (count == 0) continue;
    mcgqResult_t res = mcgq_host_encode_prepare(
        fn, descs + first[m], count, (char *)h->send + offset, room - offset, 0,
        &sizes[m], stats + first[m], &h->prepared[h->prepared_count]);
    if (res != mcgqSuccess) { /* this call's encodes go, earlier ones stay */
      while (h->prepared_count > held)
        mcgq_host_encode_release(h->prepared[--h->prepared_count]);
      return adopt_detail(call, res);
    }
    ++h->prepared_count;
    offset += sizes[m];
  }
  *send = h->send;
  return mcgqSuccess;
}

static mcgqResult_t host_alloc(mcgq_codec_t *c, size_t bytes, void **ptr,
                               char *detail, size_t detail_size) {
  (void)c;
  *ptr = calloc(1, bytes > 0 ? bytes : 1);
  if (*ptr) return mcgqSuccess;
  snprintf(detail, detail_size, "mcgqComm: cannot allocate %zu bytes of host memory",
           bytes);
  return mcgqOutOfMemory;
}

static void host_release(mcgq_codec_t *c, void *ptr) {
  (void)c;
  free(ptr);
}

static mcgqResult_t host_copy(mcgq_codec_t *c, void *dst, const void *src,
                              size_t bytes, int direction, const mcgq_call_t *call) {
  (void)c, (void)direction, (void)call; /* every side is host memory */
  if (bytes > 0) memmove(dst, src, bytes);
  return mcgqSuccess;
}

static void host_destroy(mcgq_codec_t *c) {
  host_codec_t *h = host(c);
  if (!h) return;
  release_prepared(h, 0);
  free(h->prepared);
  free(h->send);
  free(h->recv);
  free(h->average);
  free(h);
}

static const mcgq_codec_ops_t kHostCodec = {
    "host",          1,           host_set_layers, host_prepare, host_reserve,
    host_recv_capacity,  host_decode_average, host_commit, host_discard, host_destroy,
    host_prepare_messages, host_alloc, host_release, host_copy,
    NULL,            NULL,        NULL /* no agreement on device */};

mcgqResult_t mcgq_codec_host_create(mcgq_codec_t **codec) {
  host_codec_t *h = calloc(1, sizeof *h);
  if (!h) return mcgq_fail(mcgqOutOfMemory, "mcgqCommInit: no host memory");
  h->base.ops = &kHostCodec;
  *codec = &h->base;
  return mcgqSuccess;
}
