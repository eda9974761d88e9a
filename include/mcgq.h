/*
 * mcgq.h - Monte Carlo Gradient Quantization: compression and exchange of
 * neural-network gradients.  The one public header of libmcgq.
 *
 * Pure C (C99 and C++), depends only on <stdint.h> and <stddef.h>.  CUDA
 * streams are passed as `mcgqStream_t`, which is the same type as CUDA's
 * `cudaStream_t` (`struct CUstream_st *`), so callers pass their cudaStream_t
 * directly while this header needs no CUDA header (and a CPU-only build of the
 * library, e.g. the Python wheel on a machine without the toolkit, keeps the
 * same ABI).
 *
 * Semantics (normative): DESIGN.md section 2 and docs/FORMAT.md of the source
 * tree.  In brief: a layer g of n float32 values and a sampling amount K give
 * N = ceil(n*K) stratified samples of the density |g|/||g||_1; every element
 * receives the signed count of samples in its interval (g_int, int32) and the
 * layer one float scale so that scale*g_int is an unbiased estimate of g.
 *
 * Memory: every pointer parameter says whether it is host or device memory.
 * The library never keeps a pointer it is given beyond the call, except the
 * layer tables registered with mcgqCommSetLayers (documented there).
 *
 * Errors: every call returns an mcgqResult_t.  Calls without a handle also
 * leave a human-readable detail in a thread-local buffer
 * (mcgqGetLastErrorDetail); calls on a communicator keep it in the handle
 * (mcgqCommGetLastError).  The library never prints, exits or aborts.
 * On any failure the caller's gradients, accumulators and K state are left
 * exactly as they were.
 *
 * Global state: none, except the thread-local last-error detail.
 *
 * Limits (DESIGN.md section 7):
 *   n per layer        < 2^32  (MCGQ_MAX_LAYER_ELEMENTS)
 *   K                  in (0, 64] (MCGQ_MAX_K)
 *   N = ceil(n*K)      < 2^31 per layer (MCGQ_MAX_SAMPLES), so counts fit int32
 *   layers per message < 2^31
 */
#ifndef MCGQ_H_
#define MCGQ_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(MCGQ_BUILDING_LIBRARY)
#    define MCGQ_API __declspec(dllexport)
#  else
#    define MCGQ_API
#  endif
#elif defined(__GNUC__)
#  define MCGQ_API __attribute__((visibility("default")))
#else
#  define MCGQ_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- version */

#define MCGQ_VERSION_MAJOR 0
#define MCGQ_VERSION_MINOR 1
#define MCGQ_VERSION_PATCH 0
#define MCGQ_VERSION_CODE \
  (MCGQ_VERSION_MAJOR * 10000 + MCGQ_VERSION_MINOR * 100 + MCGQ_VERSION_PATCH)

/* Version of the wire container (docs/FORMAT.md) this library writes. */
#define MCGQ_FORMAT_VERSION 1

/* MAJOR*10000 + MINOR*100 + PATCH of the library actually loaded.
 * Thread-safe. */
MCGQ_API int mcgqGetVersion(void);

/* ----------------------------------------------------------------- status */

typedef enum {
  mcgqSuccess = 0,
  /* caller errors */
  mcgqInvalidArgument = 1,    /* null pointer, bad size, bad K, aliasing ... */
  mcgqInvalidUsage = 2,       /* call not valid in this state / this build */
  mcgqUnsupportedVersion = 3, /* struct_size or format version not known */
  /* data errors */
  mcgqCorruptStream = 10,     /* a message or bitstream is malformed */
  mcgqNonFinite = 11,         /* NaN or Inf in the values to be sampled */
  mcgqCapacityExceeded = 12,  /* output buffer too small */
  mcgqRangeError = 13,        /* scale not representable in float32 */
  /* system errors */
  mcgqCudaError = 20,
  mcgqNcclError = 21,
  mcgqMpiError = 22,
  mcgqOutOfMemory = 23,
  mcgqInternalError = 30,
  mcgqNumResults
} mcgqResult_t;

/* Static string naming the status ("invalid argument", ...); never NULL.
 * Thread-safe. */
MCGQ_API const char *mcgqGetErrorString(mcgqResult_t result);

