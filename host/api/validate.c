/* validate.c - argument checks shared by the entry points, descriptor and
 * K-state initializers, and the resolution of a layer's sample count N.
 *
 * Every failure names the calling entry point and the offending field, so a
 * user reading mcgqGetLastErrorDetail() knows what to fix without a debugger.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

int mcgq_ranges_overlap(const void *a, size_t a_bytes, const void *b,
                        size_t b_bytes) {
  if (!a || !b || a_bytes == 0 || b_bytes == 0) return 0;
  /* Compare as integers: relational operators on pointers into different
   * objects are undefined in C. */
  uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
  uintptr_t a1 = a0 + a_bytes, b1 = b0 + b_bytes;
  if (a1 < a0) a1 = UINTPTR_MAX; /* a range wrapping the address space */
  if (b1 < b0) b1 = UINTPTR_MAX;
  return a0 < b1 && b0 < a1;
}

/* K in (0, 64], written so that NaN fails (every comparison with NaN is
 * false). */
static int k_is_valid(double k) { return k > 0.0 && k <= MCGQ_MAX_K; }

mcgqResult_t mcgq_resolve_samples(const char *fn, uint64_t n, double k,
                                  uint64_t samples, uint64_t *N) {
  if (n == 0 || n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: n = %llu is not in [1, 2^32-1]", fn,
                     (unsigned long long)n);
  if (samples != 0) {
    if (samples > MCGQ_MAX_SAMPLES)
      return mcgq_fail(mcgqInvalidArgument,
                       "%s: samples = %llu exceeds the limit 2^31-1", fn,
                       (unsigned long long)samples);
    *N = samples;
    return mcgqSuccess;
  }
  if (!k_is_valid(k))
    return mcgq_fail(mcgqInvalidArgument, "%s: K = %g is not in (0, 64]", fn,
                     k);
  /* DESIGN.md 2: N = ceil of the product rounded to double.  n < 2^32 is
   * exact in double, so only the product rounds. */
  double product = (double)n * k;
  double rounded_up = ceil(product);
  if (rounded_up > (double)MCGQ_MAX_SAMPLES)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: N = ceil(n*K) = ceil(%llu * %g) exceeds the limit "
                     "2^31-1 samples per layer; split the layer or lower K",
                     fn, (unsigned long long)n, k);
  *N = (uint64_t)rounded_up;
  if (*N == 0) *N = 1; /* unreachable for n >= 1, K > 0; keeps N >= 1 */
  return mcgqSuccess;
}

static mcgqResult_t check_dynamic_range(const char *fn,
                                        const mcgqLayerConfig_t *cfg) {
  if (!(cfg->k_min > 0.0 && cfg->k_min <= cfg->k_max &&
        cfg->k_max <= MCGQ_MAX_K))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: cfg.k_min = %g, cfg.k_max = %g must satisfy "
                     "0 < k_min <= k_max <= 64",
                     fn, cfg->k_min, cfg->k_max);
  if (!isfinite(cfg->delta_k))
    return mcgq_fail(mcgqInvalidArgument, "%s: cfg.delta_k = %g is not finite",
                     fn, cfg->delta_k);
  if (cfg->samples != 0)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: cfg.samples = %llu fixes N, which contradicts "
                     "cfg.dynamic_k = 1",
                     fn, (unsigned long long)cfg->samples);
  return mcgqSuccess;
}

