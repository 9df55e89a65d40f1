# Install rules (ENVIT_INSTALL): headers; the CMake package (envit::envit, and envit::dispatch when
# built) with find_dependency for every dependency; a pkg-config file for the header-only library;
# the `envit` program when examples are built.
include(CMakePackageConfigHelpers)
install(DIRECTORY include/envit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(envit_export_targets envit)
if(TARGET envit_dispatch)
  list(APPEND envit_export_targets envit_dispatch)
endif()
install(TARGETS ${envit_export_targets} EXPORT envitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT envitTargets NAMESPACE envit:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/envit)
configure_package_config_file(cmake/envitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/envitConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/envit)
# Not ARCH_INDEPENDENT when envit::dispatch (a compiled library) is part of the package.
if(TARGET envit_dispatch)
  write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/envitConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
else()
  write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/envitConfigVersion.cmake
    COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
endif()
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/envitConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/envitConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/envit)

# pkg-config: the header-only library (compile-time kernel set). Eigen, xsimd, xtl and zlib come
# from their own .pc files; OpenMP is a compiler flag (GCC/Clang spelling).
set(ENVIT_PC_REQUIRES "eigen3 >= 3.4, xsimd, xtl")
if(ENVIT_WITH_ZLIB)
  string(APPEND ENVIT_PC_REQUIRES ", zlib")
endif()
configure_file(cmake/envit.pc.in ${CMAKE_CURRENT_BINARY_DIR}/envit.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/envit.pc DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)

if(TARGET envit_cli)
  install(TARGETS envit_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
