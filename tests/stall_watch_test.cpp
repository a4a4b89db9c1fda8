// SPDX-License-Identifier: BSL-1.0
// The stall detector reports a task that holds the event_loop or fibers
// thread WHILE it holds it (a watchdog thread), at 1x, 2x, 4x ... the
// threshold, and once more when it lets go.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdio>
#include <mutex>
#include <vector>

using namespace std::chrono_literals;
using concur::Task;

namespace {

std::atomic<int> g_ongoing{0};

// Holds the thread until the watchdog has reported it three times (or a
// cap passes, which the test then sees): the reports must come while it runs.
Task<bool> hold_until_reported(std::chrono::milliseconds cap) {
  const auto end = std::chrono::steady_clock::now() + cap;
  while (g_ongoing.load() < 3) {
    if (std::chrono::steady_clock::now() > end) co_return false;
  }
  co_return true;
}

Task<int> quick(int v) {
  co_await concur::sleep_for(1ms);
  co_return v;
}

class StallWatch : public ::testing::TestWithParam<const char*> {};

TEST_P(StallWatch, AStallIsReportedWhileItLastsAtGrowingIntervals) {
  concur::Config c;
  c.set("executor", GetParam(), "test");
  if (std::string(GetParam()) == "fibers") c.set("threads", "1", "test");
  c.set("stall_ms", "50", "test");
  auto ex = concur::make_executor(c);
  ASSERT_TRUE(ex->detects_stalls());
  g_ongoing = 0;
  std::mutex m;
  std::vector<concur::StallReport> reports;
  ex->on_stall([&](const concur::StallReport& r) {
    {
      std::lock_guard lock(m);
      reports.push_back(r);
    }
    if (r.ongoing) g_ongoing.fetch_add(1);
  });
  auto [held, v] =
      ex->gather(concur::call(hold_until_reported, 20'000ms).named("hog"), concur::call(quick, 7));
  EXPECT_TRUE(held) << "no ongoing report arrived while the task held the thread";
  EXPECT_EQ(v, 7);
  std::lock_guard lock(m);
  ASSERT_EQ(reports.size(), 4u);  // three while it lasted, one when it ended
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(reports[i].ongoing) << i;
    EXPECT_EQ(reports[i].task, "hog");
    EXPECT_EQ(reports[i].executor, GetParam());
    // Never early: the i-th report comes after 2^i thresholds.
    EXPECT_GE(reports[i].duration, (50ms * (1 << i)) - 5ms) << i;
  }
  EXPECT_FALSE(reports[3].ongoing);
  EXPECT_EQ(reports[3].task, "hog");
  EXPECT_GE(reports[3].duration, reports[2].duration - 5ms);
  EXPECT_EQ(ex->stall_count(), 1u) << "one stall, however many reports";
  std::printf("%s: ongoing stall reports after %lld, %lld, %lld ms (threshold 50 ms)\n", GetParam(),
              static_cast<long long>(reports[0].duration / 1ms),
              static_cast<long long>(reports[1].duration / 1ms),
              static_cast<long long>(reports[2].duration / 1ms));
}

TEST_P(StallWatch, WaitingTasksAreNeverReported) {
  concur::Config c;
  c.set("executor", GetParam(), "test");
  c.set("stall_ms", "20", "test");
  auto ex = concur::make_executor(c);
  ex->on_stall([](const concur::StallReport& r) { ADD_FAILURE() << "stall in " << r.task; });
  std::vector<decltype(concur::call(quick, 0))> calls(200, concur::call(quick, 1));
  for (int round = 0; round < 3; ++round) EXPECT_EQ(ex->gather(calls).size(), 200u);
  EXPECT_EQ(ex->stall_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(SuspendingExecutors, StallWatch, ::testing::Values("event_loop", "fibers"),
                         [](const auto& i) { return std::string(i.param); });

}  // namespace
