// SPDX-License-Identifier: BSL-1.0
// What only the fibers executor promises (DESIGN §3, issue 4): idle fibers
// cost no CPU, many fibers fit in memory, threads > 1 run fibers in parallel,
// a call that blocks the OS thread stalls its fibers and is reported, and a
// stack that cannot be allocated is a clear error.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using concur::Task;

namespace {

concur::Config fibers(int threads, std::size_t stack_kb = 64) {
  concur::Config c;
  c.executor = "fibers";
  c.threads = threads;
  c.stack_kb = stack_kb;
  return c;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

Task<int> sleepy(std::chrono::milliseconds d, int v) {
  co_await concur::sleep_for(d);
  co_return v;
}

TEST(Fibers, SleepingFibersUseAlmostNoCpu) {
  auto ex = concur::make_executor(fibers(1));
  std::vector<decltype(concur::call(sleepy, 1000ms, 0))> calls;
  for (int i = 0; i < 10'000; ++i) calls.push_back(concur::call(sleepy, 1000ms, i));
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> out = ex->gather(calls);
  const double wall = seconds_since(t0);
  const double cpu = cpu_seconds() - cpu0;
  std::printf("10,000 fibers sleeping 1 s: wall %.3f s, CPU %.3f s\n", wall, cpu);
  ASSERT_EQ(out.size(), 10'000u);
  EXPECT_EQ(out[9'999], 9'999);
  EXPECT_GE(wall, 0.99);
  EXPECT_LE(cpu, 0.2) << "an idle fiber scheduler must sleep, not poll";
}

// Counts fibers that reached their sleep and fibers that left it, so the test
// can look at memory while every fiber is parked, however slowly a loaded
// machine starts them.
std::atomic<int> g_parked{0};
std::atomic<int> g_woken{0};

Task<int> counted_sleep(std::chrono::milliseconds d, int v) {
  g_parked.fetch_add(1);
  co_await concur::sleep_for(d);
  g_woken.fetch_add(1);
  co_return v;
}

TEST(Fibers, HundredThousandConcurrentlySleepingFibers) {
  constexpr int kFibers = 100'000;
  auto ex = concur::make_executor(fibers(1, 32));
  std::vector<decltype(concur::call(counted_sleep, 2000ms, 0))> calls;
  for (int i = 0; i < kFibers; ++i) calls.push_back(concur::call(counted_sleep, 2000ms, i % 7));
  g_parked = 0;
  g_woken = 0;
  const long rss0 = rss_kib();
  long peak = rss0;
  int woken_when_all_parked = -1;
  // Samples RSS once every fiber is parked in its sleep.
  std::thread sampler([&] {
    while (g_parked.load() < kFibers) std::this_thread::sleep_for(5ms);
    woken_when_all_parked = g_woken.load();
    peak = rss_kib();
  });
  const std::vector<int> out = ex->gather(calls);
  sampler.join();
  std::printf("100,000 sleeping fibers (32 KiB stacks): RSS %ld -> %ld MiB (%.1f KiB per fiber)\n",
              rss0 / 1024, peak / 1024, static_cast<double>(peak - rss0) / kFibers);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kFibers));
  EXPECT_EQ(out[99'999], 99'999 % 7);
  // All 100,000 were asleep at once: the last one parked before the first
  // 2 s sleep ended (starting them takes well under a second).
  EXPECT_EQ(woken_when_all_parked, 0) << "they must sleep concurrently";
  EXPECT_LT(peak - rss0, 4L * 1024 * 1024) << "more than 4 GiB for 100,000 fibers";
}

// A finished fiber's stack beyond the pool's resident reserve gives its pages
// back: the pool kept every page a wave of fibers had touched (100,000
// sleeping fibers left the process at 821 MiB after the gather, whatever
// stack_kb) and each finishing fiber touched a second page, doubling the peak.
TEST(Fibers, FinishedFibersGiveTheirStackPagesBack) {
  constexpr int kFibers = 30'000;
  auto ex = concur::make_executor(fibers(1, 64));
  std::vector<decltype(concur::call(counted_sleep, 1ms, 0))> calls;
  for (int i = 0; i < kFibers; ++i) calls.push_back(concur::call(counted_sleep, 1000ms, 1));
  g_parked = 0;
  g_woken = 0;
  const long rss0 = rss_kib();
  long asleep = rss0;
  std::thread sampler([&] {
    while (g_parked.load() < kFibers) std::this_thread::sleep_for(2ms);
    asleep = rss_kib();
  });
  ASSERT_EQ(ex->gather(calls).size(), static_cast<std::size_t>(kFibers));
  sampler.join();
  const long after = rss_kib();
  std::printf("30,000 sleeping fibers: RSS +%ld MiB asleep, +%ld MiB after the gather\n",
              (asleep - rss0) / 1024, (after - rss0) / 1024);
  // Each asleep fiber holds at least one 4 KiB page; after, at most the
  // resident reserve of free stacks (1024) does.
  ASSERT_GT(asleep - rss0, kFibers * 3L) << "the sampler missed the asleep moment";
  EXPECT_LT(after - rss0, (asleep - rss0) / 4) << "finished fibers' stacks kept their pages";
}

// With two threads, starting 10,000 fibers costs scheduling work on both
// threads; what must cost almost nothing is the second they all sleep. CPU is
// counted from the moment every fiber is parked until the batch ends.
TEST(Fibers, SleepingFibersOnTwoThreadsUseAlmostNoCpu) {
  constexpr int kFibers = 10'000;
  auto ex = concur::make_executor(fibers(2));
  std::vector<decltype(concur::call(counted_sleep, 1000ms, 0))> calls;
  for (int i = 0; i < kFibers; ++i) calls.push_back(concur::call(counted_sleep, 1000ms, i));
  g_parked = 0;
  g_woken = 0;
  double cpu0 = -1;
  std::thread sampler([&] {
    while (g_parked.load() < kFibers) std::this_thread::sleep_for(1ms);
    cpu0 = cpu_seconds();
  });
  const std::vector<int> out = ex->gather(calls);
  const double cpu_end = cpu_seconds();
  sampler.join();
  const double cpu = cpu_end - cpu0;
  std::printf("10,000 fibers on 2 threads sleeping 1 s: CPU %.3f s while all slept\n", cpu);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kFibers));
  EXPECT_LE(cpu, 0.2);
}

// Spins on the CPU for `d`, recording which thread ran it and when.
struct Interval {
  std::thread::id thread;
  std::chrono::steady_clock::time_point begin, end;
};
std::mutex g_intervals_mutex;
std::vector<Interval> g_intervals;

Task<int> spin(std::chrono::milliseconds d) {
  const auto begin = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - begin < d) {
  }
  std::lock_guard lock(g_intervals_mutex);
  g_intervals.push_back({std::this_thread::get_id(), begin, std::chrono::steady_clock::now()});
  co_return 1;
}

TEST(Fibers, TwoThreadsRunFibersInParallel) {
  concur::Config c = fibers(2);
  c.stall_threshold = 0ms;  // the spinning is on purpose here
  auto ex = concur::make_executor(c);
  g_intervals.clear();
  const auto t0 = std::chrono::steady_clock::now();
  auto [a, b] = ex->gather(concur::call(spin, 300ms), concur::call(spin, 300ms));
  const double wall = seconds_since(t0);
  std::printf("two 300 ms CPU tasks on 2 fiber threads: wall %.3f s\n", wall);
  EXPECT_EQ(a + b, 2);
  ASSERT_EQ(g_intervals.size(), 2u);
  const Interval& x = g_intervals[0];
  const Interval& y = g_intervals[1];
  EXPECT_NE(x.thread, y.thread);
  EXPECT_LT(std::max(x.begin, y.begin), std::min(x.end, y.end)) << "the two did not overlap";
  EXPECT_EQ(ex->lanes(), 2);
}

TEST(Fibers, OneThreadRunsCpuTasksOneAfterAnother) {
  concur::Config c = fibers(1);
  c.stall_threshold = 0ms;
  auto ex = concur::make_executor(c);
  g_intervals.clear();
  ex->gather(concur::call(spin, 100ms), concur::call(spin, 100ms));
  ASSERT_EQ(g_intervals.size(), 2u);
  EXPECT_EQ(g_intervals[0].thread, g_intervals[1].thread);
  EXPECT_GE(std::max(g_intervals[0].begin, g_intervals[1].begin),
            std::min(g_intervals[0].end, g_intervals[1].end))
      << "one thread cannot run two CPU tasks at once";
}

// The seed's mistake 2: a blocking sleep inside a task.
Task<int> blocking_sleep(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  co_return 1;
}

TEST(Fibers, BlockingSleepSerialisesAndIsReported) {
  auto ex = concur::make_executor(fibers(1));
  EXPECT_TRUE(ex->detects_stalls());
  std::mutex m;
  std::vector<concur::StallReport> reports;
  std::size_t ongoing = 0;
  ex->on_stall([&](const concur::StallReport& r) {
    std::lock_guard lock(m);
    if (r.ongoing) {
      ++ongoing;  // the watchdog, while each sleep lasts (at 100 and 200 ms)
      return;
    }
    reports.push_back(r);
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto [a, b] = ex->gather(concur::call(blocking_sleep, 300ms).named("blocker"),
                           concur::call(blocking_sleep, 300ms).named("blocker"));
  const double wall = seconds_since(t0);
  std::printf("two blocking 300 ms sleeps on 1 fiber thread: wall %.3f s, %zu stall reports\n",
              wall, reports.size());
  EXPECT_EQ(a + b, 2);
  EXPECT_GE(wall, 0.59) << "a blocked thread runs no other fiber";
  ASSERT_EQ(reports.size(), 2u);
  for (const auto& r : reports) {
    EXPECT_EQ(r.executor, "fibers");
    EXPECT_EQ(r.task, "blocker");
    EXPECT_GE(r.duration, 250ms);
  }
  EXPECT_EQ(ex->stall_count(), 2u);
  EXPECT_GE(ongoing, 2u) << "each 300 ms stall is reported while it lasts";
}

TEST(Fibers, LibrarySleepIsNotAStall) {
  auto ex = concur::make_executor(fibers(2));
  ex->on_stall([](const concur::StallReport& r) { ADD_FAILURE() << "stall in " << r.task; });
  auto [a, b] = ex->gather(concur::call(sleepy, 300ms, 1), concur::call(sleepy, 300ms, 2));
  EXPECT_EQ(a + b, 3);
  EXPECT_EQ(ex->stall_count(), 0u);
}

// Restores the address-space limit however the test ends.
struct AddressSpaceLimit {
  rlimit saved{};
  explicit AddressSpaceLimit(rlim_t bytes) {
    getrlimit(RLIMIT_AS, &saved);
    rlimit r = saved;
    r.rlim_cur = bytes;
    setrlimit(RLIMIT_AS, &r);
  }
  ~AddressSpaceLimit() { setrlimit(RLIMIT_AS, &saved); }
};

long vm_size_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7));
  }
  return -1;
}