/* Detail of the last failed call made by this thread that takes no handle
 * (e.g. "mcgqQuantizeHost: K = nan is not in (0, 64]").  Empty string when the
 * last such call succeeded.  The pointer stays valid until this thread's next
 * mcgq call.  Thread-safe (thread-local storage). */
MCGQ_API const char *mcgqGetLastErrorDetail(void);

/* ------------------------------------------------------------------ limits */

#define MCGQ_MAX_K 64.0
#define MCGQ_MAX_SAMPLES ((uint64_t)0x7fffffff)          /* N <= 2^31 - 1 */
#define MCGQ_MAX_LAYER_ELEMENTS ((uint64_t)0xffffffff)   /* n <= 2^32 - 1 */
#define MCGQ_MAX_LAYERS ((int)0x7fffffff)

/* ------------------------------------------------------- layer configuration
 * ABI structs hold fixed-width integers, not enum types.  */

#define MCGQ_ALGO_FUSED 0      /* GPU: closed-form counts, fewest passes (default) */
#define MCGQ_ALGO_SAMPLE 1     /* GPU: the design card's literal pipeline */

#define MCGQ_ACCUM_NONE 0      /* Alg 2: quantize g itself */
#define MCGQ_ACCUM_RESET 1     /* Alg 4: accum += g, quantize accum, zero sampled */
#define MCGQ_ACCUM_RESIDUAL 2  /* error feedback: accum += g, quantize accum,
                                  accum -= scale*g_int, damped scale */

#define MCGQ_DTYPE_F32 0       /* the only input type for now */

typedef struct {
  uint32_t struct_size; /* sizeof(mcgqLayerConfig_t); set by the initializer */
  int32_t dtype;        /* MCGQ_DTYPE_F32 */
  double k;             /* sampling amount K in (0, 64]; N = ceil(n*K) */
  uint64_t samples;     /* N given directly (overrides k); 0 = derive from k */
  int32_t accumulate;   /* MCGQ_ACCUM_* */
  int32_t dynamic_k;    /* 1 = Alg 3: K taken from and updated in mcgqKState_t */
  double k_min, k_max;  /* clamp of the dynamic K, 0 < k_min <= k_max <= 64 */
  double delta_k;       /* Alg 3 step: K += delta_k * (d_prev - d) */
  int32_t algo;         /* MCGQ_ALGO_* (GPU only; the CPU has one algorithm) */
  int32_t checksum;     /* 1 = CRC32C over each layer's payload */
} mcgqLayerConfig_t;

#define MCGQ_LAYER_CONFIG_INITIALIZER                                      \
  {                                                                        \
    (uint32_t) sizeof(mcgqLayerConfig_t), MCGQ_DTYPE_F32, 1.0, 0,          \
        MCGQ_ACCUM_NONE, 0, 0.01, 8.0, 0.0, MCGQ_ALGO_FUSED, 0             \
  }

/* Dynamic-K state of one layer (Alg 3), caller-owned (host memory for the
 * host calls, device memory for the Async calls).  Initialize with
 * mcgqKStateInit: k = cfg->k, started = 0. */
typedef struct {
  double k;        /* K used by the next encode of this layer */
  double d_prev;   /* W1 distance of the previous step */
  int32_t started; /* 0 until the first step has set d_prev */
  int32_t reserved;
} mcgqKState_t;

/* What one layer's encode produced.  All fields are exact (integers) or
 * computed as DESIGN.md prescribes, so they are identical on every path. */
typedef struct {
  uint64_t n;            /* elements */
  uint64_t samples;      /* N actually drawn (0 for an all-zero layer's draw) */
  double k;              /* K used for this layer (after dynamic K lookup) */
  float scale;           /* float scale sent with the layer */
  uint32_t bits_value;   /* B_g of the paper's bitstream */
  uint32_t bits_run;     /* B_RLE of the paper's bitstream */
  uint32_t status;       /* mcgqResult_t of the data checks of this layer */
  uint64_t stream_bits;  /* bits of the paper's bitstream (64-bit header incl.) */
  uint64_t wire_bytes;   /* bytes this layer takes in the container */
  uint64_t nonzeros;     /* elements with g_int != 0 */
  double w1;             /* exact W1 of DESIGN.md Alg 3; computed by
                            mcgqQuantizeHost and for dynamic-K layers,
                            -1 where it was not computed */
  uint32_t flags;        /* MCGQ_LAYER_FLAG_* */
  uint32_t reserved;
} mcgqLayerStats_t;

