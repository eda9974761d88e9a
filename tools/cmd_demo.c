/* cmd_demo.c - `mcgq demo`: one synthetic gradient quantized at a sweep of
 * K, as a table of what MCGQ sends and what it costs in accuracy.
 *
 * The gradient is generated here from a fixed seed with splitmix64 (integer
 * only) and Box-Muller (libm), so the table is the same run after run on one
 * machine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char demo_usage[] =
    "usage: mcgq demo [--n N] [--seed S] [--dist heavy|normal]\n"
    "Quantizes a synthetic gradient of N values (default 2^20) at K in\n"
    "{0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 4} with the CPU reference and prints a\n"
    "table: K, N (samples), nonzeros, B_g, B_RLE, bits/element of the paper's\n"
    "stream (+32 bits of scale), the paper's ratio 32n/(stream_bits+32), the\n"
    "wire ratio 4n/container bytes, and the relative L2 error\n"
    "||scale*g_int - g|| / ||g|| of one draw (u = mcgqRandomWord(S, 0, 0, 0)).\n"
    "  --n N          elements (default 1048576)\n"
    "  --seed S       seed of the gradient and of u (default 2024)\n"
    "  --dist D       heavy: normal times a log-normal scale (default),\n"
    "                 normal: standard normal\n";

static const double demo_ks[] = {0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 4};

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in (0, 1): 53 random bits, never 0 (log below). */
static double uniform_open(uint64_t *state) {
  return ((double)(splitmix64(state) >> 11) + 0.5) * 0x1p-53;
}

static double standard_normal(uint64_t *state) {
  double r = sqrt(-2.0 * log(uniform_open(state)));
  return r * cos(6.283185307179586 * uniform_open(state));
}

/* Heavy tails as in real gradients (a few coordinates dominate): a normal
 * value times exp(1.5 z'), a log-normal scale mixture. */
static void make_gradient(float *g, uint64_t n, uint64_t seed, int heavy) {
  uint64_t state = seed;
  for (uint64_t i = 0; i < n; ++i) {
    double v = standard_normal(&state);
    if (heavy) v *= exp(1.5 * standard_normal(&state));
    g[i] = (float)(1e-3 * v);
  }
}

static double relative_l2_error(const float *g, const int32_t *g_int, float scale,
                                uint64_t n) {
  double err = 0, norm = 0;
  for (uint64_t i = 0; i < n; ++i) {
    double d = (double)(scale * (float)g_int[i]) - (double)g[i];
    err += d * d;
    norm += (double)g[i] * (double)g[i];
  }
  return norm > 0 ? sqrt(err / norm) : 0.0;
}

static int demo_row(const char *cmd, const float *g, uint64_t n, double k, uint32_t u,
                    int32_t *g_int) {
  mcgqLayerStats_t s;
  memset(&s, 0, sizeof s);
  mcgqResult_t r = mcgqQuantizeHost(g, n, k, 0, u, 0, g_int, &s);
  if (r != mcgqSuccess) return cli_library_error(cmd, "quantize", r);
  mcgqLayerDesc_t desc;
  mcgqLayerDescInit(&desc);
  desc.g = g;
  desc.n = n;
  desc.u = u;
  desc.cfg.k = k;
  size_t bytes = 0;
  if (cli_encode_layers(cmd, &desc, 1, NULL, &bytes, NULL)) return CLI_EXIT_BAD_INPUT;
  printf("%6g %10llu %10llu %4u %5u %9.4f %9.2f %9.2f %10.4f\n", k,
         (unsigned long long)s.samples, (unsigned long long)s.nonzeros, s.bits_value,
         s.bits_run, ((double)s.stream_bits + 32.0) / (double)n,
         cli_paper_ratio(n, s.stream_bits), cli_wire_ratio(n, bytes),
         relative_l2_error(g, g_int, s.scale, n));
  return CLI_EXIT_OK;
}

int mcgq_cmd_demo(int argc, char **argv) {
  const char *cmd = "demo";
  uint64_t n = 1u << 20, seed = 2024;
  const char *dist = "heavy";
  cli_option_t opts[] = {{"--n", CLI_U64, &n, 0},
                         {"--seed", CLI_U64, &seed, 0},
                         {"--dist", CLI_STRING, &dist, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, demo_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  int heavy = strcmp(dist, "heavy") == 0;
  if (!heavy && strcmp(dist, "normal") != 0)
    return cli_error(cmd, "bad value for --dist: '%s' (heavy or normal)", dist);
  /* 2^28 keeps the demo's buffers (12 bytes/element) to a few GiB. */
  if (n == 0 || n > (1u << 28))
    return cli_error(cmd, "bad value for --n: %llu (need 1 <= n <= 2^28)",
                     (unsigned long long)n);
  float *g = (float *)cli_alloc(cmd, n, sizeof *g);
  int32_t *g_int = (int32_t *)cli_alloc(cmd, n, sizeof *g_int);
  int rc = g && g_int ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  if (rc == CLI_EXIT_OK) {
    make_gradient(g, n, seed, heavy);
    uint32_t u = mcgqRandomWord(seed, 0, 0, 0);
    printf("# mcgq demo: n = %llu %s-tailed float32 values (seed %llu), u = %u\n",
           (unsigned long long)n, heavy ? "heavy" : "normal", (unsigned long long)seed, u);
    printf("%6s %10s %10s %4s %5s %9s %9s %9s %10s\n", "K", "N", "nonzeros", "B_g", "B_RLE",
           "bits/elem", "paper", "wire", "rel_L2");
    for (size_t i = 0; rc == CLI_EXIT_OK && i < sizeof demo_ks / sizeof demo_ks[0]; ++i)
      rc = demo_row(cmd, g, n, demo_ks[i], u, g_int);
  }
  free(g);
  free(g_int);
  return rc;
}
