// SPDX-License-Identifier: BSL-1.0
// The gather semantics of DESIGN §2 written with registered functions only,
// so that they hold on every executor including `processes`, where calls run
// in worker processes (no shared memory: in-flight counts are measured from
// each call's start and end on the machine-wide steady clock instead).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/executor_params.hpp"
#include "support/processes_helpers.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};
CONCUR_REGISTER_ERROR(QuotaExceeded);

Task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await concur::sleep_for(d);
  co_return v;
}
CONCUR_REGISTER(value_after);

Task<int> fail_after(std::chrono::milliseconds d, std::string why) {
  co_await concur::sleep_for(d);
  throw QuotaExceeded(why);
}
CONCUR_REGISTER(fail_after);

Task<void> nothing() { co_return; }
CONCUR_REGISTER(nothing);

int plain_square(int x) { return x * x; }
CONCUR_REGISTER(plain_square);

using concur::testing::Interval;
using concur::testing::interval;
using concur::testing::now_ns;

Task<int> spin_until_cancelled(std::chrono::milliseconds max) {
  const auto end = std::chrono::steady_clock::now() + max;
  int rounds = 0;
  while (std::chrono::steady_clock::now() < end) {
    ++rounds;
    concur::throw_if_cancelled();
  }
  co_return rounds;
}
CONCUR_REGISTER(spin_until_cancelled);

Task<long> skynet(long num, long size, long div) {
  if (size == 1) co_return num;
  std::vector<decltype(concur::call(skynet, 0L, 0L, 0L))> calls;
  calls.reserve(static_cast<std::size_t>(div));
  for (long i = 0; i < div; ++i)
    calls.push_back(concur::call(skynet, num + i * (size / div), size / div, div));
  std::vector<long> parts = co_await concur::gather(std::move(calls));
  co_return std::accumulate(parts.begin(), parts.end(), 0L);
}
CONCUR_REGISTER(skynet);

Task<int> nested_failure() {
  auto [a, b] = co_await concur::gather(concur::call(value_after, 1ms, 1),
                                        concur::call(fail_after, 1ms, std::string("inner")));
  co_return a + b;
}
CONCUR_REGISTER(nested_failure);

Task<int> nested_long() {
  auto [a, b] = co_await concur::gather(concur::call(value_after, 60'000ms, 1),
                                        concur::call(value_after, 60'000ms, 2));
  co_return a + b;
}
CONCUR_REGISTER(nested_long);

// A CPU loop that polls for cancellation and lets the others run between
// slices; it ends only when cancelled (or, if that never comes, after `cap`
// with -1, which the test then sees).
Task<int> cpu_poll(std::chrono::milliseconds cap) {
  const auto end = std::chrono::steady_clock::now() + cap;
  while (std::chrono::steady_clock::now() < end) {
    const auto slice = std::chrono::steady_clock::now() + 1ms;
    while (std::chrono::steady_clock::now() < slice) {
    }
    co_await concur::yield_now();
  }
  co_return -1;
}
CONCUR_REGISTER(cpu_poll);

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class RegisteredGatherSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    ex_ = concur::make_executor(GetParam().config());
    if (out_of_process()) {
      // Worker processes start with the first call; let every one of them
      // start (one slow call each) so that timing checks see a warm pool.
      std::vector<decltype(concur::call(interval, 1ms))> warm(
          static_cast<std::size_t>(ex_->lanes()), concur::call(interval, 30ms));
      ex_->gather(warm);
    }
  }
  // Runs one task at a time: the sequential reference, or one worker process.
  bool one_lane() const {
    return GetParam().executor == "sequential" || (out_of_process() && ex_->lanes() == 1);
  }
  // Calls run in worker processes (processes, or cluster's ranks).
  bool out_of_process() const {
    return GetParam().executor == "processes" || GetParam().executor == "cluster";
  }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(RegisteredGatherSuite, VariadicGatherReturnsTupleInArgumentOrder) {
  auto [a, b, c] =
      ex_->gather(concur::call(value_after, 30ms, 1), concur::call(value_after, 10ms, 2),
                  concur::call(value_after, 20ms, 3));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(c, 3);
}

TEST_P(RegisteredGatherSuite, VoidAndPlainFunctions) {
  auto [u, v, sq] = ex_->gather(concur::call(nothing), concur::call(value_after, 1ms, 7),
                                concur::call(plain_square, 9));
  EXPECT_EQ(u, concur::Unit{});
  EXPECT_EQ(v, 7);
  EXPECT_EQ(sq, 81);
}

TEST_P(RegisteredGatherSuite, RangeGatherReturnsVectorInInputOrder) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  for (int i = 0; i < 20; ++i)
    calls.push_back(concur::call(value_after, std::chrono::milliseconds((20 - i) % 7), i));
  std::vector<int> out = ex_->gather(calls);
  std::vector<int> expected(20);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(out, expected);
  std::vector<decltype(concur::call(value_after, 1ms, 0))> none;
  EXPECT_TRUE(ex_->gather(none).empty());
}

TEST_P(RegisteredGatherSuite, ConcurrentExecutorsOverlapWaits) {
  const auto t0 = std::chrono::steady_clock::now();
  ex_->gather(concur::call(value_after, 200ms, 1), concur::call(value_after, 200ms, 2));
  const double wall = seconds_since(t0);
  if (one_lane()) {
    EXPECT_GE(wall, 0.39);
  } else {
    EXPECT_LT(wall, 0.39) << "two 200 ms waits should overlap on " << GetParam().label;
  }
}

TEST_P(RegisteredGatherSuite, FailFastThrowsFirstFailureAndCancelsLongSibling) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(ex_->gather(concur::call(fail_after, 20ms, std::string("quota")),
                           concur::call(value_after, 60'000ms, 1)),
               QuotaExceeded);
  EXPECT_LT(seconds_since(t0), 5.0);
  if (!one_lane()) {
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_THROW(ex_->gather(concur::call(value_after, 60'000ms, 1),
                             concur::call(fail_after, 20ms, std::string("quota"))),
                 QuotaExceeded);
    EXPECT_LT(seconds_since(t1), 5.0) << "the sleeping sibling was not cancelled";
  }
}

TEST_P(RegisteredGatherSuite, SettledKeepsEveryOutcomeWithCustomExceptionTypes) {
  auto [ok, bad] = ex_->gather_settled(concur::call(value_after, 5ms, 42),
                                       concur::call(fail_after, 5ms, std::string("over quota")));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), 42);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().type().find("QuotaExceeded"), std::string::npos) << bad.error().type();
  EXPECT_EQ(bad.error().message(), "over quota");
  EXPECT_THROW(bad.value(), QuotaExceeded);
  EXPECT_FALSE(bad.error().is_cancellation());
}

