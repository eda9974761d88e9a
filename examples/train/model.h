/* model.h - the demo's models.  Parameters and gradients are one contiguous
 * float array each, cut into tensors ("layers"); every tensor becomes one
 * mcgq layer (its own K, accumulator and dynamic-K state). */
#ifndef MCGQ_TRAIN_MODEL_H_
#define MCGQ_TRAIN_MODEL_H_

#include <stdint.h>

#include "data.h"

#define MODEL_MAX_TENSORS 16
#define MODEL_MAX_DIMS 8

typedef enum { MODEL_LOGREG = 0, MODEL_MLP = 1 } model_kind_t;

typedef struct {
  model_kind_t kind;
  int tensors;
  uint64_t size[MODEL_MAX_TENSORS];
  uint64_t offset[MODEL_MAX_TENSORS];
  char name[MODEL_MAX_TENSORS][16];
  uint64_t nparams;
  float *params;
  float *grads;
  /* logistic regression: the paper's L2 weight, lambda = 1/N_T */
  double lambda;
  /* MLP: dims[0] inputs, dims[1..depth-1] hidden (ReLU), dims[depth] classes */
  int depth;
  int dims[MODEL_MAX_DIMS + 1];
  float *work;  /* MLP: activations and their gradients of one sample */
  double *acc;  /* gradient accumulator in double (nparams values) */
} model_t;

/* hidden: comma-separated hidden sizes for the MLP ("128,64"); ignored for
 * logistic regression (which needs 2 classes). Returns 0 or -1 (message). */
int model_create(model_t *m, model_kind_t kind, const dataset_t *train,
                 const char *hidden, uint64_t seed, char *err, int err_len);
void model_destroy(model_t *m);

/* grads = mean gradient over the rows idx[0..count) of ds, plus the
 * regularizer's gradient. */
void model_gradient(model_t *m, const dataset_t *ds, const uint64_t *idx,
                    int count);

/* Sums of the per-row loss (without regularizer) and of correct predictions
 * over all rows of ds. */
void model_evaluate(model_t *m, const dataset_t *ds, double *loss_sum,
                    uint64_t *correct);

/* The regularizer's value (lambda/2 ||x||^2 for logistic regression). */
double model_regularizer(const model_t *m);

/* Internal to the model files. */
int logreg_create(model_t *m, const dataset_t *train, char *err, int err_len);
void logreg_gradient(model_t *m, const dataset_t *ds, const uint64_t *idx,
                     int count);
void logreg_evaluate(model_t *m, const dataset_t *ds, double *loss_sum,
                     uint64_t *correct);
int mlp_create(model_t *m, const dataset_t *train, const char *hidden,
               uint64_t seed, char *err, int err_len);
void mlp_gradient(model_t *m, const dataset_t *ds, const uint64_t *idx,
                  int count);
void mlp_evaluate(model_t *m, const dataset_t *ds, double *loss_sum,
                  uint64_t *correct);

#endif
