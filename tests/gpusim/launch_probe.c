/* launch_probe.c - one mcgqEncodeAsync and one mcgqDecodeAverageAsync call
 * for the first 1, 10 and all 161 layers of a model table
 * (bench/models/resnet50.txt), between marker lines on stdout, so that
 * tests/gpusim/count_launches.py can count the kernel launches of each call
 * in the GPU simulator's log (scripts/gpusim.sh).
 *
 * Two layer configurations: the defaults (calls "encode"/"decode": fused
 * path, K = 0.1, no accumulator, no CRC), and every option that adds a
 * stage (calls "encode-all"/"decode-all": card path, residual accumulator,
 * CRC32C).  The encode runs one launch sequence over all layers
 * (kernels/README.md), so its launch count depends on the options and on
 * the layer count only through the table chunks of MCGQ_GPU_TABLE_CHUNK
 * layers, not on the sizes or the data.  So that the 161-layer call runs in
 * a minute or two on the simulator, every layer may be capped at `cap`
 * elements (above one 4096-element tile, so layers still span tiles), and
 * the probe runs the 10-layer case both ways so the count script can check
 * that the cap changes nothing.
 *
 * With every option and 1 or 10 layers it also runs the device codec's
 * encode with deferred state (call "encode-deferred": the new accumulators
 * into scratch, host/internal.h) and its commit (call "commit"), so the
 * commit path of the exchange is counted too (not at 161 layers: the
 * deferred encode launches what the in-place one does, by the same code).
 *
 * Usage: mcgq_gpusim_launch_probe MODEL_TABLE   (exit 0 on success) */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* mcgq_encode_deferred_async, mcgq_encode_commit_async */
#include "mcgq.h"

enum { kMaxLayers = 512, kRanks = 2 };
static const uint64_t kCap = 4097; /* one element past one encode tile */

#define PROBE_CHECK(cond, ...)                 \
  do {                                         \
    if (!(cond)) {                             \
      fprintf(stderr, "launch_probe: ");       \
      fprintf(stderr, __VA_ARGS__);            \
      fprintf(stderr, "\n");                   \
      goto fail;                               \
    }                                          \
  } while (0)

/* Element counts of the table's layers ("name elements" lines, # comments). */
static int read_table(const char *path, uint64_t *n, int most) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[512];
  int count = 0;
  while (fgets(line, sizeof line, f) && count < most) {
    char name[400];
    unsigned long long elements;
    if (line[0] == '#' || sscanf(line, "%399s %llu", name, &elements) != 2) continue;
    n[count++] = (uint64_t)elements;
  }
  fclose(f);
  return count;
}

static void marker(const char *what, const char *call, int layers, const char *sizes) {
  printf("MCGQ_PROBE %s %s %d %s\n", what, call, layers, sizes);
  fflush(stdout);
}

/* One encode and one decode-average of `count` layers of sizes n[], with
 * the defaults or (all_options) every option that adds a stage; returns 0. */
