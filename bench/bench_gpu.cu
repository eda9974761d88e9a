/* bench_gpu.cu - one size on the GPU: baselines measured in the same process
 * (cudaMemcpy D2D of the same bytes, cub::DeviceReduce::Sum and
 * cub::DeviceScan::InclusiveSum of the same n), then mcgqEncodeAsync and
 * mcgqDecodeAverageAsync (one rank), all timed with CUDA events (median of
 * -n iterations), and the check against the CPU reference: #wrong counts
 * message bytes that differ from mcgqEncodeHost's plus decoded floats that
 * differ from mcgqDecodeHost's (the paths must be bit-identical).
 * CUDA C++ is used only for CUB and events; the interface is bench.h's C. */
#include <cuda.h>
#include <cuda_runtime.h>
#include <cxxabi.h>

#include <cub/cub.cuh>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef MCGQ_BENCH_HAVE_NCCL
#include <nccl.h>
#endif

#define BENCH_CUDA_GOTO(call, label)                                           \
  do {                                                                         \
    cudaError_t bench_e_ = (call);                                             \
    if (bench_e_ != cudaSuccess) {                                             \
      snprintf(ctx->err, ctx->err_size, "%s: %s", #call,                      \
               cudaGetErrorString(bench_e_));                                  \
      goto label;                                                              \
    }                                                                          \
  } while (0)

#define BENCH_MCGQ_GOTO(call, label)                                           \
  do {                                                                         \
    mcgqResult_t bench_r_ = (call);                                            \
    if (bench_r_ != mcgqSuccess) {                                             \
      bench_mcgq_error(ctx->err, ctx->err_size, #call, bench_r_);              \
      goto label;                                                              \
    }                                                                          \
  } while (0)

extern "C" int bench_gpu_describe(char *buf, size_t size) {
  int count = 0, device = 0, driver = 0, runtime = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) return -1;
  cudaDeviceProp prop;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    return -1;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  int nccl = 0;
#ifdef MCGQ_BENCH_HAVE_NCCL
  ncclGetVersion(&nccl);
#endif
  snprintf(buf, size,
           "%s (sm_%d%d, %.1f GiB, %d SMs)  driver %d.%d  CUDA runtime %d.%d  NCCL %d",
           prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
           prop.multiProcessorCount, driver / 1000, (driver % 1000) / 10,
           runtime / 1000, (runtime % 1000) / 10, nccl);
  return 0;
}

