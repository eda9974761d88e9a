/* cli_args.c - option parsing of the mcgq subcommands and their error lines.
 * Numbers are parsed strictly (whole argument, range checked) because a
 * silently truncated --k or --seed would give a different, plausible-looking
 * result.  Integers are decimal digits only: strtoull(..., 0) would read 010
 * as 8 and 0x10 as 16, so a sign, a space, a base prefix or a leading zero is
 * refused rather than guessed at. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The line goes out with control bytes escaped: an argument or a path that
 * holds a newline must not split the one-line error (cli.h) in two. */
static void put_printable(const char *text, FILE *f) {
  for (const unsigned char *p = (const unsigned char *)text; *p; ++p) {
    if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
    else fputc(*p, f);
  }
}

int cli_error(const char *cmd, const char *fmt, ...) {
  char line[8192]; /* paths up to PATH_MAX and a library detail fit */
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "mcgq %s: ", cmd);
  put_printable(line, stderr);
  if (len >= (int)sizeof line) fputs("...", stderr);
  fputc('\n', stderr);
  return CLI_EXIT_BAD_INPUT;
}

int cli_library_error(const char *cmd, const char *what, mcgqResult_t r) {
  const char *detail = mcgqGetLastErrorDetail();
  return cli_error(cmd, "%s: %s%s%s", what, mcgqGetErrorString(r),
                   detail && *detail ? ": " : "", detail ? detail : "");
}

int cli_parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out) {
  if (len == 0 || (len > 1 && s[0] == '0')) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    uint64_t digit = (uint64_t)(s[i] - '0');
    if (v > (max - digit) / 10) return -1; /* v*10 + digit > max */
    v = v * 10 + digit;
  }
  *out = v;
  return 0;
}

/* [-] digits [. digits] [e|E [+|-] digits], with digits on at least one
 * side of the point: plain decimal notation.  strtod alone would also take
 * leading spaces, hex floats ("0x1p-3"), "inf" and "nan". */
static int is_plain_decimal_real(const char *s) {
  const char *p = s;
  if (*p == '-') ++p;
  size_t int_digits = strspn(p, "0123456789");
  p += int_digits;
  size_t frac_digits = 0;
  if (*p == '.') {
    frac_digits = strspn(p + 1, "0123456789");
    p += 1 + frac_digits;
  }
  if (int_digits + frac_digits == 0) return 0;
  if (*p == 'e' || *p == 'E') {
    ++p;
    if (*p == '+' || *p == '-') ++p;
    size_t exp_digits = strspn(p, "0123456789");
    if (exp_digits == 0) return 0;
    p += exp_digits;
  }
  return *p == '\0';
}

static int parse_double(const char *s, double *out) {
  if (!is_plain_decimal_real(s)) return -1;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  /* ERANGE: beyond double (1e999) or below its smallest denormal. */
  if (errno || *end != '\0' || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

static int store_value(cli_option_t *o, const char *value) {
  uint64_t u = 0;
  switch (o->kind) {
    case CLI_STRING:
      *(const char **)o->dest = value;
      return 0;
    case CLI_U64:
      if (cli_parse_decimal(value, strlen(value), UINT64_MAX, &u)) return -1;
      *(uint64_t *)o->dest = u;
      return 0;
    case CLI_U32:
      if (cli_parse_decimal(value, strlen(value), UINT32_MAX, &u)) return -1;
      *(uint32_t *)o->dest = (uint32_t)u;
      return 0;
    case CLI_DOUBLE:
      return parse_double(value, (double *)o->dest);
    case CLI_FLAG:
      break;
  }
  return -1;
}

static const char *kind_name(cli_kind_t kind) {
  switch (kind) {
    case CLI_U64:
      return "an unsigned 64-bit integer in decimal (digits only: no sign, "
             "spaces, 0x prefix or leading zeros)";
    case CLI_U32:
      return "an unsigned 32-bit integer in decimal (digits only: no sign, "
             "spaces, 0x prefix or leading zeros)";
    case CLI_DOUBLE:
      return "a finite number in plain decimal notation (like 0.5 or 1e-3)";
    default: return "a value";
  }
}

cli_parse_t cli_parse(const char *cmd, int argc, char **argv,
                      cli_option_t *opts, int count, const char *usage) {
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      fputs(usage, stdout);
      return CLI_HELP;
    }
    cli_option_t *o = NULL;
    for (int k = 0; k < count && !o; ++k)
      if (strcmp(opts[k].name, arg) == 0) o = &opts[k];
    if (!o) {
      cli_error(cmd, "unknown option '%s' (see mcgq %s --help)", arg, cmd);
      return CLI_ERROR;
    }
    if (o->seen) {
      cli_error(cmd, "option %s given twice", arg);
      return CLI_ERROR;
    }
    o->seen = 1;
    if (o->kind == CLI_FLAG) {
      *(int *)o->dest = 1;
      continue;
    }
    if (i + 1 >= argc) {
      cli_error(cmd, "option %s needs a value", arg);
      return CLI_ERROR;
    }
    const char *value = argv[++i];
    if (store_value(o, value)) {
      cli_error(cmd, "bad value for %s: '%s' is not %s", arg, value,
                kind_name(o->kind));
      return CLI_ERROR;
    }
  }
  return CLI_RUN;
}

const cli_option_t *cli_find(const cli_option_t *opts, int count,
                             const char *name) {
  for (int k = 0; k < count; ++k)
    if (strcmp(opts[k].name, name) == 0) return &opts[k];
  return NULL;
}

int cli_given(const cli_option_t *opts, int count, const char *name) {
  const cli_option_t *o = cli_find(opts, count, name);
  return o && o->seen;
}

int cli_require(const char *cmd, const cli_option_t *opts, int count,
                const char *const *names) {
  for (; *names; ++names) {
    if (!cli_given(opts, count, *names)) {
      cli_error(cmd, "missing option %s (see mcgq %s --help)", *names, cmd);
      return 0;
    }
  }
  return 1;
}
