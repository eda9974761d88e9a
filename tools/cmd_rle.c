/* cmd_rle.c - `mcgq rle` and `mcgq unrle`: the paper's bitstream of one
 * layer alone (section 3.4: 32-bit B_g, 32-bit B_RLE, tokens, MSB-first),
 * without the container around it. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char rle_usage[] =
    "usage: mcgq rle --in gint.i32 --out stream.bin\n"
    "Encodes n little-endian int32 values (an integer gradient) as the paper's\n"
    "RLE bitstream (mcgqRleEncodeHost) and prints {n, B_g, B_RLE, stream_bits,\n"
    "bytes} as JSON.  The stream does not record n: unrle needs it.\n"
    "  --in FILE      n int32 values (n >= 1)\n"
    "  --out FILE     the bitstream, zero-padded to a whole byte\n";

static const char unrle_usage[] =
    "usage: mcgq unrle --in stream.bin --n N --out gint.i32\n"
    "Decodes a paper bitstream of exactly N elements (mcgqRleDecodeHost; only\n"
    "canonical streams are accepted) and prints {n, B_g, B_RLE, stream_bits}.\n"
    "  --in FILE      the bitstream\n"
    "  --n N          number of elements, N >= 1\n"
    "  --out FILE     N little-endian int32 values\n";

static uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

/* B_g and B_RLE are the stream's first two 32-bit big-endian words
 * (MSB-first bit order); callers pass streams of at least 8 bytes. */
static void print_stream_summary(uint64_t n, const uint8_t *stream,
                                 uint64_t stream_bits, size_t bytes) {
  cli_json_t j;
  cli_json_begin(&j, stdout);
  cli_json_u64(&j, "n", n);
  cli_json_u64(&j, "B_g", load_be32(stream));
  cli_json_u64(&j, "B_RLE", load_be32(stream + 4));
  cli_json_u64(&j, "stream_bits", stream_bits);
  cli_json_u64(&j, "bytes", bytes);
  cli_json_f64(&j, "paper_ratio", cli_paper_ratio(n, stream_bits));
  cli_json_end(&j);
}

static int run_rle(const char *cmd, const char *in, const char *out) {
  int32_t *g_int = NULL;
  uint8_t *stream = NULL;
  uint64_t n = 0, bits = 0;
  int rc = CLI_EXIT_BAD_INPUT;
  if (cli_read_i32(cmd, in, &g_int, &n)) goto done;
  mcgqResult_t r = mcgqRleEncodeHost(g_int, n, NULL, 0, &bits);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, in, r);
    goto done;
  }
  size_t bytes = (size_t)((bits + 7) / 8);
  if (!(stream = (uint8_t *)cli_alloc(cmd, bytes, 1))) goto done;
  r = mcgqRleEncodeHost(g_int, n, stream, bytes, &bits);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, in, r);
    goto done;
  }
  if (cli_write_bytes(cmd, out, stream, bytes)) goto done;
  print_stream_summary(n, stream, bits, bytes);
  rc = CLI_EXIT_OK;
done:
  free(g_int);
  free(stream);
  return rc;
}

int mcgq_cmd_rle(int argc, char **argv) {
  const char *cmd = "rle";
  const char *in = NULL, *out = NULL;
  cli_option_t opts[] = {{"--in", CLI_STRING, &in, 0}, {"--out", CLI_STRING, &out, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, rle_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", "--out", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  return run_rle(cmd, in, out);
}

static int run_unrle(const char *cmd, const char *in, uint64_t n, const char *out) {
  uint8_t *stream = NULL;
  int32_t *g_int = NULL;
  size_t size = 0;
  int rc = CLI_EXIT_BAD_INPUT;
  if (cli_read_bytes(cmd, in, &stream, &size)) goto done;
  /* The stream decides how many elements it can hold; allocate n only once
   * the header is there, and let the decoder reject a mismatch. */
  if (size < 8) {
    cli_error(cmd, "'%s' has %zu bytes: too short for the 64-bit B_g/B_RLE header",
              in, size);
    goto done;
  }
  if (!(g_int = (int32_t *)cli_alloc(cmd, n, sizeof *g_int))) goto done;
  mcgqResult_t r = mcgqRleDecodeHost(stream, size, n, g_int);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, in, r);
    goto done;
  }
  uint64_t bits = 0;
  r = mcgqRleEncodeHost(g_int, n, NULL, 0, &bits);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, in, r);
    goto done;
  }
  if (cli_write_i32(cmd, out, g_int, n)) goto done;
  print_stream_summary(n, stream, bits, size);
  rc = CLI_EXIT_OK;
done:
  free(stream);
  free(g_int);
  return rc;
}

int mcgq_cmd_unrle(int argc, char **argv) {
  const char *cmd = "unrle";
  const char *in = NULL, *out = NULL;
  uint64_t n = 0;
  cli_option_t opts[] = {{"--in", CLI_STRING, &in, 0},
                         {"--n", CLI_U64, &n, 0},
                         {"--out", CLI_STRING, &out, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, unrle_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", "--n", "--out", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  if (n == 0) return cli_error(cmd, "bad value for --n: n = 0 (need at least one element)");
  if (n > MCGQ_MAX_LAYER_ELEMENTS)
    return cli_error(cmd, "bad value for --n: %llu exceeds the layer limit 2^32-1",
                     (unsigned long long)n);
  return run_unrle(cmd, in, n, out);
}
