// SPDX-License-Identifier: BSL-1.0
// concur::task_group on every in-process executor: spawn as tasks become
// known, join them all, fail fast, stop with the owner, nest with gather.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/counted_tasks.hpp"
#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

using concur::testing::g_cancelled;
using concur::testing::g_ended;
using concur::testing::g_started;
using concur::testing::QuotaExceeded;
using concur::testing::seconds_since;
using concur::testing::value_after;

// One argument, so that concur::call can take it as it is.
Task<int> fail_after(std::chrono::milliseconds d) {
  return concur::testing::fail_after(d, "quota");
}

// A group inside a gather child, with a gather inside each spawned task.
Task<int> pair_sum(int a, int b) {
  auto [x, y] =
      co_await concur::gather(concur::call(value_after, 1ms, a), concur::call(value_after, 2ms, b));
  co_return x + y;
}
Task<int> group_of_pairs(int n) {
  std::vector<concur::Spawned<int>> spawned;
  co_await concur::task_group([&](concur::TaskGroup& g) -> Task<void> {
    for (int i = 0; i < n; ++i) spawned.push_back(g.spawn(concur::call(pair_sum, i, i)));
    co_return;
  });
  int sum = 0;
  for (auto& s : spawned) sum += s.result().value();
  co_return sum;
}

class TaskGroupSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    ex_ = concur::make_executor(GetParam().config());
    g_started = 0;
    g_ended = 0;
    g_cancelled = 0;
  }
  bool is_sequential() const { return GetParam().executor == "sequential"; }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(TaskGroupSuite, JoinsEverySpawnedTaskBeforeReturning) {
  std::vector<concur::Spawned<int>> spawned;
  int ended_at_return = -1;
  ex_->run([&]() -> Task<void> {
    co_await concur::task_group([&](concur::TaskGroup& g) -> Task<void> {
      for (int i = 0; i < 10; ++i)
        spawned.push_back(g.spawn(concur::call(value_after, std::chrono::milliseconds(i * 3), i)));
      co_return;  // the body ends first; the group still waits
    });
    ended_at_return = g_ended.load();
  }());
  EXPECT_EQ(ended_at_return, 10);
  ASSERT_EQ(spawned.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(spawned[static_cast<std::size_t>(i)].result().value(), i);
}

TEST_P(TaskGroupSuite, SpawnsTasksAsTheyBecomeKnownAndGivesTheBodysValue) {
  const int got = ex_->run([&]() -> Task<int> {
    co_return co_await concur::task_group([&](concur::TaskGroup& g) -> Task<int> {
      auto first = g.spawn(concur::call(value_after, 5ms, 1));
      co_await concur::sleep_for(10ms);  // learn about more work later
      auto second = g.spawn(concur::call(value_after, 5ms, 2));
      EXPECT_EQ(g.size(), 2u);
      co_return 40;
    });
  }());
  EXPECT_EQ(got, 40);
  EXPECT_EQ(g_ended.load(), 2);
}

TEST_P(TaskGroupSuite, FirstFailureCancelsTheOthersAndTheBodyThenIsThrown) {
  std::vector<concur::Spawned<int>> spawned;
  std::atomic<bool> body_cancelled{false};
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(ex_->run([&]() -> Task<void> {
    co_await concur::task_group([&](concur::TaskGroup& g) -> Task<void> {
      // The failure first, so that even sequential (which runs each spawn
      // to its end) never starts the long ones.
      spawned.push_back(g.spawn(concur::call(fail_after, 20ms)));
      try {
        spawned.push_back(g.spawn(concur::call(value_after, 60'000ms, 1)));
        co_await concur::sleep_for(60'000ms);
      } catch (const concur::Cancelled&) {
        body_cancelled = true;
        throw;
      }
    });
  }()),
               QuotaExceeded);
  EXPECT_LT(seconds_since(t0), 30.0) << "the group waited for a cancelled sibling's sleep";
  EXPECT_TRUE(body_cancelled.load());
  EXPECT_EQ(g_ended.load(), g_cancelled.load()) << "every task still running was cancelled";
  for (std::size_t i = 1; i < spawned.size(); ++i) {
    EXPECT_THROW(spawned[i].result().value(), concur::Cancelled);
  }
}

// Not on sequential, which runs each spawn to its end before the body goes on.
class TaskGroupSideBySide : public TaskGroupSuite {};

TEST_P(TaskGroupSideBySide, BodyFailureCancelsAndJoinsTheSpawnedTasks) {
  std::vector<concur::Spawned<int>> spawned;
  EXPECT_THROW(ex_->run([&]() -> Task<void> {
    co_await concur::task_group([&](concur::TaskGroup& g) -> Task<void> {
      for (int i = 0; i < 3; ++i)
        spawned.push_back(g.spawn(concur::call(value_after, 60'000ms, i)));
      // Fail once all three run (on a loaded machine a thread_pool thief
      // may take longer than any fixed sleep to start them).
      while (g_started.load() < 3) co_await concur::sleep_for(1ms);
      throw QuotaExceeded("body");
    });
  }()),
               QuotaExceeded);
  EXPECT_EQ(g_cancelled.load(), 3);
  for (auto& s : spawned) EXPECT_THROW(s.result().value(), concur::Cancelled);
}

TEST_P(TaskGroupSuite, AnOwnersTimeoutStopsEverythingInTheGroup) {
  auto in_group = concur::call([]() -> Task<int> {
    co_return co_await concur::task_group([](concur::TaskGroup& g) -> Task<int> {
      g.spawn(concur::call(value_after, 60'000ms, 1));
      co_await concur::sleep_for(60'000ms);
      co_return 1;
    });
  });
  std::vector<decltype(in_group)> calls{in_group};
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex_->gather_settled(calls, {.timeout = 50ms});
  EXPECT_LT(seconds_since(t0), 30.0);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  EXPECT_EQ(g_cancelled.load(), 1);
  EXPECT_EQ(g_ended.load(), 1);
}

TEST_P(TaskGroupSuite, PerTaskTimeoutAppliesToEachSpawnedTask) {
  EXPECT_THROW(ex_->run([&]() -> Task<void> {
    co_await concur::task_group(
        [](concur::TaskGroup& g) -> Task<void> {
          g.spawn(concur::call(value_after, 1ms, 1));
          g.spawn(concur::call(value_after, 60'000ms, 2));
          co_return;
        },
        {.timeout = 40ms});
  }()),
               concur::TimeoutError);
}

TEST_P(TaskGroupSuite, NestsInsideGatherAndGatherNestsInside) {
  std::vector<int> sums =
      ex_->gather(std::vector{concur::call(group_of_pairs, 3), concur::call(group_of_pairs, 5)});
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[0], 2 * (0 + 1 + 2));
  EXPECT_EQ(sums[1], 2 * (0 + 1 + 2 + 3 + 4));
}

TEST_P(TaskGroupSuite, SpawningFromAnotherTaskIsAUsageError) {
  EXPECT_THROW(ex_->run([&]() -> Task<void> {
    co_await concur::task_group([](concur::TaskGroup& g) -> Task<void> {
      g.spawn(concur::call([&g]() -> Task<void> {
        g.spawn(concur::call(value_after, 1ms, 1));
        co_return;
      }));
      co_return;
    });
  }()),
               concur::UsageError);
}

TEST_P(TaskGroupSuite, ALimitIsRejected) {
  try {
    ex_->run([&]() -> Task<void> {
      co_await concur::task_group([](concur::TaskGroup&) -> Task<void> { co_return; },
                                  {.limit = 2});
    }());
    FAIL() << "expected UsageError";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(concur::messages::kGroupOptions), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Executors, TaskGroupSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);
INSTANTIATE_TEST_SUITE_P(
    Executors, TaskGroupSideBySide,
    ::testing::ValuesIn(concur::testing::side_by_side_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
