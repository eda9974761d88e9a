# Python wheel (scikit-build-core sets SKBUILD): install libmcgq as
# mcgq/libmcgq.so, next to the package's __init__.py, in the `python`
# component (pyproject.toml installs only that component).  One file, no
# SONAME symlinks (a wheel would store them as copies); ctypes loads it by
# path, so the SONAME does not matter.
if(SKBUILD)
  if(NOT MCGQ_BUILD_SHARED)
    message(FATAL_ERROR "mcgq: the Python package needs MCGQ_BUILD_SHARED=ON")
  endif()
  install(FILES $<TARGET_FILE:mcgq>
          DESTINATION mcgq
          RENAME ${CMAKE_SHARED_LIBRARY_PREFIX}mcgq${CMAKE_SHARED_LIBRARY_SUFFIX}
          PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                      GROUP_EXECUTE WORLD_READ WORLD_EXECUTE
          COMPONENT python)
endif()