TEST(Fibers, StackThatCannotBeAllocatedIsAClearError) {
  // 512 MiB stacks under a limit that leaves room for about one of them:
  // the root fiber gets its stack, its children cannot.
  auto ex = concur::make_executor(fibers(1, 512 * 1024));
  ex->gather(concur::call(sleepy, 1ms, 0));  // threads, arenas and the first stack exist now
  const auto limit = static_cast<rlim_t>(vm_size_kib() + 64 * 1024) * 1024;
  std::vector<decltype(concur::call(sleepy, 1ms, 0))> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(concur::call(sleepy, 1ms, i));
  std::vector<concur::Result<int>> settled;
  std::string fail_fast_message;
  {
    AddressSpaceLimit cap(limit);
    settled = ex->gather_settled(calls);
    try {
      ex->gather(calls);
    } catch (const concur::Error& e) {
      fail_fast_message = e.what();
    }
  }
  ASSERT_EQ(settled.size(), 4u);
  int failed = 0;
  for (const auto& r : settled) {
    if (!r.ok()) {
      ++failed;
      EXPECT_NE(r.error().message().find(concur::messages::kStackAllocation), std::string::npos)
          << r.error().message();
    }
  }
  EXPECT_GE(failed, 3) << "only the root's stack should have fitted";
  EXPECT_NE(fail_fast_message.find(concur::messages::kStackAllocation), std::string::npos)
      << fail_fast_message;
  // With the limit lifted the same executor works again.
  EXPECT_EQ(ex->gather(calls).size(), 4u);
}

