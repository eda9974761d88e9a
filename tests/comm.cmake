# Exchange tests (DESIGN.md section 5).  Included from tests/CMakeLists.txt.
if(MCGQ_ENABLE_MPI)
  # mcgq_add_mpi_test(NAME RANKS...): test_NAME.cpp with the shared MPI
  # main (support/mpi_gtest_main.cpp), run under mpiexec once per rank count.
  function(mcgq_add_mpi_test name)
    set(_exe mcgq_test_${name})
    add_executable(${_exe} test_${name}.cpp support/mpi_gtest_main.cpp)
    target_link_libraries(${_exe} PRIVATE mcgq::mcgq_mpi mcgq_build_flags GTest::gtest)
    target_compile_features(${_exe} PRIVATE cxx_std_17)
    # C API only: keep Open MPI / MPICH from pulling in their C++ bindings.
    target_compile_definitions(${_exe} PRIVATE OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
    foreach(_np ${ARGN})
      add_test(NAME ${_exe}_np${_np}
               COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${_np}
                       --allow-run-as-root --oversubscribe $<TARGET_FILE:${_exe}>)
      set_tests_properties(${_exe}_np${_np} PROPERTIES LABELS mpi
                           PROCESSORS ${_np} TIMEOUT 300)
    endforeach()
  endfunction()
  # The all-gather step against a single-process simulation, 4 and 3 ranks.
  mcgq_add_mpi_test(comm_mpi 4 3)
  # Exchange modes (reduce-scatter, two-stage) with 2, 3 and 4 ranks.
  mcgq_add_mpi_test(comm_modes 4 3 2)
  # Layer ids and 16-bit gradients in the all-gather step, 4 and 1 ranks.
  mcgq_add_mpi_test(comm_layers 4 1)
  # Hierarchical exchange: nodes of 2 ranks (4 = 2 x 2, 2 = 1 x 2) and, with
  # 3 ranks, nodes of 1 (the flat exchange).
  mcgq_add_mpi_test(comm_hier 4 3 2)
endif()

if(MCGQ_ENABLE_NCCL)
  mcgq_add_gtest(mcgq_test_comm_nccl LABEL gpu SOURCES test_comm_nccl.cpp
                 LIBS NCCL::nccl CUDA::cudart)
endif()