mcgqResult_t mcgq_check_config(const char *fn, const mcgqLayerConfig_t *cfg) {
  if (!cfg) return mcgq_fail(mcgqInvalidArgument, "%s: cfg is NULL", fn);
  if (cfg->struct_size == 0 || cfg->struct_size < sizeof(mcgqLayerConfig_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: cfg.struct_size = %u is smaller than "
                     "sizeof(mcgqLayerConfig_t) = %u (use "
                     "MCGQ_LAYER_CONFIG_INITIALIZER)",
                     fn, (unsigned)cfg->struct_size,
                     (unsigned)sizeof(mcgqLayerConfig_t));
  MCGQ_CHECK(mcgq_check_dtype(fn, "cfg.dtype", cfg->dtype));
  if (cfg->accumulate != MCGQ_ACCUM_NONE &&
      cfg->accumulate != MCGQ_ACCUM_RESET &&
      cfg->accumulate != MCGQ_ACCUM_RESIDUAL)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: cfg.accumulate = %d is not an MCGQ_ACCUM_* mode", fn,
                     (int)cfg->accumulate);
  if (cfg->dynamic_k != 0 && cfg->dynamic_k != 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: cfg.dynamic_k = %d is not 0 or 1",
                     fn, (int)cfg->dynamic_k);
  if (cfg->algo != MCGQ_ALGO_FUSED && cfg->algo != MCGQ_ALGO_SAMPLE)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: cfg.algo = %d is not an MCGQ_ALGO_* value", fn,
                     (int)cfg->algo);
  if (cfg->checksum != 0 && cfg->checksum != 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: cfg.checksum = %d is not 0 or 1",
                     fn, (int)cfg->checksum);
  if (cfg->samples > MCGQ_MAX_SAMPLES)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: cfg.samples = %llu exceeds the limit 2^31-1", fn,
                     (unsigned long long)cfg->samples);
  /* cfg.k is the fixed K, or the initial K of a dynamic layer. */
  if (cfg->samples == 0 && !k_is_valid(cfg->k))
    return mcgq_fail(mcgqInvalidArgument, "%s: cfg.k = %g is not in (0, 64]",
                     fn, cfg->k);
  if (cfg->dynamic_k) MCGQ_CHECK(check_dynamic_range(fn, cfg));
  return mcgqSuccess;
}

/* The K of a layer: the dynamic state's when Alg 3 runs, else the config's. */
static mcgqResult_t layer_k(const char *fn, const mcgqLayerConfig_t *cfg,
                            const mcgqKState_t *kstate, double *k) {
  if (!cfg->dynamic_k) {
    *k = cfg->k;
    return mcgqSuccess;
  }
  if (!kstate)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: kstate is NULL but cfg.dynamic_k = 1", fn);
  if (!k_is_valid(kstate->k))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: kstate.k = %g is not in (0, 64] (initialize it "
                     "with mcgqKStateInit)",
                     fn, kstate->k);
  *k = kstate->k;
  return mcgqSuccess;
}

static mcgqResult_t check_desc_pointers(const char *fn,
                                        const mcgqLayerDesc_t *d, int index) {
  const mcgqLayerConfig_t *cfg = &d->cfg;
  if (!d->g)
    return mcgq_fail(mcgqInvalidArgument, "%s: layers[%d].g is NULL", fn, index);
  if ((cfg->accumulate == MCGQ_ACCUM_NONE) != (d->accum == NULL))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d].accum must be %s with cfg.accumulate = %d",
                     fn, index, d->accum ? "NULL" : "non-NULL",
                     (int)cfg->accumulate);
  if ((cfg->dynamic_k != 0) != (d->kstate != NULL))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d].kstate must be %s with cfg.dynamic_k = %d",
                     fn, index, d->kstate ? "NULL" : "non-NULL",
                     (int)cfg->dynamic_k);
  /* n <= 2^32-1 was checked, so the byte counts cannot overflow size_t on a
   * 64-bit host; on a 32-bit host clamp to the address space. */
  size_t bytes = d->n > SIZE_MAX / sizeof(float) ? SIZE_MAX
                                                 : (size_t)d->n * sizeof(float);
  size_t g_bytes = d->n > SIZE_MAX / sizeof(float)
                       ? SIZE_MAX
                       : (size_t)d->n * mcgq_dtype_bytes(cfg->dtype);
  if (mcgq_ranges_overlap(d->g, g_bytes, d->accum, bytes))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d].accum overlaps layers[%d].g", fn, index,
                     index);
  if (mcgq_ranges_overlap(d->kstate, sizeof(mcgqKState_t), d->g, g_bytes) ||
      mcgq_ranges_overlap(d->kstate, sizeof(mcgqKState_t), d->accum, bytes))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d].kstate overlaps the layer's g or accum",
                     fn, index);
  return mcgqSuccess;
}

