/* options.c - parsing mcgq_train's command line. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: mcgq_train --data PREFIX [options]\n"
    "  --data PREFIX     reads PREFIX.train.bin and PREFIX.test.bin (scripts/export_data.py)\n"
    "  --model M         logreg (paper section 4.1 objective) | mlp   [logreg]\n"
    "  --hidden LIST     MLP hidden sizes                              [128,64]\n"
    "  --methods LIST    comma-separated specs (see methods.h)         [fp32]\n"
    "                    fp32 qsgd2 qsgd4 qsgd8 efsign topk\n"
    "                    mcgq-plain:K mcgq-reset:K mcgq-residual:K, +-dyn, K=k1/k2/..\n"
    "  --epochs E        [10]\n"
    "  --batch B         rows per rank per step                       [16]\n"
    "  --max-steps S     steps per epoch cap, 0 = whole shard          [0]\n"
    "  --lr0 LR          lr = LR / (1 + lambda*(ep*N_T + t)), lambda = 1/N_T for\n"
    "                    logreg (paper), 0 for the MLP (constant)       [1.0]\n"
    "  --seed S          [1]\n"
    "  --topk-frac F     top-k kept fraction                          [0.01]\n"
    "  --dk-scale C      dynamic K: delta_K = C * n of the tensor       [0.5]\n"
    "  --k-min A --k-max B  dynamic K range                         [0.05, 2]\n"
    "  --out FILE        CSV, one row per method and epoch\n"
    "  --quiet           no progress lines\n";

static int want(int i, int argc, char **argv, int verbose) {
  if (i + 1 < argc) return 1;
  if (verbose) fprintf(stderr, "mcgq_train: %s needs a value\n", argv[i]);
  return 0;
}

static int split_methods(options_t *o, char *list, int verbose) {
  o->method_count = 0;
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    if (o->method_count == OPTIONS_MAX_METHODS) {
      if (verbose) fprintf(stderr, "mcgq_train: too many methods\n");
      return -1;
    }
    o->methods[o->method_count++] = tok;
  }
  return o->method_count ? 0 : -1;
}

static int parse_number(const char *s, double lo, double hi, double *v) {
  char *end;
  *v = strtod(s, &end);
  return (end != s && *end == '\0' && *v >= lo && *v <= hi) ? 0 : -1;
}

int options_parse(options_t *o, int argc, char **argv, int verbose) {
  static char fp32[] = "fp32";
  memset(o, 0, sizeof *o);
  o->model = MODEL_LOGREG;
  o->hidden = "128,64";
  o->methods[0] = fp32;
  o->method_count = 1;
  o->epochs = 10;
  o->batch = 16;
  o->lr0 = 1.0;
  o->seed = 1;
  o->method = (method_options_t){0.01, 0.5, 0.05, 2.0, 1};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    double v = 0;
    int bad = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (verbose) fputs(usage, stdout);
      return 1;
    } else if (!strcmp(a, "--quiet")) {
      o->quiet = 1;
      continue;
    }
    if (!want(i, argc, argv, verbose)) return -1;
    const char *val = argv[++i];
    if (!strcmp(a, "--data")) o->data = val;
    else if (!strcmp(a, "--model")) {
      if (!strcmp(val, "logreg")) o->model = MODEL_LOGREG;
      else if (!strcmp(val, "mlp")) o->model = MODEL_MLP;
      else bad = 1;
    } else if (!strcmp(a, "--hidden")) o->hidden = val;
    else if (!strcmp(a, "--methods")) bad = split_methods(o, argv[i], verbose) != 0;
    else if (!strcmp(a, "--epochs")) { bad = parse_number(val, 1, 100000, &v); o->epochs = (int)v; }
    else if (!strcmp(a, "--batch")) { bad = parse_number(val, 1, 1 << 20, &v); o->batch = (int)v; }
    else if (!strcmp(a, "--max-steps")) { bad = parse_number(val, 0, 1e9, &v); o->max_steps = (int)v; }
    else if (!strcmp(a, "--lr0")) bad = parse_number(val, 1e-12, 1e6, &o->lr0);
    else if (!strcmp(a, "--seed")) { bad = parse_number(val, 0, 9e15, &v); o->seed = (uint64_t)v; }
    else if (!strcmp(a, "--topk-frac")) bad = parse_number(val, 1e-9, 1, &o->method.topk_frac);
    else if (!strcmp(a, "--dk-scale")) bad = parse_number(val, 0, 1e12, &o->method.dk_scale);
    else if (!strcmp(a, "--k-min")) bad = parse_number(val, 1e-9, 64, &o->method.k_min);
    else if (!strcmp(a, "--k-max")) bad = parse_number(val, 1e-9, 64, &o->method.k_max);
    else if (!strcmp(a, "--out")) o->out = val;
    else {
      if (verbose) fprintf(stderr, "mcgq_train: unknown option %s\n%s", a, usage);
      return -1;
    }
    if (bad) {
      if (verbose) fprintf(stderr, "mcgq_train: bad value for %s: %s\n", a, val);
      return -1;
    }
  }
  o->method.seed = o->seed;
  if (!o->data) {
    if (verbose) fprintf(stderr, "mcgq_train: --data is required\n%s", usage);
    return -1;
  }
  return 0;
}
