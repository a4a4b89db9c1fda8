# Install rules and the CMake package, so an application can do
#   find_package(concur CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE concur::concur)
# Included from the top-level CMakeLists.txt after every library target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CONCUR_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/concur"
    CACHE STRING "Where concur's CMake package files are installed, relative to the prefix")

# The libraries a consumer links. The loopback fake LLM server library is
# optional: it is installed when its target exists in this build.
set(concur_install_targets concur)
if(TARGET concur_fake_llm)
  set_target_properties(concur_fake_llm PROPERTIES EXPORT_NAME fake_llm)
  list(APPEND concur_install_targets concur_fake_llm)
endif()

install(TARGETS ${concur_install_targets}
  EXPORT concurTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# Every public header, detail/ included: the public templates use it.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/concur"
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT concurTargets
  NAMESPACE concur::
  DESTINATION ${CONCUR_INSTALL_CMAKEDIR})
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/concurConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/concurConfig.cmake"
  INSTALL_DESTINATION ${CONCUR_INSTALL_CMAKEDIR})
# 0.x releases make no compatibility promise across minor versions.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/concurConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/concurConfig.cmake"
  "${PROJECT_BINARY_DIR}/concurConfigVersion.cmake"
  DESTINATION ${CONCUR_INSTALL_CMAKEDIR})