#define MCGQ_LAYER_FLAG_FIXED_WIDTH 1u /* sent as n B_g-bit values, not RLE */
#define MCGQ_LAYER_FLAG_CUT 2u         /* fixed capacity: a tail was not sent */

/* One layer of a segmented (multi-layer) call.  Arrays of descriptors are
 * walked with the caller's `struct_size` as stride, so fields can be added
 * later without breaking binaries built against this header. */
typedef struct {
  uint32_t struct_size;    /* sizeof(mcgqLayerDesc_t) */
  uint32_t u;              /* random word of this layer (mcgqRandomWord) */
  const float *g;          /* n gradient values (host or device, per call) */
  float *accum;            /* n accumulator values, in/out; NULL iff ACCUM_NONE */
  mcgqKState_t *kstate;    /* in/out; NULL iff !cfg.dynamic_k */
  uint64_t n;              /* elements, 1 <= n <= MCGQ_MAX_LAYER_ELEMENTS */
  mcgqLayerConfig_t cfg;
} mcgqLayerDesc_t;

/* Fills *desc with struct_size, the default config and zeros.  Thread-safe. */
MCGQ_API void mcgqLayerDescInit(mcgqLayerDesc_t *desc);

/* Sets kstate->k = cfg->k, d_prev = 0, started = 0 (host memory). */
MCGQ_API mcgqResult_t mcgqKStateInit(const mcgqLayerConfig_t *cfg,
                                     mcgqKState_t *kstate);

/* ------------------------------------------------------------ random words
 * The 32-bit random word u of a layer, DESIGN.md 2.8: Philox4x32-10 with key
 * (seed mod 2^32, seed >> 32) and counter (step mod 2^32, step >> 32, layer,
 * rank); u is the first output word.  Pure function, thread-safe. */
MCGQ_API uint32_t mcgqRandomWord(uint64_t seed, uint64_t step, uint32_t layer,
                                 uint32_t rank);

/* ============================================================ CPU reference
 * Host memory, synchronous, portable.  Every call is thread-safe for distinct
 * output buffers.  The reference sets round-to-nearest and clears
 * flush-to-zero/denormals-are-zero for its own work and restores the caller's
 * floating-point state, so results do not depend on the caller's FP mode. */

/* Resolves N for a layer of n elements: cfg->samples if nonzero, else
 * ceil(n * k) in double (k = kstate->k for dynamic K, which may be NULL
 * otherwise).  Checks every limit. */
MCGQ_API mcgqResult_t mcgqResolveSamples(const mcgqLayerConfig_t *cfg,
                                         const mcgqKState_t *kstate,
                                         uint64_t n, uint64_t *samples);

/* Quantizes g (n values, host) into g_int (n int32, host, must not overlap g)
 * with K = k (or N = samples when nonzero) and random word u.  `damped` = 1
 * gives the residual-error-feedback scale (T*m / (2^24 * max(N, n))).
 * Fills stats (n, samples, k, scale, bits_value, bits_run, stream_bits,
 * nonzeros, w1; wire_bytes = 0).  Non-finite g: mcgqNonFinite, g_int
 * untouched. */
MCGQ_API mcgqResult_t mcgqQuantizeHost(const float *g, uint64_t n, double k,
                                       uint64_t samples, uint32_t u, int damped,
                                       int32_t *g_int, mcgqLayerStats_t *stats);

/* W1 of DESIGN.md Alg 3 between g (n floats) and g_int (n int32 of N samples),
 * exact on fixed-point magnitudes.  Host memory. */
MCGQ_API mcgqResult_t mcgqWassersteinHost(const float *g, const int32_t *g_int,
                                          uint64_t n, double *w1);

/* Alg 3 update of one layer's state with this step's distance d:
 * first step: d_prev = d, started = 1, K unchanged; later steps:
 * K = clamp(K + delta_k * (d_prev - d), k_min, k_max), d_prev = d. */
MCGQ_API mcgqResult_t mcgqKStateUpdate(const mcgqLayerConfig_t *cfg,
                                       mcgqKState_t *kstate, double d);

/* The paper's bitstream (section 3.4) of one layer alone: 32-bit B_g, 32-bit
 * B_RLE, then the tokens, MSB-first, zero-padded to a whole byte.
 * out == NULL queries the size: *stream_bits is set, nothing is written.
 * Otherwise out_capacity must hold ceil(stream_bits/8) bytes. */
