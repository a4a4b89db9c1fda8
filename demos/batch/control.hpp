// SPDX-License-Identifier: BSL-1.0
// How fast concur-batch sends: the rate and concurrency controller every
// request consults before it is sent and tells about its reply. One shared
// controller is what makes a 429 slow everyone, not just the request that
// got it.
//
//  - Pacing (requests and tokens per minute): --rpm / --tpm, and the limits
//    the server announces (x-ratelimit-limit-requests / -tokens), whichever
//    is lower, at `headroom` of the server's figure. Starts are spaced evenly;
//    a request's tokens are its estimate (input.hpp), corrected by the
//    reply's usage (a refund or a debt on the token pace).
//  - Pauses: a 429's retry-after-ms / Retry-After holds every new send until
//    then; x-ratelimit-remaining-requests 0 (or remaining tokens below the
//    next request's estimate) holds them until that much refills.
//  - Concurrency (adaptive unless --limit): AIMD after Netflix's
//    concurrency-limits AIMDLimit. Slow start doubles the limit each round
//    trip while the limit is what holds requests back; after the first 429
//    it grows by one per round trip; a 429 multiplies it by `backoff`
//    (at most once per round trip, so a burst of 429s is one signal).
#pragma once

#include <chrono>
#include <concur/llm.hpp>
#include <cstdint>
#include <mutex>
#include <optional>

#include "gate.hpp"

namespace concur::batch {

using Clock = std::chrono::steady_clock;

struct ControlOptions {
  double rpm = 0;                 ///< --rpm (0: none of our own)
  double tpm = 0;                 ///< --tpm
  std::size_t fixed_limit = 0;    ///< --limit: fixed concurrency (0: adaptive)
  std::size_t max_limit = 512;    ///< adaptive ceiling
  std::size_t initial_limit = 8;  ///< adaptive start
  double backoff = 0.7;           ///< multiplicative decrease on a 429
  double headroom = 0.97;         ///< pace at this share of the server's announced limits
  bool use_headers = true;        ///< honour x-ratelimit-* (pacing and pauses)
  /// The cookbook's strategy: after any 429, every send pauses this long
  /// (api_request_parallel_processor.py: 15 s). Zero: the server's retry-after.
  std::chrono::milliseconds pause_after_429{0};
};

/// Figures for the summary.
struct ControlStats {
  std::size_t limit = 0;  ///< the concurrency limit at the end
  std::size_t peak_limit = 0;
  double paced_rpm = 0, paced_tpm = 0;  ///< the pace in force at the end (0: none)
  std::int64_t estimated_tokens = 0, actual_tokens = 0;
};

class Controller {
 public:
  explicit Controller(ControlOptions o);
  Gate& gate() noexcept { return gate_; }

  /// When a request estimated at `tokens` may be sent (now or later): the
  /// pauses in force and its reserved slot on the paces.
  Clock::time_point reserve(std::int64_t tokens);
  /// A reply came: learn from its headers and usage. `estimate` is what
  /// reserve() charged; `usage` the reply's, if it had one.
  void on_reply(const llm::RawResponse& reply, std::int64_t estimate,
                const std::optional<llm::Usage>& usage, std::size_t in_flight_at_send,
                std::chrono::microseconds latency);
  /// The tokens a request without max_tokens is expected to produce: the
  /// running mean of the replies so far (16 before any).
  std::int64_t expected_completion_tokens() const;
  ControlStats stats() const;

 private:
  void on_429(const llm::RawResponse& reply, Clock::time_point now);
  void set_limit_locked(double limit);

  ControlOptions opts_;
  Gate gate_;
  mutable std::mutex mutex_;
  double limit_;
  std::size_t peak_limit_;
  bool slow_start_ = true;
  Clock::time_point last_decrease_{};
  double rtt_ms_ = 0;  // smoothed latency
  Clock::time_point pause_until_{};
  // Paces: the next free start, per limit.
  double pace_rpm_ = 0, pace_tpm_ = 0;
  Clock::time_point next_request_{}, next_tokens_{};
  double completion_mean_ = 16;
  std::size_t replies_ = 0;
  std::int64_t estimated_ = 0, actual_ = 0;
};

}  // namespace concur::batch
