/* kstate.c - the dynamic-K update of Alg 3 (mcgqKStateUpdate). */
#include <math.h>

#include "internal.h"
#include "sampling.h"

static mcgqResult_t check_update_args(const char *fn,
                                      const mcgqLayerConfig_t *cfg,
                                      const mcgqKState_t *kstate, double d) {
  MCGQ_CHECK(mcgq_check_config(fn, cfg));
  if (!cfg->dynamic_k)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: cfg.dynamic_k = 0: the layer has no dynamic K", fn);
  if (!kstate) return mcgq_fail(mcgqInvalidArgument, "%s: kstate is NULL", fn);
  if (!(kstate->k > 0.0 && kstate->k <= MCGQ_MAX_K))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: kstate.k = %g is not in (0, 64] (initialize it with "
                     "mcgqKStateInit)",
                     fn, kstate->k);
  if (kstate->started != 0 && kstate->started != 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: kstate.started = %d is not 0 or 1",
                     fn, (int)kstate->started);
  if (kstate->started && !isfinite(kstate->d_prev))
    return mcgq_fail(mcgqInvalidArgument, "%s: kstate.d_prev = %g is not finite",
                     fn, kstate->d_prev);
  /* W1 of normalized distributions lies in [0, 2]; NaN fails this too. */
  if (!(d >= 0.0 && isfinite(d)))
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: d = %g is not a finite distance >= 0", fn, d);
  return mcgqSuccess;
}

mcgqResult_t mcgqKStateUpdate(const mcgqLayerConfig_t *cfg,
                              mcgqKState_t *kstate, double d) {
  static const char fn[] = "mcgqKStateUpdate";
  MCGQ_CHECK(check_update_args(fn, cfg, kstate, d));
  if (!kstate->started) {
    /* A first step has no d_prev: K stays, the distance is remembered. */
    kstate->d_prev = d;
    kstate->started = 1;
    mcgq_clear_error();
    return mcgqSuccess;
  }
  /* Pinned FP state: a denormal term must not be flushed on one rank only. */
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  /* volatile keeps the compiler from moving the arithmetic past the leave */
  volatile double k_pinned = mcgq_dynamic_k_next(kstate->k, cfg->delta_k, kstate->d_prev,
                                                 d, cfg->k_min, cfg->k_max);
  mcgq_fpenv_leave(&env);
  kstate->k = k_pinned;
  kstate->d_prev = d;
  mcgq_clear_error();
  return mcgqSuccess;
}
