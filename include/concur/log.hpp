// SPDX-License-Identifier: BSL-1.0
// concur's own diagnostics (stall reports, worker and pool messages) go
// through one hook, so a program can send them to its own logger instead of
// stderr:
//
// ```cpp
// #include <concur/log.hpp>
//
// #include <cstdio>
// #include <string_view>
//
// void to_my_logger() {
//   concur::set_log_handler([](concur::LogLevel level, std::string_view line) {
//     std::fprintf(stdout, "[%s] %.*s\n", concur::to_string(level).data(),
//                  static_cast<int>(line.size()), line.data());
//   });
//   concur::set_log_handler(nullptr);  // back to the default: one line on stderr
// }
// ```
//
// The handler may be called from any thread (an executor's threads, the
// processes executor's reader thread), one call at a time: concur serialises
// the calls, so a handler needs no lock of its own. It must not throw (an
// exception from it is dropped) and must not call set_log_handler or
// concur::log itself (that would deadlock).
// A per-executor Executor::on_stall handler still takes precedence for stall
// reports; its default forwards to this log.
#pragma once

#include <functional>
#include <string_view>

namespace concur {

enum class LogLevel {
  debug,    ///< detail for diagnosing concur itself
  info,     ///< normal events worth a line (none today)
  warning,  ///< something a user should look at: a stall, a worker killed
  error,    ///< a failure concur worked around: fewer workers, a corrupt stream
};

/// "debug", "info", "warning" or "error".
std::string_view to_string(LogLevel level) noexcept;

/// Receives one message: a single line without a trailing newline.
using LogHandler = std::function<void(LogLevel, std::string_view)>;

/// Replaces the process-wide handler; an empty handler restores the default
/// (the line and a newline on stderr). Thread-safe: a message being
/// delivered finishes with the old handler; later ones use the new.
void set_log_handler(LogHandler handler);

/// Sends one message to the current handler (what concur itself calls; an
/// application may use it too). Thread-safe, never throws.
void log(LogLevel level, std::string_view message) noexcept;

}  // namespace concur
