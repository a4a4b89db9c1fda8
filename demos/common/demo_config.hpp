// SPDX-License-Identifier: BSL-1.0
// Command-line flags shared by every demo: which executors, and the concur
// configuration keys as flags, applied with the documented precedence
// (defaults < TOML file < CONCUR_* environment < flags).
#pragma once

#include <CLI/CLI.hpp>
#include <concur/concur.hpp>
#include <map>
#include <string>
#include <vector>

namespace concur::demo {

class DemoConfig {
 public:
  /// Adds --executor, --config and one flag per configuration key to `app`.
  /// `default_executors` is the demo's built-in default: like every built-in
  /// default it loses to the configuration file's `executor` and to
  /// CONCUR_EXECUTOR, which lose to --executor.
  explicit DemoConfig(CLI::App& app, std::string default_executors = "all");

  /// After parsing: the executors to compare, in the order given ("all"
  /// expands to every executor). Throws ConfigError for an unknown name, an
  /// empty list or an empty item ("a,,b", a trailing comma), and for any bad
  /// setting of any of these executors, so a demo can call it before it
  /// prints anything and exit 2 with nothing on stdout.
  std::vector<std::string> executors() const;
  /// After parsing: the configuration for one executor.
  Config config_for(const std::string& executor) const;

 private:
  // Defaults, the file and the environment, with `executor` left empty
  // unless one of those set it.
  Config file_and_env() const;

  std::string default_executors_;
  std::string executors_;
  CLI::Option* executor_option_ = nullptr;
  std::string file_;
  std::map<std::string, std::string> flags_;  // key -> value given on the command line
};

}  // namespace concur::demo
