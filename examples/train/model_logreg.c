/* model_logreg.c - the paper's section 4.1 objective:
 *   f(x) = 1/N_T sum_i log(1 + exp(-b_i a_i.x)) + lambda/2 ||x||^2,
 * lambda = 1/N_T, b_i in {-1, +1} (label 1 -> +1, label 0 -> -1), no bias
 * term (as in the paper and Mem-SGD).  x starts at 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"

/* log(1 + exp(-t)) without overflow for large |t|. */
static double softplus_neg(double t) {
  return t > 0 ? log1p(exp(-t)) : -t + log1p(exp(t));
}

static double margin(const model_t *m, const dataset_t *ds, uint64_t row) {
  const float *a = ds->x + row * ds->cols;
  double dot = 0.0;
  for (uint64_t j = 0; j < ds->cols; ++j) dot += (double)a[j] * m->params[j];
  return ds->y[row] ? dot : -dot;
}

int logreg_create(model_t *m, const dataset_t *train, char *err, int err_len) {
  if (train->classes != 2) {
    snprintf(err, (size_t)err_len, "logistic regression needs 2 classes, data has %u",
             train->classes);
    return -1;
  }
  m->tensors = 1;
  m->size[0] = train->cols;
  snprintf(m->name[0], sizeof m->name[0], "weight");
  m->nparams = train->cols;
  m->lambda = 1.0 / (double)train->total_rows;
  m->params = calloc(m->nparams, sizeof(float));
  m->grads = calloc(m->nparams, sizeof(float));
  m->acc = calloc(m->nparams, sizeof(double));
  if (!m->params || !m->grads || !m->acc) {
    snprintf(err, (size_t)err_len, "out of memory");
    return -1;
  }
  return 0;
}

void logreg_gradient(model_t *m, const dataset_t *ds, const uint64_t *idx,
                     int count) {
  uint64_t d = ds->cols;
  double *acc = m->acc;
  for (uint64_t j = 0; j < d; ++j) acc[j] = 0.0;
  for (int s = 0; s < count; ++s) {
    uint64_t row = idx[s];
    /* d/dx log(1+exp(-b a.x)) = -b a / (1 + exp(b a.x)) */
    double coef = -1.0 / (1.0 + exp(margin(m, ds, row)));
    if (!ds->y[row]) coef = -coef;
    const float *a = ds->x + row * d;
    for (uint64_t j = 0; j < d; ++j) acc[j] += coef * a[j];
  }
  for (uint64_t j = 0; j < d; ++j)
    m->grads[j] = (float)(acc[j] / count + m->lambda * m->params[j]);
}

void logreg_evaluate(model_t *m, const dataset_t *ds, double *loss_sum,
                     uint64_t *correct) {
  double loss = 0.0;
  uint64_t right = 0;
  for (uint64_t row = 0; row < ds->rows; ++row) {
    double t = margin(m, ds, row);
    loss += softplus_neg(t);
    right += t > 0;
  }
  *loss_sum = loss;
  *correct = right;
}
