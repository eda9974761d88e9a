// mpi_callbacks.hpp - mcgqTransportCallbacks_t over MPI_COMM_WORLD for the
// exchange tests: the callback transport runs the library's one protocol,
// and these callbacks count what went through it (payload bytes this rank
// received from other ranks, max-reductions), so tests can check the
// protocol's traffic.  Header-only; the tests link MPI already.
#ifndef MCGQ_TESTS_SUPPORT_MPI_CALLBACKS_HPP_
#define MCGQ_TESTS_SUPPORT_MPI_CALLBACKS_HPP_

#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "mcgq.h"
#include "mpi_worker.hpp"

namespace mcgq_test {

// What the callbacks saw (cb.user points to one).
struct MpiTraffic {
  uint64_t received = 0;  // payload bytes from other ranks (allgatherv, alltoallv)
  int max_reductions = 0;
};

inline int32_t mpi_status(int rc) { return rc == MPI_SUCCESS ? mcgqSuccess : mcgqMpiError; }

inline int32_t mpi_cb_allgather(void *, const void *send, void *recv, size_t bytes) {
  return mpi_status(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                                  MPI_COMM_WORLD));
}

inline int32_t mpi_cb_allgatherv(void *user, const void *send, size_t send_bytes, void *recv,
                                 const size_t *counts, const size_t *displs) {
  const int P = world_size(), me = world_rank();
  std::vector<int> c(P), d(P);
  for (int r = 0; r < P; ++r) {
    c[r] = (int)counts[r];
    d[r] = (int)displs[r];
    if (r != me) static_cast<MpiTraffic *>(user)->received += counts[r];
  }
  return mpi_status(MPI_Allgatherv(send, (int)send_bytes, MPI_BYTE, recv, c.data(), d.data(),
                                   MPI_BYTE, MPI_COMM_WORLD));
}

inline int32_t mpi_cb_allreduce_max(void *user, int32_t *value) {
  ++static_cast<MpiTraffic *>(user)->max_reductions;
  int32_t in = *value;
  return mpi_status(MPI_Allreduce(&in, value, 1, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD));
}

inline int32_t mpi_cb_alltoallv(void *user, const void *send, const size_t *send_counts,
                                const size_t *send_displs, void *recv,
                                const size_t *recv_counts, const size_t *recv_displs) {
  const int P = world_size(), me = world_rank();
  std::vector<int> sc(P), sd(P), rc(P), rd(P);
  for (int r = 0; r < P; ++r) {
    sc[r] = (int)send_counts[r];
    sd[r] = (int)send_displs[r];
    rc[r] = (int)recv_counts[r];
    rd[r] = (int)recv_displs[r];
    if (r != me) static_cast<MpiTraffic *>(user)->received += recv_counts[r];
  }
  return mpi_status(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(),
                                  rd.data(), MPI_BYTE, MPI_COMM_WORLD));
}

// The callbacks on `traffic`; with_alltoallv = 0 leaves the sharded modes
// out (the library then refuses them).
inline mcgqTransportCallbacks_t mpi_callbacks(MpiTraffic *traffic, int with_alltoallv = 1) {
  mcgqTransportCallbacks_t cb;
  std::memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.user = traffic;
  cb.allgather = mpi_cb_allgather;
  cb.allgatherv = mpi_cb_allgatherv;
  cb.allreduce_max_int = mpi_cb_allreduce_max;
  if (with_alltoallv) cb.alltoallv = mpi_cb_alltoallv;
  return cb;
}

}  // namespace mcgq_test

#endif  // MCGQ_TESTS_SUPPORT_MPI_CALLBACKS_HPP_
