#include "demo_config.hpp"

#include <cstdlib>
#include <sstream>

namespace concur::demo {

DemoConfig::DemoConfig(CLI::App& app, std::string default_executors)
    : executors_(std::move(default_executors)) {
  std::string names = "all";
  for (auto n : executor_names()) names += "|" + std::string(n);
  app.add_option("-e,--executor", executors_, "executor(s) to run, comma-separated: " + names)
      ->capture_default_str();
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

std::vector<std::string> DemoConfig::executors() const {
  std::vector<std::string> out;
  std::stringstream in(executors_);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item == "all") {
      for (auto n : executor_names()) out.emplace_back(n);
    } else {
      Config probe;
      probe.set("executor", item, "--executor");
      out.push_back(item);
    }
  }
  return out;
}

Config DemoConfig::config_for(const std::string& executor) const {
  Config c;
  if (!file_.empty()) {
    c.merge_file(file_);
  } else if (const char* f = std::getenv("CONCUR_CONFIG"); f != nullptr && *f != '\0') {
    c.merge_file(f);
  }
  c.merge_env();
  for (const auto& [key, value] : flags_) {
    std::string flag = "--" + key;
    for (char& ch : flag) ch = ch == '_' ? '-' : ch;
    c.set(key, value, flag);
  }
  c.set("executor", executor, "--executor");
  return c;
}

}  // namespace concur::demo
