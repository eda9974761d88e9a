/* bench_models.c - a whole step over the layer-size table of a real model
 * (bench/models/NAME.txt): one segmented encode of all layers, the same layers
 * encoded one call each (the per-layer fixed cost that one-size runs hide),
 * the decode, and a plain fp32 copy of the same gradients.  With -a fused or
 * -a sample the step runs on the GPU (bench_gpu_model in bench_gpu.cu). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifndef MCGQ_BENCH_MODELS_DIR
#define MCGQ_BENCH_MODELS_DIR "bench/models"
#endif

typedef struct {
  uint64_t *sizes;
  int count;
} layer_table_t;

static void table_path(const char *model, char *path, size_t size) {
  if (strchr(model, '/') || strstr(model, ".txt"))
    snprintf(path, size, "%s", model);
  else
    snprintf(path, size, "%s/%s.txt", MCGQ_BENCH_MODELS_DIR, model);
}

/* Lines: "# comment" or "<name> <elements>". */
static int read_table(const char *path, layer_table_t *t, char *err, size_t err_size) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_size, "cannot open layer table %s", path);
    return -1;
  }
  int cap = 256, rc = 0, line_no = 0;
  t->count = 0;
  t->sizes = (uint64_t *)malloc((size_t)cap * sizeof *t->sizes);
  char line[512];
  while (rc == 0 && t->sizes && fgets(line, sizeof line, f)) {
    ++line_no;
    if (line[0] == '#' || line[0] == '\n') continue;
    char name[400];
    unsigned long long n = 0;
    if (sscanf(line, "%399s %llu", name, &n) != 2 || n == 0 ||
        n > MCGQ_MAX_LAYER_ELEMENTS) {
      snprintf(err, err_size, "%s:%d: expected '<name> <elements>'", path, line_no);
      rc = -1;
      break;
    }
    if (t->count == cap) {
      cap *= 2;
      uint64_t *grown = (uint64_t *)realloc(t->sizes, (size_t)cap * sizeof *grown);
      if (!grown) break;
      t->sizes = grown;
    }
    t->sizes[t->count++] = n;
  }
  fclose(f);
  if (rc == 0 && (!t->sizes || t->count == 0)) {
    snprintf(err, err_size, "%s: no layers (or out of memory)", path);
    rc = -1;
  }
  return rc;
}

typedef struct {
  layer_table_t table;
  uint64_t n;
  float *g, *dec;
  void *msg;
  size_t msg_cap, msg_bytes;
  mcgqLayerDesc_t *desc;
  mcgqLayerStats_t *stats; /* of the segmented encode: paper stream bits */
} model_case_t;

static void free_model(model_case_t *m) {
  free(m->table.sizes);
  free(m->g);
  free(m->dec);
  free(m->msg);
  free(m->desc);
  free(m->stats);
}

static int setup_model(model_case_t *m, const bench_options_t *opt, double k,
                       char *err, size_t err_size) {
  m->n = 0;
  for (int i = 0; i < m->table.count; ++i) m->n += m->table.sizes[i];
  m->g = (float *)malloc(m->n * sizeof(float));
  m->dec = (float *)malloc(m->n * sizeof(float));
  m->desc = (mcgqLayerDesc_t *)calloc((size_t)m->table.count, sizeof *m->desc);
  m->stats = (mcgqLayerStats_t *)calloc((size_t)m->table.count, sizeof *m->stats);
  if (!m->g || !m->dec || !m->desc || !m->stats) {
    snprintf(err, err_size, "out of host memory for %llu elements",
             (unsigned long long)m->n);
    return -1;
  }
  bench_fill(m->g, m->n, opt->dist, 7);
  uint64_t offset = 0;
  for (int i = 0; i < m->table.count; ++i) {
    mcgqLayerDescInit(&m->desc[i]);
    m->desc[i].g = m->g + offset;
    m->desc[i].n = m->table.sizes[i];
    m->desc[i].u = mcgqRandomWord(1, 0, (uint32_t)i, 0);
    m->desc[i].cfg.k = k;
    offset += m->table.sizes[i];
  }
  mcgqResult_t r = mcgqEncodeGetMaxOutputSize(m->desc, m->table.count, &m->msg_cap);
  if (r != mcgqSuccess) {
    bench_mcgq_error(err, err_size, "mcgqEncodeGetMaxOutputSize", r);
    return -1;
  }
  m->msg = malloc(m->msg_cap);
  if (!m->msg) {
    snprintf(err, err_size, "out of host memory for the message");
    return -1;
  }
  return 0;
}

enum model_stage { MODEL_COPY, MODEL_ENCODE, MODEL_ENCODE_EACH, MODEL_DECODE };

