/* method_mcgq.c - MCGQ through the library's exchange layer: one mcgq layer
 * per model tensor, each with its own K (per-layer K), accumulator and
 * dynamic-K state; mcgqCommStep encodes, exchanges over MPI and writes the
 * all-rank average back into model->grads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcgq_mpi.h"
#include "methods.h"

static int mcgq_error(const method_t *me, mcgqResult_t rc, const char *what,
                      char *err, int err_len) {
  const char *detail = me->mcomm ? mcgqCommGetLastError(me->mcomm) : mcgqGetLastErrorDetail();
  snprintf(err, (size_t)err_len, "%s: %s (%s)", what, mcgqGetErrorString(rc), detail);
  return -1;
}

static mcgqLayerConfig_t layer_config(const method_t *me, int t) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = me->k[t];
  cfg.accumulate = me->accumulate;
  cfg.dynamic_k = me->dynamic_k;
  cfg.k_min = me->opt.k_min < cfg.k ? me->opt.k_min : cfg.k;
  cfg.k_max = me->opt.k_max > cfg.k ? me->opt.k_max : cfg.k;
  /* The W1 distance of a layer scales like 1/n (both distributions are
   * normalized to unit L1 mass over n values), so a step proportional to n
   * moves K by comparable amounts in layers of every size. */
  cfg.delta_k = me->opt.dk_scale * (double)me->model->size[t];
  return cfg;
}

int mcgq_method_setup(method_t *me, char *err, int err_len) {
  model_t *m = me->model;
  if (me->accumulate != MCGQ_ACCUM_NONE) {
    me->accum = calloc(m->nparams, sizeof(float));
    if (!me->accum) {
      snprintf(err, (size_t)err_len, "out of memory");
      return -1;
    }
  }
  mcgqLayer_t layers[MODEL_MAX_TENSORS];
  for (int t = 0; t < m->tensors; ++t) {
    memset(&layers[t], 0, sizeof layers[t]);
    layers[t].struct_size = (uint32_t)sizeof(mcgqLayer_t);
    layers[t].grad = m->grads + m->offset[t];
    layers[t].accum = me->accum ? me->accum + m->offset[t] : NULL;
    layers[t].n = m->size[t];
    layers[t].cfg = layer_config(me, t);
    if (me->dynamic_k) {
      mcgqResult_t rc = mcgqKStateInit(&layers[t].cfg, &me->kstate[t]);
      if (rc != mcgqSuccess) return mcgq_error(me, rc, "mcgqKStateInit", err, err_len);
      layers[t].kstate = &me->kstate[t];
    }
  }
  mcgqResult_t rc = mcgqCommInitMpi(&me->mcomm, me->comm);
  if (rc != mcgqSuccess) return mcgq_error(me, rc, "mcgqCommInitMpi", err, err_len);
  rc = mcgqCommSetLayers(me->mcomm, layers, m->tensors);
  if (rc != mcgqSuccess) return mcgq_error(me, rc, "mcgqCommSetLayers", err, err_len);
  if (me->exchange_mode != MCGQ_EXCHANGE_ALL_GATHER) {
    rc = mcgqCommSetExchangeMode(me->mcomm, me->exchange_mode);
    if (rc != mcgqSuccess) return mcgq_error(me, rc, "mcgqCommSetExchangeMode", err, err_len);
  }
  return 0;
}

int mcgq_method_exchange(method_t *me, uint64_t step, exchange_result_t *res,
                         char *err, int err_len) {
  mcgqStepStats_t stats;
  memset(&stats, 0, sizeof stats);
  mcgqResult_t rc = mcgqCommStep(me->mcomm, step, me->opt.seed, NULL, &stats);
  if (rc != mcgqSuccess) return mcgq_error(me, rc, "mcgqCommStep", err, err_len);
  res->bytes_sent = stats.bytes_sent;
  res->elements = stats.elements;
  /* paper_ratio = 32 n / (stream bits + 32 per layer): recover the bits */
  res->paper_bits = stats.paper_ratio > 0 ? 32.0 * (double)stats.elements / stats.paper_ratio
                                          : 0.0;
  return 0;
}
