# Exchange tests (DESIGN.md section 5).  Included from tests/CMakeLists.txt.
if(MCGQ_ENABLE_MPI)
  # Own main (MPI_Init/Finalize), run under mpiexec with 4 and with 3 ranks.
  add_executable(mcgq_test_comm_mpi test_comm_mpi.cpp)
  target_link_libraries(mcgq_test_comm_mpi PRIVATE mcgq::mcgq_mpi mcgq_build_flags GTest::gtest)
  target_compile_features(mcgq_test_comm_mpi PRIVATE cxx_std_17)
  # C API only: keep Open MPI / MPICH from pulling in their C++ bindings.
  target_compile_definitions(mcgq_test_comm_mpi PRIVATE OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  foreach(_np 4 3)
    add_test(NAME mcgq_test_comm_mpi_np${_np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${_np}
                     --allow-run-as-root --oversubscribe
                     $<TARGET_FILE:mcgq_test_comm_mpi>)
    set_tests_properties(mcgq_test_comm_mpi_np${_np} PROPERTIES LABELS mpi
                         PROCESSORS ${_np} TIMEOUT 300)
  endforeach()
  # Exchange modes (reduce-scatter, two-stage) with 2, 3 and 4 ranks.
  add_executable(mcgq_test_comm_modes test_comm_modes.cpp)
  target_link_libraries(mcgq_test_comm_modes PRIVATE mcgq::mcgq_mpi mcgq_build_flags GTest::gtest)
  target_compile_features(mcgq_test_comm_modes PRIVATE cxx_std_17)
  target_compile_definitions(mcgq_test_comm_modes PRIVATE OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  foreach(_np 4 3 2)
    add_test(NAME mcgq_test_comm_modes_np${_np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${_np}
                     --allow-run-as-root --oversubscribe
                     $<TARGET_FILE:mcgq_test_comm_modes>)
    set_tests_properties(mcgq_test_comm_modes_np${_np} PROPERTIES LABELS mpi
                         PROCESSORS ${_np} TIMEOUT 300)
  endforeach()
  # Hierarchical exchange: nodes of 2 ranks (4 = 2 x 2, 2 = 1 x 2) and, with
  # 3 ranks, nodes of 1 (the flat exchange).
  add_executable(mcgq_test_comm_hier test_comm_hier.cpp)
  target_link_libraries(mcgq_test_comm_hier PRIVATE mcgq::mcgq_mpi mcgq_build_flags GTest::gtest)
  target_compile_features(mcgq_test_comm_hier PRIVATE cxx_std_17)
  target_compile_definitions(mcgq_test_comm_hier PRIVATE OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  foreach(_np 4 3 2)
    add_test(NAME mcgq_test_comm_hier_np${_np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${_np}
                     --allow-run-as-root --oversubscribe
                     $<TARGET_FILE:mcgq_test_comm_hier>)
    set_tests_properties(mcgq_test_comm_hier_np${_np} PROPERTIES LABELS mpi
                         PROCESSORS ${_np} TIMEOUT 300)
  endforeach()
endif()

if(MCGQ_ENABLE_NCCL)
  mcgq_add_gtest(mcgq_test_comm_nccl LABEL gpu SOURCES test_comm_nccl.cpp
                 LIBS NCCL::nccl CUDA::cudart)
endif()