TEST_P(RegisteredGatherSuite, SettledRangeDropsNothing) {
  std::vector<decltype(concur::call(fail_after, 1ms, std::string()))> calls;
  for (int i = 0; i < 10; ++i)
    calls.push_back(concur::call(fail_after, 1ms, "e" + std::to_string(i)));
  auto rs = ex_->gather_settled(calls);
  ASSERT_EQ(rs.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    ASSERT_FALSE(rs[static_cast<std::size_t>(i)].ok());
    EXPECT_EQ(rs[static_cast<std::size_t>(i)].error().message(), "e" + std::to_string(i));
  }
}

TEST_P(RegisteredGatherSuite, LimitIsNeverExceeded) {
  std::vector<decltype(concur::call(interval, 1ms))> calls(24, concur::call(interval, 20ms));
  std::vector<Interval> spans = ex_->gather(calls, {.limit = 2});
  const int most = concur::testing::most_at_once(spans);
  EXPECT_LE(most, 2);
  if (!one_lane()) {
    EXPECT_EQ(most, 2) << "limit should still allow 2 at once";
  }
}

TEST_P(RegisteredGatherSuite, PerTaskTimeoutFailsOnlyTheSlowTask) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls{
      concur::call(value_after, 5ms, 1), concur::call(value_after, 60'000ms, 2),
      concur::call(value_after, 5ms, 3)};
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ex_->gather_settled(calls, {.timeout = 100ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].ok());
  EXPECT_TRUE(out[2].ok());
  ASSERT_FALSE(out[1].ok());
  EXPECT_THROW(out[1].value(), concur::TimeoutError);
  EXPECT_NE(out[1].error().message().find(concur::messages::kTimedOut), std::string::npos);
  EXPECT_TRUE(out[1].error().is_cancellation());
}

