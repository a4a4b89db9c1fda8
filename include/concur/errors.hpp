// SPDX-License-Identifier: BSL-1.0
// Exception types raised by concur, and the fixed parts of their messages.
//
// Every error concur raises derives from concur::Error, so a caller can catch
// the library's failures apart from the workload's own exceptions. The message
// prefixes are named constants so that tests (and users) can match on them
// instead of copying strings.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace concur {

/// Fixed fragments of concur's error messages: what() contains one of these
/// with details around it (a Cancelled the library raises says just kCancelled).
namespace messages {
/// Cancelled: a sibling failed, the caller was cancelled, or the batch stopped.
inline constexpr std::string_view kCancelled = "task cancelled";
/// TimeoutError: followed by the task's budget in ms and the call's name.
inline constexpr std::string_view kTimedOut = "task timed out after";
/// DeadlineExceeded: followed by the batch's deadline in ms.
inline constexpr std::string_view kDeadlineExceeded = "batch deadline exceeded after";
/// UsageError: a library wait was awaited by a task no executor is running.
inline constexpr std::string_view kNoExecutor = "no concur executor is running this task";
/// ConfigError: `executor` names no executor.
inline constexpr std::string_view kUnknownExecutor = "unknown executor";
/// ConfigError: a TOML key, Config::set() key or CONCUR_* variable is not known.
inline constexpr std::string_view kUnknownKey = "unknown configuration key";
/// ConfigError: a value is outside what its key accepts.
inline constexpr std::string_view kBadValue = "invalid value";
/// ConfigError: a configuration file names a directory, a device or a pipe.
inline constexpr std::string_view kNotAFile = "not a regular file:";
/// UsageError: an executor's blocking call was made while another thread's
/// call on the same executor was still running.
inline constexpr std::string_view kConcurrentUse =
    "an executor runs one blocking call at a time, and another thread's call on this executor is "
    "still running (give each thread its own executor)";
/// UsageError (then std::terminate): an executor was destroyed while a
/// thread's blocking call on it was still running.
inline constexpr std::string_view kDestroyedWhileRunning =
    "an executor was destroyed while a blocking call on it was still running (destroy it only "
    "after every call on it has returned)";
/// Error: the fibers executor could not map a stack for a new fiber.
inline constexpr std::string_view kStackAllocation = "cannot allocate a fiber stack";
/// UsageError: concur::Lock::unlock() on a lock nobody holds.
inline constexpr std::string_view kUnlockUnlocked = "unlock of a concur::Lock that is not locked";
/// UsageError: concur::Latch::count_down() past zero.
inline constexpr std::string_view kLatchBelowZero = "concur::Latch counted down below zero";
/// QueueClosed: push() on a concur::Queue after close().
inline constexpr std::string_view kQueueClosed = "push to a closed concur::Queue";
/// UsageError: a concur::Queue made with capacity 0.
inline constexpr std::string_view kQueueCapacity = "concur::Queue capacity must be at least 1";
}  // namespace messages

/// Base of every exception concur raises itself. Like every exception type
/// here, an immutable value: safe to read from any thread.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A task was cancelled: a sibling failed in a fail-fast gather, the caller was
/// cancelled, or the task never started because its batch stopped first.
class Cancelled : public Error {
 public:
  Cancelled() : Error(std::string(messages::kCancelled)) {}
  /// A cancellation with a specific message (TimeoutError and DeadlineExceeded use it).
  explicit Cancelled(const std::string& why) : Error(why) {}
};

/// A task ran longer than its per-task `timeout`.
class TimeoutError : public Cancelled {
 public:
  using Cancelled::Cancelled;
};

/// A batch ran longer than its `deadline`; every task still unfinished gets this.
class DeadlineExceeded : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

/// A configuration key or value was rejected. The message names the key, the
/// bad value and what is accepted.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Misuse of the API (e.g. awaiting a library wait in a task that no executor
/// runs). A programming error, not a condition to retry.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// A push onto a concur::Queue that has been closed.
class QueueClosed : public Error {
 public:
  QueueClosed() : Error(std::string(messages::kQueueClosed)) {}
};

}  // namespace concur
