/*
 * c_train_step.c - the smallest data-parallel training loop over the C ABI:
 * every MPI rank fits the same linear model y = w.x + b to its own shard of
 * data, and mcgqCommStep replaces the all-reduce of the gradients.
 *
 *   mpirun -np 2 ./c_train_step
 *
 * Exit status 0 when the loss fell by at least 100x (so CI can run it).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <mcgq.h>
#include <mcgq_mpi.h>

enum { DIM = 32, SAMPLES = 256, STEPS = 300 };

/* Deterministic pseudo-random numbers in [-1, 1). */
static float uniform(unsigned long long *state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*state >> 11) / 4503599627370496.0 - 1.0);
}

typedef struct {
  float x[SAMPLES][DIM], y[SAMPLES];
} shard_t;

static void make_shard(int rank, shard_t *s) {
  unsigned long long truth = 42, data = 1000 + (unsigned long long)rank;
  float w_true[DIM];
  for (int j = 0; j < DIM; ++j) w_true[j] = uniform(&truth);
  for (int i = 0; i < SAMPLES; ++i) {
    s->y[i] = 0.5f;
    for (int j = 0; j < DIM; ++j) {
      s->x[i][j] = uniform(&data);
      s->y[i] += w_true[j] * s->x[i][j];
    }
  }
}

/* Mean squared error and its gradient on the local shard. */
static float loss_and_grad(const shard_t *s, const float *w, float b,
                           float *gw, float *gb) {
  double loss = 0.0;
  for (int j = 0; j < DIM; ++j) gw[j] = 0.0f;
  *gb = 0.0f;
  for (int i = 0; i < SAMPLES; ++i) {
    float err = b - s->y[i];
    for (int j = 0; j < DIM; ++j) err += w[j] * s->x[i][j];
    loss += (double)err * err;
    for (int j = 0; j < DIM; ++j) gw[j] += 2.0f * err * s->x[i][j] / SAMPLES;
    *gb += 2.0f * err / SAMPLES;
  }
  return (float)(loss / SAMPLES);
}

#define CHECK(call)                                                       \
  do {                                                                    \
    mcgqResult_t r_ = (call);                                             \
    if (r_ != mcgqSuccess) {                                              \
      fprintf(stderr, "%s failed: %s (%s)\n", #call,                      \
              mcgqGetErrorString(r_), comm ? mcgqCommGetLastError(comm) : ""); \
      MPI_Abort(MPI_COMM_WORLD, 1);                                       \
    }                                                                     \
  } while (0)

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  static shard_t shard;
  make_shard(rank, &shard);

  float w[DIM] = {0}, b = 0.0f;
  float gw[DIM], gb, accum_w[DIM] = {0};
  mcgqComm_t comm = NULL;
  CHECK(mcgqCommInitMpi(&comm, MPI_COMM_WORLD));

  /* Layer 0: the weights, compressed to K = 0.25 with error feedback.
   * Layer 1: the bias, one value, sent exactly enough with K = 1. */
  mcgqLayer_t layers[2] = {{0}, {0}};
  const mcgqLayerConfig_t defaults = MCGQ_LAYER_CONFIG_INITIALIZER;
  for (int i = 0; i < 2; ++i) {
    layers[i].struct_size = sizeof(mcgqLayer_t);
    layers[i].cfg = defaults;
  }
  layers[0].grad = gw;
  layers[0].accum = accum_w;
  layers[0].n = DIM;
  layers[0].cfg.k = 0.25;
  layers[0].cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
  layers[1].grad = &gb;
  layers[1].n = 1;
  CHECK(mcgqCommSetLayers(comm, layers, 2));

  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < STEPS; ++step) {
    last = loss_and_grad(&shard, w, b, gw, &gb);
    if (step == 0) first = last;
    mcgqStepStats_t stats;
    CHECK(mcgqCommStep(comm, (uint64_t)step, 7, NULL, &stats)); /* gw, gb averaged */
    for (int j = 0; j < DIM; ++j) w[j] -= 0.1f * gw[j];
    b -= 0.1f * gb;
    if (rank == 0 && step % 100 == 0)
      printf("step %3d  loss %.6f  wire ratio %.1f\n", step, last, stats.wire_ratio);
  }
  /* Parameters stay identical on every rank: the averages are bit-identical. */
  if (rank == 0) printf("loss %.6f -> %.6f\n", first, last);
  float local = last, worst = 0.0f;
  MPI_Allreduce(&local, &worst, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
  mcgqCommDestroy(comm);
  MPI_Finalize();
  return worst < first / 100.0f ? 0 : 1;
}
