/* bench_env.c - the header block's facts (date, host, CPU, commit, device),
 * the monotonic clock and the deterministic input data. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef MCGQ_BENCH_SOURCE_DIR
#define MCGQ_BENCH_SOURCE_DIR "."
#endif
#ifndef MCGQ_BENCH_GIT_COMMIT
#define MCGQ_BENCH_GIT_COMMIT "unknown"
#endif

static void trim_newline(char *s) {
  size_t len = strlen(s);
  while (len && (s[len - 1] == '\n' || s[len - 1] == '\r')) s[--len] = '\0';
}

static void cpu_model(char *buf, size_t size) {
  snprintf(buf, size, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) != 0) continue;
    const char *colon = strchr(line, ':');
    if (!colon) break;
    snprintf(buf, size, "%s", colon + 2);
    trim_newline(buf);
    break;
  }
  fclose(f);
}

/* The commit at run time (the tree may have moved since configure), else
 * the one recorded at configure time. */
static void git_commit(char *buf, size_t size) {
  snprintf(buf, size, "%s", MCGQ_BENCH_GIT_COMMIT);
  FILE *p = popen("git -C \"" MCGQ_BENCH_SOURCE_DIR
                  "\" describe --always --dirty --abbrev=12 2>/dev/null", "r");
  if (!p) return;
  char line[64];
  if (fgets(line, sizeof line, p)) {
    trim_newline(line);
    if (line[0]) snprintf(buf, size, "%s", line);
  }
  pclose(p);
}

static void load_average(char *buf, size_t size) {
  snprintf(buf, size, "unknown");
  FILE *f = fopen("/proc/loadavg", "r");
  if (!f) return;
  double a = 0, b = 0, c = 0;
  if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
  fclose(f);
}

void bench_env_collect(bench_env_t *env, int want_gpu) {
  memset(env, 0, sizeof *env);
  time_t now = time(NULL);
  struct tm utc;
  gmtime_r(&now, &utc);
  strftime(env->date, sizeof env->date, "%Y-%m-%dT%H:%M:%SZ", &utc);
  if (gethostname(env->host, sizeof env->host - 1) != 0)
    snprintf(env->host, sizeof env->host, "unknown");
  cpu_model(env->cpu, sizeof env->cpu);
  load_average(env->load, sizeof env->load);
  git_commit(env->commit, sizeof env->commit);
  if (!want_gpu || bench_gpu_describe(env->device, sizeof env->device) != 0)
    snprintf(env->device, sizeof env->device, "none (CPU reference)");
}

double bench_thread_cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

double bench_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, int count) {
  qsort(v, (size_t)count, sizeof *v, compare_double);
  return count % 2 ? v[count / 2] : 0.5 * (v[count / 2 - 1] + v[count / 2]);
}

/* splitmix64: a small, well-mixed generator; the data only has to be
 * reproducible, not cryptographic. */
static uint64_t next_u64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { /* in (0, 1) */
  return ((double)(next_u64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double std_normal(uint64_t *s) { /* Box-Muller, one of the pair */
  double r = sqrt(-2.0 * log(uniform01(s)));
  return r * cos(6.283185307179586 * uniform01(s));
}

/* normal: N(0, 1e-3^2), a typical gradient scale.
 * heavy:  the same times a log-normal factor exp(2 Z), so a few elements
 *         dominate the L1 mass (wide B_g, many zeros at K = 1).
 * sparse: 99% exact zeros (e.g. embedding rows not touched this step). */
void bench_fill(float *g, uint64_t n, int dist, uint64_t seed) {
  uint64_t s = seed * 0x2545f4914f6cdd1dull + (uint64_t)dist;
  for (uint64_t i = 0; i < n; ++i) {
    double v = 1e-3 * std_normal(&s);
    if (dist == BENCH_DIST_HEAVY) v *= exp(2.0 * std_normal(&s));
    if (dist == BENCH_DIST_SPARSE && uniform01(&s) < 0.99) v = 0.0;
    g[i] = (float)v;
  }
}

void bench_mcgq_error(char *err, size_t size, const char *what, mcgqResult_t r) {
  snprintf(err, size, "%s: %s (%s)", what, mcgqGetErrorString(r),
           mcgqGetLastErrorDetail());
}