static int probe(const uint64_t *n_table, int count, uint64_t cap, const char *sizes,
                 int all_options) {
  const char *encode = all_options ? "encode-all" : "encode";
  const char *decode = all_options ? "decode-all" : "decode";
  int rc = 1;
  mcgqLayerDesc_t descs[kMaxLayers];
  float *d_grad = NULL, *d_avg = NULL, *d_acc = NULL, *d_acc_next = NULL;
  mcgq_state_out_t outs[kMaxLayers];
  void *d_out = NULL, *d_temp = NULL;
  size_t *d_bytes = NULL;
  uint32_t *d_status = NULL;
  mcgqLayerStats_t *d_stats = NULL;
  uint64_t n[kMaxLayers], total = 0;
  for (int i = 0; i < count; ++i) {
    n[i] = n_table[i] < cap ? n_table[i] : cap;
    total += n[i];
  }
  PROBE_CHECK(cudaMalloc((void **)&d_grad, total * sizeof(float)) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMalloc((void **)&d_avg, total * sizeof(float)) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMalloc((void **)&d_acc, total * sizeof(float)) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMemset(d_acc, 0, total * sizeof(float)) == cudaSuccess, "cudaMemset");
  PROBE_CHECK(cudaMalloc((void **)&d_acc_next, total * sizeof(float)) == cudaSuccess,
              "cudaMalloc");
  /* A deterministic nonzero gradient: g[k] = (k % 17) - 8. */
  {
    float *g = (float *)malloc(total * sizeof(float));
    PROBE_CHECK(g != NULL, "malloc");
    for (uint64_t k = 0; k < total; ++k) g[k] = (float)((int)(k % 17) - 8);
    cudaError_t e = cudaMemcpy(d_grad, g, total * sizeof(float), cudaMemcpyHostToDevice);
    free(g);
    PROBE_CHECK(e == cudaSuccess, "cudaMemcpy");
  }
  uint64_t at = 0;
  for (int i = 0; i < count; ++i) {
    mcgqLayerDescInit(&descs[i]);
    descs[i].n = n[i];
    descs[i].g = d_grad + at;
    descs[i].cfg.k = 0.1;
    descs[i].u = mcgqRandomWord(1, 0, (uint32_t)i, 0);
    if (all_options) {
      descs[i].cfg.algo = MCGQ_ALGO_SAMPLE;
      descs[i].cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
      descs[i].cfg.checksum = 1;
      descs[i].accum = d_acc + at;
    }
    outs[i].accum_out = all_options ? d_acc_next + at : NULL;
    outs[i].kstate_out = NULL;
    at += n[i];
  }
  size_t cap_bytes = 0, etemp = 0, dtemp = 0, bytes = 0;
  PROBE_CHECK(mcgqEncodeGetMaxOutputSize(descs, count, &cap_bytes) == mcgqSuccess, "max size");
  PROBE_CHECK(mcgqEncodeGetTempSize(descs, count, &etemp) == mcgqSuccess, "temp size");
  PROBE_CHECK(mcgqDecodeAverageGetTempSize(kRanks, total, cap_bytes, &dtemp) == mcgqSuccess,
              "decode temp size");
  size_t temp = etemp > dtemp ? etemp : dtemp;
  PROBE_CHECK(cudaMalloc(&d_out, cap_bytes) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMalloc(&d_temp, temp) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMalloc((void **)&d_bytes, sizeof(size_t)) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMalloc((void **)&d_status, sizeof(uint32_t)) == cudaSuccess, "cudaMalloc");
  PROBE_CHECK(cudaMalloc((void **)&d_stats, count * sizeof(mcgqLayerStats_t)) == cudaSuccess,
              "cudaMalloc");
  PROBE_CHECK(cudaDeviceSynchronize() == cudaSuccess, "sync");

  marker("begin", encode, count, sizes);
  PROBE_CHECK(mcgqEncodeAsync(descs, count, d_out, cap_bytes, d_bytes, d_stats, d_temp, temp,
                              NULL) == mcgqSuccess, "encode: %s", mcgqGetLastErrorDetail());
  PROBE_CHECK(cudaDeviceSynchronize() == cudaSuccess, "encode sync");
  marker("end", encode, count, sizes);

  if (all_options && count <= 10) {
    marker("begin", "encode-deferred", count, sizes);
    PROBE_CHECK(mcgq_encode_deferred_async(descs, count, outs, d_out, cap_bytes, d_bytes,
                                           d_stats, d_temp, temp, NULL) == mcgqSuccess,
                "deferred encode: %s", mcgqGetLastErrorDetail());
    PROBE_CHECK(cudaDeviceSynchronize() == cudaSuccess, "deferred encode sync");
    marker("end", "encode-deferred", count, sizes);
    marker("begin", "commit", count, sizes);
    PROBE_CHECK(mcgq_encode_commit_async(descs, count, d_temp, temp, NULL) == mcgqSuccess,
                "commit: %s", mcgqGetLastErrorDetail());
    PROBE_CHECK(cudaDeviceSynchronize() == cudaSuccess, "commit sync");
    marker("end", "commit", count, sizes);
  }

  /* The same message from every rank: the launches do not depend on it. */
  PROBE_CHECK(cudaMemcpy(&bytes, d_bytes, sizeof bytes, cudaMemcpyDeviceToHost) == cudaSuccess,
              "size read-back");
  const void *ins[kRanks];
  size_t in_bytes[kRanks];
  for (int r = 0; r < kRanks; ++r) {
    ins[r] = d_out;
    in_bytes[r] = bytes;
  }
  marker("begin", decode, count, sizes);
  PROBE_CHECK(mcgqDecodeAverageAsync(ins, in_bytes, kRanks, d_avg, total, d_status, d_temp,
                                     temp, NULL) == mcgqSuccess,
              "decode: %s", mcgqGetLastErrorDetail());
  PROBE_CHECK(cudaDeviceSynchronize() == cudaSuccess, "decode sync");
  marker("end", decode, count, sizes);
  uint32_t status = 1;
  PROBE_CHECK(cudaMemcpy(&status, d_status, sizeof status, cudaMemcpyDeviceToHost) ==
                  cudaSuccess && status == 0, "decode status %u", status);
  rc = 0;
fail:
  cudaFree(d_grad);
  cudaFree(d_avg);
  cudaFree(d_acc);
  cudaFree(d_acc_next);
  cudaFree(d_out);
  cudaFree(d_temp);
  cudaFree(d_bytes);
  cudaFree(d_status);
  cudaFree(d_stats);
  return rc;
}

int main(int argc, char **argv) {
  static uint64_t n[kMaxLayers];
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL_TABLE\n", argv[0]);
    return 2;
  }
  int layers = read_table(argv[1], n, kMaxLayers);
  if (layers < 10) {
    fprintf(stderr, "launch_probe: cannot read 10 or more layers from %s\n", argv[1]);
    return 2;
  }
  char capped[64];
  snprintf(capped, sizeof capped, "capped-at-%llu", (unsigned long long)kCap);
  if (probe(n, 1, UINT64_MAX, "real", 0) || probe(n, 10, UINT64_MAX, "real", 0) ||
      probe(n, 10, kCap, capped, 0) || probe(n, layers, kCap, capped, 0) ||
      probe(n, 1, kCap, capped, 1) || probe(n, 10, kCap, capped, 1) ||
      probe(n, layers, kCap, capped, 1))
    return 1;
  return 0;
}
