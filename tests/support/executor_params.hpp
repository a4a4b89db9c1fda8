// Every executor configuration the shared test suites run against.
// A new executor joins every shared suite by adding one line here.
#pragma once

#include <concur/concur.hpp>
#include <string>
#include <utility>
#include <vector>

namespace concur::testing {

struct ExecutorParam {
  std::string label;  // test-name suffix: letters, digits and '_' only
  std::string executor;
  std::vector<std::pair<std::string, std::string>> settings;

  Config config() const {
    Config c;
    c.set("executor", executor, "test");
    for (const auto& [k, v] : settings) c.set(k, v, "test");
    return c;
  }
};

inline std::vector<ExecutorParam> executor_params() {
  return {
      {"sequential", "sequential", {}},
      {"event_loop", "event_loop", {}},
  };
}

inline std::string param_label(const auto& info) { return info.param.label; }

}  // namespace concur::testing
