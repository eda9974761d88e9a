/* model_bench.h - which recorded benchmark `mcgq model` takes its codec
 * numbers from when none is named (model_bench.c). */
#ifndef MCGQ_TOOLS_MODEL_BENCH_H
#define MCGQ_TOOLS_MODEL_BENCH_H

#include <stddef.h>

/* The mcgq_bench JSON (-J) in `dir` with the latest "date" field among those
 * that carry a "model_inputs" object: its path into `path` and its date and
 * device into `date` / `device` (each truncated to its size).  Returns 0, or
 * -1 when the folder cannot be read or holds no such file. */
int model_newest_bench(const char *dir, char *path, size_t path_size, char *date,
                       size_t date_size, char *device, size_t device_size);

/* The string value of `"key": "..."` in a JSON text, unescaped only as far as
 * a label needs (backslash escapes copied as they are); -1 when absent. */
int model_json_string(const char *text, const char *key, char *out, size_t size);

#endif
