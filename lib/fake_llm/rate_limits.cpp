// SPDX-License-Identifier: BSL-1.0
#include "rate_limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace concur::fake_llm::detail {

using std::chrono::milliseconds;

TokenBucket::TokenBucket(double per_minute, milliseconds window, Clock::time_point now)
    : rate_per_ms_(per_minute / 60'000.0),
      capacity_(std::max(1.0, per_minute / 60'000.0 * static_cast<double>(window.count()))),
      level_(capacity_),
      per_minute_(std::lround(per_minute)),
      last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
  if (!enabled() || now <= last_) return;
  const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
  level_ = std::min(capacity_, level_ + ms * rate_per_ms_);
  last_ = now;
}

milliseconds TokenBucket::wait_for(double n) const {
  if (!enabled() || level_ >= n) return milliseconds(0);
  return milliseconds(static_cast<long long>(std::ceil((n - level_) / rate_per_ms_)));
}

milliseconds TokenBucket::until_full() const {
  if (!enabled() || level_ >= capacity_) return milliseconds(0);
  return milliseconds(static_cast<long long>(std::ceil((capacity_ - level_) / rate_per_ms_)));
}

std::string reset_text(milliseconds d) {
  const long long ms = std::max<long long>(0, d.count());
  char s[48];
  if (ms < 1000) {
    std::snprintf(s, sizeof s, "%lldms", ms);
  } else if (ms < 60'000) {
    std::snprintf(s, sizeof s, "%gs", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(s, sizeof s, "%lldm%gs", ms / 60'000, static_cast<double>(ms % 60'000) / 1000.0);
  }
  return s;
}

RateLimits::RateLimits(double rpm, double tpm, milliseconds window) {
  const auto now = TokenBucket::Clock::now();
  if (rpm > 0) requests_ = TokenBucket(rpm, window, now);
  if (tpm > 0) tokens_ = TokenBucket(tpm, window, now);
}

RateVerdict RateLimits::admit(std::int64_t tokens) {
  RateVerdict v;
  if (!enabled()) return v;
  const double n = static_cast<double>(std::max<std::int64_t>(tokens, 0));
  std::lock_guard lock(mutex_);
  const auto now = TokenBucket::Clock::now();
  requests_.refill(now);
  tokens_.refill(now);
  const milliseconds wait_r = requests_.wait_for(1);
  const milliseconds wait_t = tokens_.wait_for(n);
  if (tokens_.enabled() && n > tokens_.capacity()) {
    v.allowed = false;
    v.too_large = true;
    v.limited_by = "tokens";
    v.limit = tokens_.per_minute();
    v.requested = static_cast<long>(n);
  } else if (wait_r.count() > 0 || wait_t.count() > 0) {
    v.allowed = false;
    const bool by_requests = wait_r >= wait_t;
    v.limited_by = by_requests ? "requests" : "tokens";
    v.retry_after = std::max(wait_r, wait_t);
    const TokenBucket& b = by_requests ? requests_ : tokens_;
    v.limit = b.per_minute();
    v.used = std::lround(b.capacity() - b.level());
    v.requested = by_requests ? 1 : static_cast<long>(n);
  } else {
    requests_.take(requests_.enabled() ? 1 : 0);
    if (tokens_.enabled()) tokens_.take(n);
  }
  // Reported as whole units, like OpenAI: what remains of the current window.
  if (requests_.enabled()) {
    v.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(requests_.per_minute()));
    v.headers.emplace_back(
        "x-ratelimit-remaining-requests",
        std::to_string(std::max(0L, std::lround(std::floor(requests_.level())))));
    v.headers.emplace_back("x-ratelimit-reset-requests", reset_text(requests_.until_full()));
  }
  if (tokens_.enabled()) {
    v.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(tokens_.per_minute()));
    v.headers.emplace_back("x-ratelimit-remaining-tokens",
                           std::to_string(std::max(0L, std::lround(std::floor(tokens_.level())))));
    v.headers.emplace_back("x-ratelimit-reset-tokens", reset_text(tokens_.until_full()));
  }
  return v;
}

}  // namespace concur::fake_llm::detail
