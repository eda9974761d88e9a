/* mpi_count.h - bytes this process hands to MPI, measured independently of
 * what a method (or libmcgq_mpi) says it sends.
 *
 * mpi_count.c defines MPI_Allgather, MPI_Allgatherv and MPI_Allreduce, their
 * non-blocking forms (which libmcgq_mpi uses) and MPI_Ialltoallv as PMPI
 * wrappers (the MPI standard's profiling interface).  The executable
 * exports them (ENABLE_EXPORTS), so they also interpose the calls made
 * inside libmcgq_mpi.so.  A rank "sends" sendcount*typesize bytes per call:
 * its contribution, which every other rank receives.  The counters are the
 * one piece of process-global state in the demo, as PMPI requires. */
#ifndef MCGQ_TRAIN_MPI_COUNT_H_
#define MCGQ_TRAIN_MPI_COUNT_H_

#include <stdint.h>

typedef struct {
  uint64_t allgatherv_bytes; /* variable-size payloads (mcgq's messages, also
                                sent by all-to-all in the sharded modes) */
  uint64_t allgather_bytes;  /* fixed-size gathers (baselines, size tables) */
  uint64_t allreduce_bytes;  /* fp32 SGD, finiteness/metadata agreement */
  uint64_t calls;
} mpi_count_t;

/* Snapshot of the counters of this process. */
mpi_count_t mpi_count_get(void);

/* Counting is off by default; the training loop turns it on around the
 * gradient exchange only, so evaluation's reductions are not counted. */
void mpi_count_enable(int on);

#endif
