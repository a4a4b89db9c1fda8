// SPDX-License-Identifier: BSL-1.0
// concur-bench-trace: what recording a trace costs, on the no-op gather of
// concur-bench-core (the worst case: tasks that do nothing but be scheduled).
//
// Per executor, the same gather of N no-op tasks runs with recording off and
// on, interleaved (off, on, off, on, ...) so that drift in machine load hits
// both alike; the best run of each is kept. The floor is the off run, in the
// same binary and run. Target (issue 7): overhead under 5%.
// Also: the cost while off (no Recorder) is one relaxed load and a branch per
// hook, which the off figures include (compare with concur-bench-core's noop).
// Also reported: the overhead in nanoseconds per task (the figure that does
// not move when the gather itself gets cheaper), what stop() costs per
// recorded task (rebuilding the trace: paid once per recording, after the
// gathers), and what one read of the recorder's clock costs here (a recorder
// of per-task start and end times pays two per task).
// The exit code is 0 whatever the figures: this is a report, not a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <fmt/format.h>

#include <concur/concur.hpp>
#include <concur/trace.hpp>

namespace {

using Clock = std::chrono::steady_clock;

concur::Task<void> noop_task() { co_return; }

struct Options {
  long n = 200'000;
  int runs = 7;
  std::vector<std::string> executors;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "concur-bench-trace: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--n") {
      o.n = std::max(1000L, std::atol(value().c_str()));
    } else if (a == "--runs") {
      o.runs = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--executor" || a == "-e") {
      o.executors.push_back(value());
    } else if (a == "--quick") {
      o.n = 50'000;
      o.runs = 3;
    } else {
      std::fprintf(stderr,
                   "usage: concur-bench-trace [--n TASKS] [--runs N] [--executor NAME]... "
                   "[--quick]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

// Nanoseconds per read of the clock the recorder stamps events with (the
// time-stamp counter on x86; else steady_clock), best of a few tries.
double clock_read_ns() {
  constexpr int kReads = 1'000'000;
  double best = 1e300;
  for (int t = 0; t < 5; ++t) {
    std::uint64_t sink = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < kReads; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      sink += __rdtsc();
#else
      sink += static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
#endif
    }
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kReads;
    if (sink != 1) best = std::min(best, ns);  // uses sink, so the loop stays
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);
  const Options o = parse(argc, argv);
  fmt::print("concur-bench-trace: no-op gather of {} tasks, best of {} interleaved runs\n", o.n,
             o.runs);
  const double read_ns = clock_read_ns();
  fmt::print("one read of the recorder's clock: {:.1f} ns (back to back)\n", read_ns);
  fmt::print("{:<14} {:>12} {:>12} {:>10} {:>10} {:>14}  {}\n", "executor", "off ns/task",
             "on ns/task", "overhead", "+ns/task", "stop ns/task", "target < 5%");
  fmt::print("{}\n", std::string(90, '-'));
  for (std::string_view name : concur::executor_names()) {
    if (!o.executors.empty() &&
        std::find(o.executors.begin(), o.executors.end(), name) == o.executors.end())
      continue;
    if (name == "processes") continue;  // its no-op cost is the round trip to a worker
    concur::Config cfg;
    cfg.executor = std::string(name);
    auto ex = concur::make_executor(cfg);
    std::vector<decltype(concur::call(noop_task))> calls(static_cast<std::size_t>(o.n),
                                                         concur::call(noop_task));
    ex->gather(calls);  // warm up: stacks, pools, frame allocator
    double best_off = 1e300, best_on = 1e300, best_stop = 1e300;
    std::size_t recorded = 0;
    for (int r = 0; r < o.runs; ++r) {
      {
        const auto t0 = Clock::now();
        ex->gather(calls);
        best_off = std::min(best_off, std::chrono::duration<double>(Clock::now() - t0).count());
      }
      {
        concur::trace::Recorder rec(*ex);
        const auto t0 = Clock::now();
        ex->gather(calls);
        best_on = std::min(best_on, std::chrono::duration<double>(Clock::now() - t0).count());
        // Rebuilding the trace is timed apart: it is paid once per recording,
        // after the gathers, not by the tasks.
        const auto s0 = Clock::now();
        const concur::trace::Trace t = rec.stop();
        best_stop = std::min(best_stop, std::chrono::duration<double>(Clock::now() - s0).count());
        recorded = t.tasks.size();
      }
    }
    const double off_ns = best_off * 1e9 / static_cast<double>(o.n);
    const double on_ns = best_on * 1e9 / static_cast<double>(o.n);
    const double overhead = (on_ns - off_ns) / off_ns * 100;
    const double stop_ns = best_stop * 1e9 / static_cast<double>(o.n);
    fmt::print("{:<14} {:>12.1f} {:>12.1f} {:>9.1f}% {:>10.1f} {:>14.1f}  {}{}\n", name, off_ns,
               on_ns, overhead, on_ns - off_ns, stop_ns, overhead < 5 ? "PASS" : "FAIL",
               recorded == static_cast<std::size_t>(o.n)
                   ? ""
                   : fmt::format("  (recorded {} of {} tasks!)", recorded, o.n));
  }
  return 0;
}
