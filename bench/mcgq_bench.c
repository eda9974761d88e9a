/* mcgq_bench - nccl-tests-style benchmark of the MCGQ encoder and decoder.
 * Sweeps input sizes (-b .. -e by -f) for each K (-k), or times whole steps
 * over real models' layer tables (-m); prints a table, optionally JSON (-J).
 * See bench/README.md for the columns and how to run it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int is_gpu(const bench_options_t *opt) { return opt->algo != BENCH_ALGO_CPU; }

static int count_sizes(const bench_options_t *opt) {
  int count = 0;
  for (double b = (double)opt->min_bytes; b <= (double)opt->max_bytes; b *= opt->factor)
    ++count;
  return count;
}

/* n for the i-th size: bytes rounded down to whole floats, at least one. */
static uint64_t size_elements(const bench_options_t *opt, int i) {
  double b = (double)opt->min_bytes;
  for (int j = 0; j < i; ++j) b *= opt->factor;
  uint64_t n = (uint64_t)b / sizeof(float);
  return n ? n : 1;
}

static int run_sizes(const bench_options_t *opt, bench_row_t *rows, int *row_count) {
  int sizes = count_sizes(opt);
  char err[512];
  bench_print_table_head(stdout, is_gpu(opt));
  for (int ki = 0; ki < opt->k_count; ++ki) {
    uint64_t previous_n = 0;
    for (int i = 0; i < sizes; ++i) {
      uint64_t n = size_elements(opt, i);
      if (n == previous_n) continue; /* sizes below 4 bytes round to one float */
      previous_n = n;
      bench_row_t *row = &rows[*row_count];
      int rc = is_gpu(opt) ? bench_gpu_size(opt, n, opt->k[ki], row, err, sizeof err)
                           : bench_cpu_size(opt, n, opt->k[ki], row, err, sizeof err);
      if (rc != 0) {
        fprintf(stderr, "mcgq_bench: n = %llu, K = %g: %s\n", (unsigned long long)n,
                opt->k[ki], err);
        return -1;
      }
      bench_print_row(stdout, row, is_gpu(opt));
      fflush(stdout);
      ++*row_count;
    }
  }
  return 0;
}

static int run_models(const bench_options_t *opt, bench_model_row_t *rows, int *row_count) {
  char err[512];
  bench_print_model_head(stdout, is_gpu(opt));
  for (int ki = 0; ki < opt->k_count; ++ki) {
    for (int i = 0; i < opt->model_count; ++i) {
      bench_model_row_t *row = &rows[*row_count];
      if (bench_model_step(opt, opt->models[i], opt->k[ki], row, err, sizeof err) != 0) {
        fprintf(stderr, "mcgq_bench: model %s: %s\n", opt->models[i], err);
        return -1;
      }
      bench_print_model_row(stdout, row);
      fflush(stdout);
      ++*row_count;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  bench_options_t opt;
  int parsed = bench_parse_args(argc, argv, &opt);
  if (parsed != 0) return parsed > 0 ? 0 : 2;

  char gpu[256];
  if (is_gpu(&opt) && bench_gpu_describe(gpu, sizeof gpu) != 0) {
    fprintf(stderr, "mcgq_bench: -a %s needs a CUDA build and a GPU; none here (use -a cpu)\n",
            bench_algo_name(opt.algo));
    return 1;
  }
  bench_env_t env;
  bench_env_collect(&env, is_gpu(&opt));
  bench_print_header(stdout, &env, &opt);

  int rc = 0, row_count = 0, model_rows = 0;
  bench_row_t *rows = NULL;
  bench_model_row_t *models = NULL;
  if (opt.model_count > 0) {
    models = (bench_model_row_t *)calloc((size_t)(opt.model_count * opt.k_count), sizeof *models);
    rc = models ? run_models(&opt, models, &model_rows) : -1;
  } else {
    rows = (bench_row_t *)calloc((size_t)(count_sizes(&opt) * opt.k_count), sizeof *rows);
    rc = rows ? run_sizes(&opt, rows, &row_count) : -1;
  }
  if (rc == 0 && opt.json_path &&
      bench_write_json(opt.json_path, &env, &opt, rows, row_count, models, model_rows) != 0) {
    fprintf(stderr, "mcgq_bench: cannot write %s\n", opt.json_path);
    rc = -1;
  }
  /* Like nccl-tests: wrong results fail the run, so a smoke test catches them. */
  int wrong_rows = 0;
  for (int i = 0; i < row_count; ++i) wrong_rows += rows[i].checked && rows[i].wrong != 0;
  for (int i = 0; i < model_rows; ++i) wrong_rows += models[i].checked && models[i].wrong != 0;
  if (wrong_rows) {
    fprintf(stderr, "mcgq_bench: %d size(s) with #wrong != 0\n", wrong_rows);
    rc = -1;
  }
  free(rows);
  free(models);
  return rc == 0 ? 0 : 1;
}
