/* mcgq.c - the `mcgq` command-line tool: dispatch to the subcommands.
 *
 * Exit status: 0 success, 2 bad input or a library error (one line on
 * stderr).  stdout carries only the subcommand's JSON or table, so the
 * output can be piped into a JSON reader. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
  const char *summary;
} cli_command_t;

/* Adding a subcommand is one line here (and its mcgq_cmd_* in cli.h). */
static const cli_command_t commands[] = {
    {"quantize", mcgq_cmd_quantize, "quantize one layer of float32 values (JSON summary)"},
    {"rle", mcgq_cmd_rle, "int32 values -> the paper's RLE bitstream"},
    {"unrle", mcgq_cmd_unrle, "the paper's RLE bitstream -> int32 values"},
    {"encode", mcgq_cmd_encode, "float32 values -> a wire container message"},
    {"decode", mcgq_cmd_decode, "a container message -> float32 (or int32) values"},
    {"info", mcgq_cmd_info, "header and layer directory of a container message"},
    {"demo", mcgq_cmd_demo, "compression and error of a synthetic gradient over K"},
    {"model", mcgq_cmd_model, "predicted step time against fp32/bf16 all-reduce"},
};

static void usage(FILE *f) {
  int v = mcgqGetVersion();
  fprintf(f,
          "usage: mcgq <command> [options]   (mcgq <command> --help)\n"
          "Monte Carlo Gradient Quantization, library version %d.%d.%d, wire format %d.\n"
          "Files of values are packed little-endian float32 / int32.  Integer\n"
          "options are decimal digits only (no sign, 0x prefix or leading zeros),\n"
          "real ones plain decimal (0.5, 1e-3; no hex, inf or nan).\n\ncommands:\n",
          v / 10000, v / 100 % 100, v % 100, MCGQ_FORMAT_VERSION);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_BAD_INPUT;
  }
  const char *name = argv[1];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0) {
    int v = mcgqGetVersion();
    printf("mcgq %d.%d.%d\n", v / 10000, v / 100 % 100, v % 100);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
    if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "mcgq: unknown command '%s' (mcgq --help lists them)\n", name);
  return CLI_EXIT_BAD_INPUT;
}
