// SPDX-License-Identifier: BSL-1.0
// Runs a demo binary the way a person would and returns what it printed on
// stdout, for the demos' end-to-end tests, and splits it into lines.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace concur::testing {

/// Runs `command` through the shell; returns its standard output (the test
/// fails if the command cannot be started).
inline std::string run_program(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), &pclose);
  EXPECT_TRUE(pipe) << "cannot run: " << command;
  std::string out;
  std::array<char, 4096> buf{};
  while (pipe && std::fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  return out;
}

/// The non-empty lines of `out` (a --json run prints one object a line).
inline std::vector<std::string> lines_of(const std::string& out) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < out.size()) {
    const auto end = out.find('\n', start);
    std::string line = out.substr(start, end - start);
    start = end == std::string::npos ? out.size() : end + 1;
    if (!line.empty()) lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace concur::testing