static mcgqResult_t run_model_stage(model_case_t *m, int stage) {
  size_t bytes = 0;
  mcgqResult_t r = mcgqSuccess;
  switch (stage) {
    case MODEL_COPY:
      memcpy(m->dec, m->g, m->n * sizeof(float));
      return mcgqSuccess;
    case MODEL_ENCODE:
      return mcgqEncodeHost(m->desc, m->table.count, m->msg, m->msg_cap,
                            &m->msg_bytes, m->stats);
    case MODEL_ENCODE_EACH: /* overwrites msg: MODEL_ENCODE runs again after */
      for (int i = 0; i < m->table.count && r == mcgqSuccess; ++i)
        r = mcgqEncodeHost(&m->desc[i], 1, m->msg, m->msg_cap, &bytes, NULL);
      return r;
    case MODEL_DECODE:
      return mcgqDecodeHost(m->msg, m->msg_bytes, m->dec, m->n);
    default:
      return mcgqInternalError;
  }
}

static double time_model_stage(model_case_t *m, int stage, int iters, int warmup,
                               mcgqResult_t *res) {
  double *t = (double *)malloc((size_t)iters * sizeof *t);
  if (!t) {
    *res = mcgqOutOfMemory;
    return -1.0;
  }
  *res = mcgqSuccess;
  for (int i = 0; i < warmup && *res == mcgqSuccess; ++i) *res = run_model_stage(m, stage);
  for (int i = 0; i < iters && *res == mcgqSuccess; ++i) {
    double t0 = bench_now_us();
    *res = run_model_stage(m, stage);
    t[i] = bench_now_us() - t0;
  }
  double median = *res == mcgqSuccess ? bench_median(t, iters) : -1.0;
  free(t);
  return median;
}

static int measure_model(model_case_t *m, const bench_options_t *opt,
                         bench_model_row_t *row, char *err, size_t err_size) {
  static const int order[] = {MODEL_COPY, MODEL_ENCODE_EACH, MODEL_ENCODE, MODEL_DECODE};
  static const char *names[] = {"memcpy", "mcgqEncodeHost (one layer per call)",
                                "mcgqEncodeHost (all layers)", "mcgqDecodeHost"};
  double t[4];
  for (int s = 0; s < 4; ++s) {
    mcgqResult_t r;
    t[s] = time_model_stage(m, order[s], opt->iters, opt->warmup, &r);
    if (r != mcgqSuccess) {
      bench_mcgq_error(err, err_size, names[s], r);
      return -1;
    }
  }
  row->copy_us = t[0];
  row->encode_per_layer_us = t[1];
  row->encode_us = t[2];
  row->decode_us = t[3];
  /* The paper's stream, also for layers the container holds fixed width. */
  uint64_t stream_bits = 0;
  for (int i = 0; i < m->table.count; ++i) stream_bits += m->stats[i].stream_bits;
  row->wire_bytes = m->msg_bytes;
  row->bits_per_element = 8.0 * (double)m->msg_bytes / (double)m->n;
  /* Paper ratio over the model: one 32-bit scale per layer. */
  row->paper_ratio = 32.0 * (double)m->n /
                     ((double)stream_bits + 32.0 * m->table.count);
  row->wire_ratio = 4.0 * (double)m->n / (double)m->msg_bytes;
  return 0;
}

static void model_name(const char *model, char *name, size_t size) {
  const char *base = strrchr(model, '/');
  snprintf(name, size, "%s", base ? base + 1 : model);
  char *dot = strstr(name, ".txt");
  if (dot) *dot = '\0';
}

int bench_model_step(const bench_options_t *opt, const char *model, double k,
                     bench_model_row_t *row, char *err, size_t err_size) {
  char path[512];
  table_path(model, path, sizeof path);
  model_case_t m;
  memset(&m, 0, sizeof m);
  memset(row, 0, sizeof *row);
  int rc = read_table(path, &m.table, err, err_size);
  if (rc == 0) {
    model_name(model, row->name, sizeof row->name);
    row->layers = m.table.count;
    for (int i = 0; i < m.table.count; ++i) row->n += m.table.sizes[i];
    row->k = k;
    row->smallest = row->largest = m.table.sizes[0];
    for (int i = 1; i < m.table.count; ++i) {
      if (m.table.sizes[i] < row->smallest) row->smallest = m.table.sizes[i];
      if (m.table.sizes[i] > row->largest) row->largest = m.table.sizes[i];
    }
    row->encode_graph_us = row->decode_graph_us = row->reduce_us = row->scan_us = -1.0;
    if (opt->algo != BENCH_ALGO_CPU) {
      row->gpu = 1;
      rc = bench_gpu_model(opt, m.table.sizes, m.table.count, k, row, err, err_size);
    } else {
      rc = setup_model(&m, opt, k, err, err_size);
      if (rc == 0) rc = measure_model(&m, opt, row, err, err_size);
    }
  }
  free_model(&m);
  return rc;
}