TEST(Fibers, ConfigKeys) {
  concur::Config c;
  c.set("threads", "4", "test");
  c.set("stack_kb", "128", "test");
  EXPECT_EQ(c.threads, 4);
  EXPECT_EQ(c.stack_kb, 128u);
  EXPECT_THROW(c.set("threads", "0", "test"), concur::ConfigError);
  EXPECT_THROW(c.set("threads", "257", "test"), concur::ConfigError);
  EXPECT_THROW(c.set("stack_kb", "4", "test"), concur::ConfigError);
  c.threads = 0;
  EXPECT_THROW(c.validate(), concur::ConfigError);
}

}  // namespace

// Wakes that race a fiber on its way into a wait (a timeout firing on the
// other thread, a sibling's failure cancelling it, a child ending) must never
// make a still-running fiber ready: another thread would resume it while it
// runs. Many short sleeps with timeouts of about the same length, and
// fail-fast batches on two threads, put wakes right at the park.
Task<int> short_nap(int i) {
  co_await concur::sleep_for(std::chrono::microseconds(200 * (i % 5)));
  if (i % 17 == 3) throw std::runtime_error("boom");
  co_return i;
}

TEST(Fibers, WakesRacingAParkOnTwoThreadsAreSafe) {
  auto ex = concur::make_executor(fibers(2));
  std::vector<decltype(concur::call(short_nap, 0))> calls;
  for (int i = 0; i < 64; ++i) calls.push_back(concur::call(short_nap, i));
  std::size_t timed_out = 0, ok = 0;
  for (int round = 0; round < 200; ++round) {
    auto settled = ex->gather_settled(calls, {.timeout = std::chrono::microseconds(500)});
    ASSERT_EQ(settled.size(), calls.size());
    for (const auto& r : settled) {
      if (r.ok()) ++ok;
      if (!r.ok() && r.error().type() == "concur::TimeoutError") ++timed_out;
    }
    EXPECT_THROW((void)ex->gather(calls), std::runtime_error);
  }
  std::printf("racing wakes: %zu ok, %zu timed out\n", ok, timed_out);
  EXPECT_GT(ok, 0u);
}
