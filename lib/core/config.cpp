// SPDX-License-Identifier: BSL-1.0
#include "concur/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>

#include "concur/errors.hpp"
#include "concur/executor.hpp"

extern char** environ;

namespace concur {

namespace {

constexpr std::string_view kFileVariable = "CONCUR_CONFIG";

// The single table behind set(), the environment, TOML and --help.
constexpr std::array<ConfigKey, 13> kKeys{{
    {"executor", "CONCUR_EXECUTOR", "one of the executor names", "event_loop",
     "the concurrency model that runs tasks"},
    {"workers", "CONCUR_WORKERS", "an integer from 1 to 4096", "the executor's own",
     "worker threads or processes"},
    {"limit", "CONCUR_LIMIT", "an integer from 0 (none) to 10000000", "0",
     "default max tasks in flight of a top-level gather"},
    {"timeout_ms", "CONCUR_TIMEOUT_MS", "milliseconds from 0 (none) to 86400000", "0",
     "default per-task timeout of a top-level gather"},
    {"deadline_ms", "CONCUR_DEADLINE_MS", "milliseconds from 0 (none) to 86400000", "0",
     "default batch deadline of a top-level gather"},
    {"stall_ms", "CONCUR_STALL_MS", "milliseconds from 0 (off) to 3600000", "100",
     "report a task that holds the event loop longer than this"},
    {"threads", "CONCUR_THREADS", "an integer from 1 to 256", "1",
     "OS threads that run fibers (fibers executor)"},
    {"stack_kb", "CONCUR_STACK_KB", "KiB from 16 to 1048576", "64",
     "stack size of one fiber (fibers executor)"},
    {"worker_executable", "CONCUR_WORKER_EXECUTABLE", "a path to a program that calls concur::init",
     "this program", "program launched as a worker process (processes, cluster)"},
    {"max_tasks_per_child", "CONCUR_MAX_TASKS_PER_CHILD", "an integer from 0 (never) to 1000000000",
     "0", "replace a worker process after this many calls (processes, cluster)"},
    {"cancel_grace_ms", "CONCUR_CANCEL_GRACE_MS", "milliseconds from 1 to 3600000", "1000",
     "time a cancelled call gets to stop in its worker before the worker is killed"},
    {"worker_concurrency", "CONCUR_WORKER_CONCURRENCY", "an integer from 1 to 100000", "1024",
     "calls one worker process runs at once, their waits overlapping (processes, cluster)"},
    {"worker_executor", "CONCUR_WORKER_EXECUTOR", "event_loop, fibers, thread_pool or sequential",
     "event_loop", "the executor that runs a worker process's calls (processes, cluster)"},
}};

// The executors that can run a worker's calls: in-process ones only.
constexpr std::array<std::string_view, 4> kWorkerExecutors{"event_loop", "fibers", "thread_pool",
                                                           "sequential"};

std::string accepted_executors() {
  std::string out;
  for (std::string_view n : known_executor_names()) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

std::string accepted_keys() {
  std::string out;
  for (const ConfigKey& k : kKeys) {
    if (!out.empty()) out += ", ";
    out += k.name;
  }
  return out;
}

[[noreturn]] void bad_value(std::string_view key, std::string_view value, std::string_view source,
                            std::string_view accepted) {
  throw ConfigError(fmt::format("concur config: {} \"{}\" for key '{}' (from {}): expected {}",
                                messages::kBadValue, value, key, source, accepted));
}

long long parse_integer(std::string_view key, std::string_view value, std::string_view source,
                        long long lo, long long hi, std::string_view accepted) {
  long long out = 0;
  std::string_view trimmed = value;
  while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
  while (!trimmed.empty() && trimmed.back() == ' ') trimmed.remove_suffix(1);
  auto [end, ec] = std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), out);
  if (trimmed.empty() || ec != std::errc() || end != trimmed.data() + trimmed.size() || out < lo ||
      out > hi) {
    bad_value(key, value, source, accepted);
  }
  return out;
}

const ConfigKey* find_key(std::string_view name) {
  auto it =
      std::find_if(kKeys.begin(), kKeys.end(), [&](const ConfigKey& k) { return k.name == name; });
  return it == kKeys.end() ? nullptr : &*it;
}

}  // namespace