namespace {

/* What a size-sweep case and a model case both hold: the options, the
 * gradient (host and device), the baselines' buffers (D2D copy, CUB sum and
 * scan), and the codec's message, scratch and results. */
struct case_buffers {
  const bench_options_t *opt;
  uint64_t n;
  double k;
  char *err;
  size_t err_size;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  float *h_g = nullptr, *d_g = nullptr, *d_copy = nullptr, *d_dec = nullptr;
  float *d_sum = nullptr;
  void *d_cub_temp = nullptr;
  size_t cub_temp_bytes = 0;
  void *d_msg = nullptr, *d_enc_temp = nullptr, *d_dec_temp = nullptr;
  size_t msg_cap = 0, enc_temp_bytes = 0, dec_temp_bytes = 0, msg_bytes = 0;
  size_t *d_msg_bytes = nullptr;
  mcgqLayerStats_t *d_stats = nullptr;
  uint32_t *d_status = nullptr;
};

struct gpu_case : case_buffers {
  mcgqLayerDesc_t desc;
};

/* The baselines measured beside the codec in every run, first in both
 * cases' stage lists. */
enum baseline_stage { BASE_COPY, BASE_REDUCE, BASE_SCAN, BASE_STAGES };

/* One launch of a baseline on the case's stream: a D2D copy of the
 * gradient, CUB's sum of it, CUB's inclusive scan of it. */
cudaError_t launch_baseline(case_buffers *ctx, int stage) {
  switch (stage) {
    case BASE_COPY:
      return cudaMemcpyAsync(ctx->d_copy, ctx->d_g, ctx->n * sizeof(float),
                             cudaMemcpyDeviceToDevice, ctx->stream);
    case BASE_REDUCE:
      return cub::DeviceReduce::Sum(ctx->d_cub_temp, ctx->cub_temp_bytes, ctx->d_g,
                                    ctx->d_sum, (int64_t)ctx->n, ctx->stream);
    case BASE_SCAN:
      return cub::DeviceScan::InclusiveSum(ctx->d_cub_temp, ctx->cub_temp_bytes,
                                           ctx->d_g, ctx->d_copy, (int64_t)ctx->n,
                                           ctx->stream);
    default:
      return cudaErrorInvalidValue;
  }
}

enum gpu_stage { GPU_COPY = BASE_COPY, GPU_REDUCE = BASE_REDUCE, GPU_SCAN = BASE_SCAN,
                 GPU_ENCODE = BASE_STAGES, GPU_DECODE };

/* One launch of a stage on the case's stream; cudaSuccess or the failure
 * (an mcgq failure is reported as cudaErrorUnknown with err filled). */
cudaError_t launch_stage(gpu_case *ctx, int stage) {
  switch (stage) {
    case GPU_COPY:
    case GPU_REDUCE:
    case GPU_SCAN:
      return launch_baseline(ctx, stage);
    case GPU_ENCODE: {
      mcgqResult_t r = mcgqEncodeAsync(&ctx->desc, 1, ctx->d_msg, ctx->msg_cap,
                                       ctx->d_msg_bytes, ctx->d_stats, ctx->d_enc_temp,
                                       ctx->enc_temp_bytes, ctx->stream);
      if (r == mcgqSuccess) return cudaSuccess;
      bench_mcgq_error(ctx->err, ctx->err_size, "mcgqEncodeAsync", r);
      return cudaErrorUnknown;
    }
    case GPU_DECODE: {
      const void *in[1] = {ctx->d_msg};
      size_t in_bytes[1] = {ctx->msg_bytes};
      mcgqResult_t r = mcgqDecodeAverageAsync(in, in_bytes, 1, ctx->d_dec, ctx->n,
                                              ctx->d_status, ctx->d_dec_temp,
                                              ctx->dec_temp_bytes, ctx->stream);
      if (r == mcgqSuccess) return cudaSuccess;
      bench_mcgq_error(ctx->err, ctx->err_size, "mcgqDecodeAverageAsync", r);
      return cudaErrorUnknown;
    }
    default:
      return cudaErrorInvalidValue;
  }
}

/* Median of per-iteration event times (us) of launch() on ctx's stream, after
 * ctx->opt->warmup untimed calls; -1 on failure (err filled).  launch()
 * returns cudaErrorUnknown when it has filled err itself. */
template <class Ctx, class Launch>
double median_event_us(Ctx *ctx, Launch launch) {
  const int iters = ctx->opt->iters;
  double *t = (double *)malloc((size_t)iters * sizeof *t);
  double median = -1.0;
  if (!t) {
    snprintf(ctx->err, ctx->err_size, "out of host memory");
    return -1.0;
  }
  for (int i = 0; i < ctx->opt->warmup; ++i) {
    cudaError_t e = launch();
    if (e == cudaErrorUnknown) goto done;
    BENCH_CUDA_GOTO(e, done);
  }
  for (int i = 0; i < iters; ++i) {
    float ms = 0;
    BENCH_CUDA_GOTO(cudaEventRecord(ctx->start, ctx->stream), done);
    cudaError_t e = launch();
    if (e == cudaErrorUnknown) goto done;
    BENCH_CUDA_GOTO(e, done);
    BENCH_CUDA_GOTO(cudaEventRecord(ctx->stop, ctx->stream), done);
    BENCH_CUDA_GOTO(cudaEventSynchronize(ctx->stop), done);
    BENCH_CUDA_GOTO(cudaEventElapsedTime(&ms, ctx->start, ctx->stop), done);
    t[i] = 1e3 * (double)ms;
  }
  median = bench_median(t, iters);
done:
  free(t);
  return median;
}

double time_stage(gpu_case *ctx, int stage) {
  return median_event_us(ctx, [&] { return launch_stage(ctx, stage); });
}

/* The stream, events, device gradient (a copy of h_g) and the baselines'
 * buffers; 0, or -1 with ctx->err set. */
int alloc_baselines(case_buffers *ctx) {
  const size_t n = (size_t)ctx->n;
  size_t reduce_bytes = 0, scan_bytes = 0;
  BENCH_CUDA_GOTO(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), fail);
  BENCH_CUDA_GOTO(cudaEventCreate(&ctx->start), fail);
  BENCH_CUDA_GOTO(cudaEventCreate(&ctx->stop), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_g, n * sizeof(float)), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_copy, n * sizeof(float)), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_dec, n * sizeof(float)), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_sum, sizeof(float)), fail);
  BENCH_CUDA_GOTO(cudaMemcpy(ctx->d_g, ctx->h_g, n * sizeof(float), cudaMemcpyHostToDevice), fail);
  BENCH_CUDA_GOTO(cub::DeviceReduce::Sum(nullptr, reduce_bytes, ctx->d_g, ctx->d_sum,
                                         (int64_t)n, ctx->stream), fail);
  BENCH_CUDA_GOTO(cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, ctx->d_g, ctx->d_copy,
                                                (int64_t)n, ctx->stream), fail);
  ctx->cub_temp_bytes = reduce_bytes > scan_bytes ? reduce_bytes : scan_bytes;
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_cub_temp, ctx->cub_temp_bytes), fail);
  return 0;
fail:
  return -1;
}

/* The codec's message, scratch and results for `layers` layers, once
 * msg_cap and the scratch sizes are known. */
int alloc_codec(case_buffers *ctx, int layers) {
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_msg, ctx->msg_cap), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_enc_temp, ctx->enc_temp_bytes ? ctx->enc_temp_bytes : 1), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_dec_temp, ctx->dec_temp_bytes ? ctx->dec_temp_bytes : 1), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_msg_bytes, sizeof(size_t)), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_stats, (size_t)layers * sizeof(mcgqLayerStats_t)), fail);
  BENCH_CUDA_GOTO(cudaMalloc(&ctx->d_status, sizeof(uint32_t)), fail);
  return 0;
fail:
  return -1;
}

void release_buffers(case_buffers *ctx) {
  cudaFree(ctx->d_g);
  cudaFree(ctx->d_copy);
  cudaFree(ctx->d_dec);
  cudaFree(ctx->d_sum);
  cudaFree(ctx->d_cub_temp);
  cudaFree(ctx->d_msg);
  cudaFree(ctx->d_enc_temp);
  cudaFree(ctx->d_dec_temp);
  cudaFree(ctx->d_msg_bytes);
  cudaFree(ctx->d_stats);
  cudaFree(ctx->d_status);
  if (ctx->start) cudaEventDestroy(ctx->start);
  if (ctx->stop) cudaEventDestroy(ctx->stop);
  if (ctx->stream) cudaStreamDestroy(ctx->stream);
  free(ctx->h_g);
}

