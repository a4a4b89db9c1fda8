// SPDX-License-Identifier: BSL-1.0
#include "demo_config.hpp"

#include <cstdlib>

namespace concur::demo {

DemoConfig::DemoConfig(CLI::App& app, std::string default_executors)
    : default_executors_(std::move(default_executors)) {
  std::string names = "all";
  for (auto n : known_executor_names()) names += "|" + std::string(n);
  executor_option_ = app.add_option(
      "-e,--executor", executors_,
      "executor(s) to run, comma-separated: " + names +
          " (default: $CONCUR_EXECUTOR, else the config file's executor, else " +
          default_executors_ + "; all = every one that can run here: cluster only under mpirun)");
  app.add_option("--config", file_, "TOML configuration file (else $CONCUR_CONFIG)");
  for (const ConfigKey& k : Config::keys()) {
    if (k.name == "executor") continue;
    std::string flag = "--" + std::string(k.name);
    for (char& c : flag) c = c == '_' ? '-' : c;
    const std::string key(k.name);
    app.add_option_function<std::string>(
           flag, [this, key](const std::string& v) { flags_[key] = v; },
           std::string(k.help) + " (" + std::string(k.accepted) + "; env " + std::string(k.env) +
               ")")
        ->type_name("VALUE");
  }
}

Config DemoConfig::file_and_env() const {
  Config c;
  c.executor.clear();  // stays empty unless the file or the environment names one
  if (!file_.empty()) {
    c.merge_file(file_);
  } else if (const char* f = std::getenv("CONCUR_CONFIG"); f != nullptr && *f != '\0') {
    c.merge_file(f);
  }
  c.merge_env();
  return c;
}

std::vector<std::string> DemoConfig::executors() const {
  // The documented precedence: the demo's default < file < environment < flag.
  std::string spec = executors_;
  std::string source = "--executor";
  if (executor_option_ == nullptr || executor_option_->count() == 0) {
    const Config base = file_and_env();
    spec = base.executor.empty() ? default_executors_ : base.executor;
    source = base.executor.empty() ? "the demo's default" : "the configuration";
  }
  auto bad_list = [&](const std::string& why) {
    return ConfigError("concur config: " + std::string(messages::kBadValue) + " \"" + spec +
                       "\" for key 'executor' (from " + source + "): " + why +
                       "; expected executor names separated by commas, or all");
  };
  if (spec.empty()) throw bad_list("the list is empty");
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = spec.find(',', start);
    const std::string item =
        spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) throw bad_list("an empty name (a doubled, leading or trailing comma)");
    if (item == "all") {
      for (auto n : executor_names()) out.emplace_back(n);
    } else {
      Config probe;
      probe.set("executor", item, source);
      out.push_back(item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // Every setting checked now, before the demo prints its first line.
  for (const std::string& name : out) config_for(name).validate();
  return out;
}

Config DemoConfig::config_for(const std::string& executor) const {
  Config c = file_and_env();
  for (const auto& [key, value] : flags_) {
    std::string flag = "--" + key;
    for (char& ch : flag) ch = ch == '_' ? '-' : ch;
    c.set(key, value, flag);
  }
  c.set("executor", executor, "--executor");
  return c;
}

}  // namespace concur::demo