MCGQ_API mcgqResult_t mcgqRleEncodeHost(const int32_t *g_int, uint64_t n,
                                        void *out, size_t out_capacity,
                                        uint64_t *stream_bits);

/* Decodes a paper bitstream of exactly n elements into g_int.  Accepts only
 * canonical streams (what mcgqRleEncodeHost writes); anything else is
 * mcgqCorruptStream with a detail naming the defect, g_int may then hold
 * partial output.  in_bytes must be the stream's whole size. */
MCGQ_API mcgqResult_t mcgqRleDecodeHost(const void *in, size_t in_bytes,
                                        uint64_t n, int32_t *g_int);

/* Upper bound of the container size for these layers (g, accum, kstate and u
 * are not read).  Never exceeded by an encode of any data. */
MCGQ_API mcgqResult_t mcgqEncodeGetMaxOutputSize(const mcgqLayerDesc_t *layers,
                                                 int count, size_t *bytes);

/* Encodes `count` layers (host memory) into one container message at `out`.
 * For each layer: resolves K (dynamic K from kstate), applies the
 * accumulation mode to accum, quantizes, encodes; then updates kstate.
 * *out_bytes receives the message size; stats (count entries, may be NULL)
 * receive per-layer results.  All-or-nothing: if any layer is non-finite,
 * out of range or the output does not fit, no accumulator or K state is
 * changed, and stats[i].status tells which layer failed.  Memory: the
 * reference allocates O(n) host scratch per call (OutOfMemory on failure). */
MCGQ_API mcgqResult_t mcgqEncodeHost(const mcgqLayerDesc_t *layers, int count,
                                     void *out, size_t out_capacity,
                                     size_t *out_bytes,
                                     mcgqLayerStats_t *stats);

/* Container inspection without decoding payloads (validates the header and
 * the directory, and CRCs when present). */
typedef struct {
  uint32_t format_version;
  uint32_t flags;          /* MCGQ_MESSAGE_FLAG_* */
  uint32_t layer_count;
  uint32_t reserved;
  uint64_t total_n;        /* sum of the layers' n */
  uint64_t total_bytes;    /* the message's size */
} mcgqMessageInfo_t;
#define MCGQ_MESSAGE_FLAG_CRC32C 1u

typedef struct {
  uint64_t n, n_coded, samples;
  float scale;
  uint32_t encoding;       /* 0 = paper RLE, 1 = fixed width */
  uint32_t bits_value, bits_run;
  uint32_t flags;          /* MCGQ_LAYER_FLAG_* */
  uint32_t reserved;
  uint64_t stream_bits;
  uint64_t byte_offset, byte_size;
} mcgqMessageLayer_t;

MCGQ_API mcgqResult_t mcgqMessageGetInfo(const void *in, size_t in_bytes,
                                         mcgqMessageInfo_t *info);
MCGQ_API mcgqResult_t mcgqMessageGetLayer(const void *in, size_t in_bytes,
                                          uint32_t index,
                                          mcgqMessageLayer_t *layer);

/* Decodes a whole message into integers: g_int receives total_n int32 (layers
 * concatenated in order), scales (layer_count floats, may be NULL) the
 * scales.  n must equal the message's total_n. */
MCGQ_API mcgqResult_t mcgqDecodeIntsHost(const void *in, size_t in_bytes,
                                         int32_t *g_int, uint64_t n,
                                         float *scales, uint32_t scales_count);

/* Decodes a whole message into dequantized floats out[k] = scale*g_int[k]
 * (float multiply), n = total_n. */
MCGQ_API mcgqResult_t mcgqDecodeHost(const void *in, size_t in_bytes,
                                     float *out, uint64_t n);

/* Decode-and-average of P messages (one per rank, rank order) with the same
 * layer table: acc = 0; for r: acc = fmaf(scale_r, g_int_r[k], acc);
 * out[k] = acc / P.  out must not overlap any input.  A corrupt message is
 * reported with its rank in the detail and out is then unspecified. */
MCGQ_API mcgqResult_t mcgqDecodeAverageHost(const void *const *in,
                                            const size_t *in_bytes, int nranks,
                                            float *out, uint64_t n);