int setup(gpu_case *ctx) {
  ctx->h_g = (float *)malloc((size_t)ctx->n * sizeof(float));
  if (!ctx->h_g) {
    snprintf(ctx->err, ctx->err_size, "out of host memory");
    return -1;
  }
  bench_fill(ctx->h_g, ctx->n, ctx->opt->dist, 42);
  mcgqLayerDescInit(&ctx->desc);
  ctx->desc.n = ctx->n;
  ctx->desc.u = mcgqRandomWord(1, 0, 0, 0);
  ctx->desc.cfg.k = ctx->k;
  ctx->desc.cfg.algo = ctx->opt->algo == BENCH_ALGO_SAMPLE ? MCGQ_ALGO_SAMPLE : MCGQ_ALGO_FUSED;
  if (alloc_baselines(ctx) != 0) return -1;

  ctx->desc.g = ctx->d_g;
  BENCH_MCGQ_GOTO(mcgqEncodeGetMaxOutputSize(&ctx->desc, 1, &ctx->msg_cap), fail);
  BENCH_MCGQ_GOTO(mcgqEncodeGetTempSize(&ctx->desc, 1, &ctx->enc_temp_bytes), fail);
  BENCH_MCGQ_GOTO(mcgqDecodeAverageGetTempSize(1, ctx->n, ctx->msg_cap, &ctx->dec_temp_bytes), fail);
  return alloc_codec(ctx, 1);
fail:
  return -1;
}

void teardown(gpu_case *ctx) { release_buffers(ctx); }

/* One encode to learn the message size and stats before timing decode. */
int encode_once(gpu_case *ctx, mcgqLayerStats_t *stats) {
  uint32_t status = 0;
  if (launch_stage(ctx, GPU_ENCODE) != cudaSuccess) {
    if (!ctx->err[0]) snprintf(ctx->err, ctx->err_size, "mcgqEncodeAsync launch failed");
    return -1;
  }
  BENCH_CUDA_GOTO(cudaStreamSynchronize(ctx->stream), fail);
  BENCH_CUDA_GOTO(cudaMemcpy(&ctx->msg_bytes, ctx->d_msg_bytes, sizeof(size_t),
                             cudaMemcpyDeviceToHost), fail);
  BENCH_CUDA_GOTO(cudaMemcpy(stats, ctx->d_stats, sizeof *stats, cudaMemcpyDeviceToHost), fail);
  status = stats->status;
  if (status != mcgqSuccess || ctx->msg_bytes == 0 || ctx->msg_bytes > ctx->msg_cap) {
    snprintf(ctx->err, ctx->err_size, "encode status %u (%s), message %zu bytes", status,
             mcgqGetErrorString((mcgqResult_t)status), ctx->msg_bytes);
    return -1;
  }
  return 0;
fail:
  return -1;
}

/* Bytes of the GPU message that differ from the CPU reference's (a length
 * difference counts every missing byte) plus decoded floats that differ. */
int count_wrong(gpu_case *ctx, uint64_t *wrong) {
  size_t n = (size_t)ctx->n;
  unsigned char *gpu_msg = (unsigned char *)malloc(ctx->msg_bytes);
  unsigned char *cpu_msg = (unsigned char *)malloc(ctx->msg_cap);
  float *gpu_dec = (float *)malloc(n * sizeof(float));
  float *cpu_dec = (float *)malloc(n * sizeof(float));
  mcgqLayerDesc_t host_desc = ctx->desc;
  size_t cpu_bytes = 0;
  uint32_t status = 0;
  int rc = -1;
  if (!gpu_msg || !cpu_msg || !gpu_dec || !cpu_dec) {
    snprintf(ctx->err, ctx->err_size, "out of host memory for the check");
    goto done;
  }
  BENCH_CUDA_GOTO(cudaMemcpy(gpu_msg, ctx->d_msg, ctx->msg_bytes, cudaMemcpyDeviceToHost), done);
  BENCH_CUDA_GOTO(cudaMemcpy(gpu_dec, ctx->d_dec, n * sizeof(float), cudaMemcpyDeviceToHost), done);
  BENCH_CUDA_GOTO(cudaMemcpy(&status, ctx->d_status, sizeof status, cudaMemcpyDeviceToHost), done);
  host_desc.g = ctx->h_g;
  BENCH_MCGQ_GOTO(mcgqEncodeHost(&host_desc, 1, cpu_msg, ctx->msg_cap, &cpu_bytes, NULL), done);
  BENCH_MCGQ_GOTO(mcgqDecodeHost(cpu_msg, cpu_bytes, cpu_dec, ctx->n), done);
  {
    size_t common = cpu_bytes < ctx->msg_bytes ? cpu_bytes : ctx->msg_bytes;
    uint64_t bad = (uint64_t)((cpu_bytes > ctx->msg_bytes ? cpu_bytes : ctx->msg_bytes) - common);
    for (size_t i = 0; i < common; ++i) bad += gpu_msg[i] != cpu_msg[i];
    for (size_t i = 0; i < n; ++i) bad += memcmp(&gpu_dec[i], &cpu_dec[i], sizeof(float)) != 0;
    bad += status != 0;
    *wrong = bad;
  }
  rc = 0;
done:
  free(gpu_msg);
  free(cpu_msg);
  free(gpu_dec);
  free(cpu_dec);
  return rc;
}

}  // namespace

