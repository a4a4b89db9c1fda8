# SPDX-License-Identifier: BSL-1.0
# Builds one consumer project and runs the README example under every
# executor the library offers. Run by ctest as
#   cmake -DMODE=find_package|add_subdirectory -D... -P run_consumer.cmake
# Inputs: MODE, PROJECT_DIR (the consumer's source), WORK_DIR (its build),
# CONCUR_SOURCE_DIR, CONCUR_BINARY_DIR (find_package: the tree to install),
# GENERATOR, CXX_COMPILER, BUILD_TYPE, SANITIZE, EXAMPLE_CONFIG (a concur.toml
# that the find_package consumer also runs with, through CONCUR_CONFIG).
cmake_minimum_required(VERSION 3.25)

foreach(var MODE PROJECT_DIR WORK_DIR CONCUR_SOURCE_DIR GENERATOR CXX_COMPILER)
  if("${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}= is required")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "concur consumer (${MODE}): ${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "concur consumer (${MODE}): ${what}: ok")
endfunction()

set(configure_args -S "${PROJECT_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(SANITIZE)
  # concur's own sanitizer flags stay inside its build; the consumer's objects
  # and link need them too to link an instrumented library.
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE}"
       "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()

if(MODE STREQUAL "find_package")
  # A fresh prefix each time, so a file missing from the install rules cannot
  # hide behind one a previous run left there.
  set(prefix "${WORK_DIR}/prefix")
  file(REMOVE_RECURSE "${prefix}")
  run_step("cmake --install into ${prefix}"
           "${CMAKE_COMMAND}" --install "${CONCUR_BINARY_DIR}" --prefix "${prefix}")
  foreach(f include/concur/concur.hpp lib/cmake/concur/concurConfig.cmake
          lib/cmake/concur/concurConfigVersion.cmake lib/cmake/concur/concurTargets.cmake
          lib/pkgconfig/concur.pc bin/concur-fake-llm share/doc/concur/LICENSE)
    if(NOT EXISTS "${prefix}/${f}")
      message(FATAL_ERROR "concur consumer (${MODE}): the install lacks ${f}")
    endif()
  endforeach()
  if(NOT EXISTS "${prefix}/lib/libconcur.a" AND NOT EXISTS "${prefix}/lib/libconcur.so")
    message(FATAL_ERROR "concur consumer (${MODE}): the install lacks lib/libconcur.a (or .so)")
  endif()
  # Every generator expression of the export resolves to something: an empty
  # $<LINK_ONLY:> was a build-tree-only target that leaked into it.
  file(READ "${prefix}/lib/cmake/concur/concurTargets.cmake" targets_text)
  if(targets_text MATCHES "\\$<LINK_ONLY:>")
    message(FATAL_ERROR "concur consumer (${MODE}): concurTargets.cmake holds an empty $<LINK_ONLY:>")
  endif()
  # A component the install lacks fails find_package with a message naming it.
  set(bad_dir "${WORK_DIR}/bad_component")
  file(REMOVE_RECURSE "${bad_dir}")
  file(WRITE "${bad_dir}/CMakeLists.txt"
       "cmake_minimum_required(VERSION 3.25)\nproject(bad LANGUAGES CXX)\n"
       "find_package(concur CONFIG REQUIRED COMPONENTS nope)\n")
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${bad_dir}" -B "${bad_dir}/build" -G "${GENERATOR}"
                          "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_PREFIX_PATH=${prefix}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0 OR NOT out MATCHES "concur has no component 'nope'")
    message(FATAL_ERROR "concur consumer (${MODE}): COMPONENTS nope gave (${rc}):\n${out}")
  endif()
  message(STATUS "concur consumer (${MODE}): an unknown component is a clear error: ok")
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}"
       -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON "-DCONCUR_README=${CONCUR_SOURCE_DIR}/README.md")
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND configure_args "-DCONCUR_SOURCE_DIR=${CONCUR_SOURCE_DIR}")
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

run_step("configure" "${CMAKE_COMMAND}" ${configure_args})
run_step("build" "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" --parallel 2)

