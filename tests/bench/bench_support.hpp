// SPDX-License-Identifier: BSL-1.0
// Pieces the executor benchmarks share: the skynet tree on concur, a no-op
// task, best-of-N timing and a tiny flag reader.
#pragma once

#include <algorithm>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <utility>
#include <vector>

namespace concur::bench {

/// Fan-out of every skynet node.
inline constexpr long kSkynetDiv = 10;

/// Skynet through nested gathers: the sum of num .. num + size - 1.
inline Task<long> skynet(long num, long size) {
  if (size == 1) co_return num;
  std::vector<decltype(concur::call(skynet, 0L, 0L))> calls;
  calls.reserve(kSkynetDiv);
  const long step = size / kSkynetDiv;
  for (long i = 0; i < kSkynetDiv; ++i) calls.push_back(concur::call(skynet, num + i * step, step));
  std::vector<long> parts = co_await concur::gather(std::move(calls));
  co_return std::accumulate(parts.begin(), parts.end(), 0L);
}

inline Task<int> noop(int v) { co_return v; }

/// The shortest wall time, in seconds, of `reps` runs of `fn`.
inline double best_of(int reps, const std::function<void()>& fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

/// The shortest wall times of `a` and of `b` over `reps` rounds, each round
/// running both back to back: on a shared machine a burst of someone else's
/// load then hits a floor and the measurement it is the floor of alike,
/// instead of skewing their ratio.
inline std::pair<double, double> best_of_interleaved(int reps, const std::function<void()>& a,
                                                     const std::function<void()>& b) {
  double best_a = 1e300, best_b = 1e300;
  for (int r = 0; r < reps; ++r) {
    best_a = std::min(best_a, best_of(1, a));
    best_b = std::min(best_b, best_of(1, b));
  }
  return {best_a, best_b};
}

/// The integer after flag `name` on the command line, else `fallback`.
inline long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  }
  return fallback;
}

}  // namespace concur::bench
