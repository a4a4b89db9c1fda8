// SPDX-License-Identifier: BSL-1.0
#include "workload.hpp"

#include <time.h>

#include <algorithm>
#include <cstdio>

namespace concur::demo {

namespace {

constexpr std::uint64_t kChunk = 1 << 16;  // rounds between cancellation checks

// splitmix64's finaliser, chained: each round depends on the last, so the
// compiler can neither vectorise nor skip it.
std::uint64_t mix(std::uint64_t h, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t i = from; i < to; ++i) {
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= i;
  }
  return h;
}

// CPU time of this thread: on a busy machine wall time would count the time
// other programs had the core, and make the tasks too short.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

Task<int> io_wait(std::chrono::milliseconds d, int i) {
  co_await sleep_for(d);
  co_return i;
}

Task<std::string> cpu_hash(std::uint64_t seed, std::uint64_t rounds) {
  std::uint64_t h = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (std::uint64_t done = 0; done < rounds; done += kChunk) {
    throw_if_cancelled();
    h = mix(h, done, std::min(rounds, done + kChunk));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  co_return std::string(hex);
}

std::uint64_t calibrate_rounds(std::chrono::milliseconds target) {
  std::uint64_t rounds = kChunk * 16;
  volatile std::uint64_t sink = 0;
  for (;;) {
    const double t0 = thread_cpu_s();
    sink = sink + mix(1, 0, rounds);
    const double s = thread_cpu_s() - t0;
    if (s >= 0.02) {
      const double per_s = static_cast<double>(rounds) / s;
      return std::max<std::uint64_t>(
          1, static_cast<std::uint64_t>(per_s * std::chrono::duration<double>(target).count()));
    }
    rounds *= 4;
  }
}

// Registered so the processes executor can run them in its workers (and so
// traces name them).
CONCUR_REGISTER(io_wait);
CONCUR_REGISTER(cpu_hash);

}  // namespace concur::demo
