/* model_bench.c - the recorded benchmark `mcgq model` reads by default.
 * Without it the model runs on built-in codec speeds (100 / 200 GB/s),
 * whose speedups read like predictions although nothing was measured; the
 * newest mcgq_bench result in bench/results/ is what this machine (or the
 * last one measured) can actually do.  "Newest" is the JSON's own "date"
 * field, not the file's mtime, which a fresh clone sets to checkout time. */
#define _POSIX_C_SOURCE 200809L /* opendir, readdir */
#include "model_bench.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bench JSON is a few KiB; anything much larger is not one. */
#define MODEL_BENCH_MAX_BYTES (4u << 20)

int model_json_string(const char *text, const char *key, char *out, size_t size) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
  const char *at = strstr(text, pattern);
  if (!at || size == 0) return -1;
  at += strlen(pattern);
  size_t len = 0;
  while (at[len] && at[len] != '"') len += at[len] == '\\' && at[len + 1] ? 2 : 1;
  if (at[len] != '"') return -1;
  if (len >= size) len = size - 1;
  memcpy(out, at, len);
  out[len] = '\0';
  return 0;
}

static char *read_small_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *text = (char *)malloc(MODEL_BENCH_MAX_BYTES + 1);
  size_t got = text ? fread(text, 1, MODEL_BENCH_MAX_BYTES + 1, f) : 0;
  fclose(f);
  if (!text || got > MODEL_BENCH_MAX_BYTES) {
    free(text);
    return NULL;
  }
  text[got] = '\0';
  return text;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int model_newest_bench(const char *dir, char *path, size_t path_size, char *date,
                       size_t date_size, char *device, size_t device_size) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  char best_date[64] = "";
  int found = 0;
  for (struct dirent *e = readdir(d); e; e = readdir(d)) {
    if (!ends_with(e->d_name, ".json")) continue;
    char candidate[1024];
    if (snprintf(candidate, sizeof candidate, "%s/%s", dir, e->d_name) >= (int)sizeof candidate)
      continue;
    char *text = read_small_file(candidate);
    if (!text) continue;
    char when[64], what[128];
    /* Ties (same date) go to the greater name, so the pick does not depend
     * on the order readdir returns. */
    if (strstr(text, "\"model_inputs\"") && model_json_string(text, "date", when, sizeof when) == 0 &&
        (!found || strcmp(when, best_date) > 0 ||
         (strcmp(when, best_date) == 0 && strcmp(candidate, path) > 0))) {
      if (model_json_string(text, "device", what, sizeof what)) snprintf(what, sizeof what, "?");
      snprintf(best_date, sizeof best_date, "%s", when);
      snprintf(path, path_size, "%s", candidate);
      snprintf(date, date_size, "%s", when);
      snprintf(device, device_size, "%s", what);
      found = 1;
    }
    free(text);
  }
  closedir(d);
  return found ? 0 : -1;
}
