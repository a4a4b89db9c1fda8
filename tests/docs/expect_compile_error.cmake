# SPDX-License-Identifier: BSL-1.0
# Compiles SOURCE and passes only if it fails with a message matching
# EXPECT (a regex) and none matching FORBID: a library misuse must stop the
# build with a readable message, not a page of template internals.
#   cmake -DCXX=... -DINCLUDE_DIR=... -DSOURCE=... -DEXPECT=... [-DFORBID=...] -P expect_compile_error.cmake
cmake_minimum_required(VERSION 3.25)
execute_process(
  COMMAND "${CXX}" -std=c++20 -fsyntax-only "-I${INCLUDE_DIR}" "${SOURCE}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "${SOURCE}: the compiler did not say '${EXPECT}':\n${out}")
endif()
if(FORBID AND out MATCHES "${FORBID}")
  message(FATAL_ERROR "${SOURCE}: the compiler's message shows '${FORBID}' (template internals):\n${out}")
endif()
message(STATUS "${SOURCE}: rejected with the readable message")
