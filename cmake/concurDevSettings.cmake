# Warnings and sanitizers for concur's own targets only: an INTERFACE target
# linked privately, never global flags that would leak into a consumer.
add_library(concur_dev_settings INTERFACE)
target_compile_options(concur_dev_settings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>)
if(CONCUR_SANITIZE)
  target_compile_options(concur_dev_settings INTERFACE -fsanitize=${CONCUR_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(concur_dev_settings INTERFACE -fsanitize=${CONCUR_SANITIZE})
  # Asio's fences are fine; GCC only warns that TSan cannot model them.
  if(CONCUR_SANITIZE STREQUAL "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(concur_dev_settings INTERFACE -Wno-tsan)
  endif()
endif()
