// SPDX-License-Identifier: BSL-1.0
// Helpers shared by the tests of the processes executor: making one with
// settings, and measuring overlap from the intervals calls record themselves
// (the steady clock is one per host, so workers' times compare directly).
#pragma once

#include <algorithm>
#include <chrono>
#include <concur/concur.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace concur::testing {

/// A processes executor with `workers` workers and more settings.
inline std::unique_ptr<Executor> make_processes(
    int workers, const std::vector<std::pair<std::string, std::string>>& more = {}) {
  Config c;
  c.set("executor", "processes", "test");
  c.set("workers", std::to_string(workers), "test");
  for (const auto& [k, v] : more) c.set(k, v, "test");
  return make_executor(c);
}

/// Steady-clock nanoseconds at a call's start and end.
using Interval = std::pair<long long, long long>;

inline long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Sleeps `d` and returns when it ran: its start and end (a registered call).
inline Task<Interval> interval(std::chrono::milliseconds d) {
  const long long start = now_ns();
  co_await sleep_for(d);
  co_return Interval{start, now_ns()};
}
CONCUR_REGISTER(interval);

/// The most intervals open at once.
inline int most_at_once(const std::vector<Interval>& spans) {
  std::vector<std::pair<long long, int>> events;
  for (auto [s, e] : spans) {
    events.push_back({s, +1});
    events.push_back({e, -1});
  }
  std::sort(events.begin(), events.end());  // an end sorts before a start at the same time
  int open = 0, most = 0;
  for (auto [t, d] : events) most = std::max(most, open += d);
  return most;
}

}  // namespace concur::testing
