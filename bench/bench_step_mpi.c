/*
 * bench_step_mpi.c - one exchange step over MPI (CPU reference) against an
 * MPI_Allreduce of the same fp32 gradients, measured in the same run.
 *
 *   mpirun -np 4 bench_step_mpi [-e elements] [-l layers] [-n iters]
 *                               [-w warmup] [-a accumulate] [-m mode]
 *                               [-J out.json]
 *
 * -m: exchange mode of mcgqCommStep, 0 all-gather (default), 1 two-stage,
 * 2 reduce-scatter (mcgq.h, MCGQ_EXCHANGE_*).  bytes/rank is what
 * mcgqCommStep reports this rank sent (stats.bytes_sent; the sharded modes
 * count what goes to other ranks).  The encode / exchange / decode parts are
 * always those of the all-gather step.
 *
 * Defaults: 2^24 elements split into 50 layers, K in {0.1, 1}, 5 timed
 * iterations after 1 warmup.  Every time is the slowest rank's (MPI_MAX of
 * the local times after a barrier), then the median over iterations.
 * Besides mcgqCommStep as a whole, its parts are timed with the public
 * calls that make it up: encode (mcgqEncodeHost), exchange (MPI_Allgather of
 * sizes + MPI_Allgatherv of the messages), decode (mcgqDecodeAverageHost).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcgq.h"
#include "mcgq_mpi.h"

typedef struct {
  uint64_t elements;
  int layers, iters, warmup, accumulate, mode;
  const char *json;
} options_t;

typedef struct {
  double k;
  double step_ms, encode_ms, exchange_ms, decode_ms, allreduce_ms;
  uint64_t bytes_sent;
  double wire_ratio, paper_ratio;
} result_t;

#define DIE_IF(cond, ...)                  \
  do {                                     \
    if (cond) {                            \
      fprintf(stderr, __VA_ARGS__);        \
      fputc('\n', stderr);                 \
      MPI_Abort(MPI_COMM_WORLD, 1);        \
    }                                      \
  } while (0)

static int parse(int argc, char **argv, options_t *o) {
  o->elements = (uint64_t)1 << 24;
  o->layers = 50;
  o->iters = 5;
  o->warmup = 1;
  o->accumulate = MCGQ_ACCUM_NONE;
  o->mode = MCGQ_EXCHANGE_ALL_GATHER;
  o->json = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-e")) o->elements = strtoull(argv[i + 1], NULL, 0);
    else if (!strcmp(argv[i], "-l")) o->layers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-n")) o->iters = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-w")) o->warmup = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-a")) o->accumulate = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-m")) o->mode = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-J")) o->json = argv[i + 1];
    else return 0;
  }
  return o->elements >= (uint64_t)o->layers && o->layers > 0 && o->iters > 0 &&
         o->warmup >= 0 && o->mode >= MCGQ_EXCHANGE_ALL_GATHER &&
         o->mode <= MCGQ_EXCHANGE_REDUCE_SCATTER;
}

static double now_ms(void) { return MPI_Wtime() * 1e3; }

/* Slowest rank's time of the interval that started at t0. */
static double slowest(double t0) {
  double local = now_ms() - t0, worst = 0.0;
  MPI_Allreduce(&local, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Gradient-like values: sum of three uniforms (bell shaped), per rank. */
static void fill_gradients(float *g, uint64_t n, int rank) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
  for (uint64_t k = 0; k < n; ++k) {
    double v = 0.0;
    for (int j = 0; j < 3; ++j) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      v += (double)(s >> 11) / 9007199254740992.0 - 0.5;
    }
    g[k] = (float)(v * 1e-3);
  }
}

typedef struct {
  float *orig, *grad, *accum, *avg;
  mcgqLayer_t *layers;
  mcgqLayerDesc_t *descs;
  unsigned char *send, *recv;
  size_t send_cap;
} buffers_t;

static void setup_layers(const options_t *o, double k, buffers_t *b, int rank) {
  uint64_t base = o->elements / (uint64_t)o->layers, off = 0;
  for (int i = 0; i < o->layers; ++i) {
    uint64_t n = base + ((uint64_t)i < o->elements % (uint64_t)o->layers ? 1 : 0);
    mcgqLayer_t *l = &b->layers[i];
    memset(l, 0, sizeof *l);
    l->struct_size = sizeof *l;
    l->grad = b->grad + off;
    l->accum = o->accumulate ? b->accum + off : NULL;
    l->n = n;
    mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
    cfg.k = k;
    cfg.accumulate = o->accumulate;
    l->cfg = cfg;
    mcgqLayerDescInit(&b->descs[i]);
    b->descs[i].u = mcgqRandomWord(1, 0, (uint32_t)i, (uint32_t)rank);
    b->descs[i].g = l->grad;
    b->descs[i].accum = l->accum;
    b->descs[i].n = n;
    b->descs[i].cfg = cfg;
    off += n;
  }
}

