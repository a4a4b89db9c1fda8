// SPDX-License-Identifier: BSL-1.0
// Runs a demo binary the way a person would and returns what it printed on
// stdout, for the demos' end-to-end tests.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

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

}  // namespace concur::testing
