// concur-bench-trace: what recording a trace costs, on the no-op gather of
// concur-bench-core (the worst case: tasks that do nothing but be scheduled).
//
// Per executor, the same gather of N no-op tasks runs with recording off and
// on, interleaved (off, on, off, on, ...) so that drift in machine load hits
// both alike; the best run of each is kept. The floor is the off run, in the
// same binary and run. Target (issue 7): overhead under 5%.
// Also: the cost while off (no Recorder) is one relaxed load and a branch per
// hook, which the off figures include (compare with concur-bench-core's noop).
// The exit code is 0 whatever the figures: this is a report, not a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);
  const Options o = parse(argc, argv);
  fmt::print("concur-bench-trace: no-op gather of {} tasks, best of {} interleaved runs\n", o.n,
             o.runs);
  fmt::print("{:<14} {:>12} {:>12} {:>10}  {}\n", "executor", "off ns/task", "on ns/task",
             "overhead", "target < 5%");
  fmt::print("{}\n", std::string(78, '-'));
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
    double best_off = 1e300, best_on = 1e300;
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
        recorded = rec.stop().tasks.size();  // rebuilding the trace is not timed
      }
    }
    const double off_ns = best_off * 1e9 / static_cast<double>(o.n);
    const double on_ns = best_on * 1e9 / static_cast<double>(o.n);
    const double overhead = (on_ns - off_ns) / off_ns * 100;
    fmt::print("{:<14} {:>12.1f} {:>12.1f} {:>9.1f}%  {}{}\n", name, off_ns, on_ns, overhead,
               overhead < 5 ? "PASS" : "FAIL",
               recorded == static_cast<std::size_t>(o.n)
                   ? ""
                   : fmt::format("  (recorded {} of {} tasks!)", recorded, o.n));
  }
  return 0;
}
