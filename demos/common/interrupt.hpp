// SPDX-License-Identifier: BSL-1.0
// Ctrl-C for the demos, through concur's external cancellation: the first
// SIGINT requests stop on a std::stop_source, so the running batch ends with
// every input holding a Result (Cancelled for those cut short) and the demo
// prints what it has, then exits with 130; a second SIGINT exits at once.
//
//   concur::demo::Interrupt interrupt("concur-translate");
//   options.stop = interrupt.token();            // or ex->run(task, interrupt.token())
//   ... ex->gather_settled(calls, options) ...
//   if (interrupt.requested()) { print what there is; return concur::demo::Interrupt::kExitCode; }
//
// Why a thread: request_stop() runs the batch's stop callbacks, which take
// locks and wake threads, none of which is async-signal-safe. The handler
// only posts a semaphore (sem_post is); a thread of this helper waits on it
// and requests the stop outside the signal.
#pragma once

#include <functional>
#include <stop_token>
#include <string>
#include <thread>

namespace concur::demo {

class Interrupt {
 public:
  /// The exit status of a demo stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
  static constexpr int kExitCode = 130;

  /// Installs the SIGINT handler (one Interrupt at a time per process).
  /// `program` prefixes the messages; `on_first` (optional) runs on the
  /// helper's thread after the stop is requested (concur-batch stops sending).
  explicit Interrupt(std::string program, std::string first_message = {},
                     std::function<void()> on_first = {});
  /// Restores the default SIGINT action and ends the helper's thread.
  ~Interrupt();
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;

  /// Call first in main, before concur::init: a worker process (which
  /// concur::init keeps serving) then ignores the terminal's Ctrl-C, sent to
  /// the whole process group, and stops when the parent cancels its calls
  /// instead of dying with SIGINT; the parent ignores it until an
  /// Interrupt is installed.
  static void ignore_until_installed() noexcept;

  std::stop_token token() const noexcept { return source_.get_token(); }
  /// Whether Ctrl-C has been pressed (its stop requested).
  bool requested() const noexcept { return source_.stop_requested(); }

 private:
  std::stop_source source_;
  std::function<void()> on_first_;
  std::thread watcher_;
};

}  // namespace concur::demo
