/* cli.h - what the files of the `mcgq` command-line tool share.
 *
 * Every subcommand is `int mcgq_cmd_NAME(int argc, char **argv)` with argv[0]
 * the subcommand's name; it returns the process exit status: 0 on success,
 * 2 on bad input or a library error (after printing one line on stderr).
 * stdout carries only the command's JSON or table. */
#ifndef MCGQ_CLI_H_
#define MCGQ_CLI_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mcgq.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_BAD_INPUT 2

/* ------------------------------------------------------------ commands */
int mcgq_cmd_quantize(int argc, char **argv);
int mcgq_cmd_rle(int argc, char **argv);
int mcgq_cmd_unrle(int argc, char **argv);
int mcgq_cmd_encode(int argc, char **argv);
int mcgq_cmd_decode(int argc, char **argv);
int mcgq_cmd_info(int argc, char **argv);
int mcgq_cmd_demo(int argc, char **argv);
int mcgq_cmd_model(int argc, char **argv); /* cmd_model.c */

/* ------------------------------------------------------------ cli_args.c
 * A subcommand describes its options in a table; cli_parse fills the
 * destinations and marks what was given.  Only `--name value` and `--flag`
 * forms; -h / --help prints the usage on stdout. */
typedef enum {
  CLI_FLAG,   /* int, set to 1 */
  CLI_STRING, /* const char * (points into argv) */
  CLI_U64,    /* uint64_t, decimal digits only (cli_parse_decimal) */
  CLI_U32,    /* uint32_t, likewise */
  CLI_DOUBLE  /* double, finite, plain decimal notation (no hex, inf, nan) */
} cli_kind_t;

typedef struct {
  const char *name; /* "--k" */
  cli_kind_t kind;
  void *dest;
  int seen;         /* set by cli_parse */
} cli_option_t;

typedef enum { CLI_RUN, CLI_HELP, CLI_ERROR } cli_parse_t;

cli_parse_t cli_parse(const char *cmd, int argc, char **argv,
                      cli_option_t *opts, int count, const char *usage);
/* The len characters at s as a decimal number <= max: digits only, no sign,
 * space, base prefix or leading zero ("0" itself is fine), no overflow.
 * Returns 0, or -1 without touching *out. */
int cli_parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out);
/* The option named `name` of the table (NULL if absent). */
const cli_option_t *cli_find(const cli_option_t *opts, int count,
                             const char *name);
int cli_given(const cli_option_t *opts, int count, const char *name);
/* Fails (message, 0) unless every option of the NULL-terminated list was given. */
int cli_require(const char *cmd, const cli_option_t *opts, int count,
                const char *const *names);

/* The random word u (cli_uword.c): the options --u, --seed, --step,
 * --layer, --rank of a command's table store into these fields. */
typedef struct {
  uint32_t u;
  uint64_t seed, step;
  uint32_t layer, rank;
} cli_uword_t;
/* u = --u, or mcgqRandomWord(seed, step, layer, rank); layer and rank
 * default to 0.  Returns CLI_EXIT_OK or prints why not. */
int cli_resolve_u(const char *cmd, const cli_option_t *opts, int count,
                  const cli_uword_t *w, uint32_t *u);

/* One line on stderr ("mcgq CMD: ..."; control characters of the text, as
 * in a hostile file name, are written as \xNN), returns CLI_EXIT_BAD_INPUT. */
int cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A failed library call: "mcgq CMD: WHAT: <status string>: <detail>". */
int cli_library_error(const char *cmd, const char *what, mcgqResult_t r);

/* ------------------------------------------------------------ cli_io.c
 * Whole files of little-endian 32-bit values or raw bytes.  Each returns 0,
 * or prints the problem (naming the file) and returns -1. */
int cli_read_bytes(const char *cmd, const char *path, uint8_t **data,
                   size_t *size);
int cli_write_bytes(const char *cmd, const char *path, const void *data,
                    size_t size);
/* n >= 1 values; a size that is not a positive multiple of 4 is an error. */
int cli_read_f32(const char *cmd, const char *path, float **values,
                 uint64_t *n);
int cli_read_i32(const char *cmd, const char *path, int32_t **values,
                 uint64_t *n);
int cli_write_f32(const char *cmd, const char *path, const float *values,
                  uint64_t n);
int cli_write_i32(const char *cmd, const char *path, const int32_t *values,
                  uint64_t n);
/* malloc of count*size with overflow check and a message on failure. */
void *cli_alloc(const char *cmd, uint64_t count, size_t size);

/* ------------------------------------------------------------ cli_json.c
 * A flat JSON writer on stdout: objects and arrays nest, commas are placed
 * by the writer.  Floats are printed so they read back bit-exactly
 * (%.9g for float32, %.17g for double) and non-finite values as null. */
typedef struct {
  FILE *out;
  int depth;
  int need_comma[16];
} cli_json_t;

void cli_json_begin(cli_json_t *j, FILE *out);  /* "{" */
void cli_json_end(cli_json_t *j);               /* "}\n" */
void cli_json_key_object(cli_json_t *j, const char *key);
void cli_json_key_array(cli_json_t *j, const char *key);
void cli_json_object(cli_json_t *j);           /* an object inside an array */
void cli_json_close(cli_json_t *j, char bracket);
void cli_json_u64(cli_json_t *j, const char *key, uint64_t v);
void cli_json_f32(cli_json_t *j, const char *key, float v);
void cli_json_f64(cli_json_t *j, const char *key, double v);
void cli_json_str(cli_json_t *j, const char *key, const char *v);
void cli_json_bool(cli_json_t *j, const char *key, int v);
/* float32 as 8 hex digits of its little-endian bytes (as tests/vectors). */
void cli_json_f32_bits(cli_json_t *j, const char *key, float v);

/* ------------------------------------------------------------ cli_stats.c
 * Ratios of DESIGN.md section 3: paper = 32n / (stream bits + 32),
 * wire = 4n / container bytes. */
double cli_paper_ratio(uint64_t n, uint64_t stream_bits);
double cli_wire_ratio(uint64_t n, uint64_t wire_bytes);
/* Encodes one layer into a container (with a zero accumulator when
 * `accumulate` needs one) and returns its size in *bytes; the message is
 * returned in *message when message != NULL (caller frees). */
int cli_encode_layers(const char *cmd, const mcgqLayerDesc_t *layers,
                      int count, uint8_t **message, size_t *bytes,
                      mcgqLayerStats_t *stats);

#endif /* MCGQ_CLI_H_ */
