# SPDX-License-Identifier: BSL-1.0
# concur_readme_example(<readme> <out.cpp>): writes the first ```cpp block of
# the README to <out.cpp>, so the consumer tests compile exactly the usage
# example a reader copies -- the README cannot drift from code that builds.
function(concur_readme_example readme out)
  file(READ "${readme}" text)
  string(FIND "${text}" "```cpp\n" start)
  if(start EQUAL -1)
    message(FATAL_ERROR "concur consumer: no ```cpp block in ${readme}")
  endif()
  math(EXPR start "${start} + 7")
  string(SUBSTRING "${text}" ${start} -1 rest)
  string(FIND "${rest}" "\n```" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "concur consumer: the first ```cpp block of ${readme} is not closed")
  endif()
  string(SUBSTRING "${rest}" 0 ${end} code)
  # Rewrite only on change, so an unchanged README rebuilds nothing.
  set(old "")
  if(EXISTS "${out}")
    file(READ "${out}" old)
  endif()
  if(NOT old STREQUAL "${code}\n")
    file(WRITE "${out}" "${code}\n")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${readme}")
endfunction()
