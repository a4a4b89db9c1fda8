// SPDX-License-Identifier: BSL-1.0
// OpenAI-like rate limits for the fake server: a requests-per-minute and a
// tokens-per-minute token bucket, refilled continuously, each holding at most
// `window` worth of its rate (OpenAI enforces per-minute limits over shorter
// periods too: 6,000 RPM does not allow 6,000 requests in one second). A
// request takes one request and its tokens from both, or is refused with
// how long until it would fit. Every answer carries the x-ratelimit-* values.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace concur::fake_llm::detail {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket() = default;
  /// `per_minute` > 0; the bucket starts full.
  TokenBucket(double per_minute, std::chrono::milliseconds window, Clock::time_point now);
  bool enabled() const noexcept { return rate_per_ms_ > 0; }
  void refill(Clock::time_point now);
  double level() const noexcept { return level_; }
  double capacity() const noexcept { return capacity_; }
  /// Time until `n` fit (zero if they do now); n > capacity never fits.
  std::chrono::milliseconds wait_for(double n) const;
  /// Time until the bucket is full again.
  std::chrono::milliseconds until_full() const;
  void take(double n) { level_ -= n; }
  long per_minute() const noexcept { return per_minute_; }

 private:
  double rate_per_ms_ = 0, capacity_ = 0, level_ = 0;
  long per_minute_ = 0;
  Clock::time_point last_{};
};

/// What the limits say about one request, and the headers that say it.
struct RateVerdict {
  bool allowed = true;
  bool too_large = false;  ///< more tokens than the bucket ever holds
  std::string limited_by;  ///< "requests" or "tokens" when refused
  std::chrono::milliseconds retry_after{0};
  long limit = 0, used = 0, requested = 0;  ///< for the 429 message
  /// x-ratelimit-* name/value pairs (empty when no limit is set).
  std::vector<std::pair<std::string, std::string>> headers;
};

class RateLimits {
 public:
  /// 0 disables that limit; both 0: admit() allows everything, no headers.
  RateLimits(double rpm, double tpm, std::chrono::milliseconds window);
  bool enabled() const noexcept { return requests_.enabled() || tokens_.enabled(); }
  /// Admits (and charges) a request worth `tokens`, or refuses it. Thread-safe.
  RateVerdict admit(std::int64_t tokens);

 private:
  std::mutex mutex_;
  TokenBucket requests_, tokens_;
};

/// A duration as OpenAI writes x-ratelimit-reset-*: "20ms", "1.5s", "6m0s".
std::string reset_text(std::chrono::milliseconds d);

}  // namespace concur::fake_llm::detail
