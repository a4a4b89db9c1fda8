// SPDX-License-Identifier: BSL-1.0
// concur-bench-fibers: the fibers executor beside a raw Boost.Fiber floor.
//
// The floor is skynet written directly on Boost.Fiber the way its docs
// suggest: pooled stacks, children launched with launch::dispatch and joined,
// results through the parent's stack. concur must do the same work through
// nested gathers (one fiber per task, cancellation tree, result slots) in no
// more time. Also: the per-task cost of a gather of no-op tasks, and the
// speed-up of threads = 2 on the same workloads.
//
//   concur-bench-fibers [--size N] [--noop N] [--reps R]
#include <fmt/format.h>

#include <algorithm>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "bench_support.hpp"

using concur::Task;

using concur::bench::arg;
using concur::bench::best_of;
using concur::bench::noop;
using concur::bench::skynet;

namespace {

constexpr long kDiv = 10;

// --- the floor: plain Boost.Fiber ---
void raw_skynet(boost::fibers::pooled_fixedsize_stack& stacks, long& out, long num, long size) {
  if (size == 1) {
    out = num;
    return;
  }
  long parts[kDiv];
  boost::fibers::fiber children[kDiv];
  const long step = size / kDiv;
  for (long i = 0; i < kDiv; ++i) {
    children[i] = boost::fibers::fiber(boost::fibers::launch::dispatch, std::allocator_arg, stacks,
                                       raw_skynet, std::ref(stacks), std::ref(parts[i]),
                                       num + i * step, step);
  }
  for (auto& c : children) c.join();
  out = std::accumulate(parts, parts + kDiv, 0L);
}

long raw_floor(long size) {
  // 64 KiB like the executor's default; the pool keeps stacks for reuse.
  boost::fibers::pooled_fixedsize_stack stacks(64 * 1024);
  long out = 0;
  boost::fibers::fiber(boost::fibers::launch::dispatch, std::allocator_arg, stacks, raw_skynet,
                       std::ref(stacks), std::ref(out), 0L, size)
      .join();
  return out;
}

// --- the same on concur ---

concur::Config fibers(int threads) {
  concur::Config c = concur::Config::from_env();
  c.executor = "fibers";
  c.threads = threads;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const long size = arg(argc, argv, "--size", 1'000'000);
  const long noops = arg(argc, argv, "--noop", 1'000'000);
  const int reps = static_cast<int>(arg(argc, argv, "--reps", 5));
  const long expect = size * (size - 1) / 2;
  int failures = 0;
  auto check = [&](const char* what, long got) {
    if (got != expect) {
      fmt::print(stderr, "{}: wrong sum {} (expected {})\n", what, got, expect);
      ++failures;
    }
  };

  // Runs on a thread of its own so the floor, like the executor, starts
  // with a fresh fiber scheduler.
  double floor_s = 0;
  std::thread([&] {
    floor_s = best_of(reps, [&] { check("raw floor", raw_floor(size)); });
  }).join();

  struct Row {
    std::string what;
    double seconds;
    double per_task_ns;
    std::string ratio;
  };
  std::vector<Row> rows;
  const double skynet_tasks = static_cast<double>(size) * 10 / 9;  // every node of the tree
  rows.push_back({fmt::format("raw Boost.Fiber skynet {} (floor)", size), floor_s,
                  floor_s / skynet_tasks * 1e9, "1.00x floor"});

  double sky[3] = {0, 0, 0};
  double noop_s[3] = {0, 0, 0};
  for (int threads : {1, 2}) {
    auto ex = concur::make_executor(fibers(threads));
    sky[threads] = best_of(reps, [&] { check("fibers skynet", ex->run(skynet(0, size))); });
    rows.push_back({fmt::format("fibers threads={} skynet {} (nested gather)", threads, size),
                    sky[threads], sky[threads] / skynet_tasks * 1e9,
                    fmt::format("{:.2f}x floor", sky[threads] / floor_s)});
    std::vector<decltype(concur::call(noop, 0))> calls;
    calls.reserve(static_cast<std::size_t>(noops));
    for (long i = 0; i < noops; ++i) calls.push_back(concur::call(noop, static_cast<int>(i)));
    noop_s[threads] = best_of(reps, [&] {
      if (ex->gather(calls).size() != static_cast<std::size_t>(noops)) ++failures;
    });
    rows.push_back({fmt::format("fibers threads={} gather of {} no-op tasks", threads, noops),
                    noop_s[threads], noop_s[threads] / static_cast<double>(noops) * 1e9,
                    threads == 1 ? std::string("-")
                                 : fmt::format("{:.2f}x vs threads=1", noop_s[1] / noop_s[2])});
  }
  rows[3].ratio += fmt::format(", {:.2f}x speed-up vs threads=1", sky[1] / sky[2]);

  fmt::print("{:<52} {:>10} {:>12}  {}\n", "benchmark (best of " + std::to_string(reps) + ")",
             "seconds", "ns/task", "ratio");
  for (const Row& r : rows) {
    fmt::print("{:<52} {:>10.3f} {:>12.1f}  {}\n", r.what, r.seconds, r.per_task_ns, r.ratio);
  }
  if (sky[1] > floor_s) {
    fmt::print("target missed: fibers skynet is {:.2f}x the raw floor (target <= 1x)\n",
               sky[1] / floor_s);
  }
  return failures == 0 ? 0 : 1;
}
