// SPDX-License-Identifier: BSL-1.0
// The worker side of the processes executor: what a launched copy of the
// program does inside concur::init, forever.
//
// Two kinds of thread. The reader thread reads request frames from the
// socket: calls go to a queue, cancels stop a running call's context (its
// waits wake, concur::cancelled() turns true) or drop a queued call, a
// revoke hands every queued call back to the parent, and end-of-file (the
// parent closed the socket, exited or died) ends the process. It also
// watches the running calls: one still running a cancel grace after its
// timeout or its cancellation is reported overdue (with the calls started
// so far), the worker starts nothing more, and the parent kills it.
//
// The calls themselves run on an in-process executor (worker_executor,
// default event_loop): one gather of `worker_concurrency` slot loops, each
// taking the next queued call and running it in a context of its own, so
// waits of several calls overlap and a nested gather inside a call runs
// concurrently there too. Each reply is written as soon as its call ends.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "concur/config.hpp"
#include "concur/detail/context.hpp"
#include "concur/registry.hpp"
#include "concur/task.hpp"
#include "executors/processes/last_words.hpp"

namespace concur::executors::processes {

/// How a worker runs its calls, from the parent's Config.
struct WorkerSettings {
  Config executor;  // the in-process executor's configuration
  std::size_t concurrency = 1;
  std::chrono::milliseconds cancel_grace{1000};

  /// Parses kSettingsVariable's value; throws ConfigError for a bad one.
  static WorkerSettings parse(std::string_view text);
  /// The value of kSettingsVariable for a parent with configuration `c`.
  static std::string encode(const Config& c);
  /// Calls one worker runs at once under `c` (sequential runs one).
  static std::size_t concurrency_of(const Config& c);
};

class Server {
 public:
  Server(int in_fd, int out_fd, WorkerSettings settings);
  [[noreturn]] void run();

  const RunningTable& running_table() const noexcept { return table_; }

 private:
  struct Slot {
    std::uint64_t id = 0;  // the call it runs (0: none)
    detail::Context* ctx = nullptr;
    bool cancelled = false;  // the parent cancelled it
    bool overdue_sent = false;
    detail::TimePoint deadline = detail::kNever;     // its own timeout, from its start
    detail::TimePoint cancel_at = detail::kNever;    // when the parent cancelled it
    std::string name;                                // for stall reports
    const detail::RegisteredFunction* fn = nullptr;  // the last function it ran
  };
  class NextCall;

  static Task<void> slot_loop(Server* self, std::size_t slot);
  Task<void> serve(std::string frame, std::size_t slot);

  void read_loop();
  void on_request(std::string_view frame);
  void check_overdue_locked(detail::TimePoint now);
  int poll_timeout_ms_locked(detail::TimePoint now) const;
  [[noreturn]] void on_eof();
  void write_frame(const std::string& frame);
  void reply_without_running(std::uint64_t id, std::uint8_t status);

  const int in_fd_;   // requests
  const int out_fd_;  // hello, replies and stall reports
  WorkerSettings settings_;
  RunningTable table_;
  std::mutex write_mutex_;  // one frame at a time on the reply pipe

  std::mutex mutex_;  // guards everything below
  std::deque<std::string> queue_;
  std::vector<NextCall*> idle_;  // slot loops parked for the next call
  std::vector<Slot> slots_;
  bool eof_ = false;
  bool draining_ = false;  // a call is overdue: start nothing more, the parent kills us
};

}  // namespace concur::executors::processes