extern "C" int bench_gpu_size(const bench_options_t *opt, uint64_t n, double k,
                              bench_row_t *row, char *err, size_t err_size) {
  gpu_case c;
  gpu_case *ctx = &c;
  c.opt = opt;
  c.n = n;
  c.k = k;
  c.err = err;
  c.err_size = err_size;
  err[0] = '\0';
  mcgqLayerStats_t stats;
  memset(row, 0, sizeof *row);
  row->bytes = n * sizeof(float);
  row->n = n;
  row->k = k;
  row->quant_us = row->rle_us = row->average_us = -1.0;
  row->time_cpu_us = row->copy_cpu_us = -1.0;
  row->decode_cpu_us = row->average_cpu_us = -1.0;
  int rc = setup(ctx);
  if (rc == 0) rc = encode_once(ctx, &stats);
  static const int stages[] = {GPU_COPY, GPU_REDUCE, GPU_SCAN, GPU_ENCODE, GPU_DECODE};
  double t[5] = {0};
  for (int s = 0; s < 5 && rc == 0; ++s) {
    t[s] = time_stage(ctx, stages[s]);
    if (t[s] < 0) rc = -1;
  }
  if (rc == 0) {
    row->copy_us = t[0];
    row->reduce_us = t[1];
    row->scan_us = t[2];
    row->time_us = t[3];
    row->decode_us = t[4];
    row->bits_per_element = 8.0 * (double)c.msg_bytes / (double)n;
    row->paper_ratio = 32.0 * (double)n / ((double)stats.stream_bits + 32.0);
    row->wire_ratio = 4.0 * (double)n / (double)c.msg_bytes;
    row->checked = opt->check;
    if (opt->check) rc = count_wrong(ctx, &row->wrong);
  }
  teardown(ctx);
  return rc;
}

/* ------------------------------------------------------------ model step
 * -m on the GPU: one segmented mcgqEncodeAsync of the whole layer table, the
 * same layers one call each, one mcgqDecodeAverageAsync (one rank) of the
 * message, the encode and the decode replayed from captured CUDA graphs, and
 * in the same run a D2D copy of the same floats and CUB sum/scan over them. */

