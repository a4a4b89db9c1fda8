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
  explicit DemoConfig(CLI::App& app, std::string default_executors = "all");

  /// After parsing: the executors to compare, in the order concur lists them
  /// ("all" expands to every executor). Throws ConfigError for unknown names.
  std::vector<std::string> executors() const;
  /// After parsing: the configuration for one executor.
  Config config_for(const std::string& executor) const;

 private:
  std::string executors_;
  std::string file_;
  std::map<std::string, std::string> flags_;  // key -> value given on the command line
};

}  // namespace concur::demo
