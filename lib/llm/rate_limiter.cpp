// SPDX-License-Identifier: BSL-1.0
#include "llm/rate_limiter.hpp"

#include <algorithm>

namespace concur::llm {

RateLimiter::RateLimiter(double per_minute)
    : interval_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(60.0 / per_minute))) {}

RateLimiter::Clock::time_point RateLimiter::reserve() {
  std::lock_guard lock(mutex_);
  const Clock::time_point slot = std::max(Clock::now(), next_);
  next_ = slot + interval_;
  return slot;
}

}  // namespace concur::llm
