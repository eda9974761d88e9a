/* main.c - mcgq_train: data-parallel SGD on P MPI ranks, comparing MCGQ
 * (through the library's exchange layer) with fp32 SGD and other
 * compressors.  Every rank holds a shard of the training set, computes the
 * gradient of its mini-batch, and the method averages the gradients; all
 * ranks then take the same step, so the model stays identical everywhere.
 * Runs are deterministic: fixed seeds for init, shuffling and quantization. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "data.h"
#include "methods.h"
#include "model.h"
#include "mpi_count.h"
#include "options.h"
#include "rng.h"

typedef struct {
  options_t opt;
  int rank, nranks;
  dataset_t train, test;
  FILE *csv;
  const char *model_name, *data_name;
} run_t;

static void die(const run_t *run, const char *msg) {
  fprintf(stderr, "mcgq_train (rank %d): %s\n", run->rank, msg);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Full-data metrics: every rank evaluates its shard, sums are reduced. */
static void evaluate(const run_t *run, model_t *m, const dataset_t *ds,
                     double *mean_loss, double *accuracy) {
  double local[3], global[3];
  uint64_t correct;
  model_evaluate(m, ds, &local[0], &correct);
  local[1] = (double)correct;
  local[2] = (double)ds->rows;
  MPI_Allreduce(local, global, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  (void)run;
  *mean_loss = global[0] / global[2];
  *accuracy = global[1] / global[2];
}

static void shuffle(uint64_t *idx, uint64_t n, rng_t *r) {
  for (uint64_t i = 0; i < n; ++i) idx[i] = i;
  for (uint64_t i = n; i > 1; --i) {
    uint64_t j = rng_next(r) % i;
    uint64_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

/* The paper's schedule: lr0 / (1 + lambda (ep N_T + t)), t counting the
 * samples of this epoch processed by all ranks (Mem-SGD steps one sample at
 * a time; with mini-batches the decay per sample stays the same). */
static double learning_rate(const run_t *run, const model_t *m, int epoch,
                            uint64_t samples_in_epoch) {
  double seen = (double)epoch * (double)run->train.total_rows + (double)samples_in_epoch;
  return run->opt.lr0 / (1.0 + m->lambda * seen);
}

static uint64_t steps_per_epoch(const run_t *run) {
  uint64_t local = run->train.rows / (uint64_t)run->opt.batch, steps;
  MPI_Allreduce(&local, &steps, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  if (run->opt.max_steps > 0 && steps > (uint64_t)run->opt.max_steps)
    steps = (uint64_t)run->opt.max_steps;
  return steps;
}

typedef struct {
  uint64_t steps, bytes_total, epoch_bytes;
  double epoch_paper_bits, epoch_elements;
  mpi_count_t mpi_start;
  double start_time, lr;
} progress_t;

static uint64_t payload_bytes(const method_t *me, const mpi_count_t *c) {
  if (me->kind == METHOD_FP32) return c->allreduce_bytes;
  if (me->kind == METHOD_MCGQ) return c->allgatherv_bytes;
  return c->allgather_bytes;
}

static void report_epoch(const run_t *run, method_t *me, model_t *m, int epoch,
                         uint64_t epoch_steps, progress_t *p) {
  csv_row_t row;
  memset(&row, 0, sizeof row);
  mpi_count_t now = mpi_count_get();
  mpi_count_t d = {now.allgatherv_bytes - p->mpi_start.allgatherv_bytes,
                   now.allgather_bytes - p->mpi_start.allgather_bytes,
                   now.allreduce_bytes - p->mpi_start.allreduce_bytes, 0};
  row.model = run->model_name;
  row.data = run->data_name;
  row.method = me->family;
  row.spec = me->spec;
  row.k = method_mean_k(me);
  row.epoch = epoch;
  row.steps = p->steps;
  row.lr = p->lr;
  evaluate(run, m, &run->train, &row.train_loss, &row.train_acc);
  row.train_loss += model_regularizer(m);
  evaluate(run, m, &run->test, &row.test_loss, &row.test_acc);
  row.bytes_per_step = epoch_steps ? (double)p->epoch_bytes / (double)epoch_steps : 0.0;
  row.bytes_total = p->bytes_total;
  row.mpi_bytes_total = payload_bytes(me, &d);
  row.mpi_control_total = d.allgatherv_bytes + d.allgather_bytes + d.allreduce_bytes -
                          row.mpi_bytes_total;
  row.paper_ratio = p->epoch_paper_bits > 0 ? 32.0 * p->epoch_elements / p->epoch_paper_bits : 0;
  row.wire_ratio = p->epoch_bytes ? 4.0 * p->epoch_elements / (double)p->epoch_bytes : 0;
  row.seconds = MPI_Wtime() - p->start_time;
  if (run->rank == 0 && run->csv) csv_write(run->csv, &row);
  if (run->rank == 0 && !run->opt.quiet)
    printf("[%s/%s] %-22s epoch %3d  loss %.5f  test acc %6.2f%%  bytes/step %9.0f  "
           "ratio %7.2f (wire %7.2f)  K %.3f  %.1fs\n",
           row.model, row.data, me->spec, epoch, row.train_loss, 100.0 * row.test_acc,
           row.bytes_per_step, row.paper_ratio, row.wire_ratio, row.k, row.seconds);
  fflush(stdout);
  p->epoch_bytes = 0;
  p->epoch_paper_bits = p->epoch_elements = 0;
}

static void train_step(const run_t *run, method_t *me, model_t *m, const uint64_t *batch,
                       double lr, progress_t *p) {
  char err[512];
  exchange_result_t res;
  model_gradient(m, &run->train, batch, run->opt.batch);
  mpi_count_enable(1);
  if (method_exchange(me, p->steps, &res, err, sizeof err) != 0) die(run, err);
  mpi_count_enable(0);
  for (uint64_t i = 0; i < m->nparams; ++i) m->params[i] -= (float)lr * m->grads[i];
  p->steps++;
  p->bytes_total += res.bytes_sent;
  p->epoch_bytes += res.bytes_sent;
  p->epoch_paper_bits += res.paper_bits;
  p->epoch_elements += (double)res.elements;
  p->lr = lr;
}

static void run_method(const run_t *run, const char *spec) {
  char err[512];
  model_t m;
  method_t me;
  if (model_create(&m, run->opt.model, &run->train, run->opt.hidden, run->opt.seed, err,
                   sizeof err) != 0)
    die(run, err);
  if (method_setup(&me, spec, &m, MPI_COMM_WORLD, &run->opt.method, err, sizeof err) != 0)
    die(run, err);
  uint64_t steps = steps_per_epoch(run);
  uint64_t *order = malloc(run->train.rows * sizeof(uint64_t) + 1);
  if (!order) die(run, "out of memory");
  progress_t p;
  memset(&p, 0, sizeof p);
  p.mpi_start = mpi_count_get();
  p.start_time = MPI_Wtime();
  report_epoch(run, &me, &m, 0, 0, &p);
  uint64_t global_batch = (uint64_t)run->opt.batch * (uint64_t)run->nranks;
  for (int ep = 0; ep < run->opt.epochs; ++ep) {
    rng_t r = rng_make(run->opt.seed, RNG_SHUFFLE, (uint64_t)ep, (uint64_t)run->rank);
    shuffle(order, run->train.rows, &r);
    for (uint64_t s = 0; s < steps; ++s)
      train_step(run, &me, &m, order + s * (uint64_t)run->opt.batch,
                 learning_rate(run, &m, ep, s * global_batch), &p);
    report_epoch(run, &me, &m, ep + 1, steps, &p);
  }
  free(order);
  method_free(&me);
  model_destroy(&m);
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static void load_data(run_t *run) {
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s.train.bin", run->opt.data);
  if (dataset_load_shard(path, run->rank, run->nranks, &run->train, err, sizeof err) != 0)
    die(run, err);
  snprintf(path, sizeof path, "%s.test.bin", run->opt.data);
  if (dataset_load_shard(path, run->rank, run->nranks, &run->test, err, sizeof err) != 0)
    die(run, err);
  if (run->test.cols != run->train.cols || run->test.classes != run->train.classes)
    die(run, "train and test files disagree on columns or classes");
  if (run->train.rows < (uint64_t)run->opt.batch) die(run, "shard smaller than one batch");
}

int main(int argc, char **argv) {
  run_t run;
  memset(&run, 0, sizeof run);
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &run.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &run.nranks);
  int parsed = options_parse(&run.opt, argc, argv, run.rank == 0);
  if (parsed != 0) {
    MPI_Finalize();
    return parsed > 0 ? 0 : 2;
  }
  load_data(&run);
  run.model_name = run.opt.model == MODEL_LOGREG ? "logreg" : "mlp";
  run.data_name = base_name(run.opt.data);
  if (run.rank == 0 && run.opt.out && !(run.csv = csv_open(run.opt.out)))
    die(&run, "cannot write the CSV file");
  if (run.rank == 0 && !run.opt.quiet)
    printf("mcgq_train: %s on %s, %llu train rows (%d ranks x batch %d), %d epochs\n",
           run.model_name, run.data_name, (unsigned long long)run.train.total_rows,
           run.nranks, run.opt.batch, run.opt.epochs);
  for (int i = 0; i < run.opt.method_count; ++i) run_method(&run, run.opt.methods[i]);
  if (run.csv) fclose(run.csv);
  dataset_free(&run.train);
  dataset_free(&run.test);
  MPI_Finalize();
  return 0;
}
