// SPDX-License-Identifier: BSL-1.0
// The trace recorder's hooks in the core (task start and end, waits, stalls).
//
// Recording is off by default; every hook site is written as
//   if (concur::trace::detail::enabled()) concur::trace::detail::task_begin();
// so the cost when off is one relaxed load and a predictable branch. The
// recorder itself (per-thread buffers, export) lives in lib/core/trace*.cpp;
// the public API is concur/trace.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <string_view>

namespace concur::detail {
class Context;
}

namespace concur::trace::detail {

/// True while a trace::Recorder is recording.
inline std::atomic<bool> g_enabled{false};

inline bool enabled() noexcept { return g_enabled.load(std::memory_order_relaxed); }

/// The current task (current_context()) got a thread for the first time.
void task_begin() noexcept;
/// Task `ctx` ended, with an error or not. Its call must still be alive.
void task_end(concur::detail::Context& ctx, bool failed) noexcept;
/// The task running `ctx` is about to park in a wait (sleep, nested gather, I/O).
void wait_begin(const concur::detail::Context* ctx) noexcept;
/// The task running `ctx` runs again after a wait.
void wait_end(const concur::detail::Context* ctx) noexcept;
/// The task running `ctx` runs out of this process (a routed call's stand-in):
/// its own task is recorded from its worker's report, so drop this one.
void task_elsewhere(const concur::detail::Context* ctx) noexcept;

/// Inside a worker process: where the waits of its calls go (to be sent
/// back with each reply) instead of to a recorder. While a sink is set and
/// recording is enabled, the other hooks record nothing.
class WaitSink {
 public:
  virtual void wait(const concur::detail::Context* ctx, bool begin) noexcept = 0;

 protected:
  ~WaitSink() = default;
};
/// Installs `sink` (never removed) and enables the hooks.
void set_wait_sink(WaitSink* sink) noexcept;

/// The stall detector reported task `task` holding this thread for `held`.
void stall(std::string_view executor, std::string_view task,
           std::chrono::nanoseconds held) noexcept;

}  // namespace concur::trace::detail
