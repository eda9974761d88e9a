/* model.c - dispatch between the two models, and what they share. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

int model_create(model_t *m, model_kind_t kind, const dataset_t *train,
                 const char *hidden, uint64_t seed, char *err, int err_len) {
  memset(m, 0, sizeof *m);
  m->kind = kind;
  return kind == MODEL_LOGREG ? logreg_create(m, train, err, err_len)
                              : mlp_create(m, train, hidden, seed, err, err_len);
}

void model_destroy(model_t *m) {
  free(m->params);
  free(m->grads);
  free(m->work);
  free(m->acc);
  memset(m, 0, sizeof *m);
}

void model_gradient(model_t *m, const dataset_t *ds, const uint64_t *idx,
                    int count) {
  if (m->kind == MODEL_LOGREG)
    logreg_gradient(m, ds, idx, count);
  else
    mlp_gradient(m, ds, idx, count);
}

void model_evaluate(model_t *m, const dataset_t *ds, double *loss_sum,
                    uint64_t *correct) {
  if (m->kind == MODEL_LOGREG)
    logreg_evaluate(m, ds, loss_sum, correct);
  else
    mlp_evaluate(m, ds, loss_sum, correct);
}

double model_regularizer(const model_t *m) {
  double sq = 0.0;
  for (uint64_t i = 0; i < m->nparams; ++i) sq += (double)m->params[i] * m->params[i];
  return 0.5 * m->lambda * sq;
}
