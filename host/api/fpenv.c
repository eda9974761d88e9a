/* fpenv.c - pins the floating-point state the reference relies on.
 *
 * The quantizer's float division, the accumulator's add and fmaf must round
 * to nearest and honour denormals (DESIGN.md 2), or a caller running with
 * flush-to-zero / denormals-are-zero (common in training code, which sets
 * them for speed) would get different bits than every other rank and path.
 * We therefore set the mode we need for the duration of a call and restore
 * the caller's afterwards.  Only the control register is touched; the
 * status flags raised by our work stay raised, as for any libm call.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>

/* MXCSR: DAZ = bit 6, rounding control = bits 13-14 (00 = nearest),
 * FTZ = bit 15. */
#define MCGQ_MXCSR_DAZ (1u << 6)
#define MCGQ_MXCSR_ROUNDING (3u << 13)
#define MCGQ_MXCSR_FTZ (1u << 15)

void mcgq_fpenv_enter(mcgq_fpenv_t *env) {
  unsigned int csr = _mm_getcsr();
  env->saved = csr;
  env->valid = 1;
  unsigned int pinned =
      csr & ~(MCGQ_MXCSR_DAZ | MCGQ_MXCSR_ROUNDING | MCGQ_MXCSR_FTZ);
  if (pinned != csr) _mm_setcsr(pinned);
}

void mcgq_fpenv_leave(const mcgq_fpenv_t *env) {
  if (!env->valid) return;
  /* Keep the exception flags (bits 0-5) our work raised, restore the rest. */
  unsigned int now = _mm_getcsr();
  unsigned int restored = (env->saved & ~0x3fu) | (now & 0x3fu);
  if (restored != now) _mm_setcsr(restored);
}

#elif defined(__aarch64__)

/* FPCR: FZ = bit 24, RMode = bits 22-23 (00 = nearest).  The upper 32 bits
 * of FPCR are reserved, so the low word is the whole state we change. */
#define MCGQ_FPCR_FZ (1u << 24)
#define MCGQ_FPCR_RMODE (3u << 22)

static uint64_t read_fpcr(void) {
  uint64_t v;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
  return v;
}
static void write_fpcr(uint64_t v) {
  __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
}

void mcgq_fpenv_enter(mcgq_fpenv_t *env) {
  uint64_t fpcr = read_fpcr();
  env->saved = (unsigned int)fpcr;
  env->valid = 1;
  uint64_t pinned = fpcr & ~(uint64_t)(MCGQ_FPCR_FZ | MCGQ_FPCR_RMODE);
  if (pinned != fpcr) write_fpcr(pinned);
}

void mcgq_fpenv_leave(const mcgq_fpenv_t *env) {
  if (!env->valid) return;
  uint64_t fpcr = read_fpcr();
  uint64_t restored = (fpcr & ~(uint64_t)0xffffffffu) | env->saved;
  if (restored != fpcr) write_fpcr(restored);
}

#else

/* Other hosts: no known flush-to-zero control; the default IEEE mode is
 * assumed. */
void mcgq_fpenv_enter(mcgq_fpenv_t *env) {
  env->saved = 0;
  env->valid = 0;
}
void mcgq_fpenv_leave(const mcgq_fpenv_t *env) { (void)env; }

#endif
