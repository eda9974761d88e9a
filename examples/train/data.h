/* data.h - the demo's data sets (format written by scripts/export_data.py). */
#ifndef MCGQ_TRAIN_DATA_H_
#define MCGQ_TRAIN_DATA_H_

#include <stdint.h>

typedef struct {
  uint64_t rows;        /* rows held by this process */
  uint64_t cols;
  uint32_t classes;
  uint64_t total_rows;  /* rows of the whole file (N_T for the training set) */
  float *x;             /* rows x cols, row-major */
  int32_t *y;           /* labels 0..classes-1 */
} dataset_t;

/* Reads rows [rank*R/P, (rank+1)*R/P) of the file (P = nranks); nranks = 1
 * reads everything.  Returns 0 or -1 with a message in err. */
int dataset_load_shard(const char *path, int rank, int nranks, dataset_t *ds,
                       char *err, int err_len);

void dataset_free(dataset_t *ds);

#endif
