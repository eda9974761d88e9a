/* bench_gpu_stub.c - the GPU entry points of mcgq_bench in a build without
 * CUDA (bench_gpu.cu replaces this file when MCGQ_ENABLE_CUDA is on). */
#include <stdio.h>

#include "bench.h"

int bench_gpu_describe(char *buf, size_t size) {
  (void)buf;
  (void)size;
  return -1;
}

int bench_gpu_size(const bench_options_t *opt, uint64_t n, double k,
                   bench_row_t *row, char *err, size_t err_size) {
  (void)opt;
  (void)n;
  (void)k;
  (void)row;
  snprintf(err, err_size, "this mcgq_bench was built without CUDA (MCGQ_ENABLE_CUDA=OFF); use -a cpu");
  return -1;
}

int bench_gpu_model(const bench_options_t *opt, const uint64_t *sizes, int count,
                    double k, bench_model_row_t *row, char *err, size_t err_size) {
  (void)opt;
  (void)sizes;
  (void)count;
  (void)k;
  (void)row;
  snprintf(err, err_size, "this mcgq_bench was built without CUDA (MCGQ_ENABLE_CUDA=OFF); use -a cpu");
  return -1;
}
