/* bench.h - what the files of bench/mcgq_bench share (not installed). */
#ifndef MCGQ_BENCH_H_
#define MCGQ_BENCH_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_MAX_K 16
#define BENCH_MAX_MODELS 8
#define BENCH_AVERAGE_RANKS 4 /* messages of the CPU decode-average stage */

enum bench_algo { BENCH_ALGO_CPU, BENCH_ALGO_FUSED, BENCH_ALGO_SAMPLE };
enum bench_dist { BENCH_DIST_NORMAL, BENCH_DIST_HEAVY, BENCH_DIST_SPARSE };

typedef struct {
  uint64_t min_bytes, max_bytes;
  double factor;
  int iters, warmup, check;
  double k[BENCH_MAX_K];
  int k_count;
  int algo;            /* enum bench_algo */
  int dist;            /* enum bench_dist */
  const char *json_path;
  const char *models[BENCH_MAX_MODELS]; /* -m: names or paths of tables */
  int model_count;
  int iters_given;     /* -n was on the command line */
  char command[1024];  /* the command line, for the header */
} bench_options_t;

/* bench_args.c: 0 on success, 1 for -h (usage printed), -1 on error. */
int bench_parse_args(int argc, char **argv, bench_options_t *opt);
const char *bench_algo_name(int algo);
const char *bench_dist_name(int dist);

/* bench_env.c: environment, timing and data. */
typedef struct {
  char date[32];       /* UTC, ISO 8601 */
  char host[64];
  char cpu[128];
  char commit[64];
  char device[256];    /* GPU name/driver/CUDA/NCCL, or "none (CPU)" */
  char load[64];       /* /proc/loadavg at the start (other work on the cores) */
} bench_env_t;
void bench_env_collect(bench_env_t *env, int want_gpu);
double bench_now_us(void);
double bench_thread_cpu_us(void); /* CPU time of the calling thread */
double bench_median(double *v, int count); /* sorts v */
/* n values of the distribution, deterministic for (dist, n, seed). */
void bench_fill(float *g, uint64_t n, int dist, uint64_t seed);

/* One row of the per-size table. */
typedef struct {
  uint64_t bytes, n;
  double k;
  double time_us;      /* encode (quantize + container), median */
  double copy_us;      /* memcpy / cudaMemcpy D2D of the same bytes */
  double time_cpu_us;  /* CPU only: thread CPU time of the encode, median;
                          unlike wall time it does not grow when other
                          processes share the cores (-1 on the GPU) */
  double copy_cpu_us;  /* CPU only: thread CPU time of the copy, median */
  double decode_cpu_us, average_cpu_us; /* CPU only: thread CPU time of
                          decode and decode-average, median (-1 on the GPU) */
  double quant_us;     /* stage: quantize alone (CPU), -1 if n/a */
  double rle_us;       /* stage: paper bitstream alone (CPU), -1 if n/a */
  double decode_us;    /* decode of the message, median */
  double average_us;   /* CPU only: decode-average of BENCH_AVERAGE_RANKS
                          messages of the same n (one per rank), median;
                          -1 if n/a */
  double reduce_us;    /* GPU baseline cub::DeviceReduce::Sum, -1 if n/a */
  double scan_us;      /* GPU baseline cub::DeviceScan::InclusiveSum, -1 if n/a */
  double bits_per_element; /* wire bits (container) per element */
  double paper_ratio;  /* 32 n / (paper stream bits + 32) */
  double wire_ratio;   /* 4 n / container bytes */
  uint64_t wrong;      /* -c 1: mismatches against the CPU reference */
  int checked;
} bench_row_t;

/* One model (-m) step. */
typedef struct {
  char name[64];
  int layers;
  uint64_t n, smallest, largest;
  double k;
  double copy_us;       /* fp32 copy of all gradients */
  double encode_us;     /* one segmented encode of all layers */
  double encode_per_layer_us; /* the same layers encoded one call each */
  double decode_us;
  double bits_per_element, paper_ratio, wire_ratio;
  uint64_t wire_bytes;
  /* GPU only (-1 on the CPU): the same encode and decode-average replayed
   * from captured CUDA graphs, and CUB over the same floats */
  int gpu;
  double encode_graph_us, decode_graph_us, reduce_us, scan_us;
  uint64_t wrong;       /* -c 1: bytes and floats that differ from the CPU's */
  int checked;
} bench_model_row_t;

/* bench_cpu.c / bench_gpu.cu: 0 on success; on failure a message in err. */
int bench_cpu_size(const bench_options_t *opt, uint64_t n, double k,
                   bench_row_t *row, char *err, size_t err_size);
int bench_gpu_size(const bench_options_t *opt, uint64_t n, double k,
                   bench_row_t *row, char *err, size_t err_size);
int bench_gpu_describe(char *buf, size_t size); /* 0 when a GPU answers */
/* A whole model step on the GPU (bench_model_step calls it for -a fused /
 * -a sample): sizes[0..count) of one layer table; row->name etc. are the
 * caller's. */
int bench_gpu_model(const bench_options_t *opt, const uint64_t *sizes, int count,
                    double k, bench_model_row_t *row, char *err, size_t err_size);

/* bench_models.c */
int bench_model_step(const bench_options_t *opt, const char *model, double k,
                     bench_model_row_t *row, char *err, size_t err_size);

/* bench_report.c */
void bench_print_header(FILE *f, const bench_env_t *env, const bench_options_t *opt);
void bench_print_table_head(FILE *f, int gpu);
void bench_print_row(FILE *f, const bench_row_t *r, int gpu);
void bench_print_model_head(FILE *f, int gpu);
void bench_print_model_row(FILE *f, const bench_model_row_t *r);
int bench_write_json(const char *path, const bench_env_t *env,
                     const bench_options_t *opt, const bench_row_t *rows,
                     int row_count, const bench_model_row_t *models,
                     int model_count);

/* Fills a status message: "fn: mcgq status (detail)". */
void bench_mcgq_error(char *err, size_t size, const char *what, mcgqResult_t r);

#ifdef __cplusplus
}
#endif
#endif /* MCGQ_BENCH_H_ */