mcgqResult_t mcgq_check_desc(const char *fn, const mcgqLayerDesc_t *d,
                             int index, uint64_t *samples) {
  if (!d)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d] is NULL (struct_size of layers[0] below "
                     "sizeof(mcgqLayerDesc_t)?)",
                     fn, index);
  if (d->struct_size == 0 || d->struct_size < sizeof(mcgqLayerDesc_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: layers[%d].struct_size = %u is smaller than "
                     "sizeof(mcgqLayerDesc_t) = %u (use mcgqLayerDescInit)",
                     fn, index, (unsigned)d->struct_size,
                     (unsigned)sizeof(mcgqLayerDesc_t));
  if (d->n == 0 || d->n > MCGQ_MAX_LAYER_ELEMENTS)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: layers[%d].n = %llu is not in [1, 2^32-1]", fn, index,
                     (unsigned long long)d->n);
  MCGQ_CHECK(mcgq_check_config(fn, &d->cfg));
  MCGQ_CHECK(check_desc_pointers(fn, d, index));
  double k = 0.0;
  MCGQ_CHECK(layer_k(fn, &d->cfg, d->kstate, &k));
  uint64_t N = 0;
  MCGQ_CHECK(mcgq_resolve_samples(fn, d->n, k, d->cfg.samples, &N));
  if (samples) *samples = N;
  return mcgqSuccess;
}

const mcgqLayerDesc_t *mcgq_desc_at(const mcgqLayerDesc_t *layers, int i) {
  if (!layers || i < 0) return NULL;
  if (i == 0) return layers;
  /* The caller's struct_size is the stride, so binaries built against a
   * later, larger descriptor still walk their arrays correctly.  A stride
   * below our struct would make entries overlap: refuse (mcgq_check_desc on
   * index 0 reports the version error). */
  size_t stride = layers->struct_size;
  if (stride < sizeof(mcgqLayerDesc_t)) return NULL;
  return (const mcgqLayerDesc_t *)((const char *)layers + (size_t)i * stride);
}

void mcgqLayerDescInit(mcgqLayerDesc_t *desc) {
  if (!desc) return;
  const mcgqLayerConfig_t defaults = MCGQ_LAYER_CONFIG_INITIALIZER;
  memset(desc, 0, sizeof *desc);
  desc->struct_size = (uint32_t)sizeof(mcgqLayerDesc_t);
  desc->cfg = defaults;
}

mcgqResult_t mcgqKStateInit(const mcgqLayerConfig_t *cfg,
                            mcgqKState_t *kstate) {
  static const char fn[] = "mcgqKStateInit";
  MCGQ_CHECK(mcgq_check_config(fn, cfg));
  if (!kstate) return mcgq_fail(mcgqInvalidArgument, "%s: kstate is NULL", fn);
  if (!k_is_valid(cfg->k))
    return mcgq_fail(mcgqInvalidArgument, "%s: cfg.k = %g is not in (0, 64]",
                     fn, cfg->k);
  kstate->k = cfg->k;
  kstate->d_prev = 0.0;
  kstate->started = 0;
  kstate->reserved = 0;
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqResolveSamples(const mcgqLayerConfig_t *cfg,
                                const mcgqKState_t *kstate, uint64_t n,
                                uint64_t *samples) {
  static const char fn[] = "mcgqResolveSamples";
  MCGQ_CHECK(mcgq_check_config(fn, cfg));
  if (!samples) return mcgq_fail(mcgqInvalidArgument, "%s: samples is NULL", fn);
  double k = 0.0;
  MCGQ_CHECK(layer_k(fn, cfg, kstate, &k));
  uint64_t N = 0;
  MCGQ_CHECK(mcgq_resolve_samples(fn, n, k, cfg->samples, &N));
  *samples = N;
  mcgq_clear_error();
  return mcgqSuccess;
}

/* ------------------------------------------------------------ dtypes */

size_t mcgq_dtype_bytes(int32_t dtype) {
  switch (dtype) {
    case MCGQ_DTYPE_F32: return 4;
    case MCGQ_DTYPE_BF16:
    case MCGQ_DTYPE_F16: return 2;
    default: return 0;
  }
}

mcgqResult_t mcgq_check_dtype(const char *fn, const char *what, int32_t dtype) {
  if (mcgq_dtype_bytes(dtype) == 0)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: %s = %d is not MCGQ_DTYPE_F32, _BF16 or _F16", fn, what,
                     (int)dtype);
  return mcgqSuccess;
}
