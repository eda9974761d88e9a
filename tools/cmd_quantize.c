/* cmd_quantize.c - `mcgq quantize`: one layer through the CPU reference
 * (mcgqQuantizeHost), g_int written as int32, and a JSON summary with the
 * paper's and the wire's compression ratio (the layer is also encoded into
 * a container to measure the latter). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char quantize_usage[] =
    "usage: mcgq quantize --in g.f32 (--k K | --samples N)\n"
    "                     (--u U | --seed S --step T [--layer L --rank R])\n"
    "                     [--out gint.i32] [--residual]\n"
    "Quantizes one layer of little-endian float32 values with MCGQ (CPU\n"
    "reference) and prints a JSON summary on stdout.\n"
    "  --in FILE      n float32 values (n >= 1)\n"
    "  --out FILE     the integer gradient g_int, n little-endian int32\n"
    "  --k K          sampling amount, N = ceil(n*K), K in (0, 64]\n"
    "  --samples N    number of samples N directly (overrides --k)\n"
    "  --u U          the 32-bit random word\n"
    "  --seed S --step T [--layer L --rank R]\n"
    "                 u = mcgqRandomWord(S, T, L, R) (L, R default 0)\n"
    "  --residual     the damped scale of residual error feedback\n"
    "JSON keys: n, N, k, u, scale, scale_bits, B_g, B_RLE, stream_bits,\n"
    "paper_ratio = 32n/(stream_bits+32), wire_bytes, wire_ratio =\n"
    "4n/wire_bytes, w1, nonzeros.\n";

typedef struct {
  const char *in, *out;
  double k;
  uint64_t samples;
  cli_uword_t word;
  int residual;
} quantize_args_t;

/* The container of this one layer, to measure wire bytes.  Residual mode
 * starts from a zero accumulator, so it quantizes g with the damped scale
 * exactly as mcgqQuantizeHost(damped = 1) does. */
static int measure_wire(const char *cmd, const float *g, uint64_t n,
                        const quantize_args_t *a, uint32_t u,
                        uint64_t *wire_bytes) {
  mcgqLayerDesc_t desc;
  mcgqLayerDescInit(&desc);
  desc.g = g;
  desc.n = n;
  desc.u = u;
  desc.cfg.k = a->k;
  desc.cfg.samples = a->samples;
  float *accum = NULL;
  if (a->residual) {
    accum = (float *)calloc((size_t)n, sizeof *accum);
    if (!accum) return cli_error(cmd, "out of memory: accumulator of %llu floats",
                                 (unsigned long long)n);
    desc.accum = accum;
    desc.cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
  }
  size_t bytes = 0;
  int rc = cli_encode_layers(cmd, &desc, 1, NULL, &bytes, NULL);
  free(accum);
  *wire_bytes = bytes;
  return rc ? CLI_EXIT_BAD_INPUT : CLI_EXIT_OK;
}

static void print_summary(const mcgqLayerStats_t *s, uint64_t N, uint32_t u,
                          uint64_t wire_bytes, int residual) {
  cli_json_t j;
  cli_json_begin(&j, stdout);
  cli_json_u64(&j, "n", s->n);
  cli_json_u64(&j, "N", N);
  cli_json_f64(&j, "k", s->k);
  cli_json_u64(&j, "u", u);
  cli_json_bool(&j, "residual", residual);
  cli_json_f32(&j, "scale", s->scale);
  cli_json_f32_bits(&j, "scale_bits", s->scale);
  cli_json_u64(&j, "B_g", s->bits_value);
  cli_json_u64(&j, "B_RLE", s->bits_run);
  cli_json_u64(&j, "stream_bits", s->stream_bits);
  cli_json_f64(&j, "paper_ratio", cli_paper_ratio(s->n, s->stream_bits));
  cli_json_u64(&j, "wire_bytes", wire_bytes);
  cli_json_f64(&j, "wire_ratio", cli_wire_ratio(s->n, wire_bytes));
  cli_json_f64(&j, "w1", s->w1);
  cli_json_u64(&j, "nonzeros", s->nonzeros);
  cli_json_end(&j);
}

static int run_quantize(const char *cmd, const quantize_args_t *a, uint32_t u) {
  float *g = NULL;
  int32_t *g_int = NULL;
  uint64_t n = 0, N = 0, wire_bytes = 0;
  int rc = CLI_EXIT_BAD_INPUT;
  if (cli_read_f32(cmd, a->in, &g, &n)) goto done;
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  cfg.k = a->k;
  cfg.samples = a->samples;
  mcgqResult_t r = mcgqResolveSamples(&cfg, NULL, n, &N);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, a->in, r);
    goto done;
  }
  if (!(g_int = (int32_t *)cli_alloc(cmd, n, sizeof *g_int))) goto done;
  mcgqLayerStats_t stats;
  memset(&stats, 0, sizeof stats);
  r = mcgqQuantizeHost(g, n, a->k, a->samples, u, a->residual, g_int, &stats);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, a->in, r);
    goto done;
  }
  if (measure_wire(cmd, g, n, a, u, &wire_bytes)) goto done;
  if (a->out && cli_write_i32(cmd, a->out, g_int, n)) goto done;
  print_summary(&stats, N, u, wire_bytes, a->residual);
  rc = CLI_EXIT_OK;
done:
  free(g);
  free(g_int);
  return rc;
}

int mcgq_cmd_quantize(int argc, char **argv) {
  const char *cmd = "quantize";
  quantize_args_t a;
  memset(&a, 0, sizeof a);
  a.k = 1.0; /* only read when --samples is given alone (it overrides K) */
  cli_option_t opts[] = {
      {"--in", CLI_STRING, &a.in, 0},           {"--out", CLI_STRING, &a.out, 0},
      {"--k", CLI_DOUBLE, &a.k, 0},             {"--samples", CLI_U64, &a.samples, 0},
      {"--u", CLI_U32, &a.word.u, 0},           {"--seed", CLI_U64, &a.word.seed, 0},
      {"--step", CLI_U64, &a.word.step, 0},     {"--layer", CLI_U32, &a.word.layer, 0},
      {"--rank", CLI_U32, &a.word.rank, 0},     {"--residual", CLI_FLAG, &a.residual, 0},
  };
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, quantize_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  if (!cli_given(opts, count, "--k") && !cli_given(opts, count, "--samples"))
    return cli_error(cmd, "missing option --k (or --samples)");
  if (cli_given(opts, count, "--samples") && a.samples == 0)
    return cli_error(cmd, "bad value for --samples: 0 (need N >= 1)");
  uint32_t u = 0;
  int rc = cli_resolve_u(cmd, opts, count, &a.word, &u);
  return rc ? rc : run_quantize(cmd, &a, u);
}
