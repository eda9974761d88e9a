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
  mcgqRangeError = 13,        /* scale, or a decode of the values, would overflow
                                 float32 (docs/FORMAT.md 4, the range rule) */
  /* system errors */
  mcgqCudaError = 20,
  mcgqNcclError = 21,
  mcgqMpiError = 22,
  mcgqOutOfMemory = 23,
  mcgqInternalError = 30,
  mcgqTimeout = 31,           /* a peer did not join a collective in time
                                 (mcgqCommSetTimeout); the handle is aborted */
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

#define MCGQ_DTYPE_F32 0       /* float32 */
#define MCGQ_DTYPE_BF16 1      /* bfloat16 (the upper half of a float32) */
#define MCGQ_DTYPE_F16 2       /* IEEE binary16 */
/* A 16-bit layer is quantized from its values widened exactly to float32,
 * so its message equals the float32 layer's of those values; accumulators
 * stay float32.  Decoders can write float32, bf16 or binary16 outputs
 * (mcgqDecodeHostTyped): each output is computed in float32 as DESIGN.md 2
 * says, then rounded once to nearest even. */

typedef struct {
  uint32_t struct_size; /* sizeof(mcgqLayerConfig_t); set by the initializer */
  int32_t dtype;        /* MCGQ_DTYPE_*: the type of the layer's g */
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
  const void *g;           /* n gradient values of cfg.dtype (host or device) */
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

/* mcgqDecodeHost and mcgqDecodeAverageHost into an output of out_dtype
 * (MCGQ_DTYPE_*): each value is computed in float32 exactly as those
 * functions compute it, then rounded to nearest even into bf16 or binary16
 * (overflow to infinity).  MCGQ_DTYPE_F32 is those functions. */
MCGQ_API mcgqResult_t mcgqDecodeHostTyped(const void *in, size_t in_bytes,
                                          void *out, int32_t out_dtype, uint64_t n);
MCGQ_API mcgqResult_t mcgqDecodeAverageHostTyped(const void *const *in,
                                                 const size_t *in_bytes, int nranks,
                                                 void *out, int32_t out_dtype,
                                                 uint64_t n);

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

/* The same into an output of out_dtype (MCGQ_DTYPE_*): each value computed
 * in float32 as mcgqDecodeAverageAsync computes it, then rounded once to
 * nearest even into bf16 or binary16, written only when every check passed.
 * The scratch of a 16-bit output holds the float32 results too (4n more
 * bytes): size it with the Typed call and the same out_dtype. */
MCGQ_API mcgqResult_t mcgqDecodeAverageGetTempSizeTyped(int nranks, uint64_t n,
                                                        size_t in_capacity,
                                                        int32_t out_dtype,
                                                        size_t *temp_bytes);
MCGQ_API mcgqResult_t mcgqDecodeAverageAsyncTyped(const void *const *d_in,
                                                  const size_t *d_in_bytes, int nranks,
                                                  void *d_out, int32_t out_dtype,
                                                  uint64_t n, uint32_t *d_status,
                                                  void *d_temp, size_t temp_bytes,
                                                  mcgqStream_t stream);

/* ================================================================ exchange
 * A communicator binds the library to the caller's NCCL communicator
 * (mcgq_nccl.h), MPI communicator (mcgq_mpi.h, libmcgq_mpi) or to collectives
 * the caller supplies as callbacks (mcgqCommInitCallbacks: how the PyTorch
 * hook runs on torch.distributed).  The library never creates communicators
 * or streams of its own.  A communicator is not thread-safe: one thread at a
 * time per handle.
 *
 * The step protocol is the same on every transport (one definition, in the
 * library): (1) each rank quantizes and encodes its layers, changing nothing;
 * (2) one all-gather of a small block per rank (fingerprint of the layer
 * table, settings and step counter, status, message size): every rank then
 * takes the same decision, so a mismatch or any rank's failure ends the step
 * on every rank with nothing changed; (3) exact sizes only: the receive
 * buffer is reserved and a max-reduction agrees that every rank has one;
 * (4) all-gather of the messages, decode-and-average in rank order into the
 * gradients; (5) commit of accumulators and K state (the first write to
 * them: no backups are needed).
 *
 * Modes: exact sizes (default) send each message at its size.  Fixed
 * capacity (mcgqCommSetCapacity) sends exactly bytes_per_rank bytes per rank
 * and step: no size exchange, no step 3; a layer that does not fit is cut at
 * an element boundary (MCGQ_LAYER_FLAG_CUT, docs/FORMAT.md), the cut elements
 * stay in the accumulator in the accumulated modes, and every cut is counted
 * in mcgqStepStats_t.layers_cut (in plain mode they are simply not sent).
 *
 * Timeout (mcgqCommSetTimeout, off by default): a collective of a step that
 * has not completed `seconds` after the step began returns mcgqTimeout on
 * the ranks that wait; nothing was committed (gradients, accumulators and K
 * state are as before the step) and the handle is aborted: every later step
 * returns mcgqInvalidUsage.  The transport under it is then unusable too
 * (MPI: a collective stays posted on the caller's MPI communicator; NCCL:
 * the library calls ncclCommAbort on it), and mcgqCommDestroy keeps the
 * exchange buffers allocated because that collective may still write them. */

typedef struct mcgqComm *mcgqComm_t;

/* One registered layer.  grad (and accum, kstate) point to device memory on
 * a device communicator (NCCL, callbacks with payload_on_device = 1) and to
 * host memory otherwise; the library keeps these pointers until the next
 * mcgqCommSetLayers or mcgqCommDestroy.  grad holds values of cfg.dtype:
 * float32, or (all-gather mode, not hierarchical) bfloat16 / binary16, read
 * widened exactly as mcgqEncodeHost reads them and overwritten with the
 * float32 average rounded once to nearest even; accumulators stay float32.
 * A device communicator takes one dtype for the whole table. */
typedef struct {
  uint32_t struct_size;     /* sizeof(mcgqLayer_t) */
  uint32_t reserved;
  void *grad;               /* n values of cfg.dtype: gradient in, average out */
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
  int32_t layers_cut;       /* fixed capacity: layers of this rank whose tail
                               was not sent (MCGQ_LAYER_FLAG_CUT) */
} mcgqStepStats_t;

/* Registers the layer table (copied; the pointers inside are kept).  Collective
 * check at the next step: all ranks must register the same count and sizes.
 * On failure the previous table stays registered. */
MCGQ_API mcgqResult_t mcgqCommSetLayers(mcgqComm_t comm,
                                        const mcgqLayer_t *layers, int count);

/* The layer ids of the registered table: layer i samples with
 * u = mcgqRandomWord(seed, step, ids[i], rank) instead of its index i, so
 * that its bits do not depend on where it lies in the table (a framework
 * that regroups its tensors, e.g. DDP's buckets, gives each tensor its own
 * ordinal and keeps its bits).  count must equal the registered layer
 * count, ids must be distinct; ids = NULL (count 0) goes back to the
 * indices.  mcgqCommSetLayers resets the ids to the indices.  All ranks
 * must set the same ids (checked at the step, with the table).  Not on a
 * hierarchical communicator (mcgqInvalidUsage). */
MCGQ_API mcgqResult_t mcgqCommSetLayerIds(mcgqComm_t comm, const uint32_t *ids,
                                          int count);

/* Fixed-capacity mode: every rank sends exactly bytes_per_rank bytes per step
 * (a multiple of 8; 0 = exact sizes, the default).  All ranks must set the
 * same capacity (checked at the step).  A capacity below the message header
 * and directory (32 + 56 * layers bytes) makes the step fail with
 * mcgqCapacityExceeded on every rank.  mcgqInvalidUsage on a communicator
 * whose codec cannot cut layers (the GPU codec of this version). */
MCGQ_API mcgqResult_t mcgqCommSetCapacity(mcgqComm_t comm,
                                          size_t bytes_per_rank);

/* Per-step timeout in seconds (0 = none, the default; at most 1e9).  See
 * "Timeout" above.  Every rank should set the same value. */
MCGQ_API mcgqResult_t mcgqCommSetTimeout(mcgqComm_t comm, double seconds);

/* One training step: encode every layer with u = mcgqRandomWord(seed, step,
 * layer index or id (mcgqCommSetLayerIds), rank), exchange,
 * decode-and-average in rank order and write the averages into every
 * layer's grad.  Every rank ends with bit-identical
 * gradients.  A non-finite value on any rank changes nothing on any rank and
 * returns mcgqNonFinite everywhere (stats->found_nonfinite = 1); any other
 * failure of any rank (range, capacity, memory, mismatched tables or step
 * counters) likewise returns an error on every rank with nothing changed.
 * stream: the step's stream on a device communicator, ignored on a host
 * one.  stats (host) may be NULL. */
MCGQ_API mcgqResult_t mcgqCommStep(mcgqComm_t comm, uint64_t step,
                                   uint64_t seed, mcgqStream_t stream,
                                   mcgqStepStats_t *stats);

/* ---------------------------------------------------- exchange modes
 * mcgqCommSetExchangeMode chooses how mcgqCommStep exchanges; the modes are
 * the MCGQ_EXCHANGE_* constants of the performance model below, which
 * prices each of them.  With P ranks:
 *
 * MCGQ_EXCHANGE_ALL_GATHER (default): as described above; every rank
 *   receives every rank's whole message.
 *
 * MCGQ_EXCHANGE_REDUCE_SCATTER: the result is sharded (ZeRO / FSDP).
 *   Shard layout (mcgqShardRange, the same pure function on every rank):
 *   shard j of a layer of n elements is [floor(j n / P), floor((j+1) n / P)),
 *   so shards differ in size by at most one and a layer with n < P has
 *   empty shards.  Rank r sends rank j one message: shard j of every layer
 *   whose shard j is not empty, in layer order, each shard a layer of the
 *   message with its layer's settings and u = mcgqRandomWord(seed, step,
 *   layer index or id, r * P + j); an owner with no non-empty shard receives
 *   0-byte messages.  Rank j decode-averages the P messages of its shard
 *   in rank order (exactly mcgqDecodeAverageHost of them) and writes the
 *   averages into shard j of each layer's grad; the rest of grad is left as
 *   the caller's input.  Error feedback stays per rank: each shard is
 *   encoded with the matching part of the layer's accum.
 *   Bytes per rank: (P-1)/P of an all-gather message, in and out.
 *
 * MCGQ_EXCHANGE_TWO_STAGE: an all-reduce.  The reduce-scatter above into
 *   the library's staging, then owner j re-encodes its averaged shards as
 *   one message (same layers as its reduce-scatter table, each layer's
 *   settings, u = mcgqRandomWord(seed, step, layer index or id, P * P + j)) with
 *   the owner-side accumulator, the P owner messages are all-gathered and
 *   each is decoded alone (out = scale * g_int, float multiply) into its
 *   shards of every layer's grad.  Every rank ends with the same bits.
 *   Bytes per rank: about (P-1)/P (b1 + b2) bits per element.
 *   Owner-side accumulator: the error feedback of the second encode belongs
 *   to the owner of the shard, not to the layer's accum (which keeps the
 *   first encode's).  Its size and layout depend on P and the rank, so the
 *   library allocates it (memory of the communicator's kind), zeroes it
 *   when the layer table or the mode changes, uses the layer's accumulation
 *   mode for it (nothing for MCGQ_ACCUM_NONE layers) and exposes it for
 *   checkpoints as host copies (mcgqCommGetOwnerState / SetOwnerState):
 *   this rank's shard of every layer in layer order, sum of the shard sizes
 *   floats (zeros stay in the parts of MCGQ_ACCUM_NONE layers).
 *
 * Both sharded modes keep the agreement of the all-gather step (layer
 * table, settings, mode and step counter checked before any payload moves;
 * any rank's non-finite value or failure changes nothing on any rank) and
 * agree once more after the owners have decoded: a shard that one owner
 * cannot decode (corrupt, range rule) fails the step on every rank before
 * anything is written.  What they do not do yet (mcgqInvalidUsage, at
 * mcgqCommSetExchangeMode or mcgqCommSetLayers): fixed capacity (the step
 * then fails on every rank), dynamic K (one K state per layer, but P
 * shards), transports without an all-to-all (callbacks without
 * alltoallv), more than MCGQ_MAX_SHARDED_RANKS ranks.  On a device
 * communicator (NCCL, callbacks with payload_on_device = 1) the staging
 * and the owner-side accumulator are device memory and the all-to-all of
 * NCCL is grouped ncclSend/ncclRecv. */

/* ------------------------------------------------ hierarchical exchange
 * A hierarchical communicator (mcgqCommInitMpiHierarchical in mcgq_mpi.h)
 * joins two of the caller's communicators: `node` (the L ranks of one node)
 * and `cross` (local rank l of every one of the N nodes).  It is created
 * with both because the layout decides what every step does and what a
 * rank is; a node transport attached later to a flat communicator would
 * have to be attached on every rank at the same step and could not keep
 * the flat rank numbering.  One step, on every rank:
 *   1. within the node, uncompressed: local rank l receives every local
 *      rank's copy of its share and sums them itself, in local rank order
 *      (acc = 0; acc += g_r[k] for r = 0..L-1; share[k] = acc / (float)L).
 *      MPI_Reduce_scatter / MPI_Allreduce are not used: their order of
 *      summation is the MPI library's choice, and this one is fixed;
 *   2. across nodes, compressed: the all-gather (default) or two-stage
 *      step above, over `cross`, on the share of local rank l, whose layer
 *      table is the pieces of the registered layers that fall in
 *      [floor(l T / L), floor((l+1) T / L)) of their concatenation (T
 *      elements; a layer across a cut is two pieces, every other layer is
 *      whole), with u = mcgqRandomWord(seed ^ (l * 0x9e3779b97f4a7c15),
 *      step, piece index, node index) (two-stage: its words, with P = N);
 *   3. within the node: the averaged shares are all-gathered and written
 *      into every layer's grad.  Every rank of the job ends with the same
 *      bits.  With L = 1 the step is the flat one, bit for bit.
 * Error feedback stays per rank: a piece is encoded with the matching part
 * of the layer's accum (so each rank's accum changes only in its share);
 * two-stage owner state: per local rank, over its share.
 * Failures: stage 1 checks the table, settings, mode, step and node layout
 * within the node; a failure there enters the cross-node agreement, and
 * after the cross-node step a max-reduction within every node tells every
 * rank whether any cross-node group failed, so a NaN on any rank (or a node
 * sum that overflows to Inf) returns mcgqNonFinite on every rank and a
 * table mismatch anywhere mcgqInvalidUsage on every rank, nothing changed.
 * Limits: host memory (MPI) only; T >= L (no empty share) and 4 T < 2^31
 * bytes per communicator; MCGQ_EXCHANGE_REDUCE_SCATTER is refused.  Stats:
 * bytes_sent counts this rank's compressed cross-node bytes (the node stage
 * moves 2 (L-1)/L * 4 T bytes per rank uncompressed), elements is T, and
 * mcgqCommGetLayerStats reports each layer's piece in this rank's share
 * (n = 0 for layers outside it). */

#define MCGQ_MAX_SHARDED_RANKS 65535 /* P * P + P of the random words fits */

/* Shard `shard` of a layer of n elements split over nranks owners:
 * [*begin, *end) = [floor(shard n / nranks), floor((shard+1) n / nranks)),
 * computed exactly in integers.  Pure function, thread-safe. */
MCGQ_API mcgqResult_t mcgqShardRange(uint64_t n, int nranks, int shard,
                                     uint64_t *begin, uint64_t *end);

/* Sets the exchange mode (MCGQ_EXCHANGE_ALL_GATHER, TWO_STAGE or
 * REDUCE_SCATTER; every rank the same, checked at the step).  A change
 * zeroes the owner-side accumulators; setting the current mode keeps them. */
MCGQ_API mcgqResult_t mcgqCommSetExchangeMode(mcgqComm_t comm, int32_t mode);
MCGQ_API mcgqResult_t mcgqCommGetExchangeMode(mcgqComm_t comm, int32_t *mode);

/* Two-stage owner-side accumulators as host copies (checkpoints):
 * *elements = floats of this rank's state (0 outside two-stage mode);
 * Get copies it into state, Set replaces it (elements must equal the size;
 * host memory, not kept).  Not collective: each rank saves its own. */
MCGQ_API mcgqResult_t mcgqCommGetOwnerStateSize(mcgqComm_t comm,
                                                uint64_t *elements);
MCGQ_API mcgqResult_t mcgqCommGetOwnerState(mcgqComm_t comm, float *state,
                                            uint64_t elements);
MCGQ_API mcgqResult_t mcgqCommSetOwnerState(mcgqComm_t comm, const float *state,
                                            uint64_t elements);

/* ---------------------------------------------------- callback transport
 * Collectives supplied by the caller (e.g. torch.distributed from Python
 * through ctypes), so a framework runs the library's protocol over its own
 * process group.  Each callback must be called by every rank in the same
 * order (the library guarantees that) and must block until its result is
 * complete; it returns mcgqSuccess (0), mcgqTimeout if the framework's own
 * timeout struck, or any other mcgqResult_t (e.g. mcgqInternalError) on
 * failure; a failure leaves the handle usable, a timeout aborts it.
 * Buffers of allgather and allreduce_max_int are always host memory;
 * allgatherv's are device memory iff payload_on_device (the device codec
 * then runs on mcgqCommStep's stream, which the callback must order its
 * work after, e.g. by synchronizing it), and so are allgather_device's. */
typedef struct {
  uint32_t struct_size;      /* sizeof(mcgqTransportCallbacks_t) */
  int32_t payload_on_device; /* 0: host buffers (CPU codec) */
  void *user;                /* passed back to every callback */
  /* recv (nranks * bytes) receives every rank's `bytes` bytes, rank order. */
  int32_t (*allgather)(void *user, const void *send, void *recv,
                       size_t bytes);
  /* Rank r contributes counts[r] bytes (send_bytes == counts[rank]) that
   * land at recv + displs[r]; counts/displs (host, nranks entries) are
   * equal on every rank. */
  int32_t (*allgatherv)(void *user, const void *send, size_t send_bytes,
                        void *recv, const size_t *counts,
                        const size_t *displs);
  /* *value becomes the maximum of all ranks' values. */
  int32_t (*allreduce_max_int)(void *user, int32_t *value);
  /* Needed by the sharded modes only (NULL: they are refused with
   * mcgqInvalidUsage): this rank sends send_counts[j] bytes at send +
   * send_displs[j] to rank j and receives recv_counts[r] bytes from rank r
   * at recv + recv_displs[r] (MPI_Alltoallv semantics; the arrays are host
   * memory, nranks entries, this rank's own; its own part j == rank must be
   * copied too).  Buffers as allgatherv's.  A caller built against the
   * header before this field may pass the older struct_size. */
  int32_t (*alltoallv)(void *user, const void *send, const size_t *send_counts,
                       const size_t *send_displs, void *recv,
                       const size_t *recv_counts, const size_t *recv_displs);
  /* Optional, payload_on_device = 1 only: allgather's semantics on device
   * buffers (ordered like allgatherv's).  With it the all-gather step
   * gathers its blocks where the encode wrote them and waits on the host
   * once for the agreement instead of twice; NULL: blocks go through host
   * memory and allgather.  A caller built against the header before this
   * field may pass the older struct_size. */
  int32_t (*allgather_device)(void *user, const void *send, void *recv,
                              size_t bytes);
} mcgqTransportCallbacks_t;

/* Creates *comm over the callbacks (copied; `user` is borrowed) for rank
 * `rank` of `nranks`.  A struct_size below the struct without alltoallv
 * is mcgqUnsupportedVersion; a NULL allgather, allgatherv or
 * allreduce_max_int or a bad rank, mcgqInvalidArgument; payload_on_device = 1 in a build without CUDA,
 * mcgqInvalidUsage. */
MCGQ_API mcgqResult_t mcgqCommInitCallbacks(mcgqComm_t *comm, int rank,
                                            int nranks,
                                            const mcgqTransportCallbacks_t *cb);

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

/* ---------------------------------------------- exchange modes (model)
 * How the ranks exchange compressed gradients; the model below prices each
 * so a job can pick one (mcgqPolicyChooseExchange).  With P ranks, n
 * elements in L layers, b (b2) wire bits per element:
 *   MCGQ_EXCHANGE_ALL_GATHER   every rank receives every rank's message
 *                              (today's mcgqCommStep): (P-1) n b / 8 bytes
 *                              in per rank, P decodes of n elements;
 *   MCGQ_EXCHANGE_REDUCE_SCATTER  each rank cuts every layer into P shards
 *                              and sends shard j to rank j (all-to-all), rank
 *                              j decode-averages the P messages of its shard:
 *                              (P-1)/P n b / 8 bytes per rank; the result is
 *                              sharded (ZeRO / FSDP), so its baseline is a
 *                              ring reduce-scatter;
 *   MCGQ_EXCHANGE_TWO_STAGE    the reduce-scatter above, then every owner
 *                              re-encodes its averaged shard (b2 bits, its own
 *                              error feedback) and the shards are all-gathered:
 *                              (P-1)/P n (b + b2) / 8 bytes per rank, whatever
 *                              P.
 *   reduce-scatter:   t_enc = launch + L P per_layer + 4n / encode_bw
 *                     t_x   = (1 + size_exchange)(P-1) alpha
 *                             + (P-1)/P (n b / 8) / bw
 *                     t_dec = launch + L per_layer + 4n / decode_bw
 *   two-stage adds    t_enc2 = launch + L per_layer + 4(n/P) / encode_bw
 *                     t_x2   = (1 + size_exchange)(P-1) alpha
 *                              + (P-1)/P (n b2 / 8) / bw
 *                     t_dec2 = launch + L per_layer + 4n / decode_bw
 * Hierarchical (ranks_per_node = G > 1, P = G N): within a node an
 * uncompressed fp32 ring reduce-scatter on node_link, (G-1) alpha_i +
 * (G-1)/G 4n / bw_i; across the N nodes the chosen mode on each local rank's
 * n/G elements over `link`; within the node an fp32 ring all-gather of the
 * result (not in reduce-scatter mode).  The baseline is hierarchical the
 * same way (node reduce-scatter, cross-node all-reduce or reduce-scatter of
 * n/G, node all-gather). */
#define MCGQ_EXCHANGE_NONE (-1)          /* policy: send uncompressed */
#define MCGQ_EXCHANGE_ALL_GATHER 0
#define MCGQ_EXCHANGE_TWO_STAGE 1
#define MCGQ_EXCHANGE_REDUCE_SCATTER 2

typedef struct {
  uint32_t struct_size;            /* sizeof(mcgqExchangeModel_t) */
  int32_t mode;                    /* MCGQ_EXCHANGE_* (not NONE) */
  int32_t ranks_per_node;          /* G >= 1; 1 = flat; G > 1: P % G == 0 */
  int32_t reserved;
  double second_bits_per_element;  /* two-stage b2; 0 = the same as b */
  mcgqLinkModel_t node_link;       /* within a node (G > 1 only) */
} mcgqExchangeModel_t;
#define MCGQ_EXCHANGE_MODEL_INITIALIZER                                     \
  { (uint32_t) sizeof(mcgqExchangeModel_t), MCGQ_EXCHANGE_ALL_GATHER, 1, 0, \
    0.0, MCGQ_LINK_MODEL_INITIALIZER }

/* Predicted step in exchange->mode (see above); `link` joins the nodes (all
 * ranks when flat).  pred's baselines are the same collective uncompressed:
 * all-reduce (ALL_GATHER, TWO_STAGE) or reduce-scatter (REDUCE_SCATTER) of
 * fp32 and bf16, hierarchical when exchange->ranks_per_node > 1.  For
 * ALL_GATHER with G = 1 the result equals mcgqModelStepTime's. */
MCGQ_API mcgqResult_t mcgqModelExchangeStepTime(const mcgqLinkModel_t *link,
                                                const mcgqCodecModel_t *codec,
                                                const mcgqExchangeModel_t *exchange,
                                                uint64_t n, uint32_t layers,
                                                double bits_per_element, int nranks,
                                                mcgqStepPrediction_t *pred);

/* The all-reduce mode to use: *mode = the faster of ALL_GATHER and
 * TWO_STAGE when it is strictly faster than the ring all-reduce of
 * baseline_bits-bit values, else MCGQ_EXCHANGE_NONE (also for P = 1).
 * exchange->mode is ignored; its hierarchy and b2 are used. */
MCGQ_API mcgqResult_t mcgqPolicyChooseExchange(const mcgqLinkModel_t *link,
                                               const mcgqCodecModel_t *codec,
                                               const mcgqExchangeModel_t *exchange,
                                               uint64_t n, uint32_t layers,
                                               double bits_per_element, int nranks,
                                               int baseline_bits, int *mode);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCGQ_H_ */
