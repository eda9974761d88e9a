/* cmd_encode.c - `mcgq encode`: a gradient file (split into layers) into one
 * wire container message (docs/FORMAT.md) with mcgqEncodeHost. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CODEC_MAX_LAYERS 4096

static const char encode_usage[] =
    "usage: mcgq encode --in g.f32 --out msg.mcgq (--k K | --samples N)\n"
    "                   --seed S --step T [--layer L --rank R] [--checksum]\n"
    "                   [--layers n1,n2,...]\n"
    "Quantizes and encodes little-endian float32 values into one container\n"
    "message (mcgqEncodeHost) and prints a JSON summary with per-layer stats.\n"
    "  --in FILE      float32 values\n"
    "  --out FILE     the message\n"
    "  --k K          sampling amount of every layer, K in (0, 64]\n"
    "  --samples N    samples per layer directly (overrides --k)\n"
    "  --seed S --step T [--layer L --rank R]\n"
    "                 layer i gets u = mcgqRandomWord(S, T, L + i, R)\n"
    "  --checksum     CRC32C over each layer's payload\n"
    "  --layers LIST  split the input into layers of these sizes (they must\n"
    "                 add up to the file's n); default: one layer\n";

typedef struct {
  const char *in, *out, *layers_list;
  double k;
  uint64_t samples;
  cli_uword_t word;
  int checksum;
} encode_args_t;

/* "n1,n2,..." -> sizes; every size a decimal number in [1, 2^32-1] (the
 * same strict digits as every number of the tool), no empty item. */
static int parse_layer_list(const char *cmd, const char *list, uint64_t *sizes,
                            int *count) {
  *count = 0;
  const char *s = list;
  for (;;) {
    size_t len = strcspn(s, ",");
    uint64_t v = 0;
    if (*count == CODEC_MAX_LAYERS ||
        cli_parse_decimal(s, len, MCGQ_MAX_LAYER_ELEMENTS, &v) || v == 0)
      return cli_error(cmd, "bad value for --layers: '%s' (need decimal sizes in "
                       "[1, 2^32-1] separated by commas, at most %d)", list,
                       CODEC_MAX_LAYERS);
    sizes[(*count)++] = v;
    if (s[len] == '\0') return CLI_EXIT_OK;
    s += len + 1;
  }
}

static void print_layer_stats(cli_json_t *j, const mcgqLayerStats_t *s, uint32_t u) {
  cli_json_object(j);
  cli_json_u64(j, "n", s->n);
  cli_json_u64(j, "N", s->samples);
  cli_json_u64(j, "u", u);
  cli_json_f32(j, "scale", s->scale);
  cli_json_u64(j, "B_g", s->bits_value);
  cli_json_u64(j, "B_RLE", s->bits_run);
  cli_json_u64(j, "stream_bits", s->stream_bits);
  cli_json_u64(j, "wire_bytes", s->wire_bytes);
  cli_json_u64(j, "nonzeros", s->nonzeros);
  cli_json_bool(j, "fixed_width", (s->flags & MCGQ_LAYER_FLAG_FIXED_WIDTH) != 0);
  cli_json_close(j, '}');
}

static void print_encode_summary(const mcgqLayerDesc_t *d, const mcgqLayerStats_t *s,
                                 int count, size_t bytes) {
  uint64_t n = 0;
  double paper_bits = 0;
  for (int i = 0; i < count; ++i) {
    n += s[i].n;
    paper_bits += (double)s[i].stream_bits + 32.0; /* + the scale */
  }
  cli_json_t j;
  cli_json_begin(&j, stdout);
  cli_json_u64(&j, "n", n);
  cli_json_u64(&j, "layers", (uint64_t)count);
  cli_json_u64(&j, "bytes", bytes);
  cli_json_f64(&j, "paper_ratio", 32.0 * (double)n / paper_bits);
  cli_json_f64(&j, "wire_ratio", cli_wire_ratio(n, bytes));
  cli_json_key_array(&j, "layer_stats");
  for (int i = 0; i < count; ++i) print_layer_stats(&j, &s[i], d[i].u);
  cli_json_close(&j, ']');
  cli_json_end(&j);
}

static int run_encode(const char *cmd, const encode_args_t *a, const uint64_t *sizes,
                      int count) {
  float *g = NULL;
  uint64_t n = 0;
  mcgqLayerDesc_t *desc = NULL;
  mcgqLayerStats_t *stats = NULL;
  uint8_t *message = NULL;
  size_t bytes = 0;
  int rc = CLI_EXIT_BAD_INPUT;
  if (cli_read_f32(cmd, a->in, &g, &n)) goto done;
  uint64_t one = n;
  if (count == 0) {
    sizes = &one;
    count = 1;
  }
  uint64_t total = 0;
  for (int i = 0; i < count; ++i) total += sizes[i];
  if (total != n) {
    cli_error(cmd, "--layers add up to %llu elements but '%s' holds %llu",
              (unsigned long long)total, a->in, (unsigned long long)n);
    goto done;
  }
  desc = (mcgqLayerDesc_t *)cli_alloc(cmd, (uint64_t)count, sizeof *desc);
  stats = (mcgqLayerStats_t *)cli_alloc(cmd, (uint64_t)count, sizeof *stats);
  if (!desc || !stats) goto done;
  uint64_t offset = 0;
  for (int i = 0; i < count; ++i) {
    mcgqLayerDescInit(&desc[i]);
    desc[i].g = g + offset;
    desc[i].n = sizes[i];
    desc[i].u = mcgqRandomWord(a->word.seed, a->word.step, a->word.layer + (uint32_t)i,
                               a->word.rank);
    desc[i].cfg.k = a->k;
    desc[i].cfg.samples = a->samples;
    desc[i].cfg.checksum = a->checksum;
    offset += sizes[i];
  }
  if (cli_encode_layers(cmd, desc, count, &message, &bytes, stats)) goto done;
  if (cli_write_bytes(cmd, a->out, message, bytes)) goto done;
  print_encode_summary(desc, stats, count, bytes);
  rc = CLI_EXIT_OK;
done:
  free(g);
  free(desc);
  free(stats);
  free(message);
  return rc;
}

int mcgq_cmd_encode(int argc, char **argv) {
  const char *cmd = "encode";
  encode_args_t a;
  memset(&a, 0, sizeof a);
  a.k = 1.0;
  cli_option_t opts[] = {
      {"--in", CLI_STRING, &a.in, 0},          {"--out", CLI_STRING, &a.out, 0},
      {"--k", CLI_DOUBLE, &a.k, 0},            {"--samples", CLI_U64, &a.samples, 0},
      {"--seed", CLI_U64, &a.word.seed, 0},    {"--step", CLI_U64, &a.word.step, 0},
      {"--layer", CLI_U32, &a.word.layer, 0},  {"--rank", CLI_U32, &a.word.rank, 0},
      {"--checksum", CLI_FLAG, &a.checksum, 0}, {"--layers", CLI_STRING, &a.layers_list, 0},
  };
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, encode_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", "--out", "--seed", "--step", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  if (!cli_given(opts, count, "--k") && !cli_given(opts, count, "--samples"))
    return cli_error(cmd, "missing option --k (or --samples)");
  if (cli_given(opts, count, "--samples") && a.samples == 0)
    return cli_error(cmd, "bad value for --samples: 0 (need N >= 1)");
  static uint64_t sizes[CODEC_MAX_LAYERS];
  int layer_count = 0;
  if (a.layers_list && parse_layer_list(cmd, a.layers_list, sizes, &layer_count))
    return CLI_EXIT_BAD_INPUT;
  return run_encode(cmd, &a, sizes, layer_count);
}
