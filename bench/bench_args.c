/* bench_args.c - command-line flags of mcgq_bench (nccl-tests style). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [flags]\n"
          "  -b BYTES   smallest input size (fp32 bytes; K/M/G suffixes), default 1K\n"
          "  -e BYTES   largest input size, default 16M\n"
          "  -f FACTOR  size multiplier between rows, default 4\n"
          "  -n ITERS   timed iterations per size (median reported), default 5 (cpu), 20 (gpu)\n"
          "  -w ITERS   warm-up iterations, default 1\n"
          "  -c 0|1     check against the CPU reference (#wrong column), default 1\n"
          "  -k LIST    sampling amounts K, comma separated, default 1\n"
          "  -a ALGO    cpu | fused | sample (GPU algorithms need a CUDA build), default cpu\n"
          "  -d DIST    normal | heavy | sparse input values, default normal\n"
          "  -m MODEL   time a whole step over a layer table instead of the size sweep:\n"
          "             resnet50 | bert-base | gpt2-small | PATH (repeatable)\n"
          "  -J FILE    also write the results as JSON\n"
          "  -h         this help\n",
          prog);
}

/* Sizes like nccl-tests: 64, 4K, 16M, 1G (powers of 1024). */
static int parse_bytes(const char *s, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  uint64_t mult = 1;
  switch (*end) {
    case 'K': case 'k': mult = 1ull << 10; ++end; break;
    case 'M': case 'm': mult = 1ull << 20; ++end; break;
    case 'G': case 'g': mult = 1ull << 30; ++end; break;
    default: break;
  }
  if (*end != '\0' || v == 0 || v > UINT64_MAX / mult) return -1;
  *out = v * mult;
  return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static int parse_k_list(const char *s, bench_options_t *opt) {
  opt->k_count = 0;
  const char *p = s;
  while (*p) {
    char *end = NULL;
    errno = 0;
    double k = strtod(p, &end);
    if (errno || end == p || !(k > 0.0 && k <= MCGQ_MAX_K)) return -1;
    if (opt->k_count == BENCH_MAX_K) return -1;
    opt->k[opt->k_count++] = k;
    if (*end == ',') ++end;
    else if (*end != '\0') return -1;
    p = end;
  }
  return opt->k_count > 0 ? 0 : -1;
}

static int parse_algo(const char *s, int *algo) {
  if (strcmp(s, "cpu") == 0) *algo = BENCH_ALGO_CPU;
  else if (strcmp(s, "fused") == 0) *algo = BENCH_ALGO_FUSED;
  else if (strcmp(s, "sample") == 0) *algo = BENCH_ALGO_SAMPLE;
  else return -1;
  return 0;
}

static int parse_dist(const char *s, int *dist) {
  if (strcmp(s, "normal") == 0) *dist = BENCH_DIST_NORMAL;
  else if (strcmp(s, "heavy") == 0) *dist = BENCH_DIST_HEAVY;
  else if (strcmp(s, "sparse") == 0) *dist = BENCH_DIST_SPARSE;
  else return -1;
  return 0;
}

const char *bench_algo_name(int algo) {
  switch (algo) {
    case BENCH_ALGO_FUSED: return "fused";
    case BENCH_ALGO_SAMPLE: return "sample";
    default: return "cpu";
  }
}

const char *bench_dist_name(int dist) {
  switch (dist) {
    case BENCH_DIST_HEAVY: return "heavy";
    case BENCH_DIST_SPARSE: return "sparse";
    default: return "normal";
  }
}

static void record_command(int argc, char **argv, bench_options_t *opt) {
  size_t used = 0;
  opt->command[0] = '\0';
  for (int i = 0; i < argc && used + 1 < sizeof opt->command; ++i) {
    int w = snprintf(opt->command + used, sizeof opt->command - used, "%s%s",
                     i ? " " : "", argv[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

static void set_defaults(bench_options_t *opt) {
  memset(opt, 0, sizeof *opt);
  opt->min_bytes = 1ull << 10;
  opt->max_bytes = 16ull << 20;
  opt->factor = 4.0;
  opt->iters = 5;
  opt->warmup = 1;
  opt->check = 1;
  opt->k[0] = 1.0;
  opt->k_count = 1;
  opt->algo = BENCH_ALGO_CPU;
  opt->dist = BENCH_DIST_NORMAL;
}

static int bad(const char *prog, const char *flag, const char *value) {
  fprintf(stderr, "%s: bad value for %s: '%s' (-h for help)\n", prog, flag,
          value ? value : "(missing)");
  return -1;
}

int bench_parse_args(int argc, char **argv, bench_options_t *opt) {
  set_defaults(opt);
  record_command(argc, argv, opt);
  for (int i = 1; i < argc; ++i) {
    const char *flag = argv[i];
    if (strcmp(flag, "-h") == 0 || strcmp(flag, "--help") == 0) {
      usage(stdout, argv[0]);
      return 1;
    }
    if (flag[0] != '-' || flag[1] == '\0' || flag[2] != '\0') {
      fprintf(stderr, "%s: unknown argument '%s' (-h for help)\n", argv[0], flag);
      return -1;
    }
    const char *v = i + 1 < argc ? argv[++i] : NULL;
    if (!v) return bad(argv[0], flag, v);
    int rc = 0;
    switch (flag[1]) {
      case 'b': rc = parse_bytes(v, &opt->min_bytes); break;
      case 'e': rc = parse_bytes(v, &opt->max_bytes); break;
      case 'f': {
        char *end = NULL;
        opt->factor = strtod(v, &end);
        rc = (end == v || *end != '\0' || !(opt->factor > 1.0)) ? -1 : 0;
        break;
      }
      case 'n': rc = parse_int(v, 1, 1000000, &opt->iters); opt->iters_given = 1; break;
      case 'w': rc = parse_int(v, 0, 1000000, &opt->warmup); break;
      case 'c': rc = parse_int(v, 0, 1, &opt->check); break;
      case 'k': rc = parse_k_list(v, opt); break;
      case 'a': rc = parse_algo(v, &opt->algo); break;
      case 'd': rc = parse_dist(v, &opt->dist); break;
      case 'J': opt->json_path = v; break;
      case 'm':
        if (opt->model_count == BENCH_MAX_MODELS) rc = -1;
        else opt->models[opt->model_count++] = v;
        break;
      default:
        fprintf(stderr, "%s: unknown flag '%s' (-h for help)\n", argv[0], flag);
        return -1;
    }
    if (rc) return bad(argv[0], flag, v);
  }
  if (opt->min_bytes > opt->max_bytes) return bad(argv[0], "-b/-e", "min > max");
  if (opt->max_bytes / 4 > MCGQ_MAX_LAYER_ELEMENTS)
    return bad(argv[0], "-e", "more than 2^32-1 elements");
  if (!opt->iters_given && opt->algo != BENCH_ALGO_CPU) opt->iters = 20;
  return 0;
}
