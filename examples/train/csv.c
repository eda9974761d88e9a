/* csv.c - the demo's CSV output (scripts/plot_train.py reads it). */
#include "csv.h"

FILE *csv_open(const char *path) {
  FILE *f = fopen(path, "w");
  if (f)
    fprintf(f,
            "model,data,method,spec,k,epoch,steps,lr,train_loss,train_acc,test_loss,"
            "test_acc,bytes_per_step,bytes_total,mpi_bytes_total,mpi_control_total,"
            "paper_ratio,wire_ratio,seconds\n");
  return f;
}

void csv_write(FILE *f, const csv_row_t *r) {
  fprintf(f, "%s,%s,%s,%s,%.6g,%d,%llu,%.6g,%.9g,%.6f,%.9g,%.6f,%.2f,%llu,%llu,%llu,%.6g,%.6g,%.3f\n",
          r->model, r->data, r->method, r->spec, r->k, r->epoch,
          (unsigned long long)r->steps, r->lr, r->train_loss, r->train_acc,
          r->test_loss, r->test_acc, r->bytes_per_step,
          (unsigned long long)r->bytes_total, (unsigned long long)r->mpi_bytes_total,
          (unsigned long long)r->mpi_control_total, r->paper_ratio, r->wire_ratio,
          r->seconds);
  fflush(f);
}
