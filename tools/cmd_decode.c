/* cmd_decode.c - `mcgq decode` and `mcgq info`: reading a wire container
 * message (docs/FORMAT.md); both start from the validated header. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char decode_usage[] =
    "usage: mcgq decode --in msg.mcgq [--out g.f32] [--ints gint.i32]\n"
    "Decodes a container message (at least one of --out, --ints).\n"
    "  --in FILE      the message\n"
    "  --out FILE     dequantized float32 values scale*g_int (mcgqDecodeHost)\n"
    "  --ints FILE    the integers g_int as int32 (mcgqDecodeIntsHost)\n"
    "Prints {n, layers, bytes, scales} as JSON.\n";

static const char info_usage[] =
    "usage: mcgq info --in msg.mcgq\n"
    "Validates a container message's header and layer directory (and CRCs)\n"
    "without decoding payloads, and prints them as JSON.\n";

/* Reads a message and its validated header; total_n >= 1 by the format. */
static int read_message(const char *cmd, const char *path, uint8_t **msg, size_t *size,
                        mcgqMessageInfo_t *info) {
  if (cli_read_bytes(cmd, path, msg, size)) return -1;
  mcgqResult_t r = mcgqMessageGetInfo(*msg, *size, info);
  if (r != mcgqSuccess) {
    free(*msg);
    *msg = NULL;
    cli_library_error(cmd, path, r);
    return -1;
  }
  return 0;
}

static int run_decode(const char *cmd, const char *in, const char *out, const char *ints) {
  uint8_t *msg = NULL;
  size_t size = 0;
  float *values = NULL, *scales = NULL;
  int32_t *g_int = NULL;
  mcgqMessageInfo_t info;
  int rc = CLI_EXIT_BAD_INPUT;
  if (read_message(cmd, in, &msg, &size, &info)) goto done;
  uint64_t n = info.total_n;
  if (!(scales = (float *)cli_alloc(cmd, info.layer_count, sizeof *scales))) goto done;
  if (!(g_int = (int32_t *)cli_alloc(cmd, n, sizeof *g_int))) goto done;
  mcgqResult_t r = mcgqDecodeIntsHost(msg, size, g_int, n, scales, info.layer_count);
  if (r != mcgqSuccess) {
    cli_library_error(cmd, in, r);
    goto done;
  }
  if (ints && cli_write_i32(cmd, ints, g_int, n)) goto done;
  if (out) {
    if (!(values = (float *)cli_alloc(cmd, n, sizeof *values))) goto done;
    r = mcgqDecodeHost(msg, size, values, n);
    if (r != mcgqSuccess) {
      cli_library_error(cmd, in, r);
      goto done;
    }
    if (cli_write_f32(cmd, out, values, n)) goto done;
  }
  cli_json_t j;
  cli_json_begin(&j, stdout);
  cli_json_u64(&j, "n", n);
  cli_json_u64(&j, "layers", info.layer_count);
  cli_json_u64(&j, "bytes", size);
  cli_json_key_array(&j, "scales");
  for (uint32_t i = 0; i < info.layer_count; ++i) cli_json_f32(&j, NULL, scales[i]);
  cli_json_close(&j, ']');
  cli_json_end(&j);
  rc = CLI_EXIT_OK;
done:
  free(msg);
  free(values);
  free(scales);
  free(g_int);
  return rc;
}

int mcgq_cmd_decode(int argc, char **argv) {
  const char *cmd = "decode";
  const char *in = NULL, *out = NULL, *ints = NULL;
  cli_option_t opts[] = {{"--in", CLI_STRING, &in, 0},
                         {"--out", CLI_STRING, &out, 0},
                         {"--ints", CLI_STRING, &ints, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, decode_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  if (!out && !ints) return cli_error(cmd, "missing option --out (or --ints)");
  return run_decode(cmd, in, out, ints);
}

static void print_message_layer(cli_json_t *j, const mcgqMessageLayer_t *l) {
  cli_json_object(j);
  cli_json_u64(j, "n", l->n);
  cli_json_u64(j, "n_coded", l->n_coded);
  cli_json_u64(j, "N", l->samples);
  cli_json_f32(j, "scale", l->scale);
  cli_json_str(j, "encoding", l->encoding == 0 ? "rle" : "fixed_width");
  cli_json_u64(j, "B_g", l->bits_value);
  cli_json_u64(j, "B_RLE", l->bits_run);
  cli_json_u64(j, "stream_bits", l->stream_bits);
  cli_json_u64(j, "byte_offset", l->byte_offset);
  cli_json_u64(j, "byte_size", l->byte_size);
  cli_json_bool(j, "cut", (l->flags & MCGQ_LAYER_FLAG_CUT) != 0);
  cli_json_close(j, '}');
}

static int run_info(const char *cmd, const char *in) {
  uint8_t *msg = NULL;
  size_t size = 0;
  mcgqMessageInfo_t info;
  if (read_message(cmd, in, &msg, &size, &info)) return CLI_EXIT_BAD_INPUT;
  /* Validate every directory entry before printing anything, so stdout
   * never holds half a JSON object. */
  mcgqMessageLayer_t *layers =
      (mcgqMessageLayer_t *)cli_alloc(cmd, info.layer_count, sizeof *layers);
  int rc = layers ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  for (uint32_t i = 0; rc == CLI_EXIT_OK && i < info.layer_count; ++i) {
    mcgqResult_t r = mcgqMessageGetLayer(msg, size, i, &layers[i]);
    if (r != mcgqSuccess) rc = cli_library_error(cmd, in, r);
  }
  if (rc == CLI_EXIT_OK) {
    cli_json_t j;
    cli_json_begin(&j, stdout);
    cli_json_u64(&j, "format_version", info.format_version);
    cli_json_bool(&j, "crc32c", (info.flags & MCGQ_MESSAGE_FLAG_CRC32C) != 0);
    cli_json_u64(&j, "layers", info.layer_count);
    cli_json_u64(&j, "total_n", info.total_n);
    cli_json_u64(&j, "total_bytes", info.total_bytes);
    cli_json_f64(&j, "wire_ratio", cli_wire_ratio(info.total_n, info.total_bytes));
    cli_json_key_array(&j, "layer");
    for (uint32_t i = 0; i < info.layer_count; ++i) print_message_layer(&j, &layers[i]);
    cli_json_close(&j, ']');
    cli_json_end(&j);
  }
  free(layers);
  free(msg);
  return rc;
}

int mcgq_cmd_info(int argc, char **argv) {
  const char *cmd = "info";
  const char *in = NULL;
  cli_option_t opts[] = {{"--in", CLI_STRING, &in, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, info_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  return run_info(cmd, in);
}
