/* bench_cpu.c - one size of the CPU reference: memcpy baseline, then the
 * stages timed separately through the public calls (quantize, paper
 * bitstream, whole container encode, decode, decode-average of the messages
 * of BENCH_AVERAGE_RANKS ranks), and the round-trip check. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

enum cpu_stage {
  STAGE_COPY, STAGE_QUANTIZE, STAGE_RLE, STAGE_ENCODE, STAGE_DECODE, STAGE_AVERAGE,
  STAGE_COUNT
};

typedef struct {
  uint64_t n;
  double k;
  uint32_t u;
  float *g, *dec;
  int32_t *g_int;
  void *rle, *msg;
  size_t rle_cap, msg_cap, msg_bytes;
  mcgqLayerDesc_t desc;
  /* One message per rank: the same g with each rank's random word, as the
   * ranks of a step would send (same layer table, different draws). */
  void *rank_msg[BENCH_AVERAGE_RANKS];
  size_t rank_bytes[BENCH_AVERAGE_RANKS];
} cpu_case_t;

static mcgqResult_t run_stage(cpu_case_t *c, int stage) {
  uint64_t bits = 0;
  switch (stage) {
    case STAGE_COPY:
      memcpy(c->dec, c->g, c->n * sizeof(float));
      return mcgqSuccess;
    case STAGE_QUANTIZE: /* stats NULL: no W1 sort, which encode skips too */
      return mcgqQuantizeHost(c->g, c->n, c->k, 0, c->u, 0, c->g_int, NULL);
    case STAGE_RLE:
      return mcgqRleEncodeHost(c->g_int, c->n, c->rle, c->rle_cap, &bits);
    case STAGE_ENCODE:
      return mcgqEncodeHost(&c->desc, 1, c->msg, c->msg_cap, &c->msg_bytes, NULL);
    case STAGE_DECODE:
      return mcgqDecodeHost(c->msg, c->msg_bytes, c->dec, c->n);
    case STAGE_AVERAGE:
      return mcgqDecodeAverageHost((const void *const *)c->rank_msg, c->rank_bytes,
                                   BENCH_AVERAGE_RANKS, c->dec, c->n);
    default:
      return mcgqInternalError;
  }
}

/* Median wall time (monotonic clock) over iters timed runs after warmup
 * runs, and in *cpu_us the median thread CPU time; -1 on failure. */
static double time_stage(cpu_case_t *c, int stage, const bench_options_t *opt,
                         double *cpu_us, mcgqResult_t *res) {
  double *t = (double *)malloc(2 * (size_t)opt->iters * sizeof *t);
  *cpu_us = -1.0;
  if (!t) {
    *res = mcgqOutOfMemory;
    return -1.0;
  }
  double *cpu = t + opt->iters;
  *res = mcgqSuccess;
  for (int i = 0; i < opt->warmup && *res == mcgqSuccess; ++i) *res = run_stage(c, stage);
  for (int i = 0; i < opt->iters && *res == mcgqSuccess; ++i) {
    double c0 = bench_thread_cpu_us(), t0 = bench_now_us();
    *res = run_stage(c, stage);
    t[i] = bench_now_us() - t0;
    cpu[i] = bench_thread_cpu_us() - c0;
  }
  double median = -1.0;
  if (*res == mcgqSuccess) {
    median = bench_median(t, opt->iters);
    *cpu_us = bench_median(cpu, opt->iters);
  }
  free(t);
  return median;
}

static void free_case(cpu_case_t *c) {
  free(c->g);
  free(c->dec);
  free(c->g_int);
  free(c->rle);
  free(c->msg);
  for (int r = 0; r < BENCH_AVERAGE_RANKS; ++r) free(c->rank_msg[r]);
}

/* The ranks' messages of the decode-average stage, encoded once. */
static int setup_ranks(cpu_case_t *c, char *err, size_t err_size) {
  for (int r = 0; r < BENCH_AVERAGE_RANKS; ++r) {
    mcgqLayerDesc_t d = c->desc;
    d.u = mcgqRandomWord(1, 0, 0, (uint32_t)r);
    c->rank_msg[r] = malloc(c->msg_cap);
    if (!c->rank_msg[r]) {
      snprintf(err, err_size, "out of host memory for rank %d's message", r);
      return -1;
    }
    mcgqResult_t res = mcgqEncodeHost(&d, 1, c->rank_msg[r], c->msg_cap,
                                      &c->rank_bytes[r], NULL);
    if (res != mcgqSuccess) {
      bench_mcgq_error(err, err_size, "mcgqEncodeHost (ranks)", res);
      return -1;
    }
  }
  return 0;
}