/* The parts of one step, each timed on its own. */
static void time_parts(const options_t *o, buffers_t *b, int nranks,
                       double *enc, double *exch, double *dec) {
  size_t bytes = 0;
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = now_ms();
  mcgqResult_t r = mcgqEncodeHost(b->descs, o->layers, b->send, b->send_cap,
                                  &bytes, NULL);
  DIE_IF(r != mcgqSuccess, "mcgqEncodeHost: %s", mcgqGetLastErrorDetail());
  *enc = slowest(t0);

  int mine = (int)bytes, counts[64], displs[64];
  MPI_Barrier(MPI_COMM_WORLD);
  t0 = now_ms();
  MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (int i = 0; i < nranks; ++i) {
    displs[i] = total;
    total += counts[i];
  }
  MPI_Allgatherv(b->send, mine, MPI_BYTE, b->recv, counts, displs, MPI_BYTE,
                 MPI_COMM_WORLD);
  *exch = slowest(t0);

  const void *in[64];
  size_t in_bytes[64];
  for (int i = 0; i < nranks; ++i) {
    in[i] = b->recv + displs[i];
    in_bytes[i] = (size_t)counts[i];
  }
  MPI_Barrier(MPI_COMM_WORLD);
  t0 = now_ms();
  r = mcgqDecodeAverageHost(in, in_bytes, nranks, b->avg, o->elements);
  DIE_IF(r != mcgqSuccess, "mcgqDecodeAverageHost: %s", mcgqGetLastErrorDetail());
  *dec = slowest(t0);
}

