/*
 * comm_mpi.c - the MPI transport of the communicator (libmcgq_mpi).
 *
 * Four collectives on the caller's communicator, non-blocking and polled
 * against the step's deadline when the communicator has a timeout.  MPI's default error
 * handler aborts the job, and the library must never abort, so every call
 * runs with MPI_ERRORS_RETURN and puts the caller's handler back afterwards
 * (the caller's communicator is borrowed, its settings are not ours).
 */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "comm_internal.h"
#include "internal.h"
#include "mcgq_mpi.h"

typedef struct {
  MPI_Comm mpi;
  int nranks;
  int *counts, *displs; /* int arrays for MPI_Iallgatherv, nranks each */
  int *send_counts, *send_displs; /* MPI_Ialltoallv's send side, nranks each */
  int32_t reduce_in, reduce_out; /* outlive a timed-out MPI_Iallreduce */
  int aborted;
} mpi_transport_t;

typedef struct {
  MPI_Comm mpi;
  MPI_Errhandler saved;
  int ok;
} errhandler_guard_t;

static void guard_enter(errhandler_guard_t *g, MPI_Comm mpi) {
  g->mpi = mpi;
  g->ok = MPI_Comm_get_errhandler(mpi, &g->saved) == MPI_SUCCESS &&
          MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN) == MPI_SUCCESS;
}

static void guard_leave(errhandler_guard_t *g) {
  if (!g->ok) return;
  MPI_Comm_set_errhandler(g->mpi, g->saved);
  MPI_Errhandler_free(&g->saved);
}

static mcgqResult_t mpi_error(int code, const char *what,
                              const mcgq_call_t *call) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
    snprintf(text, sizeof text, "MPI error %d", code);
  snprintf(call->detail, call->detail_size, "mcgqCommStep: %s failed: %s", what,
           text);
  return mcgqMpiError;
}

/* Completes a started collective: MPI_Wait without a deadline, else MPI_Test
 * polled against it.  A collective cannot be cancelled, so on timeout the
 * request stays posted (its buffers stay allocated: comm.c keeps them) and
 * the transport refuses every later call. */
static mcgqResult_t finish(mpi_transport_t *t, int rc, MPI_Request *req,
                           const char *what, const mcgq_call_t *call) {
  if (rc != MPI_SUCCESS) return mpi_error(rc, what, call);
  if (call->deadline <= 0.0) {
    rc = MPI_Wait(req, MPI_STATUS_IGNORE);
    return rc == MPI_SUCCESS ? mcgqSuccess : mpi_error(rc, what, call);
  }
  for (;;) {
    int done = 0;
    rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_error(rc, what, call);
    if (done) return mcgqSuccess;
    if (mcgq_call_expired(call)) {
      t->aborted = 1;
      return mcgq_call_timeout(call, what);
    }
    sched_yield(); /* a peer on the same core needs the CPU to catch up */
  }
}

static mcgqResult_t refuse_if_aborted(const mpi_transport_t *t,
                                      const mcgq_call_t *call) {
  if (!t->aborted) return mcgqSuccess;
  snprintf(call->detail, call->detail_size,
           "mcgqCommStep: the MPI transport was aborted by a timeout");
  return mcgqInvalidUsage;
}

static mcgqResult_t mpi_allgather(void *ctx, const void *send, void *recv,
                                  size_t bytes, const mcgq_call_t *call) {
  mpi_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  if (bytes > INT_MAX) {
    snprintf(call->detail, call->detail_size,
             "mcgqCommStep: %zu bytes exceed MPI's int count", bytes);
    return mcgqInvalidArgument;
  }
  errhandler_guard_t g;
  guard_enter(&g, t->mpi);
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                          t->mpi, &req);
  mcgqResult_t res = finish(t, rc, &req, "MPI_Iallgather", call);
  guard_leave(&g);
  return res;
}

static mcgqResult_t mpi_allgatherv(void *ctx, const void *send,
                                   size_t send_bytes, void *recv,
                                   const size_t *counts, const size_t *displs,
                                   const mcgq_call_t *call) {
  mpi_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  /* counts and displs are equal on every rank, so every rank takes this
   * branch alike and none is left waiting. */
  for (int r = 0; r < t->nranks; ++r) {
    if (counts[r] > INT_MAX || displs[r] > INT_MAX) {
      snprintf(call->detail, call->detail_size,
               "mcgqCommStep: the messages (%zu bytes from rank %d at offset "
               "%zu) exceed MPI's int counts; register fewer elements per "
               "communicator",
               counts[r], r, displs[r]);
      return mcgqCapacityExceeded;
    }
    t->counts[r] = (int)counts[r];
    t->displs[r] = (int)displs[r];
  }
  errhandler_guard_t g;
  guard_enter(&g, t->mpi);
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_Iallgatherv(send, (int)send_bytes, MPI_BYTE, recv, t->counts,
                           t->displs, MPI_BYTE, t->mpi, &req);
  mcgqResult_t res = finish(t, rc, &req, "MPI_Iallgatherv", call);
  guard_leave(&g);
  return res;
}

static mcgqResult_t mpi_allreduce_max(void *ctx, int32_t *value,
                                      const mcgq_call_t *call) {
  mpi_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  t->reduce_in = *value;
  errhandler_guard_t g;
  guard_enter(&g, t->mpi);
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_Iallreduce(&t->reduce_in, &t->reduce_out, 1, MPI_INT32_T, MPI_MAX,
                          t->mpi, &req);
  mcgqResult_t res = finish(t, rc, &req, "MPI_Iallreduce", call);
  guard_leave(&g);
  if (res == mcgqSuccess) *value = t->reduce_out;
  return res;
}

