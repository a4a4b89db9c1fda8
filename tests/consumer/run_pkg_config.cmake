# SPDX-License-Identifier: BSL-1.0
# An application built without CMake: installs this build into a prefix,
# then compiles and links the README's usage example and the fake_llm probe
# with nothing but the compiler and `pkg-config --cflags --libs` (label
# consumer). Run by ctest as
#   cmake -DCONCUR_SOURCE_DIR=... -DCONCUR_BINARY_DIR=... -DWORK_DIR=...
#         -DCXX_COMPILER=... [-DSANITIZE=...] -P run_pkg_config.cmake
cmake_minimum_required(VERSION 3.25)
foreach(var CONCUR_SOURCE_DIR CONCUR_BINARY_DIR WORK_DIR CXX_COMPILER)
  if("${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_pkg_config.cmake: -D${var}= is required")
  endif()
endforeach()
find_program(PKG_CONFIG pkg-config)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "concur consumer (pkg-config): pkg-config not found: run cmake/install-deps.sh")
endif()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "concur consumer (pkg-config): ${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "concur consumer (pkg-config): ${what}: ok")
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
run_step("cmake --install into ${prefix}"
         "${CMAKE_COMMAND}" --install "${CONCUR_BINARY_DIR}" --prefix "${prefix}")

# Only the installed .pc files and the system's own (for tbb, fmt, ...).
set(pc_env "PKG_CONFIG_PATH=${prefix}/lib/pkgconfig")
function(pkg_flags package out)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env "${pc_env}" "${PKG_CONFIG}" --cflags --libs
                          ${package}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE flags ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "concur consumer (pkg-config): pkg-config ${package} failed: ${err}")
  endif()
  string(STRIP "${flags}" flags)
  message(STATUS "concur consumer (pkg-config): pkg-config --cflags --libs ${package}: ${flags}")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  set(${out} ${flags} PARENT_SCOPE)
endfunction()
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "${pc_env}" "${PKG_CONFIG}" --modversion concur
                OUTPUT_VARIABLE version OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT version MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
  message(FATAL_ERROR "concur consumer (pkg-config): --modversion concur gave '${version}'")
endif()

# The README's first ```cpp block, as the CMake consumers compile it.
file(READ "${CONCUR_SOURCE_DIR}/README.md" text)
string(FIND "${text}" "```cpp\n" start)
math(EXPR start "${start} + 7")
string(SUBSTRING "${text}" ${start} -1 rest)
string(FIND "${rest}" "\n```" end)
string(SUBSTRING "${rest}" 0 ${end} code)
file(WRITE "${WORK_DIR}/readme_example.cpp" "${code}\n")

set(extra "")
if(SANITIZE)
  set(extra "-fsanitize=${SANITIZE}")
endif()
pkg_flags(concur concur_flags)
run_step("compile and link the README example"
         "${CXX_COMPILER}" -std=c++20 ${extra} "${WORK_DIR}/readme_example.cpp"
         -o "${WORK_DIR}/readme_example" ${concur_flags})
pkg_flags(concur-fake-llm fake_flags)
run_step("compile and link the fake_llm probe"
         "${CXX_COMPILER}" -std=c++20 ${extra} "${CMAKE_CURRENT_LIST_DIR}/fake_llm_probe.cpp"
         -o "${WORK_DIR}/fake_llm_probe" ${fake_flags})

execute_process(COMMAND "${CMAKE_COMMAND}" -E env --unset=CONCUR_CONFIG CONCUR_EXECUTOR=event_loop
                        "${WORK_DIR}/readme_example"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "hello world\n100 results on event_loop\n")
  message(FATAL_ERROR "concur consumer (pkg-config): README example exited ${rc}\n${out}${err}")
endif()
message(STATUS "concur consumer (pkg-config): README example on event_loop: ok")
execute_process(COMMAND "${WORK_DIR}/fake_llm_probe" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err TIMEOUT 30)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^fake_llm http://127\\.0\\.0\\.1:[0-9]+/v1\n$")
  message(FATAL_ERROR "concur consumer (pkg-config): fake_llm_probe exited ${rc}\n${out}${err}")
endif()
message(STATUS "concur consumer (pkg-config): fake_llm probe: ok")
