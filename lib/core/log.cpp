// SPDX-License-Identifier: BSL-1.0
#include "concur/log.hpp"

#include <cstdio>
#include <mutex>
#include <utility>

namespace concur {

namespace {

// One mutex guards the handler and serialises deliveries, so a handler
// never runs twice at once and set_log_handler never frees a running one.
// Function-local statics: log() may run during static initialisation or
// destruction of other objects (a registry, an executor in a static).
std::mutex& log_mutex() {
  static std::mutex* m = new std::mutex;  // never destroyed: usable at exit
  return *m;
}
LogHandler& log_handler() {
  static LogHandler* h = new LogHandler;
  return *h;
}

void to_stderr(std::string_view message) {
  // One fwrite of the whole line: lines from several threads or processes
  // sharing the stream do not interleave mid-line.
  std::string line(message);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "unknown";
}

void set_log_handler(LogHandler handler) {
  std::lock_guard lock(log_mutex());
  log_handler() = std::move(handler);
}

void log(LogLevel level, std::string_view message) noexcept {
  try {
    std::lock_guard lock(log_mutex());
    if (const LogHandler& h = log_handler()) {
      h(level, message);
    } else {
      to_stderr(message);
    }
  } catch (...) {
    // A throwing handler (or an allocation failure) must not take down the
    // thread that reported a problem: the message is dropped.
  }
}

}  // namespace concur
