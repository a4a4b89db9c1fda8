// SPDX-License-Identifier: BSL-1.0
#include "control.hpp"

#include <algorithm>
#include <cmath>

namespace concur::batch {

using std::chrono::duration;
using std::chrono::duration_cast;

namespace {
Clock::duration ms_to_duration(double ms) {
  return duration_cast<Clock::duration>(duration<double, std::milli>(ms));
}
double lower_positive(double a, double b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return std::min(a, b);
}
}  // namespace

Controller::Controller(ControlOptions o)
    : opts_(o),
      gate_(o.fixed_limit > 0 ? o.fixed_limit : o.initial_limit),
      limit_(static_cast<double>(o.fixed_limit > 0 ? o.fixed_limit : o.initial_limit)),
      peak_limit_(static_cast<std::size_t>(limit_)),
      pace_rpm_(o.rpm),
      pace_tpm_(o.tpm) {}

Clock::time_point Controller::reserve(std::int64_t tokens) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  Clock::time_point at = std::max(now, pause_until_);
  if (pace_rpm_ > 0) {
    at = std::max(at, next_request_);
    next_request_ = std::max(next_request_, now) + ms_to_duration(60'000.0 / pace_rpm_);
  }
  if (pace_tpm_ > 0) {
    at = std::max(at, next_tokens_);
    next_tokens_ = std::max(next_tokens_, now) +
                   ms_to_duration(60'000.0 * static_cast<double>(tokens) / pace_tpm_);
  }
  estimated_ += tokens;
  return at;
}

void Controller::set_limit_locked(double limit) {
  limit_ = std::clamp(limit, 1.0, static_cast<double>(opts_.max_limit));
  const auto n = static_cast<std::size_t>(limit_);
  peak_limit_ = std::max(peak_limit_, n);
  gate_.set_limit(n);
}

void Controller::on_429(const llm::RawResponse& reply, Clock::time_point now) {
  // Everyone waits: the server's retry-after (or the cookbook's fixed pause).
  std::chrono::milliseconds wait = opts_.pause_after_429;
  if (wait.count() == 0 && opts_.use_headers) {
    wait = reply.rate_limits.retry_after.value_or(std::chrono::milliseconds(0));
  }
  if (wait.count() > 0) pause_until_ = std::max(pause_until_, now + wait);
  if (opts_.fixed_limit > 0) return;
  slow_start_ = false;
  const auto round_trip = ms_to_duration(std::max(rtt_ms_, 1.0));
  if (now - last_decrease_ >= round_trip) {
    last_decrease_ = now;
    set_limit_locked(limit_ * opts_.backoff);
  }
}

void Controller::on_reply(const llm::RawResponse& reply, std::int64_t estimate,
                          const std::optional<llm::Usage>& usage, std::size_t in_flight_at_send,
                          std::chrono::microseconds latency) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  const double ms = static_cast<double>(latency.count()) / 1000.0;
  rtt_ms_ = rtt_ms_ == 0 ? ms : 0.9 * rtt_ms_ + 0.1 * ms;
  const llm::RateLimits& rl = reply.rate_limits;
  if (opts_.use_headers) {
    if (rl.limit_requests && *rl.limit_requests > 0)
      pace_rpm_ =
          lower_positive(opts_.rpm, opts_.headroom * static_cast<double>(*rl.limit_requests));
    if (rl.limit_tokens && *rl.limit_tokens > 0)
      pace_tpm_ = lower_positive(opts_.tpm, opts_.headroom * static_cast<double>(*rl.limit_tokens));
    // Nothing left in the window: wait until one request's worth refills.
    if (rl.remaining_requests && *rl.remaining_requests == 0) {
      double wait_ms = rl.reset_requests ? static_cast<double>(rl.reset_requests->count()) : 0;
      if (rl.limit_requests && *rl.limit_requests > 0)
        wait_ms = std::min(wait_ms > 0 ? wait_ms : 1e9,
                           60'000.0 / static_cast<double>(*rl.limit_requests));
      if (wait_ms > 0 && wait_ms < 1e9)
        pause_until_ = std::max(pause_until_, now + ms_to_duration(wait_ms));
    }
    if (rl.remaining_tokens && rl.limit_tokens && *rl.limit_tokens > 0) {
      const double need = static_cast<double>(estimate) - static_cast<double>(*rl.remaining_tokens);
      if (need > 0) {
        pause_until_ =
            std::max(pause_until_,
                     now + ms_to_duration(need * 60'000.0 / static_cast<double>(*rl.limit_tokens)));
      }
    }
  }
  // The usage corrects the token pace: a refund if the estimate was high.
  if (usage) {
    const std::int64_t actual = usage->total_tokens;
    actual_ += actual;
    if (pace_tpm_ > 0) {
      next_tokens_ += ms_to_duration(60'000.0 * static_cast<double>(actual - estimate) / pace_tpm_);
    }
    ++replies_;
    completion_mean_ += (static_cast<double>(usage->completion_tokens) - completion_mean_) /
                        static_cast<double>(std::min<std::size_t>(replies_, 1000));
  }
  if (reply.status == 429) return on_429(reply, now);
  if (opts_.fixed_limit > 0) return;
  // Grow only while the limit is what holds requests back (Netflix: a limit
  // far above what is in flight says nothing about the server).
  if (static_cast<double>(in_flight_at_send) + 1 >= limit_) {
    set_limit_locked(slow_start_ ? limit_ + 1 : limit_ + 1.0 / limit_);
  }
}

std::int64_t Controller::expected_completion_tokens() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::int64_t>(std::ceil(completion_mean_));
}

ControlStats Controller::stats() const {
  std::lock_guard lock(mutex_);
  ControlStats s;
  s.limit = static_cast<std::size_t>(limit_);
  s.peak_limit = peak_limit_;
  s.paced_rpm = pace_rpm_;
  s.paced_tpm = pace_tpm_;
  s.estimated_tokens = estimated_;
  s.actual_tokens = actual_;
  return s;
}

}  // namespace concur::batch
