/* baselines.c - the compressors MCGQ is compared with (not library code).
 * Each builds a fixed-size message per rank, exchanges it with one
 * MPI_Allgather, and every rank decodes all P messages and averages them in
 * rank order, so all ranks end with the same bits.  Error-feedback memories
 * act on gradients (like MCGQ's accumulators), not on lr-scaled updates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitpack.h"
#include "methods.h"
#include "rng.h"

#define QSGD_BUCKET 512 /* QSGD paper's bucket size d */

static uint64_t topk_count(const method_t *me, uint64_t n) {
  uint64_t k = (uint64_t)ceil(me->opt.topk_frac * (double)n);
  return k < 1 ? 1 : (k > n ? n : k);
}

/* Bytes of tensor t's part of the message. */
static uint64_t tensor_bytes(const method_t *me, uint64_t n) {
  switch (me->kind) {
    case METHOD_QSGD:
      return 4 * ((n + QSGD_BUCKET - 1) / QSGD_BUCKET) +
             bitpack_bytes(n * (uint64_t)me->bits);
    case METHOD_EFSIGN:
      return 4 + bitpack_bytes(n);
    case METHOD_TOPK:
      return 8 * topk_count(me, n); /* uint32 index + float value */
    default:
      return 4 * n;
  }
}

int baseline_setup(method_t *me, char *err, int err_len) {
  const model_t *m = me->model;
  for (int t = 0; t < m->tensors; ++t) me->message_bytes += tensor_bytes(me, m->size[t]);
  if (me->kind == METHOD_FP32) return 0;
  me->sendbuf = calloc(me->message_bytes, 1);
  me->recvbuf = calloc(me->message_bytes * (uint64_t)me->nranks, 1);
  me->error = calloc(m->nparams, sizeof(float));
  me->order = calloc(m->nparams, sizeof(uint64_t));
  if (!me->sendbuf || !me->recvbuf || !me->error || !me->order) {
    snprintf(err, (size_t)err_len, "out of memory");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ QSGD */

static void qsgd_encode(const float *g, uint64_t n, int bits, rng_t *r,
                        unsigned char *out) {
  uint32_t s = (1u << (bits - 1)) - 1; /* levels besides 0 */
  uint64_t buckets = (n + QSGD_BUCKET - 1) / QSGD_BUCKET;
  unsigned char *levels = out + 4 * buckets;
  for (uint64_t b = 0; b < buckets; ++b) {
    uint64_t lo = b * QSGD_BUCKET, hi = lo + QSGD_BUCKET < n ? lo + QSGD_BUCKET : n;
    double sq = 0.0;
    for (uint64_t i = lo; i < hi; ++i) sq += (double)g[i] * g[i];
    float norm = (float)sqrt(sq);
    memcpy(out + 4 * b, &norm, 4);
    for (uint64_t i = lo; i < hi; ++i) {
      /* unbiased: level l+1 with probability xi - l, else l */
      double xi = norm > 0 ? fabs((double)g[i]) / norm * s : 0.0;
      uint32_t l = (uint32_t)floor(xi);
      if (l < s && rng_uniform(r) < xi - l) ++l;
      uint32_t sign = g[i] < 0 && l > 0;
      bitpack_put(levels, i * (uint64_t)bits, (unsigned)bits, sign << (bits - 1) | l);
    }
  }
}

static void qsgd_add(const unsigned char *in, uint64_t n, int bits, float *acc) {
  uint32_t s = (1u << (bits - 1)) - 1;
  uint64_t buckets = (n + QSGD_BUCKET - 1) / QSGD_BUCKET;
  const unsigned char *levels = in + 4 * buckets;
  for (uint64_t i = 0; i < n; ++i) {
    float norm;
    memcpy(&norm, in + 4 * (i / QSGD_BUCKET), 4);
    uint32_t v = bitpack_get(levels, i * (uint64_t)bits, (unsigned)bits);
    float mag = norm * (float)(v & s) / (float)s;
    acc[i] += (v >> (bits - 1)) ? -mag : mag;
  }
}

/* ------------------------------------------------------- ef-signSGD, top-k */

static void efsign_encode(float *g, float *e, uint64_t n, unsigned char *out) {
  double l1 = 0.0;
  for (uint64_t i = 0; i < n; ++i) {
    e[i] += g[i]; /* p = g + e */
    l1 += fabs((double)e[i]);
  }
  float scale = (float)(l1 / (double)n);
  memcpy(out, &scale, 4);
  for (uint64_t i = 0; i < n; ++i) {
    int negative = e[i] < 0;
    bitpack_put(out + 4, i, 1, (uint32_t)negative);
    e[i] -= negative ? -scale : scale; /* e = p - sent */
  }
}

static void efsign_add(const unsigned char *in, uint64_t n, float *acc) {
  float scale;
  memcpy(&scale, in, 4);
  for (uint64_t i = 0; i < n; ++i) acc[i] += bitpack_get(in + 4, i, 1) ? -scale : scale;
}

/* Sort key: |p| as its float bits (monotonic for non-negative floats) in
 * the high word, the complemented index in the low word, so sorting keys in
 * descending order ranks by magnitude with ties to the lower index. */
static int by_key_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x > y ? -1 : (x < y ? 1 : 0);
}

static void topk_encode(float *g, float *e, uint64_t n, uint64_t k, uint64_t *keys,
                        unsigned char *out) {
  for (uint64_t i = 0; i < n; ++i) {
    e[i] += g[i];
    float mag = fabsf(e[i]);
    uint32_t bits;
    memcpy(&bits, &mag, 4);
    keys[i] = (uint64_t)bits << 32 | (0xffffffffu - (uint32_t)i);
  }
  qsort(keys, n, sizeof *keys, by_key_desc);
  for (uint64_t j = 0; j < k; ++j) {
    uint32_t index = 0xffffffffu - (uint32_t)keys[j];
    memcpy(out + 8 * j, &index, 4);
    memcpy(out + 8 * j + 4, &e[index], 4);
    e[index] = 0.0f; /* sent exactly, nothing left over */
  }
}

static void topk_add(const unsigned char *in, uint64_t k, float *acc) {
  for (uint64_t j = 0; j < k; ++j) {
    uint32_t index;
    float value;
    memcpy(&index, in + 8 * j, 4);
    memcpy(&value, in + 8 * j + 4, 4);
    acc[index] += value;
  }
}

/* -------------------------------------------------------------- exchange */

static void encode_tensor(method_t *me, int t, rng_t *r, unsigned char *out) {
  model_t *m = me->model;
  float *g = m->grads + m->offset[t];
  uint64_t n = m->size[t];
  if (me->kind == METHOD_QSGD) qsgd_encode(g, n, me->bits, r, out);
  if (me->kind == METHOD_EFSIGN) efsign_encode(g, me->error + m->offset[t], n, out);
  if (me->kind == METHOD_TOPK)
    topk_encode(g, me->error + m->offset[t], n, topk_count(me, n),
                me->order + m->offset[t], out);
}

static void add_tensor(const method_t *me, int t, const unsigned char *in, float *acc) {
  uint64_t n = me->model->size[t];
  if (me->kind == METHOD_QSGD) qsgd_add(in, n, me->bits, acc);
  if (me->kind == METHOD_EFSIGN) efsign_add(in, n, acc);
  if (me->kind == METHOD_TOPK) topk_add(in, topk_count(me, n), acc);
}

static int exchange_fp32(method_t *me, exchange_result_t *res, char *err, int err_len) {
  model_t *m = me->model;
  if (MPI_Allreduce(MPI_IN_PLACE, m->grads, (int)m->nparams, MPI_FLOAT, MPI_SUM,
                    me->comm) != MPI_SUCCESS) {
    snprintf(err, (size_t)err_len, "MPI_Allreduce failed");
    return -1;
  }
  for (uint64_t i = 0; i < m->nparams; ++i) m->grads[i] /= (float)me->nranks;
  res->bytes_sent = 4 * m->nparams;
  res->paper_bits = 8.0 * (double)res->bytes_sent;
  return 0;
}

int baseline_exchange(method_t *me, uint64_t step, exchange_result_t *res,
                      char *err, int err_len) {
  if (me->kind == METHOD_FP32) return exchange_fp32(me, res, err, err_len);
  model_t *m = me->model;
  rng_t r = rng_make(me->opt.seed, RNG_QSGD, step, (uint64_t)me->rank);
  memset(me->sendbuf, 0, me->message_bytes);
  uint64_t pos = 0;
  for (int t = 0; t < m->tensors; ++t) {
    encode_tensor(me, t, &r, me->sendbuf + pos);
    pos += tensor_bytes(me, m->size[t]);
  }
  if (MPI_Allgather(me->sendbuf, (int)me->message_bytes, MPI_BYTE, me->recvbuf,
                    (int)me->message_bytes, MPI_BYTE, me->comm) != MPI_SUCCESS) {
    snprintf(err, (size_t)err_len, "MPI_Allgather failed");
    return -1;
  }
  memset(m->grads, 0, m->nparams * sizeof(float));
  for (int rank = 0; rank < me->nranks; ++rank) {
    const unsigned char *msg = me->recvbuf + (uint64_t)rank * me->message_bytes;
    for (int t = 0; t < m->tensors; ++t) {
      add_tensor(me, t, msg, m->grads + m->offset[t]);
      msg += tensor_bytes(me, m->size[t]);
    }
  }
  for (uint64_t i = 0; i < m->nparams; ++i) m->grads[i] /= (float)me->nranks;
  res->bytes_sent = me->message_bytes;
  res->paper_bits = 8.0 * (double)me->message_bytes;
  return 0;
}