/* MPI counts are int: a size_t count or offset beyond INT_MAX is refused
 * (on this rank alone here, which is why the sharded step agrees on the
 * outcome of the exchange before it writes anything). */
static int to_int_counts(const size_t *counts, const size_t *displs, int n,
                         int *icounts, int *idispls) {
  for (int r = 0; r < n; ++r) {
    if (counts[r] > INT_MAX || displs[r] > INT_MAX) return 0;
    icounts[r] = (int)counts[r];
    idispls[r] = (int)displs[r];
  }
  return 1;
}

static mcgqResult_t mpi_alltoallv(void *ctx, const void *send,
                                  const size_t *send_counts,
                                  const size_t *send_displs, void *recv,
                                  const size_t *recv_counts,
                                  const size_t *recv_displs,
                                  const mcgq_call_t *call) {
  mpi_transport_t *t = ctx;
  MCGQ_CHECK(refuse_if_aborted(t, call));
  /* comm_shard.c refuses, alike on every rank, a step whose messages to or
   * from any rank exceed INT_MAX bytes in all, so no rank fails here while
   * its peers wait in the collective. */
  if (!to_int_counts(send_counts, send_displs, t->nranks, t->send_counts,
                     t->send_displs) ||
      !to_int_counts(recv_counts, recv_displs, t->nranks, t->counts, t->displs)) {
    snprintf(call->detail, call->detail_size,
             "mcgqCommStep: the shard messages exceed MPI's int counts; "
             "register fewer elements per communicator");
    return mcgqCapacityExceeded;
  }
  errhandler_guard_t g;
  guard_enter(&g, t->mpi);
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_Ialltoallv(send, t->send_counts, t->send_displs, MPI_BYTE, recv,
                          t->counts, t->displs, MPI_BYTE, t->mpi, &req);
  mcgqResult_t res = finish(t, rc, &req, "MPI_Ialltoallv", call);
  guard_leave(&g);
  return res;
}

static void mpi_destroy(void *ctx) {
  mpi_transport_t *t = ctx;
  if (!t || t->aborted) return; /* a posted collective may still use it */
  free(t->counts);
  free(t->displs);
  free(t->send_counts);
  free(t->send_displs);
  free(t);
}

static const mcgq_transport_ops_t kMpiOps = {
    "MPI", 0, mpi_allgather, mpi_allgatherv, mpi_allreduce_max, mpi_destroy,
    mpi_alltoallv, NULL /* host memory only */};

/* One transport over `mpi` (rank and size read under MPI_ERRORS_RETURN). */
static mcgqResult_t mpi_transport_new(MPI_Comm mpi, mpi_transport_t **out,
                                      int *rank) {
  *out = NULL;
  if (mpi == MPI_COMM_NULL) return mcgqInvalidArgument;
  int nranks = 0;
  errhandler_guard_t g;
  guard_enter(&g, mpi);
  int rc = MPI_Comm_rank(mpi, rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(mpi, &nranks);
  guard_leave(&g);
  if (rc != MPI_SUCCESS) return mcgqMpiError;
  mpi_transport_t *t = calloc(1, sizeof *t);
  if (t) {
    t->mpi = mpi;
    t->nranks = nranks;
    t->counts = calloc((size_t)nranks, sizeof(int));
    t->displs = calloc((size_t)nranks, sizeof(int));
    t->send_counts = calloc((size_t)nranks, sizeof(int));
    t->send_displs = calloc((size_t)nranks, sizeof(int));
  }
  if (!t || !t->counts || !t->displs || !t->send_counts || !t->send_displs) {
    mpi_destroy(t);
    return mcgqOutOfMemory;
  }
  *out = t;
  return mcgqSuccess;
}

static mcgqResult_t check_mpi_running(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized ? mcgqSuccess : mcgqInvalidUsage;
}

/* Thread-local detail of libmcgq is not reachable from here (only its API is
 * exported), so a failed init returns its status and leaves the detail in
 * the status alone.  The cases are few and named in mcgq_mpi.h. */
mcgqResult_t mcgqCommInitMpi(mcgqComm_t *comm, MPI_Comm mpi) {
  if (!comm || mpi == MPI_COMM_NULL) return mcgqInvalidArgument;
  MCGQ_CHECK(check_mpi_running());
  mpi_transport_t *t = NULL;
  int rank = 0;
  MCGQ_CHECK(mpi_transport_new(mpi, &t, &rank));
  return mcgq_comm_create(&kMpiOps, t, rank, t->nranks, comm);
}

mcgqResult_t mcgqCommInitMpiHierarchical(mcgqComm_t *comm, MPI_Comm node,
                                         MPI_Comm cross) {
  if (!comm || node == MPI_COMM_NULL || cross == MPI_COMM_NULL)
    return mcgqInvalidArgument;
  MCGQ_CHECK(check_mpi_running());
  mpi_transport_t *n = NULL, *c = NULL;
  int local_rank = 0, node_index = 0;
  MCGQ_CHECK(mpi_transport_new(node, &n, &local_rank));
  mcgqResult_t res = mpi_transport_new(cross, &c, &node_index);
  if (res != mcgqSuccess) {
    mpi_destroy(n);
    return res;
  }
  return mcgq_comm_create_hierarchical(&kMpiOps, c, node_index, c->nranks, &kMpiOps,
                                       n, local_rank, n->nranks, comm);
}
