/* cli_args.c - option parsing of the mcgq subcommands and their error lines.
 * Numbers are parsed strictly (whole argument, no sign on unsigned values,
 * range checked) because a silently truncated --k or --seed would give a
 * different, plausible-looking result. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "mcgq %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return CLI_EXIT_BAD_INPUT;
}

int cli_library_error(const char *cmd, const char *what, mcgqResult_t r) {
  const char *detail = mcgqGetLastErrorDetail();
  return cli_error(cmd, "%s: %s%s%s", what, mcgqGetErrorString(r),
                   detail && *detail ? ": " : "", detail ? detail : "");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (!*s || *s == '-' || *s == '+' || *s == ' ') return -1;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end != '\0' || v > max) return -1;
  *out = (uint64_t)v;
  return 0;
}

static int parse_double(const char *s, double *out) {
  if (!*s || *s == ' ') return -1;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
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
      if (parse_u64(value, UINT64_MAX, &u)) return -1;
      *(uint64_t *)o->dest = u;
      return 0;
    case CLI_U32:
      if (parse_u64(value, UINT32_MAX, &u)) return -1;
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
    case CLI_U64: return "an unsigned 64-bit integer";
    case CLI_U32: return "an unsigned 32-bit integer";
    case CLI_DOUBLE: return "a finite number";
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
