// mpi_gtest_main.cpp - main() of the MPI test executables (tests/comm.cmake):
// GoogleTest on every rank, and one exit status for the job, so that mpirun
// (and ctest) fails when any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS() != 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