TEST_P(RegisteredGatherSuite, TimeoutReachesCpuTaskThatPollsCancelled) {
  std::vector<decltype(concur::call(spin_until_cancelled, 1ms))> calls{
      concur::call(spin_until_cancelled, 60'000ms)};
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ex_->gather_settled(calls, {.timeout = 50ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_FALSE(out[0].ok());
  EXPECT_THROW(out[0].value(), concur::TimeoutError);
}

TEST_P(RegisteredGatherSuite, DeadlineStopsTheBatch) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  for (int i = 0; i < 6; ++i) calls.push_back(concur::call(value_after, i < 2 ? 5ms : 60'000ms, i));
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ex_->gather_settled(calls, {.limit = 4, .deadline = 150ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_EQ(out.size(), 6u);
  EXPECT_TRUE(out[0].ok());
  EXPECT_TRUE(out[1].ok());
  for (std::size_t i = 2; i < 6; ++i) {
    ASSERT_FALSE(out[i].ok()) << i;
    EXPECT_THROW(out[i].value(), concur::DeadlineExceeded) << i;
  }
}

// nanoseconds::max() means "practically never": it saturates instead of
// overflowing into the past (which failed every task at once).
TEST_P(RegisteredGatherSuite, HugeTimeoutAndDeadlineMeanPracticallyNever) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls{concur::call(value_after, 5ms, 1),
                                                                 concur::call(value_after, 5ms, 2)};
  constexpr auto kMax = std::chrono::nanoseconds::max();
  for (const concur::GatherOptions& o :
       {concur::GatherOptions{.timeout = kMax}, concur::GatherOptions{.deadline = kMax},
        concur::GatherOptions{.timeout = kMax, .deadline = kMax},
        concur::GatherOptions{.timeout = std::chrono::hours(24 * 365 * 200)}}) {
    auto out = ex_->gather_settled(calls, o);
    ASSERT_EQ(out.size(), 2u);
    for (auto& r : out) {
      ASSERT_TRUE(r.ok()) << r.error().describe();
    }
    EXPECT_EQ(out[0].value(), 1);
    EXPECT_EQ(out[1].value(), 2);
  }
  auto [a, b] = ex_->gather({.timeout = kMax, .deadline = kMax}, concur::call(value_after, 1ms, 3),
                            concur::call(value_after, 1ms, 4));
  EXPECT_EQ(a + b, 7);
}

// A deadline computed as already past fails the batch (it used to mean "none").
TEST_P(RegisteredGatherSuite, PastDeadlineFailsTheBatch) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls{
      concur::call(value_after, 60'000ms, 1), concur::call(value_after, 60'000ms, 2)};
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ex_->gather_settled(calls, {.deadline = -5ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_EQ(out.size(), 2u);
  for (auto& r : out) {
    ASSERT_FALSE(r.ok());
    EXPECT_THROW(r.value(), concur::DeadlineExceeded);
  }
  EXPECT_THROW(ex_->gather(calls, {.deadline = -1ns}), concur::DeadlineExceeded);
}

// The case: without yield_now the failing sibling never runs on
// event_loop or fibers(1), and the CPU loops run until killed.
TEST_P(RegisteredGatherSuite, YieldNowLetsAFailingSiblingCancelCpuLoops) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(ex_->gather(concur::call(fail_after, 100ms, std::string("quota")),
                           concur::call(cpu_poll, 60'000ms), concur::call(cpu_poll, 60'000ms)),
               QuotaExceeded);
  EXPECT_LT(seconds_since(t0), 30.0) << "the CPU loops were not cancelled";
}

// A yield is a cancellation point, so a timeout reaches a loop that only yields.
TEST_P(RegisteredGatherSuite, YieldNowIsACancellationPoint) {
  std::vector<decltype(concur::call(cpu_poll, 1ms))> calls{concur::call(cpu_poll, 60'000ms)};
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ex_->gather_settled(calls, {.timeout = 50ms});
  EXPECT_LT(seconds_since(t0), 30.0);
  ASSERT_FALSE(out[0].ok());
  EXPECT_THROW(out[0].value(), concur::TimeoutError);
}

TEST_P(RegisteredGatherSuite, AsCompletedDeliversInCompletionOrder) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls{
      concur::call(value_after, 300ms, 0), concur::call(value_after, 10ms, 1),
      concur::call(value_after, 150ms, 2)};
  auto done = ex_->as_completed(calls);
  ASSERT_EQ(done.size(), 3u);
  std::vector<std::size_t> order;
  for (auto& c : done) {
    order.push_back(c.index);
    EXPECT_EQ(c.result.value(), static_cast<int>(c.index));
  }
  if (one_lane()) {
    EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2}));
  } else if (ex_->lanes() >= 3 || !out_of_process()) {
    EXPECT_EQ(order, (std::vector<std::size_t>{1, 2, 0}));
  } else {
    // Two worker processes: 0 and 1 start, 1 ends first, then 2 takes its place.
    EXPECT_EQ(order.front(), 1u);
  }
}

TEST_P(RegisteredGatherSuite, ProgressCallbackSeesEveryInput) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  for (int i = 0; i < 25; ++i) calls.push_back(concur::call(value_after, 1ms, i));
  std::vector<std::size_t> dones;
  std::size_t total = 0;
  ex_->gather(calls, {.on_progress = [&](const concur::Progress& p) {
                dones.push_back(p.done);
                total = p.total;
              }});
  ASSERT_EQ(dones.size(), 25u);
  EXPECT_EQ(total, 25u);
  for (std::size_t i = 0; i < dones.size(); ++i) EXPECT_EQ(dones[i], i + 1);
}

TEST_P(RegisteredGatherSuite, NestedGatherInsideACall) {
  auto [sum] = ex_->gather(concur::call(skynet, 0L, 1'000L, 10L));
  EXPECT_EQ(sum, 499'500L);
  // And with the root task itself gathering (on processes: in the parent).
  EXPECT_EQ(ex_->run(skynet(0, 1'000, 10)), 499'500L);
}

TEST_P(RegisteredGatherSuite, NestedFailurePropagatesOutward) {
  auto rs = ex_->gather_settled(concur::call(nested_failure), concur::call(value_after, 1ms, 5));
  ASSERT_FALSE(std::get<0>(rs).ok());
  EXPECT_EQ(std::get<0>(rs).error().message(), "inner");
  EXPECT_EQ(std::get<1>(rs).value(), 5);
}

TEST_P(RegisteredGatherSuite, TimeoutOfParentCancelsNestedChildren) {
  std::vector<decltype(concur::call(nested_long))> calls{concur::call(nested_long)};
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex_->gather_settled(calls, {.timeout = 80ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
}

TEST_P(RegisteredGatherSuite, TwentyThousandCalls) {
  std::vector<decltype(concur::call(plain_square, 0))> calls;
  calls.reserve(20'000);
  for (int i = 0; i < 20'000; ++i) calls.push_back(concur::call(plain_square, i % 1000));
  std::vector<int> out = ex_->gather(calls);
  ASSERT_EQ(out.size(), 20'000u);
  for (int i = 0; i < 20'000; ++i)
    ASSERT_EQ(out[static_cast<std::size_t>(i)], (i % 1000) * (i % 1000));
}

// Runs a 2 s batch on `ex` from another thread; started() turns true once
// its first (1 ms) input has finished, so the batch is surely running.
class BackgroundBatch {
 public:
  explicit BackgroundBatch(concur::Executor& ex)
      : thread_([this, &ex] {
          std::vector<decltype(concur::call(value_after, 1ms, 0))> calls{
              concur::call(value_after, 1ms, 1), concur::call(value_after, 2'000ms, 2)};
          auto rs = ex.gather_settled(
              calls, {.on_progress = [this](const concur::Progress&) { started_.store(true); }});
          ok_ = rs.size() == 2 && rs[0].ok() && rs[1].ok();
        }) {}
  ~BackgroundBatch() {
    if (thread_.joinable()) thread_.join();
  }
  bool wait_started() const {
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (!started_.load()) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  bool join() {
    thread_.join();
    return ok_;
  }

 private:
  std::atomic<bool> started_{false};
  bool ok_ = false;
  std::thread thread_;
};

// One executor used from two threads at once hung (event_loop, processes):
// now the second call is refused with a UsageError naming the rule, and the
// first one finishes untouched.
TEST_P(RegisteredGatherSuite, ASecondThreadsCallWhileOneRunsIsAUsageError) {
  BackgroundBatch bg(*ex_);
  ASSERT_TRUE(bg.wait_started());
  try {
    ex_->gather(concur::call(value_after, 1ms, 3));
    ADD_FAILURE() << "a concurrent call from another thread was accepted";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(concur::messages::kConcurrentUse), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(bg.join()) << "the running batch was disturbed";
  auto [v] = ex_->gather(concur::call(value_after, 1ms, 4));  // usable again
  EXPECT_EQ(v, 4);
}

// Destroying an executor while another thread's gather runs hung (event_loop)
// or crashed (processes): now it ends the program with the rule.
TEST_P(RegisteredGatherSuite, DestroyingItWhileAnotherThreadsCallRunsTerminatesWithTheRule) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        BackgroundBatch bg(*ex_);
        if (bg.wait_started()) ex_.reset();
        std::_Exit(0);  // not reached when the check works
      },
      "destroyed while a blocking call on it was still running");
}

#ifdef CONCUR_CLUSTER_SUITE
// Built as concur_cluster_gather_test, run by ctest under mpirun.
INSTANTIATE_TEST_SUITE_P(
    Cluster, RegisteredGatherSuite, ::testing::ValuesIn(concur::testing::cluster_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);
#else
INSTANTIATE_TEST_SUITE_P(
    Executors, RegisteredGatherSuite,
    ::testing::ValuesIn(concur::testing::registered_call_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);
#endif

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // launched workers serve here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