std::span<const ConfigKey> Config::keys() { return kKeys; }

void Config::set(std::string_view key, std::string_view value, std::string_view source) {
  const ConfigKey* k = find_key(key);
  if (k == nullptr) {
    throw ConfigError(fmt::format("concur config: {} '{}' (from {}): accepted keys are {}",
                                  messages::kUnknownKey, key, source, accepted_keys()));
  }
  if (key == "executor") {
    auto names = known_executor_names();
    if (std::find(names.begin(), names.end(), value) == names.end()) {
      throw ConfigError(fmt::format(
          "concur config: {} \"{}\" for key 'executor' (from {}): accepted values are {}",
          messages::kUnknownExecutor, value, source, accepted_executors()));
    }
    executor = std::string(value);
  } else if (key == "workers") {
    workers = static_cast<int>(parse_integer(key, value, source, 1, 4096, k->accepted));
  } else if (key == "limit") {
    limit = static_cast<std::size_t>(parse_integer(key, value, source, 0, 10'000'000, k->accepted));
  } else if (key == "timeout_ms") {
    timeout =
        std::chrono::milliseconds(parse_integer(key, value, source, 0, 86'400'000, k->accepted));
  } else if (key == "deadline_ms") {
    deadline =
        std::chrono::milliseconds(parse_integer(key, value, source, 0, 86'400'000, k->accepted));
  } else if (key == "stall_ms") {
    stall_threshold =
        std::chrono::milliseconds(parse_integer(key, value, source, 0, 3'600'000, k->accepted));
  } else if (key == "threads") {
    threads = static_cast<int>(parse_integer(key, value, source, 1, 256, k->accepted));
  } else if (key == "worker_executable") {
    worker_executable = std::string(value);
  } else if (key == "max_tasks_per_child") {
    max_tasks_per_child =
        static_cast<std::size_t>(parse_integer(key, value, source, 0, 1'000'000'000, k->accepted));
  } else if (key == "cancel_grace_ms") {
    cancel_grace =
        std::chrono::milliseconds(parse_integer(key, value, source, 1, 3'600'000, k->accepted));
  } else if (key == "worker_concurrency") {
    worker_concurrency =
        static_cast<std::size_t>(parse_integer(key, value, source, 1, 100'000, k->accepted));
  } else if (key == "worker_executor") {
    if (std::find(kWorkerExecutors.begin(), kWorkerExecutors.end(), value) ==
        kWorkerExecutors.end()) {
      bad_value(key, value, source, k->accepted);
    }
    worker_executor = std::string(value);
  } else if (key == "stack_kb") {
    stack_kb =
        static_cast<std::size_t>(parse_integer(key, value, source, 16, 1'048'576, k->accepted));
  }
}

void Config::validate() const {
  Config probe;
  probe.set("executor", executor, "code");
  if (workers != 0) probe.set("workers", std::to_string(workers), "code");
  probe.set("limit", std::to_string(limit), "code");
  probe.set("timeout_ms", std::to_string(timeout.count()), "code");
  probe.set("deadline_ms", std::to_string(deadline.count()), "code");
  probe.set("stall_ms", std::to_string(stall_threshold.count()), "code");
  probe.set("threads", std::to_string(threads), "code");
  probe.set("stack_kb", std::to_string(stack_kb), "code");
  probe.set("max_tasks_per_child", std::to_string(max_tasks_per_child), "code");
  probe.set("cancel_grace_ms", std::to_string(cancel_grace.count()), "code");
  probe.set("worker_concurrency", std::to_string(worker_concurrency), "code");
  probe.set("worker_executor", worker_executor, "code");
}

namespace {

// The table holding concur's keys: an application's own TOML file keeps them
// under [concur] (the rest of the file is the application's); a file of
// concur's alone may hold them at the top level.
constexpr std::string_view kTableName = "concur";

// A configuration source must be a regular file (or a link to one): a
// directory or a device would otherwise parse as an empty table, or read
// forever (/dev/zero), and the program would run on the defaults unawares.
void check_regular_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || st.type() == fs::file_type::not_found) {
    throw ConfigError(fmt::format("concur config: cannot read TOML file '{}': {}", path,
                                  ec ? ec.message() : "no such file"));
  }
  if (st.type() == fs::file_type::regular) return;
  std::string_view kind = "not a regular file";
  switch (st.type()) {
    case fs::file_type::directory:
      kind = "a directory";
      break;
    case fs::file_type::character:
      kind = "a character device";
      break;
    case fs::file_type::block:
      kind = "a block device";
      break;
    case fs::file_type::fifo:
      kind = "a named pipe";
      break;
    case fs::file_type::socket:
      kind = "a socket";
      break;
    default:
      break;
  }
  throw ConfigError(fmt::format("concur config: cannot read TOML file '{}': {} it is {}", path,
                                messages::kNotAFile, kind));
}

}  // namespace

void Config::merge_file(const std::string& path) {
  check_regular_file(path);
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    // toml++ puts the position in source(), not in description().
    const toml::source_region& where = e.source();
    throw ConfigError(
        fmt::format("concur config: cannot read TOML file '{}': line {}, column {}: {}", path,
                    where.begin.line, where.begin.column, e.description()));
  }
  std::string source = path;
  const toml::table* keys = &table;
  if (const toml::node* own = table.get(kTableName)) {
    keys = own->as_table();
    if (keys == nullptr) {
      std::ostringstream kind;
      kind << '<' << own->type() << '>';
      throw ConfigError(
          fmt::format("concur config: {} \"{}\" for key '{}' (from {}): expected a table ([{}]) of "
                      "concur's keys",
                      messages::kBadValue, kind.str(), kTableName, path, kTableName));
    }
    source = fmt::format("{} [{}]", path, kTableName);
  }
  for (auto&& [name, node] : *keys) {
    if (keys == &table && find_key(name.str()) == nullptr) {
      throw ConfigError(fmt::format(
          "concur config: {} '{}' (from {}): accepted keys are {} (an application's own TOML "
          "file keeps concur's keys in a [{}] table)",
          messages::kUnknownKey, name.str(), source, accepted_keys(), kTableName));
    }
    std::string text;
    if (auto s = node.value_exact<std::string>()) {
      text = *s;
    } else if (auto i = node.value_exact<int64_t>()) {
      text = std::to_string(*i);
    } else if (find_key(name.str()) != nullptr) {
      std::ostringstream kind;
      kind << '<' << node.type() << '>';
      bad_value(name.str(), kind.str(), source, find_key(name.str())->accepted);
    }
    set(name.str(), text, source);
  }
}

void Config::merge_env() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!entry.starts_with("CONCUR_")) continue;
    const auto eq = entry.find('=');
    const std::string_view var = entry.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : entry.substr(eq + 1);
    if (var == kFileVariable || var.starts_with("CONCUR_INTERNAL_")) continue;
    auto it =
        std::find_if(kKeys.begin(), kKeys.end(), [&](const ConfigKey& k) { return k.env == var; });
    if (it == kKeys.end()) {
      std::string envs;
      for (const ConfigKey& k : kKeys) envs += fmt::format("{}{}", envs.empty() ? "" : ", ", k.env);
      throw ConfigError(
          fmt::format("concur config: {} '{}' (from the environment): accepted are {}, {}",
                      messages::kUnknownKey, var, kFileVariable, envs));
    }
    set(it->name, value, var);
  }
}

Config Config::from_file(const std::string& path) {
  Config c;
  c.merge_file(path);
  return c;
}

Config Config::from_env() {
  Config c;
  if (const char* file = std::getenv(std::string(kFileVariable).c_str()); file && *file) {
    c.merge_file(file);
  }
  c.merge_env();
  return c;
}

}  // namespace concur
