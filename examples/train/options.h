/* options.h - mcgq_train's command line. */
#ifndef MCGQ_TRAIN_OPTIONS_H_
#define MCGQ_TRAIN_OPTIONS_H_

#include <stdint.h>

#include "methods.h"
#include "model.h"

#define OPTIONS_MAX_METHODS 64

typedef struct {
  const char *data;        /* prefix: <data>.train.bin, <data>.test.bin */
  model_kind_t model;
  const char *hidden;      /* MLP hidden sizes */
  const char *methods[OPTIONS_MAX_METHODS];
  int method_count;
  int epochs;
  int batch;               /* rows per rank per step */
  int max_steps;           /* per epoch, 0 = the whole shard */
  double lr0;
  uint64_t seed;
  const char *out;         /* CSV path, NULL = none */
  int quiet;
  method_options_t method;
} options_t;

/* 0 = run, 1 = help printed, -1 = error printed (rank 0 prints). */
int options_parse(options_t *o, int argc, char **argv, int verbose);

#endif