namespace {

struct model_case : case_buffers {
  const uint64_t *sizes;
  int count;
  mcgqLayerDesc_t *desc = nullptr; /* device pointers */
  cudaGraphExec_t encode_graph = nullptr, decode_graph = nullptr;
  cudaGraph_t encode_def = nullptr, decode_def = nullptr; /* for the breakdown */
};

enum model_stage {
  M_COPY = BASE_COPY, M_REDUCE = BASE_REDUCE, M_SCAN = BASE_SCAN,
  M_ENCODE = BASE_STAGES, M_ENCODE_EACH, M_DECODE, M_ENCODE_GRAPH, M_DECODE_GRAPH
};

cudaError_t mcgq_failed(model_case *ctx, const char *what, mcgqResult_t r) {
  if (r == mcgqSuccess) return cudaSuccess;
  bench_mcgq_error(ctx->err, ctx->err_size, what, r);
  return cudaErrorUnknown;
}

cudaError_t encode_model(model_case *ctx, int first, int count) {
  return mcgq_failed(ctx, "mcgqEncodeAsync",
                     mcgqEncodeAsync(ctx->desc + first, count, ctx->d_msg, ctx->msg_cap,
                                     ctx->d_msg_bytes, ctx->d_stats, ctx->d_enc_temp,
                                     ctx->enc_temp_bytes, ctx->stream));
}

cudaError_t decode_model(model_case *ctx) {
  const void *in[1] = {ctx->d_msg};
  size_t in_bytes[1] = {ctx->msg_bytes};
  return mcgq_failed(ctx, "mcgqDecodeAverageAsync",
                     mcgqDecodeAverageAsync(in, in_bytes, 1, ctx->d_dec, ctx->n,
                                            ctx->d_status, ctx->d_dec_temp,
                                            ctx->dec_temp_bytes, ctx->stream));
}

cudaError_t launch_model_stage(model_case *ctx, int stage) {
  switch (stage) {
    case M_COPY:
    case M_REDUCE:
    case M_SCAN:
      return launch_baseline(ctx, stage);
    case M_ENCODE:
      return encode_model(ctx, 0, ctx->count);
    case M_ENCODE_EACH: { /* overwrites the message: M_ENCODE runs again after */
      cudaError_t e = cudaSuccess;
      for (int i = 0; i < ctx->count && e == cudaSuccess; ++i) e = encode_model(ctx, i, 1);
      return e;
    }
    case M_DECODE:
      return decode_model(ctx);
    case M_ENCODE_GRAPH:
      return cudaGraphLaunch(ctx->encode_graph, ctx->stream);
    case M_DECODE_GRAPH:
      return cudaGraphLaunch(ctx->decode_graph, ctx->stream);
    default:
      return cudaErrorInvalidValue;
  }
}

double time_model_stage(model_case *ctx, int stage) {
  return median_event_us(ctx, [&] { return launch_model_stage(ctx, stage); });
}

int setup_model(model_case *ctx) {
  ctx->h_g = (float *)malloc((size_t)ctx->n * sizeof(float));
  ctx->desc = (mcgqLayerDesc_t *)calloc((size_t)ctx->count, sizeof *ctx->desc);
  if (!ctx->h_g || !ctx->desc) {
    snprintf(ctx->err, ctx->err_size, "out of host memory");
    return -1;
  }
  bench_fill(ctx->h_g, ctx->n, ctx->opt->dist, 7);
  if (alloc_baselines(ctx) != 0) return -1;
  {
    uint64_t offset = 0;
    for (int i = 0; i < ctx->count; ++i) {
      mcgqLayerDesc_t *d = &ctx->desc[i];
      mcgqLayerDescInit(d);
      d->g = ctx->d_g + offset;
      d->n = ctx->sizes[i];
      d->u = mcgqRandomWord(1, 0, (uint32_t)i, 0);
      d->cfg.k = ctx->k;
      d->cfg.algo = ctx->opt->algo == BENCH_ALGO_SAMPLE ? MCGQ_ALGO_SAMPLE : MCGQ_ALGO_FUSED;
      offset += ctx->sizes[i];
    }
  }
  BENCH_MCGQ_GOTO(mcgqEncodeGetMaxOutputSize(ctx->desc, ctx->count, &ctx->msg_cap), fail);
  /* the largest scratch of the whole call and of each one-layer call */
  BENCH_MCGQ_GOTO(mcgqEncodeGetTempSize(ctx->desc, ctx->count, &ctx->enc_temp_bytes), fail);
  for (int i = 0; i < ctx->count; ++i) {
    size_t one = 0;
    BENCH_MCGQ_GOTO(mcgqEncodeGetTempSize(&ctx->desc[i], 1, &one), fail);
    if (one > ctx->enc_temp_bytes) ctx->enc_temp_bytes = one;
  }
  BENCH_MCGQ_GOTO(mcgqDecodeAverageGetTempSize(1, ctx->n, ctx->msg_cap, &ctx->dec_temp_bytes), fail);
  return alloc_codec(ctx, ctx->count);
fail:
  return -1;
}

void teardown_model(model_case *ctx) {
  if (ctx->encode_graph) cudaGraphExecDestroy(ctx->encode_graph);
  if (ctx->decode_graph) cudaGraphExecDestroy(ctx->decode_graph);
  if (ctx->encode_def) cudaGraphDestroy(ctx->encode_def);
  if (ctx->decode_def) cudaGraphDestroy(ctx->decode_def);
  release_buffers(ctx);
  free(ctx->desc);
}

/* One encode (message size and stats) and one decode, checked for status. */
int run_model_once(model_case *ctx, mcgqLayerStats_t *stats) {
  uint32_t status = 0;
  if (encode_model(ctx, 0, ctx->count) != cudaSuccess) return -1;
  BENCH_CUDA_GOTO(cudaStreamSynchronize(ctx->stream), fail);
  BENCH_CUDA_GOTO(cudaMemcpy(&ctx->msg_bytes, ctx->d_msg_bytes, sizeof(size_t),
                             cudaMemcpyDeviceToHost), fail);
  BENCH_CUDA_GOTO(cudaMemcpy(stats, ctx->d_stats, (size_t)ctx->count * sizeof *stats,
                             cudaMemcpyDeviceToHost), fail);
  for (int i = 0; i < ctx->count; ++i)
    if (stats[i].status != mcgqSuccess) {
      snprintf(ctx->err, ctx->err_size, "layer %d: encode status %u (%s)", i, stats[i].status,
               mcgqGetErrorString((mcgqResult_t)stats[i].status));
      return -1;
    }
  if (decode_model(ctx) != cudaSuccess) return -1;
  BENCH_CUDA_GOTO(cudaMemcpy(&status, ctx->d_status, sizeof status, cudaMemcpyDeviceToHost), fail);
  if (status != 0) {
    snprintf(ctx->err, ctx->err_size, "decode status %u (%s)", status,
             mcgqGetErrorString((mcgqResult_t)status));
    return -1;
  }
  return 0;
fail:
  return -1;
}

/* The encode and the decode, each captured once into a graph. */
int capture_model(model_case *ctx) {
  for (int which = 0; which < 2; ++which) {
    cudaGraph_t graph = nullptr;
    BENCH_CUDA_GOTO(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal), fail);
    cudaError_t e = which == 0 ? encode_model(ctx, 0, ctx->count) : decode_model(ctx);
    cudaError_t end = cudaStreamEndCapture(ctx->stream, &graph);
    if (e == cudaErrorUnknown) {
      if (graph) cudaGraphDestroy(graph);
      return -1;
    }
    BENCH_CUDA_GOTO(end, fail);
    e = cudaGraphInstantiateWithFlags(which == 0 ? &ctx->encode_graph : &ctx->decode_graph,
                                      graph, 0);
    (which == 0 ? ctx->encode_def : ctx->decode_def) = graph;
    BENCH_CUDA_GOTO(e, fail);
  }
  return 0;
fail:
  return -1;
}

/* Message bytes that differ from mcgqEncodeHost's plus decoded floats that
 * differ from mcgqDecodeHost's (after the timed runs, which rewrote both). */
