// SPDX-License-Identifier: BSL-1.0
// Config from code, environment and TOML, and every bad-input error.
#include <gtest/gtest.h>

#include <concur/concur.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using concur::Config;
using concur::ConfigError;

// Runs `fn` expecting a ConfigError whose message contains every fragment.
template <class F>
void expect_config_error(F&& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const auto& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

// Sets environment variables for one test and removes them after.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<std::string, std::string>> vars) {
    for (const auto& [k, v] : vars) {
      ::setenv(k.c_str(), v.c_str(), 1);
      names_.push_back(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& k : names_) ::unsetenv(k.c_str());
  }

 private:
  std::vector<std::string> names_;
};

std::string write_toml(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

TEST(Config, DefaultsAreDocumented) {
  Config c;
  EXPECT_EQ(c.executor, "event_loop");
  EXPECT_EQ(c.workers, 0);
  EXPECT_EQ(c.limit, 0u);
  EXPECT_EQ(c.stall_threshold, std::chrono::milliseconds(100));
  EXPECT_NO_THROW(c.validate());
  for (const auto& k : Config::keys()) {
    EXPECT_FALSE(k.env.empty());
    EXPECT_FALSE(k.accepted.empty());
  }
}

TEST(Config, SetParsesEveryKey) {
  Config c;
  c.set("executor", "sequential");
  c.set("workers", "8");
  c.set("limit", "64");
  c.set("timeout_ms", "1500");
  c.set("deadline_ms", "30000");
  c.set("stall_ms", "0");
  EXPECT_EQ(c.executor, "sequential");
  EXPECT_EQ(c.workers, 8);
  EXPECT_EQ(c.limit, 64u);
  EXPECT_EQ(c.timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(c.deadline, std::chrono::milliseconds(30000));
  EXPECT_EQ(c.stall_threshold, std::chrono::milliseconds(0));
}

TEST(Config, UnknownExecutorNamesValueAndAcceptedNames) {
  Config c;
  expect_config_error([&] { c.set("executor", "fiberz", "CONCUR_EXECUTOR"); },
                      {std::string(concur::messages::kUnknownExecutor), "\"fiberz\"", "executor",
                       "CONCUR_EXECUTOR", "sequential", "event_loop"});
}

TEST(Config, UnknownKeyIsAnError) {
  Config c;
  expect_config_error(
      [&] { c.set("wrokers", "4", "concur.toml"); },
      {std::string(concur::messages::kUnknownKey), "wrokers", "concur.toml", "workers"});
}

TEST(Config, NonNumericAndOutOfRangeValues) {
  Config c;
  for (const char* bad : {"abc", "", "4x", "0", "-1", "4097", "99999999999999999999"}) {
    expect_config_error([&] { c.set("workers", bad, "CONCUR_WORKERS"); },
                        {std::string(concur::messages::kBadValue), std::string("\"") + bad + "\"",
                         "workers", "CONCUR_WORKERS", "1 to 4096"});
  }
  expect_config_error([&] { c.set("limit", "-5"); }, {"limit", "\"-5\""});
  expect_config_error([&] { c.set("timeout_ms", "1.5"); }, {"timeout_ms", "\"1.5\""});
  expect_config_error([&] { c.set("stall_ms", "99999999"); }, {"stall_ms", "99999999"});
}

TEST(Config, ValidateCatchesBadFieldsSetInCode) {
  Config c;
  c.executor = "threads";
  expect_config_error([&] { c.validate(); }, {"threads", "accepted values"});
  expect_config_error([&] { concur::make_executor(c); }, {"threads"});
  Config d;
  d.workers = -3;
  expect_config_error([&] { d.validate(); }, {"workers", "-3"});
}

TEST(Config, EnvironmentOverridesFileAndDefaults) {
  const auto file =
      write_toml("concur_env_test.toml", "executor = \"sequential\"\nlimit = 8\nworkers = 3\n");
  ScopedEnv env{{"CONCUR_CONFIG", file}, {"CONCUR_LIMIT", "16"}};
  Config c = Config::from_env();
  EXPECT_EQ(c.executor, "sequential");  // from the file
  EXPECT_EQ(c.workers, 3);              // from the file
  EXPECT_EQ(c.limit, 16u);              // the environment wins
}

TEST(Config, EnvironmentErrorsNameTheVariable) {
  {
    ScopedEnv env{{"CONCUR_WORKERS", "lots"}};
    expect_config_error([] { Config::from_env(); }, {"CONCUR_WORKERS", "\"lots\""});
  }
  {
    ScopedEnv env{{"CONCUR_EXECUTER", "sequential"}};
    expect_config_error([] { Config::from_env(); }, {"CONCUR_EXECUTER", "CONCUR_EXECUTOR"});
  }
}

TEST(Config, TomlFileErrors) {
  expect_config_error(
      [] { Config::from_file(write_toml("concur_bad1.toml", "executer = \"x\"\n")); },
      {"executer", "concur_bad1.toml"});
  expect_config_error(
      [] { Config::from_file(write_toml("concur_bad2.toml", "workers = \"many\"\n")); },
      {"workers", "\"many\""});
  expect_config_error([] { Config::from_file(write_toml("concur_bad3.toml", "workers = 2.5\n")); },
                      {"workers", "floating"});
  expect_config_error([] { Config::from_file(write_toml("concur_bad4.toml", "workers = [\n")); },
                      {"cannot read TOML", "concur_bad4.toml"});
  expect_config_error([] { Config::from_file("/nonexistent/concur.toml"); },
                      {"/nonexistent/concur.toml"});
}

TEST(Config, MakeExecutorHonoursTheName) {
  for (auto name : concur::executor_names()) {
    Config c;
    c.executor = std::string(name);
    auto ex = concur::make_executor(c);
    EXPECT_EQ(ex->name(), name);
  }
}

// An application's own TOML file: concur reads its [concur] table and leaves
// the rest of the file (the application's keys and tables) alone.
TEST(Config, ConcurTableInAnApplicationsFile) {
  const auto file =
      write_toml("concur_app_table.toml",
                 "name = \"my-app\"\n"
                 "executor = \"not concur's\"\n"
                 "[database]\nurl = \"postgres://x\"\n"
                 "[concur]\nexecutor = \"thread_pool\"\nworkers = 6\nlimit = \"32\"\n");
  Config c = Config::from_file(file);
  EXPECT_EQ(c.executor, "thread_pool");
  EXPECT_EQ(c.workers, 6);
  EXPECT_EQ(c.limit, 32u);
  {
    ScopedEnv env{{"CONCUR_CONFIG", file}, {"CONCUR_WORKERS", "2"}};
    Config e = Config::from_env();
    EXPECT_EQ(e.executor, "thread_pool");  // the file's [concur] table
    EXPECT_EQ(e.workers, 2);               // the environment wins
  }
  // Keys inside [concur] are checked like any others, and named with the table.
  expect_config_error(
      [] { Config::from_file(write_toml("concur_app_table_bad.toml", "[concur]\nwrokers = 4\n")); },
      {std::string(concur::messages::kUnknownKey), "wrokers",
       "concur_app_table_bad.toml [concur]"});
  expect_config_error(
      [] { Config::from_file(write_toml("concur_app_table_kind.toml", "concur = 3\n")); },
      {"'concur'", "a table"});
  // Without a [concur] table, an application's key is unknown, and the
  // message says where concur's keys go.
  expect_config_error(
      [] { Config::from_file(write_toml("concur_app_no_table.toml", "name = \"my-app\"\n")); },
      {"'name'", "[concur]"});
}

TEST(Config, TomlSyntaxErrorsKeepLineAndColumn) {
  const auto file = write_toml("concur_syntax.toml", "workers = 2\nlimit = 8\nenabled = fi\n");
  expect_config_error([&] { Config::from_file(file); },
                      {"concur_syntax.toml", "line 3, column", "expected 'false'"});
  try {
    Config::from_file(file);
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("concur_syntax.toml': line 3, column 1"),
              std::string::npos)
        << e.what();
  }
}

// A source that is not a regular file would parse as empty (a directory) or
// never end (/dev/zero): either way the defaults would run unannounced.
TEST(Config, SourcesThatAreNotFilesAreErrors) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  expect_config_error([&] { Config::from_file(dir); },
                      {dir, std::string(concur::messages::kNotAFile), "a directory"});
  expect_config_error([] { Config::from_file("/dev/zero"); }, {"/dev/zero", "a character device"});
  {
    ScopedEnv env{{"CONCUR_CONFIG", dir}};
    expect_config_error([] { Config::from_env(); }, {dir, "a directory"});
  }
  {
    ScopedEnv env{{"CONCUR_CONFIG", "/dev/zero"}};
    expect_config_error([] { Config::from_env(); }, {"/dev/zero", "a character device"});
  }
  // A symbolic link to a regular file is a file.
  const auto target = write_toml("concur_link_target.toml", "workers = 5\n");
  const auto link = std::filesystem::temp_directory_path() / "concur_link.toml";
  std::filesystem::remove(link);
  std::filesystem::create_symlink(target, link);
  EXPECT_EQ(Config::from_file(link.string()).workers, 5);
}

}  // namespace