static int setup_case(cpu_case_t *c, const bench_options_t *opt, uint64_t n,
                      double k, char *err, size_t err_size) {
  memset(c, 0, sizeof *c);
  c->n = n;
  c->k = k;
  c->u = mcgqRandomWord(1, 0, 0, 0);
  mcgqLayerDescInit(&c->desc);
  c->desc.n = n;
  c->desc.u = c->u;
  c->desc.cfg.k = k;
  c->g = (float *)malloc(n * sizeof(float));
  c->dec = (float *)malloc(n * sizeof(float));
  c->g_int = (int32_t *)malloc(n * sizeof(int32_t));
  if (!c->g || !c->dec || !c->g_int) {
    snprintf(err, err_size, "out of host memory for n = %llu", (unsigned long long)n);
    return -1;
  }
  bench_fill(c->g, n, opt->dist, 42);
  c->desc.g = c->g;
  mcgqResult_t r = mcgqEncodeGetMaxOutputSize(&c->desc, 1, &c->msg_cap);
  if (r != mcgqSuccess) {
    bench_mcgq_error(err, err_size, "mcgqEncodeGetMaxOutputSize", r);
    return -1;
  }
  /* The paper stream's exact size: quantize once, then ask (out = NULL). */
  uint64_t rle_bits = 0;
  r = mcgqQuantizeHost(c->g, n, k, 0, c->u, 0, c->g_int, NULL);
  if (r == mcgqSuccess) r = mcgqRleEncodeHost(c->g_int, n, NULL, 0, &rle_bits);
  if (r != mcgqSuccess) {
    bench_mcgq_error(err, err_size, "sizing the paper stream", r);
    return -1;
  }
  c->rle_cap = (size_t)((rle_bits + 7) / 8);
  c->msg = malloc(c->msg_cap);
  c->rle = malloc(c->rle_cap ? c->rle_cap : 1);
  if (!c->msg || !c->rle) {
    snprintf(err, err_size, "out of host memory for the outputs");
    return -1;
  }
  return setup_ranks(c, err, err_size);
}

/* Decoded floats must be exactly scale * g_int (float multiply, FORMAT.md)
 * of an independent quantize call; counts mismatching elements. */
static uint64_t count_wrong(const cpu_case_t *c, float scale) {
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < c->n; ++i) {
    float want = scale * (float)c->g_int[i];
    if (memcmp(&want, &c->dec[i], sizeof want) != 0) ++wrong;
  }
  return wrong;
}

int bench_cpu_size(const bench_options_t *opt, uint64_t n, double k,
                   bench_row_t *row, char *err, size_t err_size) {
  cpu_case_t c;
  int rc = setup_case(&c, opt, n, k, err, err_size);
  static const char *names[STAGE_COUNT] = {
      "memcpy", "mcgqQuantizeHost", "mcgqRleEncodeHost", "mcgqEncodeHost",
      "mcgqDecodeHost", "mcgqDecodeAverageHost"};
  double t[STAGE_COUNT] = {0}, cpu[STAGE_COUNT] = {0};
  for (int s = 0; s < STAGE_COUNT && rc == 0; ++s) {
    mcgqResult_t r;
    t[s] = time_stage(&c, s, opt, &cpu[s], &r);
    if (r != mcgqSuccess) {
      bench_mcgq_error(err, err_size, names[s], r);
      rc = -1;
    }
  }
  mcgqLayerStats_t st;
  if (rc == 0) {
    mcgqResult_t r = mcgqQuantizeHost(c.g, n, k, 0, c.u, 0, c.g_int, &st);
    if (r != mcgqSuccess) {
      bench_mcgq_error(err, err_size, "mcgqQuantizeHost (stats)", r);
      rc = -1;
    }
  }
  if (rc == 0) {
    memset(row, 0, sizeof *row);
    row->bytes = n * sizeof(float);
    row->n = n;
    row->k = k;
    row->copy_us = t[0];
    row->quant_us = t[1];
    row->rle_us = t[2];
    row->time_us = t[3];
    row->copy_cpu_us = cpu[0];
    row->time_cpu_us = cpu[3];
    row->decode_us = t[4];
    row->average_us = t[5];
    row->decode_cpu_us = cpu[4];
    row->average_cpu_us = cpu[5];
    row->reduce_us = row->scan_us = -1.0;
    row->bits_per_element = 8.0 * (double)c.msg_bytes / (double)n;
    row->paper_ratio = 32.0 * (double)n / ((double)st.stream_bits + 32.0);
    row->wire_ratio = 4.0 * (double)n / (double)c.msg_bytes;
    row->checked = opt->check;
    if (opt->check) { /* decode again: the average stage wrote dec last */
      mcgqResult_t r = mcgqDecodeHost(c.msg, c.msg_bytes, c.dec, n);
      row->wrong = r == mcgqSuccess ? count_wrong(&c, st.scale) : n;
    }
  }
  free_case(&c);
  return rc;
}
