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

/* Creates a hierarchical communicator (mcgq.h, "hierarchical exchange"):
 * `node` joins the ranks of one node (e.g. MPI_Comm_split_type with
 * MPI_COMM_TYPE_SHARED), `cross` joins local rank l of every node (e.g.
 * MPI_Comm_split of the job with color = rank in `node`, key = node index).
 * Every node must have the same number of ranks; local rank l of every node
 * must be in the same cross communicator, at the same place on each node
 * (its rank there is the node's index).  Both are borrowed and must outlive
 * *comm.  A layout that breaks these rules fails the first step with
 * mcgqInvalidUsage on every rank.  mcgqCommGetRank reports the rank
 * node index * node size + local rank of node count * node size.
 * Status only on failure here (as mcgqCommInitMpi): mcgqInvalidArgument
 * (NULL or MPI_COMM_NULL), mcgqInvalidUsage (MPI not running), mcgqMpiError,
 * mcgqOutOfMemory. */
MCGQ_API mcgqResult_t mcgqCommInitMpiHierarchical(mcgqComm_t *comm,
                                                  MPI_Comm node, MPI_Comm cross);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCGQ_MPI_H_ */