/* ================================================================ GPU path
 * Device memory, asynchronous on the caller's stream: no allocation, no host
 * synchronization and no other stream inside an ...Async call, so a whole
 * encode+decode can be captured in a CUDA graph.  The return value covers
 * what the host can check (arguments, launches); what depends on the data
 * (non-finite, range, capacity) lands in device-side stats[i].status, read
 * by the caller after the stream has reached that point.  Layers with a
 * nonzero status leave their accumulator and K state untouched and are
 * written to the message as all-zero layers with that status.
 * Thread-safe for distinct buffers.  A library built without CUDA returns
 * mcgqInvalidUsage from these calls. */

typedef struct CUstream_st *mcgqStream_t; /* == cudaStream_t */

/* 1 if the library was built with the GPU path and a device is usable. */
MCGQ_API int mcgqGpuAvailable(void);

MCGQ_API mcgqResult_t mcgqEncodeGetTempSize(const mcgqLayerDesc_t *layers,
                                            int count, size_t *temp_bytes);

/* layers: host array of descriptors whose g/accum/kstate point to device
 * memory.  d_out: device, out_capacity bytes (>= mcgqEncodeGetMaxOutputSize).
 * d_out_bytes: device size_t receiving the message size.  d_stats: device,
 * count entries.  d_temp: device scratch of mcgqEncodeGetTempSize bytes. */
MCGQ_API mcgqResult_t mcgqEncodeAsync(const mcgqLayerDesc_t *layers, int count,
                                      void *d_out, size_t out_capacity,
                                      size_t *d_out_bytes,
                                      mcgqLayerStats_t *d_stats, void *d_temp,
                                      size_t temp_bytes, mcgqStream_t stream);

/* Scratch for decoding P messages of capacity in_capacity bytes each with n
 * elements in all: about 16 bytes per 32 layers such a message can hold
 * plus 40 bytes per rank per 8192 elements (no per-rank copy of the
 * directory; not cleared by the caller: the decode initializes what it uses). */
MCGQ_API mcgqResult_t mcgqDecodeAverageGetTempSize(int nranks, uint64_t n,
                                                   size_t in_capacity,
                                                   size_t *temp_bytes);

/* d_in: host array of nranks device pointers to messages; d_in_bytes: host
 * array of their sizes (or of the capacity when sizes are only known on the
 * device; the true size is read from each message header).  d_out: device,
 * n floats.  d_status: device uint32, receives an mcgqResult_t (corrupt
 * message, mismatch) when the data is bad; 0 otherwise. */
MCGQ_API mcgqResult_t mcgqDecodeAverageAsync(const void *const *d_in,
                                             const size_t *d_in_bytes,
                                             int nranks, float *d_out,
                                             uint64_t n, uint32_t *d_status,
                                             void *d_temp, size_t temp_bytes,
                                             mcgqStream_t stream);

/* ================================================================ exchange
 * A communicator binds the library to the caller's NCCL communicator
 * (mcgq_nccl.h) or MPI communicator (mcgq_mpi.h, libmcgq_mpi).  The library
 * never creates communicators or streams of its own.  A communicator is not
 * thread-safe: one thread at a time per handle. */

typedef struct mcgqComm *mcgqComm_t;

/* One registered layer.  grad (and accum, kstate) point to device memory on
 * an NCCL communicator and to host memory on an MPI one; the library keeps
 * these pointers until the next mcgqCommSetLayers or mcgqCommDestroy. */
typedef struct {
  uint32_t struct_size;     /* sizeof(mcgqLayer_t) */
  uint32_t reserved;
  float *grad;              /* n values: input gradient, output average */
  float *accum;             /* accumulator, NULL iff ACCUM_NONE */
  mcgqKState_t *kstate;     /* NULL iff !cfg.dynamic_k */
  uint64_t n;
  mcgqLayerConfig_t cfg;
} mcgqLayer_t;

typedef struct {
  uint64_t bytes_sent;      /* payload bytes this rank sent in the step */
  uint64_t elements;        /* elements of all layers */
  double paper_ratio;       /* 32*n / (paper stream bits + 32) over all layers */
  double wire_ratio;        /* 4*n / container bytes */
  int32_t found_nonfinite;  /* 1: some rank had NaN/Inf, nothing was updated */
  int32_t layers_cut;       /* fixed capacity: layers whose tail stayed behind */
} mcgqStepStats_t;

