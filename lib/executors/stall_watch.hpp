// SPDX-License-Identifier: BSL-1.0
// The stall watchdog: reports a task that holds an event_loop or fibers
// thread past the stall threshold WHILE it holds it, not only once it lets
// go. A CPU loop that never waits would otherwise run silently forever (the
// siblings that could cancel it cannot run), and a detector that reports at
// the end of a leg reports nothing.
//
// Each watched thread owns a StallWatch and publishes the leg it is running
// (which task, since when) with a few atomic stores; one process-wide
// watchdog thread looks at every watch and reports a leg still running at
// 1x, 2x, 4x, ... the threshold. The end-of-leg report stays with the
// thread that stalled (it knows the leg's exact own time).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

#include "concur/detail/context.hpp"

namespace concur::executors {

class StallWatch {
 public:
  /// Called on the watchdog thread for a leg still running after `held`.
  using OngoingReport = std::function<void(std::string_view task, std::chrono::nanoseconds held)>;

  /// `threshold` zero: nothing is watched and the calls below do nothing.
  StallWatch(std::chrono::nanoseconds threshold, OngoingReport report);
  ~StallWatch();
  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;

  /// The watched thread starts running `name`'s task (at `now`, coarse
  /// monotonic ns). `name` must stay readable until the next begin/end.
  void begin_leg(detail::CallName name, std::chrono::nanoseconds now) noexcept {
    name_object_.store(name.object, std::memory_order_relaxed);
    name_get_.store(name.get, std::memory_order_relaxed);
    start_ns_.store(now.count(), std::memory_order_relaxed);
    switch_leg(next_leg_++);
  }
  /// The watched thread stops running a task (waits, or runs none).
  void end_leg() noexcept { switch_leg(0); }

  // For the watchdog (lib/executors/stall_watch.cpp).
  struct Scan;
  void scan(Scan& s) noexcept;

 private:
  // seq_cst against reading_: either the watchdog sees the leg has changed
  // before it reads the name, or this thread waits until it has read it (the
  // name's storage may go with the task once its leg ends).
  void switch_leg(std::uint64_t leg) noexcept {
    leg_.store(leg, std::memory_order_seq_cst);
    while (reading_.load(std::memory_order_seq_cst)) {
    }
  }

  const std::chrono::nanoseconds threshold_;
  const OngoingReport report_;
  std::uint64_t next_leg_ = 1;  // the watched thread's own counter
  std::atomic<std::uint64_t> leg_{0};
  std::atomic<std::int64_t> start_ns_{0};
  std::atomic<const void*> name_object_{nullptr};
  std::atomic<std::string_view (*)(const void*)> name_get_{nullptr};
  std::atomic<bool> reading_{false};
  // The watchdog's own state for the leg it last saw.
  std::uint64_t seen_leg_ = 0;
  std::chrono::nanoseconds next_report_{0};  // held time of the next report
};

/// Coarse monotonic time (a few ns; ~4 ms resolution), the clock of legs.
std::chrono::nanoseconds coarse_now() noexcept;

}  // namespace concur::executors
