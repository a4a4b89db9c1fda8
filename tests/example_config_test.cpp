// SPDX-License-Identifier: BSL-1.0
// examples/concur.toml, loaded the way an application loads it (CONCUR_CONFIG
// and Config::from_env), so the documented example cannot rot.
#include <gtest/gtest.h>

#include <concur/concur.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <unistd.h>

extern char** environ;

namespace {

using namespace std::chrono_literals;

// Clears every CONCUR_* variable the test runner inherited, then sets `vars`;
// restores nothing (each test sets what it needs).
void set_only(std::initializer_list<std::pair<const char*, std::string>> vars) {
  std::vector<std::string> names;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (entry.starts_with("CONCUR_")) names.push_back(entry.substr(0, entry.find('=')));
  }
  for (const auto& n : names) ::unsetenv(n.c_str());
  for (const auto& [k, v] : vars) ::setenv(k, v.c_str(), 1);
}

TEST(ExampleConfig, LoadsThroughConcurConfig) {
  set_only({{"CONCUR_CONFIG", CONCUR_EXAMPLE_CONFIG}});
  const concur::Config c = concur::Config::from_env();
  EXPECT_EQ(c.executor, "thread_pool");
  EXPECT_EQ(c.workers, 16);
  EXPECT_EQ(c.limit, 64u);
  EXPECT_EQ(c.timeout, 30000ms);
  EXPECT_EQ(c.deadline, 600000ms);
  EXPECT_EQ(c.stall_threshold, 100ms);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.stack_kb, 64u);
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(concur::make_executor(c)->name(), "thread_pool");
}

TEST(ExampleConfig, TheEnvironmentOverridesTheFile) {
  set_only({{"CONCUR_CONFIG", CONCUR_EXAMPLE_CONFIG},
            {"CONCUR_EXECUTOR", "sequential"},
            {"CONCUR_LIMIT", "8"}});
  const concur::Config c = concur::Config::from_env();
  EXPECT_EQ(c.executor, "sequential");
  EXPECT_EQ(c.limit, 8u);
  EXPECT_EQ(c.workers, 16);  // from the file
}

// A key added to the library must be shown in the example too: set, or
// commented out ("# key = ...") when it only matters to another executor.
TEST(ExampleConfig, ShowsEveryKey) {
  std::ifstream in(CONCUR_EXAMPLE_CONFIG);
  ASSERT_TRUE(in) << "cannot open " << CONCUR_EXAMPLE_CONFIG;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const concur::ConfigKey& k : concur::Config::keys()) {
    const std::regex line("(^|\n)(# )?" + std::string(k.name) + " *=");
    EXPECT_TRUE(std::regex_search(text, line))
        << "examples/concur.toml does not show '" << k.name << "' (" << k.help << ")";
  }
}

// The keys shown commented out must be valid too: uncommented, the file loads.
TEST(ExampleConfig, CommentedOutKeysAreValid) {
  std::ifstream in(CONCUR_EXAMPLE_CONFIG);
  ASSERT_TRUE(in) << "cannot open " << CONCUR_EXAMPLE_CONFIG;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int uncommented = 0;
  for (const concur::ConfigKey& k : concur::Config::keys()) {
    const std::string commented = "\n# " + std::string(k.name) + " =";
    for (auto at = text.find(commented); at != std::string::npos; at = text.find(commented, at)) {
      text.erase(at + 1, 2);
      ++uncommented;
    }
  }
  const auto path = std::filesystem::temp_directory_path() /
                    ("concur_example_uncommented_" + std::to_string(::getpid()) + ".toml");
  std::ofstream(path) << text;
  EXPECT_NO_THROW(concur::Config::from_file(path.string())) << text;
  std::filesystem::remove(path);
  RecordProperty("uncommented_keys", uncommented);
}

}  // namespace
