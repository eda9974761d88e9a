/* methods.h - gradient exchange methods compared by the demo.
 *
 * Every method turns each rank's local gradient (model->grads) into the
 * average over all ranks, identical on every rank.  MCGQ goes through the
 * library's exchange layer (mcgqComm over MPI); the baselines are written
 * here and exchange with MPI directly.  A baseline's message has a fixed
 * size, so it is one MPI_Allgather of exactly the bytes it reports as sent.
 *
 * Specs (command line):
 *   fp32                      MPI_Allreduce of the float gradients
 *   qsgd2 | qsgd4 | qsgd8     QSGD, b bits per value (sign + level), buckets
 *                             of 512 with their L2 norm, s = 2^(b-1)-1 levels
 *   efsign                    signSGD with error feedback, scale mean|p|
 *   topk                      top-k by magnitude with error feedback
 *                             (k = --topk-frac of each tensor, index+value)
 *   mcgq-plain:K              MCGQ_ACCUM_NONE (Alg 2)
 *   mcgq-reset:K              MCGQ_ACCUM_RESET (Alg 4, accumulated)
 *   mcgq-residual:K           MCGQ_ACCUM_RESIDUAL (residual error feedback)
 *   any mcgq spec + "-dyn"    dynamic K (Alg 3) starting at K
 *   any mcgq spec + "-2s"     the two-stage exchange (compressed reduce-scatter,
 *                             owner-side error feedback, all-gather of shards)
 *                             instead of the all-gather of whole messages
 *   K may be one value or one per tensor separated by '/' (per-layer K).
 */
#ifndef MCGQ_TRAIN_METHODS_H_
#define MCGQ_TRAIN_METHODS_H_

#include <mpi.h>
#include <stdint.h>

#include "mcgq.h"
#include "model.h"

typedef enum {
  METHOD_FP32,
  METHOD_QSGD,
  METHOD_EFSIGN,
  METHOD_TOPK,
  METHOD_MCGQ
} method_kind_t;

typedef struct {
  double topk_frac;  /* top-k: kept fraction of each tensor */
  double dk_scale;   /* dynamic K: delta_K of a tensor = dk_scale * n */
  double k_min, k_max;
  uint64_t seed;
} method_options_t;

typedef struct {
  uint64_t bytes_sent;  /* this rank's message bytes in the step */
  uint64_t elements;
  double paper_bits;    /* the paper's stream bits (MCGQ) or message bits */
} exchange_result_t;

typedef struct {
  method_kind_t kind;
  char spec[64];
  char family[16];       /* the CSV's method column: fp32, qsgd4, mcgq-reset ... */
  int bits;              /* QSGD */
  int accumulate;        /* MCGQ_ACCUM_* */
  int dynamic_k;
  double k[MODEL_MAX_TENSORS];
  method_options_t opt;
  model_t *model;
  MPI_Comm comm;
  int rank, nranks;
  float *error;          /* efsign/topk: error-feedback memory */
  float *accum;          /* mcgq: accumulators */
  mcgqKState_t kstate[MODEL_MAX_TENSORS];
  mcgqComm_t mcomm;
  int32_t exchange_mode;  /* mcgq: MCGQ_EXCHANGE_* of the communicator */
  unsigned char *sendbuf, *recvbuf;
  uint64_t message_bytes; /* baselines: fixed message size */
  uint64_t *order;        /* top-k selection scratch */
} method_t;

/* Parses spec and prepares the method for model on comm.  0 or -1 (err). */
int method_setup(method_t *me, const char *spec, model_t *model, MPI_Comm comm,
                 const method_options_t *opt, char *err, int err_len);

/* Replaces model->grads by the all-rank average.  0 or -1 (err). */
int method_exchange(method_t *me, uint64_t step, exchange_result_t *res,
                    char *err, int err_len);

/* Elementwise-weighted mean K over the tensors (the current dynamic K where
 * it applies); 0 for the baselines. */
double method_mean_k(const method_t *me);

void method_free(method_t *me);

/* Internal to the method files. */
int baseline_setup(method_t *me, char *err, int err_len);
int baseline_exchange(method_t *me, uint64_t step, exchange_result_t *res,
                      char *err, int err_len);
int mcgq_method_setup(method_t *me, char *err, int err_len);
int mcgq_method_exchange(method_t *me, uint64_t step, exchange_result_t *res,
                         char *err, int err_len);

#endif
