/* policy.c - alpha-beta performance model of one exchange step and the
 * compress-or-not policy built on it (mcgq.h, "performance model and
 * policy"), and the exchange modes (all-gather, two-stage, reduce-scatter,
 * flat or hierarchical) with the policy that picks one.  Everything here is
 * closed-form host arithmetic: both the mcgq step and a ring all-reduce are
 * linear in n and in the bits per element, so the break-even points are
 * solutions of linear equations. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* GB/s with G = 1e9 -> bytes per microsecond. */
#define MCGQ_BYTES_PER_US_PER_GBS 1e3

static double transfer_us(double bytes, double gbs) {
  return bytes / (gbs * MCGQ_BYTES_PER_US_PER_GBS);
}

static int finite_at_least(double x, double lo) { return isfinite(x) && x >= lo; }
static int finite_above(double x, double lo) { return isfinite(x) && x > lo; }

static mcgqResult_t check_link(const char *fn, const mcgqLinkModel_t *link) {
  if (!link) return mcgq_fail(mcgqInvalidArgument, "%s: link is NULL", fn);
  if (link->struct_size < sizeof(mcgqLinkModel_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: link->struct_size = %u, expected >= %u", fn,
                     link->struct_size, (unsigned)sizeof(mcgqLinkModel_t));
  if (!finite_at_least(link->alpha_us, 0.0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: link->alpha_us = %g is not a finite value >= 0", fn,
                     link->alpha_us);
  if (!finite_above(link->bw_gbs, 0.0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: link->bw_gbs = %g is not a finite value > 0", fn,
                     link->bw_gbs);
  return mcgqSuccess;
}

static mcgqResult_t check_codec(const char *fn, const mcgqCodecModel_t *c) {
  if (!c) return mcgq_fail(mcgqInvalidArgument, "%s: codec is NULL", fn);
  if (c->struct_size < sizeof(mcgqCodecModel_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: codec->struct_size = %u, expected >= %u", fn,
                     c->struct_size, (unsigned)sizeof(mcgqCodecModel_t));
  if (c->size_exchange != 0 && c->size_exchange != 1)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: codec->size_exchange = %d is not 0 or 1", fn,
                     (int)c->size_exchange);
  if (!finite_above(c->encode_gbs, 0.0) || !finite_above(c->decode_gbs, 0.0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: codec throughputs (encode %g, decode %g GB/s) must "
                     "be finite and > 0", fn, c->encode_gbs, c->decode_gbs);
  if (!finite_at_least(c->launch_us, 0.0) ||
      !finite_at_least(c->per_layer_us, 0.0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: codec fixed costs (launch %g, per layer %g us) must "
                     "be finite and >= 0", fn, c->launch_us, c->per_layer_us);
  return mcgqSuccess;
}

static mcgqResult_t check_step(const char *fn, uint64_t n, uint32_t layers,
                               double bits, int nranks, int min_ranks) {
  if (n == 0) return mcgq_fail(mcgqInvalidArgument, "%s: n = 0", fn);
  if (layers == 0) return mcgq_fail(mcgqInvalidArgument, "%s: layers = 0", fn);
  if (!finite_above(bits, 0.0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: bits_per_element = %g is not a finite value > 0", fn,
                     bits);
  if (nranks < min_ranks)
    return mcgq_fail(mcgqInvalidArgument, "%s: nranks = %d, need >= %d", fn,
                     nranks, min_ranks);
  return mcgqSuccess;
}

static mcgqResult_t check_baseline(const char *fn, int baseline_bits) {
  if (baseline_bits <= 0 || baseline_bits > 64)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: baseline_bits = %d is not in (0, 64]", fn,
                     baseline_bits);
  return mcgqSuccess;
}

/* Ring all-reduce: reduce-scatter + all-gather, 2(P-1) steps each moving
 * 1/P of the buffer. */
static double ring_allreduce_us(const mcgqLinkModel_t *link, double n,
                                double value_bits, int P) {
  if (P <= 1) return 0.0;
  double bytes = n * value_bits / 8.0;
  return 2.0 * (P - 1) * link->alpha_us +
         2.0 * (P - 1) / P * transfer_us(bytes, link->bw_gbs);
}

static double codec_fixed_us(const mcgqCodecModel_t *c, uint32_t layers) {
  return c->launch_us + (double)layers * c->per_layer_us;
}

/* Latency part of the mcgq exchange: the payload all-gather and, with exact
 * sizes, the all-gather of sizes before it. */
static double gather_latency_us(const mcgqLinkModel_t *link,
                                const mcgqCodecModel_t *c, int P) {
  if (P <= 1) return 0.0;
  return (1.0 + c->size_exchange) * (P - 1) * link->alpha_us;
}

static void predict(const mcgqLinkModel_t *link, const mcgqCodecModel_t *c,
                    double n, uint32_t layers, double bits, int P,
                    mcgqStepPrediction_t *p) {
  double fp32_bytes = 4.0 * n;
  p->encode_us = codec_fixed_us(c, layers) + transfer_us(fp32_bytes, c->encode_gbs);
  p->exchange_us = P <= 1 ? 0.0
                          : gather_latency_us(link, c, P) +
                                (P - 1) * transfer_us(n * bits / 8.0, link->bw_gbs);
  p->decode_us = codec_fixed_us(c, layers) +
                 P * transfer_us(fp32_bytes, c->decode_gbs);
  p->mcgq_us = p->encode_us + p->exchange_us + p->decode_us;
  p->allreduce_fp32_us = ring_allreduce_us(link, n, 32.0, P);
  p->allreduce_bf16_us = ring_allreduce_us(link, n, 16.0, P);
}

mcgqResult_t mcgqLinkModelPreset(const char *name, mcgqLinkModel_t *link) {
  static const char fn[] = "mcgqLinkModelPreset";
  if (!name || !link)
    return mcgq_fail(mcgqInvalidArgument, "%s: name or link is NULL", fn);
  mcgqLinkModel_t preset = MCGQ_LINK_MODEL_INITIALIZER;
  /* Sources of the numbers: mcgq.h above mcgqLinkModel_t. */
  if (strcmp(name, "pcie4") == 0) {
    preset.alpha_us = 3.0;
    preset.bw_gbs = 25.0;
  } else if (strcmp(name, "nvlink-h100") == 0) {
    preset.alpha_us = 3.0;
    preset.bw_gbs = 450.0;
  } else {
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: unknown preset \"%.64s\" (pcie4, nvlink-h100)", fn, name);
  }
  *link = preset;
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqModelStepTime(const mcgqLinkModel_t *link,
                               const mcgqCodecModel_t *codec, uint64_t n,
                               uint32_t layers, double bits_per_element,
                               int nranks, mcgqStepPrediction_t *pred) {
  static const char fn[] = "mcgqModelStepTime";
  MCGQ_CHECK(check_link(fn, link));
  MCGQ_CHECK(check_codec(fn, codec));
  MCGQ_CHECK(check_step(fn, n, layers, bits_per_element, nranks, 1));
  if (!pred) return mcgq_fail(mcgqInvalidArgument, "%s: pred is NULL", fn);
  if (pred->struct_size < sizeof(mcgqStepPrediction_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: pred->struct_size = %u, expected >= %u", fn,
                     pred->struct_size, (unsigned)sizeof(mcgqStepPrediction_t));
  predict(link, codec, (double)n, layers, bits_per_element, nranks, pred);
  mcgq_clear_error();
  return mcgqSuccess;
}

/* mcgq minus all-reduce as c0 + c1 * n (microseconds), at fixed b and L. */
static void difference_line(const mcgqLinkModel_t *link,
                            const mcgqCodecModel_t *c, uint32_t layers,
                            double bits, int P, int baseline_bits, double *c0,
                            double *c1) {
  *c0 = 2.0 * codec_fixed_us(c, layers) + gather_latency_us(link, c, P) -
        2.0 * (P - 1) * link->alpha_us;
  *c1 = transfer_us(4.0, c->encode_gbs) + P * transfer_us(4.0, c->decode_gbs) +
        (P - 1) * transfer_us(bits / 8.0, link->bw_gbs) -
        2.0 * (P - 1) / P * transfer_us(baseline_bits / 8.0, link->bw_gbs);
}

/* Bits per element at which the predicted times at n are equal: the payload
 * term (P-1) n b / 8 / bw is the only one depending on b. */
static double break_even_bits(const mcgqLinkModel_t *link,
                              const mcgqCodecModel_t *c, double n,
                              uint32_t layers, int P, int baseline_bits) {
  mcgqStepPrediction_t zero_payload;
  predict(link, c, n, layers, 0.0, P, &zero_payload);
  double baseline = ring_allreduce_us(link, n, baseline_bits, P);
  double slack_us = baseline - zero_payload.mcgq_us;
  return slack_us * 8.0 * link->bw_gbs * MCGQ_BYTES_PER_US_PER_GBS /
         ((P - 1) * n);
}

mcgqResult_t mcgqModelBreakEven(const mcgqLinkModel_t *link,
                                const mcgqCodecModel_t *codec, uint64_t n,
                                uint32_t layers, double bits_per_element,
                                int nranks, int baseline_bits,
                                mcgqBreakEven_t *out) {
  static const char fn[] = "mcgqModelBreakEven";
  MCGQ_CHECK(check_link(fn, link));
  MCGQ_CHECK(check_codec(fn, codec));
  MCGQ_CHECK(check_step(fn, n, layers, bits_per_element, nranks, 2));
  MCGQ_CHECK(check_baseline(fn, baseline_bits));
  if (!out) return mcgq_fail(mcgqInvalidArgument, "%s: out is NULL", fn);
  if (out->struct_size < sizeof(mcgqBreakEven_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: out->struct_size = %u, expected >= %u", fn,
                     out->struct_size, (unsigned)sizeof(mcgqBreakEven_t));
  mcgqBreakEven_t r;
  memset(&r, 0, sizeof r);
  r.struct_size = (uint32_t)sizeof r;
  r.bits_per_element = break_even_bits(link, codec, (double)n, layers, nranks,
                                       baseline_bits);
  double c0, c1;
  difference_line(link, codec, layers, bits_per_element, nranks,
                  baseline_bits, &c0, &c1);
  /* mcgq wins where c0 + c1 n < 0. */
  r.elements = -1.0;
  if (c1 < 0.0 && c0 > 0.0) {
    r.elements = c0 / -c1;
    r.larger_wins = 1;
  } else if (c1 > 0.0 && c0 < 0.0) {
    r.elements = -c0 / c1;
    r.larger_wins = 0;
  } else {
    r.always = (c0 <= 0.0 && c1 <= 0.0 && !(c0 == 0.0 && c1 == 0.0)) ? 1 : 0;
  }
  *out = r;
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqPolicyShouldCompress(const mcgqLinkModel_t *link,
                                      const mcgqCodecModel_t *codec, uint64_t n,
                                      uint32_t layers, double bits_per_element,
                                      int nranks, int baseline_bits,
                                      int *compress) {
  static const char fn[] = "mcgqPolicyShouldCompress";
  MCGQ_CHECK(check_link(fn, link));
  MCGQ_CHECK(check_codec(fn, codec));
  MCGQ_CHECK(check_step(fn, n, layers, bits_per_element, nranks, 1));
  MCGQ_CHECK(check_baseline(fn, baseline_bits));
  if (!compress) return mcgq_fail(mcgqInvalidArgument, "%s: compress is NULL", fn);
  mcgqStepPrediction_t p;
  predict(link, codec, (double)n, layers, bits_per_element, nranks, &p);
  double baseline = ring_allreduce_us(link, (double)n, baseline_bits, nranks);
  *compress = nranks > 1 && p.mcgq_us < baseline;
  mcgq_clear_error();
  return mcgqSuccess;
}

/* ------------------------------------------------------ exchange modes */

/* Ring reduce-scatter (or all-gather): P-1 steps, each moving 1/P. */
static double ring_half_us(const mcgqLinkModel_t *link, double n, double value_bits, int P) {
  if (P <= 1) return 0.0;
  return (P - 1) * link->alpha_us +
         (double)(P - 1) / P * transfer_us(n * value_bits / 8.0, link->bw_gbs);
}

static mcgqResult_t check_exchange(const char *fn, const mcgqExchangeModel_t *x,
                                   int nranks) {
  if (!x) return mcgq_fail(mcgqInvalidArgument, "%s: exchange is NULL", fn);
  if (x->struct_size < sizeof(mcgqExchangeModel_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: exchange->struct_size = %u, expected >= %u", fn,
                     x->struct_size, (unsigned)sizeof(mcgqExchangeModel_t));
  if (x->mode != MCGQ_EXCHANGE_ALL_GATHER && x->mode != MCGQ_EXCHANGE_TWO_STAGE &&
      x->mode != MCGQ_EXCHANGE_REDUCE_SCATTER)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: exchange->mode = %d is not MCGQ_EXCHANGE_ALL_GATHER, "
                     "_TWO_STAGE or _REDUCE_SCATTER", fn, (int)x->mode);
  if (x->ranks_per_node < 1 || (nranks >= 1 && nranks % x->ranks_per_node != 0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: exchange->ranks_per_node = %d does not divide nranks = %d",
                     fn, (int)x->ranks_per_node, nranks);
  if (!finite_at_least(x->second_bits_per_element, 0.0))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: exchange->second_bits_per_element = %g is not a finite "
                     "value >= 0", fn, x->second_bits_per_element);
  if (x->ranks_per_node > 1) return check_link(fn, &x->node_link);
  return mcgqSuccess;
}

/* The compressed exchange of n elements among P ranks on one link. */
static void predict_flat_mode(const mcgqLinkModel_t *link, const mcgqCodecModel_t *c,
                              int mode, double n, uint32_t layers, double b, double b2,
                              int P, mcgqStepPrediction_t *p) {
  if (mode == MCGQ_EXCHANGE_ALL_GATHER) {
    predict(link, c, n, layers, b, P, p);
    return;
  }
  /* Reduce-scatter: every layer cut into P shards, one message per rank. */
  const double sharded_layers = (double)layers * P;
  p->encode_us = c->launch_us + sharded_layers * c->per_layer_us +
                 transfer_us(4.0 * n, c->encode_gbs);
  p->exchange_us = P <= 1 ? 0.0
                          : gather_latency_us(link, c, P) +
                                (double)(P - 1) / P * transfer_us(n * b / 8.0, link->bw_gbs);
  p->decode_us = codec_fixed_us(c, layers) + transfer_us(4.0 * n, c->decode_gbs);
  if (mode == MCGQ_EXCHANGE_TWO_STAGE) { /* owners re-encode, shards all-gathered */
    p->encode_us += codec_fixed_us(c, layers) + transfer_us(4.0 * n / P, c->encode_gbs);
    p->exchange_us += P <= 1 ? 0.0
                              : gather_latency_us(link, c, P) +
                                    (double)(P - 1) / P *
                                        transfer_us(n * b2 / 8.0, link->bw_gbs);
    p->decode_us += codec_fixed_us(c, layers) + transfer_us(4.0 * n, c->decode_gbs);
  }
  p->mcgq_us = p->encode_us + p->exchange_us + p->decode_us;
}

/* The same collective uncompressed, of w-bit values: all-reduce, or
 * reduce-scatter in REDUCE_SCATTER mode; hierarchical when G > 1. */
static double baseline_us(const mcgqLinkModel_t *link, const mcgqExchangeModel_t *x,
                          int mode, double n, double w, int P) {
  const int G = x->ranks_per_node, N = P / G;
  const int sharded = mode == MCGQ_EXCHANGE_REDUCE_SCATTER;
  if (G <= 1)
    return sharded ? ring_half_us(link, n, w, P) : ring_allreduce_us(link, n, w, P);
  const double node_rs = ring_half_us(&x->node_link, n, w, G);
  const double node_ag = sharded ? 0.0 : ring_half_us(&x->node_link, n, w, G);
  const double cross = sharded ? ring_half_us(link, n / G, w, N)
                               : ring_allreduce_us(link, n / G, w, N);
  return node_rs + cross + node_ag;
}

static void predict_mode(const mcgqLinkModel_t *link, const mcgqCodecModel_t *c,
                         const mcgqExchangeModel_t *x, int mode, double n,
                         uint32_t layers, double b, int P, mcgqStepPrediction_t *p) {
  const double b2 = x->second_bits_per_element > 0.0 ? x->second_bits_per_element : b;
  const int G = x->ranks_per_node;
  if (G <= 1) {
    predict_flat_mode(link, c, mode, n, layers, b, b2, P, p);
  } else {
    /* fp32 reduce-scatter in the node, mcgq across nodes on n/G, fp32
     * all-gather in the node (the result stays sharded in RS mode). */
    predict_flat_mode(link, c, mode, n / G, layers, b, b2, P / G, p);
    p->exchange_us += ring_half_us(&x->node_link, n, 32.0, G);
    if (mode != MCGQ_EXCHANGE_REDUCE_SCATTER)
      p->exchange_us += ring_half_us(&x->node_link, n, 32.0, G);
    p->mcgq_us = p->encode_us + p->exchange_us + p->decode_us;
  }
  p->allreduce_fp32_us = baseline_us(link, x, mode, n, 32.0, P);
  p->allreduce_bf16_us = baseline_us(link, x, mode, n, 16.0, P);
}

mcgqResult_t mcgqModelExchangeStepTime(const mcgqLinkModel_t *link,
                                       const mcgqCodecModel_t *codec,
                                       const mcgqExchangeModel_t *exchange, uint64_t n,
                                       uint32_t layers, double bits_per_element,
                                       int nranks, mcgqStepPrediction_t *pred) {
  static const char fn[] = "mcgqModelExchangeStepTime";
  MCGQ_CHECK(check_link(fn, link));
  MCGQ_CHECK(check_codec(fn, codec));
  MCGQ_CHECK(check_step(fn, n, layers, bits_per_element, nranks, 1));
  MCGQ_CHECK(check_exchange(fn, exchange, nranks));
  if (!pred) return mcgq_fail(mcgqInvalidArgument, "%s: pred is NULL", fn);
  if (pred->struct_size < sizeof(mcgqStepPrediction_t))
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: pred->struct_size = %u, expected >= %u", fn,
                     pred->struct_size, (unsigned)sizeof(mcgqStepPrediction_t));
  predict_mode(link, codec, exchange, exchange->mode, (double)n, layers, bits_per_element,
               nranks, pred);
  mcgq_clear_error();
  return mcgqSuccess;
}

mcgqResult_t mcgqPolicyChooseExchange(const mcgqLinkModel_t *link,
                                      const mcgqCodecModel_t *codec,
                                      const mcgqExchangeModel_t *exchange, uint64_t n,
                                      uint32_t layers, double bits_per_element,
                                      int nranks, int baseline_bits, int *mode) {
  static const char fn[] = "mcgqPolicyChooseExchange";
  MCGQ_CHECK(check_link(fn, link));
  MCGQ_CHECK(check_codec(fn, codec));
  MCGQ_CHECK(check_step(fn, n, layers, bits_per_element, nranks, 1));
  MCGQ_CHECK(check_baseline(fn, baseline_bits));
  mcgqExchangeModel_t x;
  if (exchange) {
    x = *exchange;
    x.mode = MCGQ_EXCHANGE_ALL_GATHER; /* ignored: both all-reduce modes are priced */
  }
  MCGQ_CHECK(check_exchange(fn, exchange ? &x : NULL, nranks));
  if (!mode) return mcgq_fail(mcgqInvalidArgument, "%s: mode is NULL", fn);
  const double uncompressed =
      baseline_us(link, &x, MCGQ_EXCHANGE_ALL_GATHER, (double)n, baseline_bits, nranks);
  int best = MCGQ_EXCHANGE_NONE;
  double best_us = uncompressed;
  const int candidates[2] = {MCGQ_EXCHANGE_ALL_GATHER, MCGQ_EXCHANGE_TWO_STAGE};
  for (int i = 0; i < 2 && nranks > 1; ++i) {
    mcgqStepPrediction_t p;
    predict_mode(link, codec, &x, candidates[i], (double)n, layers, bits_per_element,
                 nranks, &p);
    if (p.mcgq_us < best_us) {
      best_us = p.mcgq_us;
      best = candidates[i];
    }
  }
  *mode = best;
  mcgq_clear_error();
  return mcgqSuccess;
}
