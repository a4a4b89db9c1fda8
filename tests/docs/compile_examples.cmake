# SPDX-License-Identifier: BSL-1.0
# Compiles every C++ example of concur's documentation (label docs):
#   cmake -DCXX=<compiler> -DINCLUDE_DIR=<concur/include> -DWORK_DIR=<dir>
#         -DREADME=<README.md> -DHEADERS=<a;b;...> -DMIN_EXAMPLES=<n> -P compile_examples.cmake
# An example is a fenced block: ```cpp ... ``` in the README, and the same
# fence inside a header's comment (each line starting with // or ///). A
# header's example is compiled after an #include of that header, a README
# example on its own: either must include what else it uses, as a reader's
# copy would. Errors point at the README or header line (#line).
cmake_minimum_required(VERSION 3.25)

foreach(var CXX INCLUDE_DIR WORK_DIR README HEADERS MIN_EXAMPLES)
  if("${${var}}" STREQUAL "")
    message(FATAL_ERROR "compile_examples.cmake: -D${var}= is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(examples "")  # list of "<generated.cpp>|<where>"
set(count 0)

# Appends the examples of one file. `prefix` is the regex each line of a
# block starts with (comment markers), stripped before compiling.
function(collect file prefix preamble)
  file(READ "${file}" text)
  set(pos 0)
  string(LENGTH "${text}" size)
  while(TRUE)
    string(SUBSTRING "${text}" ${pos} -1 rest)
    string(REGEX MATCH "(^|\n)${prefix}```cpp\n" open "${rest}")
    if(open STREQUAL "")
      break()
    endif()
    string(FIND "${rest}" "${open}" at)
    string(LENGTH "${open}" open_len)
    math(EXPR body_start "${at} + ${open_len}")
    string(SUBSTRING "${rest}" ${body_start} -1 body_rest)
    string(REGEX MATCH "(^|\n)${prefix}```" close "${body_rest}")
    if(close STREQUAL "")
      message(FATAL_ERROR "concur docs: an unclosed ```cpp block in ${file}")
    endif()
    string(FIND "${body_rest}" "${close}" end)
    string(SUBSTRING "${body_rest}" 0 ${end} code)
    # The line of the block's first code line, for #line.
    math(EXPR code_offset "${pos} + ${body_start}")
    string(SUBSTRING "${text}" 0 ${code_offset} before)
    string(REGEX MATCHALL "\n" newlines "${before}")
    list(LENGTH newlines line)
    math(EXPR line "${line} + 1")
    # Strip the comment marker of each line (headers); a README block is as is.
    # (No ^ in the pattern: REGEX REPLACE lets ^ match where each search
    # resumes, which would strip a second marker, e.g. of "//   // note".)
    if(NOT prefix STREQUAL "")
      string(REGEX REPLACE "\n${prefix}" "\n" code "\n${code}")
      string(SUBSTRING "${code}" 1 -1 code)
    endif()
    math(EXPR n "${count} + 1")
    set(count ${n} PARENT_SCOPE)
    set(count ${n})
    get_filename_component(base "${file}" NAME_WE)
    set(out "${WORK_DIR}/example_${n}_${base}.cpp")
    file(WRITE "${out}" "${preamble}#line ${line} \"${file}\"\n${code}\n")
    list(APPEND examples "${out}|${file}:${line}")
    set(examples "${examples}" PARENT_SCOPE)
    math(EXPR pos "${code_offset} + ${end} + 1")
  endwhile()
endfunction()

collect("${README}" "" "")
foreach(header IN LISTS HEADERS)
  file(RELATIVE_PATH rel "${INCLUDE_DIR}" "${header}")
  # "// ```cpp", "/// ```cpp", optionally indented; one space after the marker.
  collect("${header}" "[ \t]*///? ?" "#include <${rel}>\n")
endforeach()

if(count LESS MIN_EXAMPLES)
  message(FATAL_ERROR "concur docs: found ${count} examples, expected at least ${MIN_EXAMPLES}: "
                      "the extraction is broken (or examples were removed)")
endif()

set(failed 0)
foreach(entry IN LISTS examples)
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 source)
  list(GET parts 1 where)
  execute_process(
    COMMAND "${CXX}" -std=c++20 -fsyntax-only -Wall -Wextra "-I${INCLUDE_DIR}" "${source}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(STATUS "concur docs: example at ${where}: compiles")
  else()
    message(SEND_ERROR "concur docs: the example at ${where} does not compile "
                       "(${source}):\n${out}")
    math(EXPR failed "${failed} + 1")
  endif()
endforeach()
if(failed GREATER 0)
  message(FATAL_ERROR "concur docs: ${failed} of ${count} examples do not compile")
endif()
message(STATUS "concur docs: all ${count} examples compile")
