/*
 * transport_callbacks.c - a transport whose collectives the caller supplies
 * (mcgqCommInitCallbacks): how a framework's own process group, e.g.
 * torch.distributed driven from Python, runs the library's one protocol.
 * The callbacks move bytes; every protocol decision stays in comm.c.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "internal.h"

/* The ops table is the transport's own: which optional collectives it has
 * depends on the callbacks the caller gave. */
typedef struct {
  mcgqTransportCallbacks_t cb;
  mcgq_transport_ops_t ops;
} callback_transport_t;

/* The callback's status as the step's: an unknown value is the caller's bug
 * and becomes mcgqInternalError, with the value in the detail. */
static mcgqResult_t callback_result(int32_t rc, const char *what,
                                    const mcgq_call_t *call) {
  if (rc == mcgqSuccess) return mcgqSuccess;
  if (rc == mcgqTimeout) return mcgq_call_timeout(call, what);
  mcgqResult_t status = rc > 0 && rc < mcgqNumResults ? (mcgqResult_t)rc
                                                       : mcgqInternalError;
  snprintf(call->detail, call->detail_size,
           "mcgqCommStep: the %s callback failed with status %d (%s)", what,
           (int)rc, mcgqGetErrorString(status));
  return status;
}

static mcgqResult_t cb_allgather(void *ctx, const void *send, void *recv,
                                 size_t bytes, const mcgq_call_t *call) {
  callback_transport_t *t = ctx;
  return callback_result(t->cb.allgather(t->cb.user, send, recv, bytes),
                         "allgather", call);
}

static mcgqResult_t cb_allgatherv(void *ctx, const void *send, size_t send_bytes,
                                  void *recv, const size_t *counts,
                                  const size_t *displs, const mcgq_call_t *call) {
  callback_transport_t *t = ctx;
  return callback_result(
      t->cb.allgatherv(t->cb.user, send, send_bytes, recv, counts, displs),
      "allgatherv", call);
}

static mcgqResult_t cb_allreduce_max(void *ctx, int32_t *value,
                                     const mcgq_call_t *call) {
  callback_transport_t *t = ctx;
  return callback_result(t->cb.allreduce_max_int(t->cb.user, value),
                         "allreduce_max_int", call);
}

static mcgqResult_t cb_alltoallv(void *ctx, const void *send,
                                 const size_t *send_counts, const size_t *send_displs,
                                 void *recv, const size_t *recv_counts,
                                 const size_t *recv_displs, const mcgq_call_t *call) {
  callback_transport_t *t = ctx;
  return callback_result(t->cb.alltoallv(t->cb.user, send, send_counts, send_displs,
                                         recv, recv_counts, recv_displs),
                         "alltoallv", call);
}

static void cb_destroy(void *ctx) { free(ctx); }

static mcgqResult_t cb_allgather_device(void *ctx, const void *send, void *recv,
                                        size_t bytes, const mcgq_call_t *call) {
  callback_transport_t *t = ctx;
  return callback_result(t->cb.allgather_device(t->cb.user, send, recv, bytes),
                         "allgather_device", call);
}

/* The structs before alltoallv and before allgather_device were added:
 * still accepted (the fields past struct_size stay NULL). */
static const size_t kCallbacksV1Size = offsetof(mcgqTransportCallbacks_t, alltoallv);

mcgqResult_t mcgqCommInitCallbacks(mcgqComm_t *comm, int rank, int nranks,
                                   const mcgqTransportCallbacks_t *cb) {
  static const char fn[] = "mcgqCommInitCallbacks";
  if (!comm || !cb)
    return mcgq_fail(mcgqInvalidArgument, "%s: comm or cb is NULL", fn);
  if (cb->struct_size < kCallbacksV1Size)
    return mcgq_fail(mcgqUnsupportedVersion,
                     "%s: cb->struct_size = %u is below %u, the smallest "
                     "mcgqTransportCallbacks_t (sizeof is %u)",
                     fn, (unsigned)cb->struct_size, (unsigned)kCallbacksV1Size,
                     (unsigned)sizeof *cb);
  if (!cb->allgather || !cb->allgatherv || !cb->allreduce_max_int)
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: allgather, allgatherv and allreduce_max_int must all "
                     "be given", fn);
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return mcgq_fail(mcgqInvalidArgument, "%s: rank %d of %d", fn, rank, nranks);
  if (cb->payload_on_device != 0 && cb->payload_on_device != 1)
    return mcgq_fail(mcgqInvalidArgument, "%s: payload_on_device = %d is not 0 or 1",
                     fn, (int)cb->payload_on_device);
  callback_transport_t *t = calloc(1, sizeof *t);
  if (!t) return mcgq_fail(mcgqOutOfMemory, "%s: no host memory", fn);
  /* Only the fields the caller's struct_size covers are read. */
  memcpy(&t->cb, cb, cb->struct_size < sizeof *cb ? cb->struct_size : sizeof *cb);
  t->cb.struct_size = (uint32_t)sizeof *cb;
  const int on_device = cb->payload_on_device != 0;
  if (!on_device && t->cb.allgather_device) {
    free(t);
    return mcgq_fail(mcgqInvalidArgument,
                     "%s: allgather_device is for payload_on_device = 1 only", fn);
  }
  mcgq_transport_ops_t *ops = &t->ops;
  ops->name = "callback";
  ops->payload_on_device = on_device;
  ops->allgather = cb_allgather;
  ops->allgatherv = cb_allgatherv;
  ops->allreduce_max_int = cb_allreduce_max;
  ops->destroy = cb_destroy;
  ops->alltoallv = t->cb.alltoallv ? cb_alltoallv : NULL; /* sharded modes */
  ops->allgather_device = t->cb.allgather_device ? cb_allgather_device : NULL;
  return mcgq_comm_create(ops, t, rank, nranks, comm);
}
