/* data.c - loads one shard of an MCGQDS01 file (see scripts/export_data.py).
 * A rank reads only its rows, so the 400 MB epsilon-like set is never held
 * by one process. */
#include "data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES 32

static uint64_t read_u64_le(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

static uint32_t read_u32_le(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static int read_at(FILE *f, uint64_t offset, void *dst, size_t bytes) {
  if (fseeko(f, (off_t)offset, SEEK_SET) != 0) return -1;
  return fread(dst, 1, bytes, f) == bytes ? 0 : -1;
}

static int read_header(FILE *f, dataset_t *ds, char *err, int err_len) {
  unsigned char h[HEADER_BYTES];
  if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, "MCGQDS01", 8) != 0) {
    snprintf(err, (size_t)err_len, "not an MCGQDS01 file");
    return -1;
  }
  ds->total_rows = read_u64_le(h + 8);
  ds->cols = read_u64_le(h + 16);
  ds->classes = read_u32_le(h + 24);
  if (ds->total_rows == 0 || ds->cols == 0 || ds->cols > (1u << 24) ||
      ds->classes < 2 || ds->total_rows > ((uint64_t)1 << 40) / ds->cols) {
    snprintf(err, (size_t)err_len, "implausible header (rows %llu, cols %llu)",
             (unsigned long long)ds->total_rows, (unsigned long long)ds->cols);
    return -1;
  }
  return 0;
}

static int check_labels(const dataset_t *ds, char *err, int err_len) {
  for (uint64_t i = 0; i < ds->rows; ++i) {
    if (ds->y[i] < 0 || (uint32_t)ds->y[i] >= ds->classes) {
      snprintf(err, (size_t)err_len, "label %d of row %llu out of range", ds->y[i],
               (unsigned long long)i);
      return -1;
    }
  }
  return 0;
}

int dataset_load_shard(const char *path, int rank, int nranks, dataset_t *ds,
                       char *err, int err_len) {
  memset(ds, 0, sizeof *ds);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, (size_t)err_len, "cannot open %s", path);
    return -1;
  }
  int rc = read_header(f, ds, err, err_len);
  if (rc == 0) {
    uint64_t first = ds->total_rows * (uint64_t)rank / (uint64_t)nranks;
    uint64_t last = ds->total_rows * (uint64_t)(rank + 1) / (uint64_t)nranks;
    ds->rows = last - first;
    ds->x = malloc(ds->rows * ds->cols * sizeof(float) + 1);
    ds->y = malloc(ds->rows * sizeof(int32_t) + 1);
    uint64_t x_off = HEADER_BYTES + first * ds->cols * sizeof(float);
    uint64_t y_off = HEADER_BYTES + ds->total_rows * ds->cols * sizeof(float) +
                     first * sizeof(int32_t);
    if (!ds->x || !ds->y ||
        read_at(f, x_off, ds->x, ds->rows * ds->cols * sizeof(float)) != 0 ||
        read_at(f, y_off, ds->y, ds->rows * sizeof(int32_t)) != 0) {
      snprintf(err, (size_t)err_len, "%s: truncated or unreadable", path);
      rc = -1;
    } else {
      rc = check_labels(ds, err, err_len);
    }
  }
  fclose(f);
  if (rc != 0) dataset_free(ds);
  return rc;
}

void dataset_free(dataset_t *ds) {
  free(ds->x);
  free(ds->y);
  memset(ds, 0, sizeof *ds);
}
