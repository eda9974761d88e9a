/* errors.c - status strings and the thread-local last-error detail. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

#define MCGQ_DETAIL_BYTES 512

/* The only global state of the library (documented in mcgq.h). */
static _Thread_local char tls_detail[MCGQ_DETAIL_BYTES];

const char *mcgqGetErrorString(mcgqResult_t result) {
  switch (result) {
    case mcgqSuccess: return "success";
    case mcgqInvalidArgument: return "invalid argument";
    case mcgqInvalidUsage: return "invalid usage";
    case mcgqUnsupportedVersion: return "unsupported version";
    case mcgqCorruptStream: return "corrupt stream";
    case mcgqNonFinite: return "non-finite input";
    case mcgqCapacityExceeded: return "capacity exceeded";
    case mcgqRangeError: return "range error";
    case mcgqCudaError: return "CUDA error";
    case mcgqNcclError: return "NCCL error";
    case mcgqMpiError: return "MPI error";
    case mcgqOutOfMemory: return "out of memory";
    case mcgqInternalError: return "internal error";
    case mcgqTimeout: return "timeout";
    case mcgqNumResults: break;
  }
  return "unknown status";
}

const char *mcgqGetLastErrorDetail(void) { return tls_detail; }

void mcgq_clear_error(void) { tls_detail[0] = '\0'; }

void mcgq_format_detail(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, size, fmt, ap);
  va_end(ap);
}

mcgqResult_t mcgq_fail(mcgqResult_t status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tls_detail, sizeof tls_detail, fmt, ap);
  va_end(ap);
  return status;
}
