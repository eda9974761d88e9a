/* methods.c - parsing method specs and dispatching to the implementations. */
#include "methods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_k_list(method_t *me, const char *list, char *err, int err_len) {
  const model_t *m = me->model;
  int count = 0;
  const char *p = list;
  while (*p && count < MODEL_MAX_TENSORS) {
    char *end;
    double k = strtod(p, &end);
    if (end == p || !(k > 0.0 && k <= MCGQ_MAX_K)) break;
    me->k[count++] = k;
    if (*end == '\0') { p = end; break; }
    if (*end != '/') break;
    p = end + 1;
  }
  if (*p != '\0' || count == 0 || (count != 1 && count != m->tensors)) {
    snprintf(err, (size_t)err_len,
             "bad K list \"%s\": give one K in (0, 64] or one per tensor (%d)",
             list, m->tensors);
    return -1;
  }
  for (int t = count; t < m->tensors; ++t) me->k[t] = me->k[0];
  return 0;
}

static int parse_mcgq_spec(method_t *me, const char *spec, char *err, int err_len) {
  static const struct { const char *name; int accumulate; } modes[] = {
      {"mcgq-plain", MCGQ_ACCUM_NONE},
      {"mcgq-reset", MCGQ_ACCUM_RESET},
      {"mcgq-residual", MCGQ_ACCUM_RESIDUAL}};
  const char *colon = strchr(spec, ':');
  size_t head = colon ? (size_t)(colon - spec) : strlen(spec);
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; ++i) {
    size_t len = strlen(modes[i].name);
    if (head < len || strncmp(spec, modes[i].name, len) != 0) continue;
    if (head == len + 4 && strncmp(spec + len, "-dyn", 4) == 0)
      me->dynamic_k = 1;
    else if (head == len + 3 && strncmp(spec + len, "-2s", 3) == 0)
      me->exchange_mode = MCGQ_EXCHANGE_TWO_STAGE;
    else if (head != len)
      continue;
    me->kind = METHOD_MCGQ;
    me->accumulate = modes[i].accumulate;
    snprintf(me->family, sizeof me->family, "%.*s", (int)head, spec);
    return parse_k_list(me, colon ? colon + 1 : "1", err, err_len);
  }
  snprintf(err, (size_t)err_len, "unknown method \"%s\"", spec);
  return -1;
}

static int parse_spec(method_t *me, const char *spec, char *err, int err_len) {
  snprintf(me->spec, sizeof me->spec, "%s", spec);
  snprintf(me->family, sizeof me->family, "%.15s", spec);
  if (strcmp(spec, "fp32") == 0) {
    me->kind = METHOD_FP32;
  } else if (strcmp(spec, "qsgd2") == 0 || strcmp(spec, "qsgd4") == 0 ||
             strcmp(spec, "qsgd8") == 0) {
    me->kind = METHOD_QSGD;
    me->bits = spec[4] - '0';
  } else if (strcmp(spec, "efsign") == 0) {
    me->kind = METHOD_EFSIGN;
  } else if (strcmp(spec, "topk") == 0) {
    me->kind = METHOD_TOPK;
  } else {
    return parse_mcgq_spec(me, spec, err, err_len);
  }
  return 0;
}

int method_setup(method_t *me, const char *spec, model_t *model, MPI_Comm comm,
                 const method_options_t *opt, char *err, int err_len) {
  memset(me, 0, sizeof *me);
  me->model = model;
  me->comm = comm;
  me->opt = *opt;
  MPI_Comm_rank(comm, &me->rank);
  MPI_Comm_size(comm, &me->nranks);
  if (parse_spec(me, spec, err, err_len) != 0) return -1;
  return me->kind == METHOD_MCGQ ? mcgq_method_setup(me, err, err_len)
                                 : baseline_setup(me, err, err_len);
}

int method_exchange(method_t *me, uint64_t step, exchange_result_t *res,
                    char *err, int err_len) {
  memset(res, 0, sizeof *res);
  res->elements = me->model->nparams;
  return me->kind == METHOD_MCGQ ? mcgq_method_exchange(me, step, res, err, err_len)
                                 : baseline_exchange(me, step, res, err, err_len);
}

double method_mean_k(const method_t *me) {
  if (me->kind != METHOD_MCGQ) return 0.0;
  double weighted = 0.0;
  for (int t = 0; t < me->model->tensors; ++t)
    weighted += (me->dynamic_k ? me->kstate[t].k : me->k[t]) * (double)me->model->size[t];
  return weighted / (double)me->model->nparams;
}

void method_free(method_t *me) {
  if (me->mcomm) mcgqCommDestroy(me->mcomm);
  free(me->error);
  free(me->accum);
  free(me->sendbuf);
  free(me->recvbuf);
  free(me->order);
  memset(me, 0, sizeof *me);
}
