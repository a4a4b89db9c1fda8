# SPDX-License-Identifier: BSL-1.0
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
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The fake server as a program too (demos/fake_llm), beside its library.
if(TARGET concur-fake-llm)
  install(TARGETS concur-fake-llm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
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

# pkg-config files (cmake/concur.pc.in), relocatable: the prefix is found
# from the .pc file's own place, so `cmake --install --prefix DIR` works.
set(CONCUR_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where concur's pkg-config files are installed, relative to the prefix")
file(RELATIVE_PATH concur_pc_prefix "/prefix/${CONCUR_INSTALL_PKGCONFIGDIR}" "/prefix")
string(REGEX REPLACE "/$" "" concur_pc_prefix "${concur_pc_prefix}")
# A static library's dependencies belong on the consumer's link line; a
# shared one's only to a static link (pkg-config --static).
get_target_property(concur_type concur TYPE)
if(concur_type STREQUAL "STATIC_LIBRARY")
  set(concur_pc_private "")
else()
  set(concur_pc_private ".private")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/concur.pc.in" "${PROJECT_BINARY_DIR}/concur.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/concur.pc" DESTINATION ${CONCUR_INSTALL_PKGCONFIGDIR})
if(TARGET concur_fake_llm)
  configure_file("${PROJECT_SOURCE_DIR}/cmake/concur-fake-llm.pc.in"
                 "${PROJECT_BINARY_DIR}/concur-fake-llm.pc" @ONLY)
  install(FILES "${PROJECT_BINARY_DIR}/concur-fake-llm.pc" DESTINATION ${CONCUR_INSTALL_PKGCONFIGDIR})
endif()

# The license, where Debian-style packages keep it.
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/concur")
