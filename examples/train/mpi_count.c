/* mpi_count.c - PMPI wrappers that count the bytes each call contributes. */
#include "mpi_count.h"

#include <mpi.h>

static mpi_count_t g_count;
static int g_enabled;

mpi_count_t mpi_count_get(void) { return g_count; }
void mpi_count_enable(int on) { g_enabled = on; }

static uint64_t type_bytes(MPI_Datatype type, int count) {
  int size = 0;
  PMPI_Type_size(type, &size);
  return (uint64_t)size * (uint64_t)(count > 0 ? count : 0);
}

/* What one call contributes, counted once for the blocking and the
 * non-blocking form of each collective. */
static void count_allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                            int recvcount, MPI_Datatype recvtype) {
  if (!g_enabled) return;
  /* in place: this rank's block of recvbuf is its contribution */
  g_count.allgather_bytes += sendbuf == MPI_IN_PLACE ? type_bytes(recvtype, recvcount)
                                                     : type_bytes(sendtype, sendcount);
  g_count.calls++;
}

static void count_allgatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                             const int recvcounts[], MPI_Datatype recvtype, MPI_Comm comm) {
  if (!g_enabled) return;
  int rank = 0;
  PMPI_Comm_rank(comm, &rank);
  g_count.allgatherv_bytes += sendbuf == MPI_IN_PLACE ? type_bytes(recvtype, recvcounts[rank])
                                                      : type_bytes(sendtype, sendcount);
  g_count.calls++;
}

static void count_allreduce(int count, MPI_Datatype datatype) {
  if (!g_enabled) return;
  g_count.allreduce_bytes += type_bytes(datatype, count);
  g_count.calls++;
}

int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                  void *recvbuf, int recvcount, MPI_Datatype recvtype,
                  MPI_Comm comm) {
  count_allgather(sendbuf, sendcount, sendtype, recvcount, recvtype);
  return PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount,
                        recvtype, comm);
}

int MPI_Allgatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                   void *recvbuf, const int recvcounts[], const int displs[],
                   MPI_Datatype recvtype, MPI_Comm comm) {
  count_allgatherv(sendbuf, sendcount, sendtype, recvcounts, recvtype, comm);
  return PMPI_Allgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts,
                         displs, recvtype, comm);
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count,
                  MPI_Datatype datatype, MPI_Op op, MPI_Comm comm) {
  count_allreduce(count, datatype);
  return PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
}

/* The non-blocking forms, which libmcgq_mpi uses (it polls them against the
 * communicator's timeout): a rank contributes the same bytes as with the
 * blocking calls, counted when the call is made. */
int MPI_Iallgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                   void *recvbuf, int recvcount, MPI_Datatype recvtype, MPI_Comm comm,
                   MPI_Request *request) {
  count_allgather(sendbuf, sendcount, sendtype, recvcount, recvtype);
  return PMPI_Iallgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm,
                         request);
}

int MPI_Iallgatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                    void *recvbuf, const int recvcounts[], const int displs[],
                    MPI_Datatype recvtype, MPI_Comm comm, MPI_Request *request) {
  count_allgatherv(sendbuf, sendcount, sendtype, recvcounts, recvtype, comm);
  return PMPI_Iallgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs,
                          recvtype, comm, request);
}

int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype,
                   MPI_Op op, MPI_Comm comm, MPI_Request *request) {
  count_allreduce(count, datatype);
  return PMPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request);
}

/* The sharded exchange modes' all-to-all: what this rank sends to the
 * others (its own block stays local), counted with the payloads. */
int MPI_Ialltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[],
                   MPI_Datatype sendtype, void *recvbuf, const int recvcounts[],
                   const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm,
                   MPI_Request *request) {
  if (g_enabled) {
    int rank = 0, size = 0;
    PMPI_Comm_rank(comm, &rank);
    PMPI_Comm_size(comm, &size);
    for (int r = 0; r < size; ++r)
      if (r != rank) g_count.allgatherv_bytes += type_bytes(sendtype, sendcounts[r]);
    g_count.calls++;
  }
  return PMPI_Ialltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts,
                         rdispls, recvtype, comm, request);
}
