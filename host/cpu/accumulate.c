/* accumulate.c - the accumulation modes of DESIGN.md section 2 (Alg 4 reset
 * and residual error feedback).  Both passes are elementwise, so `ag` may be
 * the same array as `accum` (in-place update) but must not partially
 * overlap it.  The FP state is pinned (fpenv.c) because the add and the
 * fmaf must give the same bits whatever FTZ/DAZ mode the caller runs in. */
#include <math.h>
#include <string.h>

#include "internal.h"

void mcgq_accum_add(const float *g, const float *accum, uint64_t n, float *ag) {
  if (!accum) {
    if (ag != g) memmove(ag, g, (size_t)n * sizeof *ag);
    return;
  }
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  for (uint64_t k = 0; k < n; ++k) ag[k] = accum[k] + g[k];
  mcgq_fpenv_leave(&env);
}

/* Alg 4: sampled elements start over at zero; the rest keep accumulating. */
static void commit_reset(float *accum, const float *ag, const int32_t *g_int,
                         uint64_t n) {
  for (uint64_t k = 0; k < n; ++k) accum[k] = g_int[k] != 0 ? 0.0f : ag[k];
}

/* Error feedback: what was not sent stays, up to the one rounding of fmaf. */
static void commit_residual(float *accum, const float *ag,
                            const int32_t *g_int, float scale, uint64_t n) {
  for (uint64_t k = 0; k < n; ++k)
    accum[k] = fmaf(-scale, (float)g_int[k], ag[k]);
}

void mcgq_accum_commit(int32_t mode, float *accum, const float *ag,
                       const int32_t *g_int, float scale, uint64_t n) {
  if (!accum || mode == MCGQ_ACCUM_NONE) return;
  mcgq_fpenv_t env;
  mcgq_fpenv_enter(&env);
  if (mode == MCGQ_ACCUM_RESET)
    commit_reset(accum, ag, g_int, n);
  else if (mode == MCGQ_ACCUM_RESIDUAL)
    commit_residual(accum, ag, g_int, scale, n);
  mcgq_fpenv_leave(&env);
}