# Every CONCUR_* variable of the caller's environment is cleared, so only the
# settings chosen here reach the example.
execute_process(COMMAND "${CMAKE_COMMAND}" -E environment OUTPUT_VARIABLE env_text)
string(REGEX MATCHALL "(^|\n)CONCUR_[A-Za-z0-9_]*=" env_vars "${env_text}")
set(clean_env "")
foreach(v IN LISTS env_vars)
  string(REGEX REPLACE "^\n|=$" "" v "${v}")
  list(APPEND clean_env "--unset=${v}")
endforeach()

execute_process(COMMAND "${WORK_DIR}/build/list_executors" RESULT_VARIABLE rc
                OUTPUT_VARIABLE names ERROR_VARIABLE err)
string(STRIP "${names}" names)
string(REPLACE "\n" ";" names "${names}")
if(NOT rc EQUAL 0 OR NOT "sequential" IN_LIST names OR NOT "event_loop" IN_LIST names)
  message(FATAL_ERROR "concur consumer (${MODE}): list_executors gave (${rc}) '${names}' ${err}")
endif()

# Runs the README example with `settings` (VAR=value ...) and checks that it
# printed its two lines, ran on `expected`, and wrote nothing to stderr but
# stall reports (a loaded machine may legitimately delay the event loop).
function(run_example expected)
  string(TIMESTAMP t0 "%s")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E env ${clean_env} ${ARGN} "${WORK_DIR}/build/readme_example"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  string(TIMESTAMP t1 "%s")
  math(EXPR seconds "${t1} - ${t0}")
  string(REGEX REPLACE "(^|\n)concur: task '[^\n]*' blocked the [^\n]*" "" unexpected_err "${err}")
  string(STRIP "${unexpected_err}" unexpected_err)
  if(NOT rc EQUAL 0 OR NOT out STREQUAL "hello world\n100 results on ${expected}\n"
     OR NOT unexpected_err STREQUAL "")
    message(FATAL_ERROR "concur consumer (${MODE}): README example with ${ARGN} "
                        "exited ${rc}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  message(STATUS "concur consumer (${MODE}): README example on ${expected} (${ARGN}): ok, ~${seconds} s")
endfunction()

foreach(name IN LISTS names)
  run_example(${name} "CONCUR_EXECUTOR=${name}")
endforeach()

# The README example's first lesson: a bad setting prints the ConfigError and
# exits 2 (not `terminate called ...`, rc 134), with nothing on stdout.
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env ${clean_env} CONCUR_EXECUTR=fibers "${WORK_DIR}/build/readme_example"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT rc EQUAL 2 OR NOT out STREQUAL "" OR NOT err MATCHES "unknown configuration key 'CONCUR_EXECUTR'"
   OR err MATCHES "terminate")
  message(FATAL_ERROR "concur consumer (${MODE}): README example with CONCUR_EXECUTR=fibers "
                      "exited ${rc}\nstdout:\n${out}\nstderr:\n${err}")
endif()
message(STATUS "concur consumer (${MODE}): README example on a bad setting: exit 2 with the ConfigError: ok")

if(MODE STREQUAL "find_package")
  file(READ "${WORK_DIR}/prefix/lib/cmake/concur/concurTargets.cmake" targets_text)
  if(targets_text MATCHES "concur::fake_llm")
    execute_process(COMMAND "${WORK_DIR}/build/fake_llm_probe" RESULT_VARIABLE rc
                    OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 30)
    if(NOT rc EQUAL 0 OR NOT out MATCHES "^fake_llm http://127\\.0\\.0\\.1:[0-9]+/v1\n$")
      message(FATAL_ERROR "concur consumer (${MODE}): fake_llm_probe exited ${rc}\n${out}${err}")
    endif()
    message(STATUS "concur consumer (${MODE}): concur::fake_llm probe: ok")
  endif()
endif()

if(MODE STREQUAL "find_package" AND EXAMPLE_CONFIG)
  file(STRINGS "${EXAMPLE_CONFIG}" line REGEX "^executor *= *\"[a-z_]+\"")
  string(REGEX REPLACE "^executor *= *\"([a-z_]+)\".*" "\\1" configured "${line}")
  run_example(${configured} "CONCUR_CONFIG=${EXAMPLE_CONFIG}")
endif()
