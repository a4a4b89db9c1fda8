// SPDX-License-Identifier: BSL-1.0
// concur::Config: which executor, and how it runs.
//
// One precedence everywhere, lowest first:
//   built-in defaults < TOML file < CONCUR_* environment < command-line flags
// (a program's own code sets fields directly, before or after any of these).
// Every source goes through Config::set(), so a bad value gets the same error
// whichever way it came: it names the key, the bad value and what is accepted.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace concur {

/// One configuration key, for documentation and --help.
struct ConfigKey {
  std::string_view name;          ///< TOML spelling and Config::set() key
  std::string_view env;           ///< environment variable
  std::string_view accepted;      ///< human description of accepted values
  std::string_view default_text;  ///< the default, as text
  std::string_view help;          ///< what it does
};

/// The settings of one executor, from code, a TOML file, the environment or
/// flags (see the precedence above). A plain value: copy it freely; it is not
/// synchronised, so fill it on one thread, then hand it to make_executor(),
/// which validates it and keeps its own copy. Config::keys() lists every key.
struct Config {
  /// Executor name: see concur::executor_names().
  std::string executor = "event_loop";
  /// Worker threads/processes; 0 = the executor's own default.
  int workers = 0;
  /// Default `limit` of top-level gathers (0 = none).
  std::size_t limit = 0;
  /// Default per-task `timeout` of top-level gathers (0 = none).
  std::chrono::milliseconds timeout{0};
  /// Default batch `deadline` of top-level gathers (0 = none).
  std::chrono::milliseconds deadline{0};
  /// Report a task that holds the event loop longer than this (0 = off).
  std::chrono::milliseconds stall_threshold{100};
  /// OS threads that run fibers (fibers executor).
  int threads = 1;
  /// Stack size of one fiber, in KiB (fibers executor).
  std::size_t stack_kb = 64;
  /// Program launched as a worker process (processes executor); empty = this program.
  std::string worker_executable;
  /// Replace a worker process after this many calls (0 = never).
  std::size_t max_tasks_per_child = 0;
  /// How long a cancelled call may take to stop in its worker before the
  /// worker is killed and replaced (processes executor).
  std::chrono::milliseconds cancel_grace{1000};
  /// Calls one worker process runs at once (processes executor): their
  /// waits overlap there. The default keeps a batch of slow API calls all in
  /// flight on two workers; 1 keeps a crash's damage to the one call it hit.
  std::size_t worker_concurrency = 1024;
  /// The in-process executor that runs a worker's calls (processes
  /// executor): event_loop, fibers, thread_pool or sequential (which runs
  /// one call at a time whatever worker_concurrency says).
  std::string worker_executor = "event_loop";

  /// Defaults, then the TOML file named by CONCUR_CONFIG (if set), then CONCUR_*.
  /// Throws ConfigError for an unreadable or malformed file, an unknown key or
  /// CONCUR_* variable, or a bad value. Reads the environment: do not call it
  /// while another thread changes the environment (setenv).
  static Config from_env();
  /// Defaults, then the TOML file at `path`. Throws ConfigError like from_env().
  static Config from_file(const std::string& path);

  /// Sets one key from text. Throws ConfigError naming the key, the value,
  /// what is accepted and `source` (e.g. "CONCUR_WORKERS" or "concur.toml").
  void set(std::string_view key, std::string_view value, std::string_view source = "code");
  /// Applies every key of a TOML file: the keys of its `[concur]` table when
  /// it has one (the rest of the file is the application's own), else its
  /// top-level `key = value` pairs; values are strings or integers; unknown
  /// keys are errors. Throws ConfigError naming the file when it is not a
  /// regular file (a directory, a device), cannot be read, or does not parse
  /// (with the line and column), or like set() for a key; keys applied before
  /// the bad one stay applied.
  void merge_file(const std::string& path);
  /// Applies every CONCUR_* variable of the environment (CONCUR_CONFIG aside);
  /// unknown ones are errors. Throws ConfigError like set().
  void merge_env();
  /// Checks fields set directly in code; throws ConfigError like set().
  void validate() const;

  /// Every key, in documentation order (static data: safe from any thread).
  static std::span<const ConfigKey> keys();
};

}  // namespace concur
