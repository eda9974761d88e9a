/* csv.h - one CSV row per (method, epoch); rank 0 writes. */
#ifndef MCGQ_TRAIN_CSV_H_
#define MCGQ_TRAIN_CSV_H_

#include <stdint.h>
#include <stdio.h>

typedef struct {
  const char *model, *data, *method, *spec;
  double k;                 /* mean K over elements (current dynamic K) */
  int epoch;                /* 0 = before training */
  uint64_t steps;           /* steps so far */
  double lr;                /* learning rate of the last step */
  double train_loss;        /* full objective over the training set */
  double test_loss, test_acc, train_acc;
  double bytes_per_step;    /* this epoch, as the method reports (mean) */
  uint64_t bytes_total;     /* reported, summed over all steps so far */
  uint64_t mpi_bytes_total; /* measured at MPI (payload calls), so far */
  uint64_t mpi_control_total; /* measured at MPI (other calls), so far */
  double paper_ratio, wire_ratio; /* this epoch */
  double seconds;           /* training time so far (rank 0) */
} csv_row_t;

FILE *csv_open(const char *path);
void csv_write(FILE *f, const csv_row_t *row);

#endif
