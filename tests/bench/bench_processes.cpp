// SPDX-License-Identifier: BSL-1.0
// concur-bench-processes: the processes executor beside floors measured in
// the same binary and run (issue 5).
//
//   overhead  N trivial registered calls (default 100,000) on `processes`
//             vs  the same batch on `sequential` (the in-process cost of a call)
//             target: <= 2 us per call amortised (issue 13; Python's ProcessPoolExecutor: ~69 us)
//   startup   make_executor + the first call answered by each worker
//             vs  posix_spawn + wait of this same program exiting at once
//   cpu       T calls of ~M ms hashing on `processes` vs the same on `sequential`
//             target: >= 1.8x on 2 cores
//   codec     encode + decode of (int, string) arguments and an int result:
//             concur's binary codec vs Boost.JSON value_from/serialize/parse/value_to
//
// Printed as PASS/MISS; the exit code reports wrong results only.
//
//   concur-bench-processes [--calls N] [--workers W] [--cpu-tasks T] [--cpu-ms M] [--reps R]
//                          [--executor processes|cluster]
//
// With --executor cluster, under `mpirun -np 3` (one worker per rank), the
// targets are issue 14's: <= 20 us per call amortised, >= 1.8x CPU speed-up.
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

extern char** environ;

using concur::Task;
using Clock = std::chrono::steady_clock;

namespace {

int add(int a, int b) { return a + b; }
CONCUR_REGISTER(add);

// CPU work that no compiler folds away: rounds of a 64-bit mix.
std::uint64_t mix_rounds(std::uint64_t seed, long rounds) {
  std::uint64_t h = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (long i = 0; i < rounds; ++i) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 29;
    h += static_cast<std::uint64_t>(i);
  }
  return h;
}
CONCUR_REGISTER(mix_rounds);

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::unique_ptr<concur::Executor> make(const std::string& name, int workers) {
  concur::Config c;
  c.executor = name;
  c.workers = workers;
  return concur::make_executor(c);
}

const char* verdict(bool ok) { return ok ? "PASS" : "MISS"; }

// The executor under test (processes, or cluster under mpirun).
std::string g_executor = "processes";
double overhead_target_us() { return g_executor == "cluster" ? 20.0 : 2.0; }

bool bench_overhead(long n, int workers, int reps) {
  std::vector<decltype(concur::call(add, 0, 0))> calls;
  calls.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) calls.push_back(concur::call(add, static_cast<int>(i), 1));
  auto check = [&](const std::vector<int>& out) {
    for (long i = 0; i < n; ++i) {
      if (out[static_cast<std::size_t>(i)] != i + 1) return false;
    }
    return true;
  };
  bool correct = true;
  auto best = [&](concur::Executor& ex) {
    double b = 1e99;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      std::vector<int> out = ex.gather(calls);
      b = std::min(b, seconds(Clock::now() - t0));
      correct = correct && check(out);
    }
    return b;
  };
  auto seq = make("sequential", 0);
  auto pro = make(g_executor, workers);
  pro->gather(concur::call(add, 1, 1));  // workers up
  const double floor_s = best(*seq);
  const double s = best(*pro);
  const double us = s / static_cast<double>(n) * 1e6;
  fmt::print(
      "overhead  {:>7} calls, {} {} workers: {:8.3f} s = {:6.2f} us/call   floor (sequential) "
      "{:6.3f} us/call   ratio {:6.1f}x   target <= {:g} us/call: {}\n",
      n, pro->lanes(), g_executor, s, us, floor_s / static_cast<double>(n) * 1e6, s / floor_s,
      overhead_target_us(), verdict(us <= overhead_target_us()));
  return correct;
}

bool bench_startup(int workers, int reps) {
  double floor_s = 1e99;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    pid_t pid = 0;
    std::string self = "/proc/self/exe";
    char arg1[] = "--exit";
    char* argv[] = {self.data(), arg1, nullptr};
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, environ) != 0) return false;
    waitpid(pid, nullptr, 0);
    floor_s = std::min(floor_s, seconds(Clock::now() - t0));
  }
  double s = 1e99;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    auto ex = make(g_executor, workers);
    // Slow calls go one per worker, so every worker must have started.
    std::vector<decltype(concur::call(mix_rounds, std::uint64_t{0}, 0L))> calls(
        static_cast<std::size_t>(workers), concur::call(mix_rounds, std::uint64_t{1}, 2'000'000L));
    ex->gather(calls);
    s = std::min(s, seconds(Clock::now() - t0) - 0.0);
  }
  // Subtract the calls' own run time, measured on sequential.
  auto seq = make("sequential", 0);
  const auto t0 = Clock::now();
  seq->gather(concur::call(mix_rounds, std::uint64_t{1}, 2'000'000L));
  const double call_s = seconds(Clock::now() - t0);
  const double start_s = std::max(0.0, s - call_s);
  fmt::print(
      "startup   {} workers ready in {:7.2f} ms   floor (spawn+wait of this program, exiting at "
      "once) {:6.2f} ms   "
      "ratio {:5.1f}x\n",
      workers, start_s * 1e3, floor_s * 1e3, start_s / floor_s);
  return true;
}

