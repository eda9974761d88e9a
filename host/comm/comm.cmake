# Exchange (DESIGN.md section 5): the communicator in libmcgq, the NCCL
# transport inside libmcgq when NCCL was found, the MPI transport in its own
# libmcgq_mpi so users of the NCCL path never need MPI.  Included from
# host/CMakeLists.txt after target mcgq exists.
target_sources(mcgq PRIVATE ${CMAKE_CURRENT_LIST_DIR}/comm.c
                            ${CMAKE_CURRENT_LIST_DIR}/comm_shard.c
                            ${CMAKE_CURRENT_LIST_DIR}/comm_node.c
                            ${CMAKE_CURRENT_LIST_DIR}/codec_host.c
                            ${CMAKE_CURRENT_LIST_DIR}/codec_device.c
                            ${CMAKE_CURRENT_LIST_DIR}/transport_callbacks.c)

if(MCGQ_ENABLE_NCCL)
  target_sources(mcgq PRIVATE ${CMAKE_CURRENT_LIST_DIR}/comm_nccl.c)
  target_link_libraries(mcgq PRIVATE NCCL::nccl)
  install(FILES ${PROJECT_SOURCE_DIR}/include/mcgq_nccl.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()

if(MCGQ_ENABLE_MPI)
  add_library(mcgq_mpi ${_mcgq_type} ${CMAKE_CURRENT_LIST_DIR}/comm_mpi.c)
  add_library(mcgq::mcgq_mpi ALIAS mcgq_mpi)
  target_include_directories(mcgq_mpi PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${PROJECT_SOURCE_DIR}/host)
  target_compile_features(mcgq_mpi PRIVATE c_std_11)
  target_compile_definitions(mcgq_mpi PRIVATE MCGQ_BUILDING_LIBRARY)
  target_link_libraries(mcgq_mpi PUBLIC mcgq MPI::MPI_C
                        PRIVATE $<BUILD_INTERFACE:mcgq_build_flags>)
  set_target_properties(mcgq_mpi PROPERTIES
    C_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON
    VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  install(TARGETS mcgq_mpi EXPORT mcgqTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES ${PROJECT_SOURCE_DIR}/include/mcgq_mpi.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()
