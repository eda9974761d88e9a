/* cli_json.c - the JSON the mcgq subcommands print: one object per run,
 * keys in a fixed order, numbers that read back bit-exactly. */
#include <math.h>
#include <string.h>

#include "cli.h"

static void separate(cli_json_t *j) {
  if (j->need_comma[j->depth]) fputs(", ", j->out);
  j->need_comma[j->depth] = 1;
}

static void key(cli_json_t *j, const char *k) {
  separate(j);
  if (k) fprintf(j->out, "\"%s\": ", k);
}

static void open_bracket(cli_json_t *j, char bracket) {
  fputc(bracket, j->out);
  if (j->depth + 1 < (int)(sizeof j->need_comma / sizeof j->need_comma[0]))
    ++j->depth;
  j->need_comma[j->depth] = 0;
}

void cli_json_begin(cli_json_t *j, FILE *out) {
  memset(j, 0, sizeof *j);
  j->out = out;
  fputc('{', out);
  j->depth = 1;
}

void cli_json_end(cli_json_t *j) {
  fputs("}\n", j->out);
  fflush(j->out);
  j->depth = 0;
}

void cli_json_key_object(cli_json_t *j, const char *k) {
  key(j, k);
  open_bracket(j, '{');
}

void cli_json_key_array(cli_json_t *j, const char *k) {
  key(j, k);
  open_bracket(j, '[');
}

void cli_json_object(cli_json_t *j) {
  key(j, NULL);
  open_bracket(j, '{');
}

void cli_json_close(cli_json_t *j, char bracket) {
  fputc(bracket, j->out);
  if (j->depth > 1) --j->depth;
}

void cli_json_u64(cli_json_t *j, const char *k, uint64_t v) {
  key(j, k);
  fprintf(j->out, "%llu", (unsigned long long)v);
}

void cli_json_f32(cli_json_t *j, const char *k, float v) {
  key(j, k);
  if (isfinite(v)) fprintf(j->out, "%.9g", (double)v);
  else fputs("null", j->out);
}

void cli_json_f64(cli_json_t *j, const char *k, double v) {
  key(j, k);
  if (isfinite(v)) fprintf(j->out, "%.17g", v);
  else fputs("null", j->out);
}

/* Keys and values here are the tool's own words and file names; quotes,
 * backslashes and control characters are escaped all the same. */
void cli_json_str(cli_json_t *j, const char *k, const char *v) {
  key(j, k);
  fputc('"', j->out);
  for (const unsigned char *p = (const unsigned char *)v; *p; ++p) {
    if (*p == '"' || *p == '\\') fprintf(j->out, "\\%c", *p);
    else if (*p < 0x20) fprintf(j->out, "\\u%04x", *p);
    else fputc(*p, j->out);
  }
  fputc('"', j->out);
}

void cli_json_bool(cli_json_t *j, const char *k, int v) {
  key(j, k);
  fputs(v ? "true" : "false", j->out);
}

void cli_json_f32_bits(cli_json_t *j, const char *k, float v) {
  uint32_t w;
  memcpy(&w, &v, sizeof w);
  key(j, k);
  fprintf(j->out, "\"%02x%02x%02x%02x\"", (unsigned)(w & 0xff),
          (unsigned)(w >> 8 & 0xff), (unsigned)(w >> 16 & 0xff),
          (unsigned)(w >> 24));
}
