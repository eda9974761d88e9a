/*
 * mcgq_mpi.h - the MPI exchange (libmcgq_mpi, CMake target mcgq::mcgq_mpi).
 *
 * A communicator over the caller's MPI communicator runs the step of
 * mcgqCommStep with the CPU reference on host memory: grad, accum and kstate
 * of every registered layer are host pointers, and the stream argument of
 * mcgqCommStep is ignored.  The library neither duplicates nor frees the MPI
 * communicator; it switches the communicator's error handler to
 * MPI_ERRORS_RETURN for the duration of each of its own MPI calls (and
 * restores the caller's), so MPI failures become mcgqMpiError with MPI's
 * error string in mcgqCommGetLastError, never an abort.
 */
#ifndef MCGQ_MPI_H_
#define MCGQ_MPI_H_

#include <mpi.h>

#include "mcgq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates *comm over `mpi` (MPI must be initialized; mpi is borrowed and must
 * outlive *comm).  Collective only in the sense that every rank must create
 * one before the first mcgqCommStep. */
MCGQ_API mcgqResult_t mcgqCommInitMpi(mcgqComm_t *comm, MPI_Comm mpi);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCGQ_MPI_H_ */
