# SPDX-License-Identifier: BSL-1.0
# Warnings and sanitizers for concur's own targets only, never global flags
# that would leak into a consumer.
set(concur_dev_compile_options
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>)
set(concur_dev_link_options "")
if(CONCUR_SANITIZE)
  list(APPEND concur_dev_compile_options -fsanitize=${CONCUR_SANITIZE} -fno-omit-frame-pointer)
  list(APPEND concur_dev_link_options -fsanitize=${CONCUR_SANITIZE})
  # Asio's fences are fine; GCC only warns that TSan cannot model them.
  if(CONCUR_SANITIZE STREQUAL "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    list(APPEND concur_dev_compile_options -Wno-tsan)
  endif()
endif()

# concur's libraries take the settings as PRIVATE options: nothing of them is
# exported (no empty $<LINK_ONLY:> in concurTargets.cmake), and an application
# that uses add_subdirectory(concur) gets no extra target in its project.
function(concur_apply_dev_settings target)
  target_compile_options(${target} PRIVATE ${concur_dev_compile_options})
  target_link_options(${target} PRIVATE ${concur_dev_link_options})  # a shared build links
endfunction()

# concur's tests, demos and benchmarks link this INTERFACE target; it exists
# only when they are built (concur is the top-level project, or asked for).
if(CONCUR_BUILD_TESTS OR CONCUR_BUILD_DEMOS OR CONCUR_BUILD_BENCH)
  add_library(concur_dev_settings INTERFACE)
  add_library(concur::dev_settings ALIAS concur_dev_settings)
  target_compile_options(concur_dev_settings INTERFACE ${concur_dev_compile_options})
  target_link_options(concur_dev_settings INTERFACE ${concur_dev_link_options})
endif()