/* Registers the layer table (copied; the pointers inside are kept).  Collective
 * check at the next step: all ranks must register the same count and sizes. */
MCGQ_API mcgqResult_t mcgqCommSetLayers(mcgqComm_t comm,
                                        const mcgqLayer_t *layers, int count);

/* Fixed-capacity mode: every rank sends exactly bytes_per_rank bytes per step
 * (no size exchange, no host read of sizes); 0 = exact sizes (default). */
MCGQ_API mcgqResult_t mcgqCommSetCapacity(mcgqComm_t comm,
                                          size_t bytes_per_rank);

/* One training step: encode every layer with u = mcgqRandomWord(seed, step,
 * layer index, rank), exchange, decode-and-average in rank order and write
 * the averages into every layer's grad.  Every rank ends with bit-identical
 * gradients.  A non-finite value on any rank changes nothing on any rank and
 * returns mcgqNonFinite everywhere (stats->found_nonfinite = 1).  stream is
 * ignored by MPI communicators.  stats may be NULL. */
MCGQ_API mcgqResult_t mcgqCommStep(mcgqComm_t comm, uint64_t step,
                                   uint64_t seed, mcgqStream_t stream,
                                   mcgqStepStats_t *stats);

MCGQ_API mcgqResult_t mcgqCommGetRank(mcgqComm_t comm, int *rank, int *nranks);

/* Detail of the last failure on this handle ("" if none). */
MCGQ_API const char *mcgqCommGetLastError(mcgqComm_t comm);

/* Per-layer results of this rank's encode in the last step (K used, scale,
 * stream bits, status of the data checks ...): the first `count` layers of
 * the registered table, host memory.  count <= the registered count. */
MCGQ_API mcgqResult_t mcgqCommGetLayerStats(mcgqComm_t comm,
                                            mcgqLayerStats_t *stats, int count);

/* Frees the handle (not the caller's communicator, buffers or stream). */
MCGQ_API mcgqResult_t mcgqCommDestroy(mcgqComm_t comm);

/* ============================================ performance model and policy
 * An alpha-beta model of one exchange step, used to decide whether a layer
 * (or a bucket of layers) is worth compressing and to predict step times
 * (`mcgq model`, bench/README.md).  Pure host arithmetic on the numbers
 * given: no I/O, no state, thread-safe.  Times are microseconds; bandwidths
 * are GB/s with G = 10^9 (as nccl-tests reports them).
 *
 * With P ranks, n elements in L layers, b wire bits per element:
 *   ring all-reduce of a w-bit type (w = 32 fp32, 16 bf16):
 *     t_ar   = 2(P-1) alpha + 2(P-1)/P * (n w / 8) / bw
 *   mcgq = encode + all-gather of the P compressed payloads + decode of P:
 *     t_enc  = launch + L per_layer + 4n / encode_bw
 *     t_ag   = (1 + size_exchange)(P-1) alpha + (P-1) (n b / 8) / bw
 *     t_dec  = launch + L per_layer + P * 4n / decode_bw
 * (ring all-gather: P-1 steps, each rank receives P-1 payloads; the size
 * exchange is a second, tiny all-gather unless fixed capacity is used.)
 * The models of both sides are linear in n and in b, so break-even points
 * have closed forms. */

/* The link between the ranks.  Presets (mcgqLinkModelPreset):
 *   "pcie4":       bw 25 GB/s per direction (PCIe 4.0 x16 is 16 GT/s x 16
 *                  lanes, 128b/130b = 31.5 GB/s raw; ~25 GB/s achieved),
 *                  alpha 3 us (nccl-tests all_reduce_perf of 8 bytes on two
 *                  PCIe GPUs: ~6 us = 2(P-1) alpha with P = 2).
 *   "nvlink-h100": bw 450 GB/s per direction (H100 SXM: 18 NVLink 4 links,
 *                  900 GB/s bidirectional per GPU through NVSwitch), alpha
 *                  3 us.  Peak numbers: NCCL's measured bus bandwidth is lower,
 *                  override with a measured one where known. */
typedef struct {
  uint32_t struct_size; /* sizeof(mcgqLinkModel_t) */
  uint32_t reserved;
  double alpha_us;      /* latency of one step of a ring collective, >= 0 */
  double bw_gbs;        /* bandwidth per rank and direction, > 0 */
} mcgqLinkModel_t;
#define MCGQ_LINK_MODEL_INITIALIZER \
  { (uint32_t) sizeof(mcgqLinkModel_t), 0, 3.0, 25.0 }

