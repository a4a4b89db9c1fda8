// SPDX-License-Identifier: BSL-1.0
// How long a polling MPI loop sleeps between idle rounds: not at all while
// messages flow, then doubling up to a cap, so an idle rank costs a few
// hundred wake-ups a second and a busy one no added latency.
#pragma once

#include <algorithm>
#include <chrono>

namespace concur::executors::cluster {

inline constexpr std::chrono::microseconds kIdleSleepMin{20};
inline constexpr std::chrono::microseconds kIdleSleepMax{2000};

class IdleBackoff {
 public:
  void reset() noexcept { sleep_ = std::chrono::microseconds{0}; }
  /// The sleep before the next round, growing with each idle round.
  std::chrono::microseconds next() noexcept {
    sleep_ = std::clamp(sleep_ * 2, kIdleSleepMin, kIdleSleepMax);
    return sleep_;
  }

 private:
  std::chrono::microseconds sleep_{0};
};

}  // namespace concur::executors::cluster