bool bench_cpu(int tasks, int ms, int workers) {
  // Calibrate rounds so that one call takes about `ms` on this machine.
  long rounds = 1'000'000;
  for (;;) {
    const auto t0 = Clock::now();
    volatile std::uint64_t sink = mix_rounds(7, rounds);
    (void)sink;
    const double took = seconds(Clock::now() - t0);
    if (took > 0.02) {
      rounds = static_cast<long>(static_cast<double>(rounds) * (ms / 1e3) / took);
      break;
    }
    rounds *= 2;
  }
  std::vector<decltype(concur::call(mix_rounds, std::uint64_t{0}, 0L))> calls;
  for (int i = 0; i < tasks; ++i)
    calls.push_back(concur::call(mix_rounds, static_cast<std::uint64_t>(i), rounds));
  auto seq = make("sequential", 0);
  auto pro = make(g_executor, workers);
  pro->gather(concur::call(add, 1, 1));
  auto t0 = Clock::now();
  std::vector<std::uint64_t> a = seq->gather(calls);
  const double seq_s = seconds(Clock::now() - t0);
  t0 = Clock::now();
  std::vector<std::uint64_t> b = pro->gather(calls);
  const double pro_s = seconds(Clock::now() - t0);
  // The best this machine gives right now: the same batch on raw threads.
  std::vector<std::uint64_t> c(static_cast<std::size_t>(tasks));
  std::atomic<int> next{0};
  t0 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([&] {
        for (int i; (i = next++) < tasks;)
          c[static_cast<std::size_t>(i)] = mix_rounds(static_cast<std::uint64_t>(i), rounds);
      });
    }
    for (auto& t : threads) t.join();
  }
  const double threads_s = seconds(Clock::now() - t0);
  const double speedup = seq_s / pro_s;
  fmt::print(
      "cpu       {} x ~{} ms hashing: sequential {:6.3f} s, {}({}) {:6.3f} s   "
      "speed-up {:4.2f}x   target >= 1.8x: {}\n",
      tasks, ms, seq_s, g_executor, pro->lanes(), pro_s, speedup, verdict(speedup >= 1.8));
  fmt::print(
      "          floor: {} raw threads {:6.3f} s (speed-up {:4.2f}x); {} reaches {:3.0f}% "
      "of it\n",
      workers, threads_s, seq_s / threads_s, g_executor, threads_s / pro_s * 100);
  return a == b && a == c;
}

bool bench_codec(long n) {
  const std::string text = "translate this sentence into French, please";
  long total = 0;
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    std::string bytes;
    concur::Writer w(bytes);
    w.put(static_cast<int>(i), text);
    concur::Reader r(bytes);
    auto x = r.get<int>();
    auto s = r.get<std::string>();
    std::string out;
    concur::Writer wo(out);
    wo.put(x + static_cast<int>(s.size()));
    concur::Reader ro(out);
    total += ro.get<int>();
  }
  const double bin_s = seconds(Clock::now() - t0);
  long total_json = 0;
  t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    std::string bytes =
        boost::json::serialize(boost::json::value_from(std::make_tuple(static_cast<int>(i), text)));
    auto args = boost::json::value_to<std::tuple<int, std::string>>(boost::json::parse(bytes));
    std::string out = boost::json::serialize(
        boost::json::value_from(std::get<0>(args) + static_cast<int>(std::get<1>(args).size())));
    total_json += boost::json::value_to<int>(boost::json::parse(out));
  }
  const double json_s = seconds(Clock::now() - t0);
  fmt::print(
      "codec     (int, string) -> int round trip: binary {:6.1f} ns   Boost.JSON {:6.1f} ns   "
      "({:4.1f}x)\n",
      bin_s / static_cast<double>(n) * 1e9, json_s / static_cast<double>(n) * 1e9, json_s / bin_s);
  return total == total_json;
}

long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::stol(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);                                       // launched workers serve here
  if (argc > 1 && std::strcmp(argv[1], "--exit") == 0) return 0;  // the start-up floor
  const long calls = arg(argc, argv, "--calls", 100'000);
  const int workers = static_cast<int>(
      arg(argc, argv, "--workers", std::max(2u, std::thread::hardware_concurrency())));
  const int tasks = static_cast<int>(arg(argc, argv, "--cpu-tasks", 40));
  const int ms = static_cast<int>(arg(argc, argv, "--cpu-ms", 50));
  const int reps = static_cast<int>(arg(argc, argv, "--reps", 3));
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--executor") == 0) g_executor = argv[i + 1];
  }
  bool ok = true;
  ok = bench_codec(200'000) && ok;
  ok = bench_startup(workers, reps) && ok;
  ok = bench_overhead(calls, workers, reps) && ok;
  ok = bench_cpu(tasks, ms, workers) && ok;
  if (!ok) fmt::print("WRONG RESULTS\n");
  return ok ? 0 : 1;
}
