/* cmd_decode.c - `mcgq decode` and `mcgq info`: reading a wire container
 * message (docs/FORMAT.md); both start from the validated header. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A message's header may claim up to 2^31-1 layers of 2^32-1 elements in
 * 88 bytes, and decoding allocates 4 bytes per claimed element for each of
 * --out and --ints.  So the tool decodes only messages whose total_n is at
 * most --max-elements, checked before anything is allocated.  Default 2^27:
 * 512 MiB of float32 output, more than the largest layer of common models
 * (GPT-2's 50257 x 768 embedding is 2^25.2) yet a size any workstation
 * holds; a caller who means more says so. */
#define DECODE_DEFAULT_MAX_ELEMENTS (UINT64_C(1) << 27)

static const char decode_usage[] =
    "usage: mcgq decode --in msg.mcgq [--out g.f32] [--ints gint.i32]\n"
    "                   [--max-elements N]\n"
    "Decodes a container message (at least one of --out, --ints).\n"
    "  --in FILE      the message\n"
    "  --out FILE     dequantized float32 values scale*g_int (mcgqDecodeHost)\n"
    "  --ints FILE    the integers g_int as int32 (mcgqDecodeIntsHost)\n"
    "  --max-elements N\n"
    "                 refuse a message whose header claims more than N elements\n"
    "                 in total (default 134217728 = 2^27, i.e. 512 MiB of\n"
    "                 float32 output); checked before any allocation, since a\n"
    "                 header of 88 bytes may claim 2^32-1 elements\n"
    "Prints {n, layers, bytes, scales} as JSON.\n";

static const char info_usage[] =
    "usage: mcgq info --in msg.mcgq\n"
    "Validates a container message's header and layer directory (and CRCs)\n"
    "without decoding payloads, and prints them as JSON.  Needs memory in\n"
    "proportion to the file, not to the element counts it claims.\n";

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

/* The message's claim against the caller's limit, before any allocation. */
static int check_claimed_size(const char *cmd, const char *in,
                              const mcgqMessageInfo_t *info, uint64_t max_elements) {
  if (info->total_n <= max_elements) return 0;
  cli_error(cmd, "'%s': the message claims %llu elements (%u layer%s), more than "
            "--max-elements %llu (default 2^27: 512 MiB of float32 output); pass "
            "--max-elements %llu or more to decode it",
            in, (unsigned long long)info->total_n, info->layer_count,
            info->layer_count == 1 ? "" : "s", (unsigned long long)max_elements, (unsigned long long)info->total_n);
  return -1;
}

/* The scales come from the directory, so --out alone needs no int32 copy
 * of the message. */
static int read_scales(const char *cmd, const char *in, const uint8_t *msg,
                       size_t size, float *scales, uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) {
    mcgqMessageLayer_t layer;
    mcgqResult_t r = mcgqMessageGetLayer(msg, size, i, &layer);
    if (r != mcgqSuccess) return cli_library_error(cmd, in, r), -1;
    scales[i] = layer.scale;
  }
  return 0;
}

typedef struct {
  const char *in, *out, *ints;
  uint64_t max_elements;
} decode_args_t;

static int run_decode(const char *cmd, const decode_args_t *a) {
  uint8_t *msg = NULL;
  size_t size = 0;
  float *values = NULL, *scales = NULL;
  int32_t *g_int = NULL;
  mcgqMessageInfo_t info;
  int rc = CLI_EXIT_BAD_INPUT;
  if (read_message(cmd, a->in, &msg, &size, &info)) goto done;
  if (check_claimed_size(cmd, a->in, &info, a->max_elements)) goto done;
  uint64_t n = info.total_n;
  if (!(scales = (float *)cli_alloc(cmd, info.layer_count, sizeof *scales))) goto done;
  if (read_scales(cmd, a->in, msg, size, scales, info.layer_count)) goto done;
  /* Decode everything asked for before writing anything, so a corrupt
   * payload leaves no output file behind. */
  if (a->ints) {
    if (!(g_int = (int32_t *)cli_alloc(cmd, n, sizeof *g_int))) goto done;
    mcgqResult_t r = mcgqDecodeIntsHost(msg, size, g_int, n, NULL, 0);
    if (r != mcgqSuccess) {
      cli_library_error(cmd, a->in, r);
      goto done;
    }
  }
  if (a->out) {
    if (!(values = (float *)cli_alloc(cmd, n, sizeof *values))) goto done;
    mcgqResult_t r = mcgqDecodeHost(msg, size, values, n);
    if (r != mcgqSuccess) {
      cli_library_error(cmd, a->in, r);
      goto done;
    }
  }
  if (a->ints && cli_write_i32(cmd, a->ints, g_int, n)) goto done;
  if (a->out && cli_write_f32(cmd, a->out, values, n)) goto done;
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
  decode_args_t a = {NULL, NULL, NULL, DECODE_DEFAULT_MAX_ELEMENTS};
  cli_option_t opts[] = {{"--in", CLI_STRING, &a.in, 0},
                         {"--out", CLI_STRING, &a.out, 0},
                         {"--ints", CLI_STRING, &a.ints, 0},
                         {"--max-elements", CLI_U64, &a.max_elements, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t p = cli_parse(cmd, argc, argv, opts, count, decode_usage);
  if (p != CLI_RUN) return p == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  static const char *const required[] = {"--in", NULL};
  if (!cli_require(cmd, opts, count, required)) return CLI_EXIT_BAD_INPUT;
  if (!a.out && !a.ints) return cli_error(cmd, "missing option --out (or --ints)");
  if (a.max_elements == 0)
    return cli_error(cmd, "bad value for --max-elements: 0 (a message holds at "
                     "least one element)");
  return run_decode(cmd, &a);
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
