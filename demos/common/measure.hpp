// SPDX-License-Identifier: BSL-1.0
// Wall-clock and CPU time of one run, the two numbers that tell concurrency
// (less wall, same CPU) from parallelism (CPU above wall).
#pragma once

#include <sys/resource.h>

#include <chrono>

namespace concur::demo {

class Stopwatch {
 public:
  Stopwatch() : wall_start_(std::chrono::steady_clock::now()), cpu_start_(cpu_now()) {}
  double wall_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start_).count();
  }
  /// CPU seconds (user + system) of this process and its finished children.
  double cpu_s() const { return cpu_now() - cpu_start_; }

 private:
  static double cpu_now() {
    double total = 0;
    for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
      rusage u{};
      getrusage(who, &u);
      total += static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    }
    return total;
  }
  std::chrono::steady_clock::time_point wall_start_;
  double cpu_start_;
};

}  // namespace concur::demo