int count_model_wrong(model_case *ctx, uint64_t *wrong) {
  const size_t n = (size_t)ctx->n;
  unsigned char *gpu_msg = (unsigned char *)malloc(ctx->msg_bytes);
  unsigned char *cpu_msg = (unsigned char *)malloc(ctx->msg_cap);
  float *gpu_dec = (float *)malloc(n * sizeof(float));
  float *cpu_dec = (float *)malloc(n * sizeof(float));
  mcgqLayerDesc_t *host = (mcgqLayerDesc_t *)malloc((size_t)ctx->count * sizeof *host);
  size_t cpu_bytes = 0;
  int rc = -1;
  if (!gpu_msg || !cpu_msg || !gpu_dec || !cpu_dec || !host) {
    snprintf(ctx->err, ctx->err_size, "out of host memory for the check");
    goto done;
  }
  BENCH_CUDA_GOTO(cudaStreamSynchronize(ctx->stream), done);
  BENCH_CUDA_GOTO(cudaMemcpy(gpu_msg, ctx->d_msg, ctx->msg_bytes, cudaMemcpyDeviceToHost), done);
  BENCH_CUDA_GOTO(cudaMemcpy(gpu_dec, ctx->d_dec, n * sizeof(float), cudaMemcpyDeviceToHost), done);
  for (int i = 0; i < ctx->count; ++i) {
    host[i] = ctx->desc[i];
    host[i].g = ctx->h_g + (static_cast<const float *>(ctx->desc[i].g) - ctx->d_g);
  }
  BENCH_MCGQ_GOTO(mcgqEncodeHost(host, ctx->count, cpu_msg, ctx->msg_cap, &cpu_bytes, NULL), done);
  BENCH_MCGQ_GOTO(mcgqDecodeHost(cpu_msg, cpu_bytes, cpu_dec, ctx->n), done);
  {
    size_t common = cpu_bytes < ctx->msg_bytes ? cpu_bytes : ctx->msg_bytes;
    uint64_t bad = (uint64_t)((cpu_bytes > ctx->msg_bytes ? cpu_bytes : ctx->msg_bytes) - common);
    for (size_t i = 0; i < common; ++i) bad += gpu_msg[i] != cpu_msg[i];
    for (size_t i = 0; i < n; ++i) bad += memcmp(&gpu_dec[i], &cpu_dec[i], sizeof(float)) != 0;
    *wrong = bad;
  }
  rc = 0;
done:
  free(gpu_msg);
  free(cpu_msg);
  free(gpu_dec);
  free(cpu_dec);
  free(host);
  return rc;
}

/* ------------------------------------------------------ stage breakdown
 * Per kernel of a captured call: the graph's nodes are replayed one by one
 * in dependency order on the stream (cuLaunchKernel / cuMemsetD2D*Async with
 * the captured parameters, so the same work as the call itself) with an
 * event between consecutive nodes; the time between two events is charged
 * to the kernel's name.  Event gaps make the sum a little larger than the
 * graph's time; the shares are what this table is for. */

#if CUDA_VERSION >= 12030 /* cuFuncGetName, cuKernelGetFunction, node params v2 */
/* The few driver calls of the breakdown, taken from the runtime
 * (cudaGetDriverEntryPointByVersion) instead of linking libcuda: machines
 * without a driver (CI) must still load mcgq_bench and run its CPU rows. */
struct driver_api {
  decltype(&cuFuncGetName) FuncGetName;
  decltype(&cuGraphGetNodes) GraphGetNodes;
  decltype(&cuGraphNodeGetDependencies) GraphNodeGetDependencies;
  decltype(&cuGraphNodeGetType) GraphNodeGetType;
  decltype(&cuGraphKernelNodeGetParams) GraphKernelNodeGetParams;
  decltype(&cuGraphMemsetNodeGetParams) GraphMemsetNodeGetParams;
  decltype(&cuKernelGetFunction) KernelGetFunction;
  decltype(&cuLaunchKernel) LaunchKernel;
  decltype(&cuMemsetD2D8Async) MemsetD2D8Async;
  decltype(&cuMemsetD2D16Async) MemsetD2D16Async;
  decltype(&cuMemsetD2D32Async) MemsetD2D32Async;
  bool ok;
};

template <class F>
bool driver_entry(const char *name, F *fn) {
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  return cudaGetDriverEntryPointByVersion(name, reinterpret_cast<void **>(fn), 12030,
                                          cudaEnableDefault, &found) == cudaSuccess &&
         found == cudaDriverEntryPointSuccess && *fn != nullptr;
}

/* Loaded once, on the first breakdown (the bench is single-threaded). */
const driver_api &drv() {
  static driver_api d = [] {
    driver_api a{};
    a.ok = driver_entry("cuFuncGetName", &a.FuncGetName) &&
           driver_entry("cuGraphGetNodes", &a.GraphGetNodes) &&
           driver_entry("cuGraphNodeGetDependencies", &a.GraphNodeGetDependencies) &&
           driver_entry("cuGraphNodeGetType", &a.GraphNodeGetType) &&
           driver_entry("cuGraphKernelNodeGetParams", &a.GraphKernelNodeGetParams) &&
           driver_entry("cuGraphMemsetNodeGetParams", &a.GraphMemsetNodeGetParams) &&
           driver_entry("cuKernelGetFunction", &a.KernelGetFunction) &&
           driver_entry("cuLaunchKernel", &a.LaunchKernel) &&
           driver_entry("cuMemsetD2D8Async", &a.MemsetD2D8Async) &&
           driver_entry("cuMemsetD2D16Async", &a.MemsetD2D16Async) &&
           driver_entry("cuMemsetD2D32Async", &a.MemsetD2D32Async);
    return a;
  }();
  return d;
}

struct stage_time {
  char name[96];
  int launches;
  double us;
};

void kernel_name(CUfunction f, char *out, size_t size) {
  const char *mangled = nullptr;
  snprintf(out, size, "kernel");
  if (drv().FuncGetName(&mangled, f) != CUDA_SUCCESS || !mangled) return;
  int status = 0;
  char *plain = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  snprintf(out, size, "%s", status == 0 && plain ? plain : mangled);
  free(plain);
  char *paren = strchr(out, '(');
  if (paren) *paren = '\0'; /* drop the parameter list */
}