static result_t run_k(const options_t *o, double k, buffers_t *b, int rank,
                      int nranks) {
  result_t res;
  memset(&res, 0, sizeof res);
  res.k = k;
  setup_layers(o, k, b, rank);
  mcgqComm_t comm = NULL;
  DIE_IF(mcgqCommInitMpi(&comm, MPI_COMM_WORLD) != mcgqSuccess, "mcgqCommInitMpi");
  DIE_IF(mcgqCommSetExchangeMode(comm, o->mode) != mcgqSuccess, "%s",
         mcgqCommGetLastError(comm));
  DIE_IF(mcgqCommSetLayers(comm, b->layers, o->layers) != mcgqSuccess, "%s",
         mcgqCommGetLastError(comm));
  DIE_IF(mcgqEncodeGetMaxOutputSize(b->descs, o->layers, &b->send_cap) != mcgqSuccess,
         "max output size");
  b->send = malloc(b->send_cap);
  b->recv = malloc(b->send_cap * (size_t)nranks);
  DIE_IF(!b->send || !b->recv, "out of memory");
  DIE_IF(b->send_cap * (size_t)nranks > 0x7fffffff, "messages exceed MPI int counts");

  int total = o->warmup + o->iters;
  double *t = calloc((size_t)total * 5, sizeof *t);
  DIE_IF(!t, "out of memory");
  for (int it = 0; it < total; ++it) {
    memcpy(b->grad, b->orig, o->elements * sizeof(float)); /* not timed */
    mcgqStepStats_t st;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_ms();
    mcgqResult_t r = mcgqCommStep(comm, (uint64_t)it, 1, NULL, &st);
    DIE_IF(r != mcgqSuccess, "mcgqCommStep: %s", mcgqCommGetLastError(comm));
    double step = slowest(t0);
    res.bytes_sent = st.bytes_sent;
    res.wire_ratio = st.wire_ratio;
    res.paper_ratio = st.paper_ratio;

    memcpy(b->grad, b->orig, o->elements * sizeof(float));
    double enc, exch, dec;
    time_parts(o, b, nranks, &enc, &exch, &dec);

    memcpy(b->avg, b->orig, o->elements * sizeof(float));
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = now_ms();
    MPI_Allreduce(MPI_IN_PLACE, b->avg, (int)o->elements, MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    double ar = slowest(t0);
    if (it >= o->warmup) {
      int j = it - o->warmup;
      t[j] = step;
      t[o->iters + j] = enc;
      t[2 * o->iters + j] = exch;
      t[3 * o->iters + j] = dec;
      t[4 * o->iters + j] = ar;
    }
  }
  res.step_ms = median(t, o->iters);
  res.encode_ms = median(t + o->iters, o->iters);
  res.exchange_ms = median(t + 2 * o->iters, o->iters);
  res.decode_ms = median(t + 3 * o->iters, o->iters);
  res.allreduce_ms = median(t + 4 * o->iters, o->iters);
  free(t);
  free(b->send);
  free(b->recv);
  mcgqCommDestroy(comm);
  return res;
}

static void print_results(const options_t *o, const result_t *r, int count,
                          int nranks) {
  static const char *const names[] = {"all-gather", "two-stage", "reduce-scatter"};
  printf("# bench_step_mpi: %d ranks, %llu elements in %d layers, accumulate %d, "
         "mode %s, median of %d\n",
         nranks, (unsigned long long)o->elements, o->layers, o->accumulate,
         names[o->mode], o->iters);
  printf("#     K   step(ms) encode(ms) exchange(ms) decode(ms) allreduce(ms)  "
         "speedup   bytes/rank  wire  paper\n");
  for (int i = 0; i < count; ++i)
    printf("%7.2f %10.2f %10.2f %12.2f %10.2f %13.2f %8.2f %12llu %5.1f %6.1f\n",
           r[i].k, r[i].step_ms, r[i].encode_ms, r[i].exchange_ms, r[i].decode_ms,
           r[i].allreduce_ms, r[i].allreduce_ms / r[i].step_ms,
           (unsigned long long)r[i].bytes_sent, r[i].wire_ratio, r[i].paper_ratio);
  if (!o->json) return;
  FILE *f = fopen(o->json, "w");
  if (!f) {
    fprintf(stderr, "cannot write %s\n", o->json);
    return;
  }
  fprintf(f, "{\"bench\": \"bench_step_mpi\", \"ranks\": %d, \"elements\": %llu, "
             "\"layers\": %d, \"accumulate\": %d, \"mode\": %d, \"iters\": %d, \"results\": [",
          nranks, (unsigned long long)o->elements, o->layers, o->accumulate, o->mode,
          o->iters);
  for (int i = 0; i < count; ++i)
    fprintf(f, "%s\n  {\"k\": %g, \"step_ms\": %.4f, \"encode_ms\": %.4f, "
               "\"exchange_ms\": %.4f, \"decode_ms\": %.4f, \"allreduce_fp32_ms\": %.4f, "
               "\"bytes_sent\": %llu, \"wire_ratio\": %.4f, \"paper_ratio\": %.4f}",
            i ? "," : "", r[i].k, r[i].step_ms, r[i].encode_ms, r[i].exchange_ms,
            r[i].decode_ms, r[i].allreduce_ms, (unsigned long long)r[i].bytes_sent,
            r[i].wire_ratio, r[i].paper_ratio);
  fprintf(f, "\n]}\n");
  fclose(f);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  options_t o;
  DIE_IF(!parse(argc, argv, &o),
         "usage: bench_step_mpi [-e elements] [-l layers] [-n iters] [-w warmup] "
         "[-a accumulate] [-m mode 0|1|2] [-J out.json]");
  DIE_IF(nranks > 64, "at most 64 ranks");
  DIE_IF(o.elements > 0x7fffffff, "elements must fit MPI's int count");
  buffers_t b;
  memset(&b, 0, sizeof b);
  b.orig = malloc(o.elements * sizeof(float));
  b.grad = malloc(o.elements * sizeof(float));
  b.accum = calloc(o.elements, sizeof(float));
  b.avg = malloc(o.elements * sizeof(float));
  b.layers = calloc((size_t)o.layers, sizeof *b.layers);
  b.descs = calloc((size_t)o.layers, sizeof *b.descs);
  DIE_IF(!b.orig || !b.grad || !b.accum || !b.avg || !b.layers || !b.descs,
         "out of memory");
  fill_gradients(b.orig, o.elements, rank);
  memcpy(b.grad, b.orig, o.elements * sizeof(float));

  const double ks[2] = {0.1, 1.0};
  result_t r[2];
  for (int i = 0; i < 2; ++i) r[i] = run_k(&o, ks[i], &b, rank, nranks);
  if (rank == 0) print_results(&o, r, 2, nranks);
  free(b.orig);
  free(b.grad);
  free(b.accum);
  free(b.avg);
  free(b.layers);
  free(b.descs);
  MPI_Finalize();
  return 0;
}
