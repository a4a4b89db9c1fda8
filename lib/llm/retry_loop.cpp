// SPDX-License-Identifier: BSL-1.0
// Waits (backoff, rate limit) are concur::sleep_until / sleep_for, so on
// event_loop and fibers a retrying request costs no thread, and every wait is
// a cancellation point.
#include "llm/retry_loop.hpp"

#include "concur/sleep.hpp"
#include "llm/client_state.hpp"
#include "llm/rate_limiter.hpp"
#include "llm/retry.hpp"

namespace concur::llm {

bool failed_retryably(const Attempt& a) {
  return a.connection_error != nullptr || retry::should_retry(*a.reply);
}

Task<Attempt> Client::State::send_with_retries(http::Request& exchange, int max_retries,
                                               std::function<bool(const Attempt&)> retryable,
                                               std::function<void(int)> before_each) {
  for (int n = 1;; ++n) {
    if (limiter) {
      const auto slot = limiter->reserve();
      if (slot > RateLimiter::Clock::now()) co_await concur::sleep_until(slot);
    }
    if (before_each) before_each(n);
    Attempt a;
    a.number = n;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      a.reply = co_await http::request(exchange);
    } catch (const http::ConnectionError&) {
      a.connection_error = std::current_exception();
    }
    a.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    if (!retryable(a) || n > max_retries) co_return a;
    co_await concur::sleep_for(retry::backoff(options, n - 1, a.reply ? &*a.reply : nullptr));
  }
}

}  // namespace concur::llm