/* The graph's nodes in an order where every node follows its dependencies
 * (Kahn's algorithm; a captured stream is a chain, but the API does not
 * promise the order of cuGraphGetNodes). */
int ordered_nodes(cudaGraph_t graph, CUgraphNode **out, size_t *count) {
  size_t n = 0, edges = 0, placed = 0, head = 0;
  if (drv().GraphGetNodes((CUgraph)graph, nullptr, &n) != CUDA_SUCCESS || n == 0) return -1;
  CUgraphNode *nodes = (CUgraphNode *)malloc(n * sizeof *nodes);
  CUgraphNode *order = (CUgraphNode *)malloc(n * sizeof *order);
  size_t *pending = (size_t *)calloc(n, sizeof *pending); /* unplaced dependencies */
  size_t *from = (size_t *)malloc(64 * n * sizeof *from), *to = (size_t *)malloc(64 * n * sizeof *to);
  size_t *queue = (size_t *)malloc(n * sizeof *queue);
  int rc = -1;
  if (!nodes || !order || !pending || !from || !to || !queue ||
      drv().GraphGetNodes((CUgraph)graph, nodes, &n) != CUDA_SUCCESS)
    goto done;
  for (size_t i = 0; i < n; ++i) {
    CUgraphNode deps[64];
    size_t nd = 64;
    if (drv().GraphNodeGetDependencies(nodes[i], deps, nullptr, &nd) != CUDA_SUCCESS || nd > 64)
      goto done;
    for (size_t d = 0; d < nd; ++d) {
      size_t j = 0;
      while (j < n && nodes[j] != deps[d]) ++j;
      if (j == n) goto done;
      from[edges] = j;
      to[edges++] = i;
      pending[i] += 1;
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (!pending[i]) queue[placed++] = i;
  for (head = 0; head < placed; ++head)
    for (size_t e = 0; e < edges; ++e)
      if (from[e] == queue[head] && --pending[to[e]] == 0) queue[placed++] = to[e];
  if (placed != n) goto done;
  for (size_t i = 0; i < n; ++i) order[i] = nodes[queue[i]];
  *out = order;
  order = nullptr;
  *count = n;
  rc = 0;
done:
  free(nodes);
  free(order);
  free(pending);
  free(from);
  free(to);
  free(queue);
  return rc;
}

/* Launches node i; its name in `name` (empty for a node not replayed). */
CUresult replay_node(CUgraphNode node, CUstream stream, char *name, size_t size) {
  CUgraphNodeType type;
  name[0] = '\0';
  CUresult r = drv().GraphNodeGetType(node, &type);
  if (r != CUDA_SUCCESS) return r;
  if (type == CU_GRAPH_NODE_TYPE_KERNEL) {
    CUDA_KERNEL_NODE_PARAMS p;
    memset(&p, 0, sizeof p);
    if ((r = drv().GraphKernelNodeGetParams(node, &p)) != CUDA_SUCCESS) return r;
    CUfunction f = p.func;
    if (!f && (r = drv().KernelGetFunction(&f, p.kern)) != CUDA_SUCCESS) return r;
    kernel_name(f, name, size);
    return drv().LaunchKernel(f, p.gridDimX, p.gridDimY, p.gridDimZ, p.blockDimX, p.blockDimY,
                          p.blockDimZ, p.sharedMemBytes, stream, p.kernelParams, p.extra);
  }
  if (type == CU_GRAPH_NODE_TYPE_MEMSET) {
    CUDA_MEMSET_NODE_PARAMS p;
    if ((r = drv().GraphMemsetNodeGetParams(node, &p)) != CUDA_SUCCESS) return r;
    snprintf(name, size, "memset");
    switch (p.elementSize) {
      case 1: return drv().MemsetD2D8Async(p.dst, p.pitch, (unsigned char)p.value, p.width, p.height, stream);
      case 2: return drv().MemsetD2D16Async(p.dst, p.pitch, (unsigned short)p.value, p.width, p.height, stream);
      default: return drv().MemsetD2D32Async(p.dst, p.pitch, p.value, p.width, p.height, stream);
    }
  }
  return CUDA_SUCCESS; /* other nodes (none in these calls) are not timed */
}

/* Prints the stage table of one captured call; failures print a note only
 * (the step's own numbers stand without it). */
void print_breakdown(model_case *ctx, cudaGraph_t graph, const char *model, const char *call) {
  CUgraphNode *nodes = nullptr;
  size_t n = 0;
  cudaEvent_t *ev = nullptr;
  stage_time stages[64];
  int kinds = 0;
  const int passes = ctx->opt->iters;
  const char *why = "loading the driver entry points";
  if (!drv().ok) goto fail;
  why = "reading the graph";
  if (!graph || ordered_nodes(graph, &nodes, &n) != 0) goto fail;
  ev = (cudaEvent_t *)calloc(n + 1, sizeof *ev);
  why = "creating events";
  if (!ev) goto fail;
  for (size_t i = 0; i <= n; ++i)
    if (cudaEventCreate(&ev[i]) != cudaSuccess) goto fail;
  for (int pass = 0; pass < passes; ++pass) {
    why = "replaying a node";
    for (size_t i = 0; i < n; ++i) {
      char name[96];
      if (cudaEventRecord(ev[i], ctx->stream) != cudaSuccess ||
          replay_node(nodes[i], (CUstream)ctx->stream, name, sizeof name) != CUDA_SUCCESS)
        goto fail;
    }
    why = "timing";
    if (cudaEventRecord(ev[n], ctx->stream) != cudaSuccess ||
        cudaEventSynchronize(ev[n]) != cudaSuccess)
      goto fail;
    for (size_t i = 0; i < n; ++i) {
      char name[96];
      float ms = 0;
      CUgraphNodeType type;
      if (drv().GraphNodeGetType(nodes[i], &type) != CUDA_SUCCESS) goto fail;
      if (type == CU_GRAPH_NODE_TYPE_KERNEL) {
        CUDA_KERNEL_NODE_PARAMS p;
        memset(&p, 0, sizeof p);
        CUfunction f = nullptr;
        if (drv().GraphKernelNodeGetParams(nodes[i], &p) != CUDA_SUCCESS) goto fail;
        f = p.func;
        if (!f && drv().KernelGetFunction(&f, p.kern) != CUDA_SUCCESS) goto fail;
        kernel_name(f, name, sizeof name);
      } else if (type == CU_GRAPH_NODE_TYPE_MEMSET) {
        snprintf(name, sizeof name, "memset");
      } else {
        continue;
      }
      if (cudaEventElapsedTime(&ms, ev[i], ev[i + 1]) != cudaSuccess) goto fail;
      int k = 0;
      while (k < kinds && strcmp(stages[k].name, name) != 0) ++k;
      if (k == kinds) {
        if (kinds == 64) continue;
        snprintf(stages[kinds].name, sizeof stages[kinds].name, "%s", name);
        stages[kinds].launches = 0;
        stages[kinds].us = 0;
        ++kinds;
      }
      if (pass == 0) stages[k].launches += 1;
      stages[k].us += 1e3 * (double)ms / passes;
    }
  }
  {
    double total = 0;
    for (int k = 0; k < kinds; ++k) total += stages[k].us;
    printf("#   %s %s by kernel (%zu nodes of the captured graph replayed one by one, "
           "mean of %d; us, share):\n", model, call, n, passes);
    for (int k = 0; k < kinds; ++k)
      printf("#     %-52s %6d x %10.1f us %5.1f%%\n", stages[k].name, stages[k].launches,
             stages[k].us, total > 0 ? 100.0 * stages[k].us / total : 0.0);
  }
  goto done;
fail:
  printf("#   %s %s breakdown unavailable (%s failed)\n", model, call, why);
  cudaGetLastError();
done:
  if (ev)
    for (size_t i = 0; i <= n; ++i)
      if (ev[i]) cudaEventDestroy(ev[i]);
  free(ev);
  free(nodes);
}

#else
void print_breakdown(model_case *ctx, cudaGraph_t graph, const char *model, const char *call) {
  (void)ctx;
  (void)graph;
  printf("#   %s %s breakdown needs CUDA 12.3 or newer\n", model, call);
}
#endif

}  // namespace

extern "C" int bench_gpu_model(const bench_options_t *opt, const uint64_t *sizes, int count,
                               double k, bench_model_row_t *row, char *err,
                               size_t err_size) {
  model_case c;
  model_case *ctx = &c;
  c.opt = opt;
  c.sizes = sizes;
  c.count = count;
  c.n = 0;
  c.k = k;
  for (int i = 0; i < count; ++i) c.n += sizes[i];
  c.err = err;
  c.err_size = err_size;
  err[0] = '\0';
  mcgqLayerStats_t *stats = (mcgqLayerStats_t *)calloc((size_t)count, sizeof *stats);
  int rc = stats ? 0 : -1;
  if (!stats) snprintf(err, err_size, "out of host memory");
  if (rc == 0) rc = setup_model(ctx);
  if (rc == 0) rc = run_model_once(ctx, stats);
  if (rc == 0) rc = capture_model(ctx);
  static const int order[] = {M_COPY, M_REDUCE, M_SCAN, M_ENCODE_EACH, M_ENCODE,
                              M_DECODE, M_ENCODE_GRAPH, M_DECODE_GRAPH};
  double t[8] = {0};
  for (int s = 0; s < 8 && rc == 0; ++s) {
    t[s] = time_model_stage(ctx, order[s]);
    if (t[s] < 0) rc = -1;
  }
  if (rc == 0) {
    row->copy_us = t[0];
    row->reduce_us = t[1];
    row->scan_us = t[2];
    row->encode_per_layer_us = t[3];
    row->encode_us = t[4];
    row->decode_us = t[5];
    row->encode_graph_us = t[6];
    row->decode_graph_us = t[7];
    uint64_t stream_bits = 0;
    for (int i = 0; i < count; ++i) stream_bits += stats[i].stream_bits;
    row->wire_bytes = c.msg_bytes;
    row->bits_per_element = 8.0 * (double)c.msg_bytes / (double)c.n;
    row->paper_ratio = 32.0 * (double)c.n / ((double)stream_bits + 32.0 * count);
    row->wire_ratio = 4.0 * (double)c.n / (double)c.msg_bytes;
    row->checked = opt->check;
    if (opt->check) rc = count_model_wrong(ctx, &row->wrong);
  }
  if (rc == 0) { /* after the check: the replays rewrite the same bytes */
    print_breakdown(ctx, c.encode_def, row->name, "encode");
    print_breakdown(ctx, c.decode_def, row->name, "decode-average");
  }
  teardown_model(ctx);
  free(stats);
  return rc;
}