/* Codec costs, from measurements (bench/mcgq_bench -J). */
typedef struct {
  uint32_t struct_size;  /* sizeof(mcgqCodecModel_t) */
  int32_t size_exchange; /* 1: exact sizes, one extra all-gather of sizes;
                            0: fixed capacity (mcgqCommSetCapacity) */
  double encode_gbs;     /* encode throughput in fp32 input bytes, > 0 */
  double decode_gbs;     /* decode throughput of ONE stream in fp32 output
                            bytes (decode-and-average of P costs P times), > 0 */
  double launch_us;      /* fixed cost of one encode or decode call, >= 0 */
  double per_layer_us;   /* extra cost per layer inside one call, >= 0 */
} mcgqCodecModel_t;
#define MCGQ_CODEC_MODEL_INITIALIZER \
  { (uint32_t) sizeof(mcgqCodecModel_t), 1, 100.0, 200.0, 10.0, 0.0 }

/* Predicted times of one step (microseconds). */
typedef struct {
  uint32_t struct_size;   /* set by the caller: sizeof(mcgqStepPrediction_t) */
  uint32_t reserved;
  double encode_us;       /* t_enc */
  double exchange_us;     /* t_ag */
  double decode_us;       /* t_dec */
  double mcgq_us;         /* t_enc + t_ag + t_dec */
  double allreduce_fp32_us;
  double allreduce_bf16_us;
} mcgqStepPrediction_t;

/* Fills *link with a named preset ("pcie4", "nvlink-h100").  Unknown name:
 * mcgqInvalidArgument. */
MCGQ_API mcgqResult_t mcgqLinkModelPreset(const char *name,
                                          mcgqLinkModel_t *link);

/* Predicted step of n elements in `layers` layers (layers >= 1, n >= 1),
 * bits_per_element > 0 (wire bits, container overhead included), nranks >= 1
 * (P = 1: no communication at all, both all-reduces cost 0).  All structs are
 * host memory; pred->struct_size must be set by the caller. */
MCGQ_API mcgqResult_t mcgqModelStepTime(const mcgqLinkModel_t *link,
                                        const mcgqCodecModel_t *codec,
                                        uint64_t n, uint32_t layers,
                                        double bits_per_element, int nranks,
                                        mcgqStepPrediction_t *pred);

/* Break-even points of mcgq against a ring all-reduce of baseline_bits-bit
 * values (32 = fp32, 16 = bf16; any value in (0, 64]), nranks >= 2. */
typedef struct {
  uint32_t struct_size;     /* set by the caller: sizeof(mcgqBreakEven_t) */
  int32_t larger_wins;      /* 1: mcgq is faster for n > elements,
                               0: faster for n < elements (see elements) */
  double bits_per_element;  /* at the given n: mcgq is faster iff b is below;
                               <= 0 means it never is at this n */
  double elements;          /* at the given b: the n where both times are
                               equal; -1 when they never cross for n > 0
                               (then `always` tells which side wins) */
  int32_t always;           /* elements == -1: 1 mcgq always faster,
                               0 never faster; otherwise 0 */
  int32_t reserved;
} mcgqBreakEven_t;

/* Break-even bits/element at (n, layers) and break-even n at
 * bits_per_element (with the same layer count). */
MCGQ_API mcgqResult_t mcgqModelBreakEven(const mcgqLinkModel_t *link,
                                         const mcgqCodecModel_t *codec,
                                         uint64_t n, uint32_t layers,
                                         double bits_per_element, int nranks,
                                         int baseline_bits,
                                         mcgqBreakEven_t *out);

/* *compress = 1 when the predicted mcgq step is strictly faster than a ring
 * all-reduce of baseline_bits-bit values for this n, b and P; else 0
 * (also for P = 1, where there is nothing to exchange). */
MCGQ_API mcgqResult_t mcgqPolicyShouldCompress(const mcgqLinkModel_t *link,
                                               const mcgqCodecModel_t *codec,
                                               uint64_t n, uint32_t layers,
                                               double bits_per_element,
                                               int nranks, int baseline_bits,
                                               int *compress);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCGQ_H_ */
