// SPDX-License-Identifier: BSL-1.0
// A client-side requests-per-minute limit: starts are spaced evenly, 60/rpm
// seconds apart (no bursts), in the order callers reserve them. Thread-safe,
// so tasks on every executor thread share one limit.
#pragma once

#include <chrono>
#include <mutex>

namespace concur::llm {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  /// `per_minute` > 0.
  explicit RateLimiter(double per_minute);
  /// Takes the next free start time (now, or later if the limit is reached).
  Clock::time_point reserve();

 private:
  std::mutex mutex_;
  const Clock::duration interval_;
  Clock::time_point next_{};
};

}  // namespace concur::llm
