// SPDX-License-Identifier: BSL-1.0
// The gather semantics every executor must honour (DESIGN §2), run against
// every configuration in support/executor_params.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

// Counts tasks in flight to check `limit`.
std::atomic<int> g_in_flight{0};
std::atomic<int> g_max_in_flight{0};
Task<int> tracked(std::chrono::milliseconds d, int v) {
  const int now = ++g_in_flight;
  int seen = g_max_in_flight.load();
  while (now > seen && !g_max_in_flight.compare_exchange_weak(seen, now)) {
  }
  co_await concur::sleep_for(d);
  --g_in_flight;
  co_return v;
}
CONCUR_REGISTER(tracked);

// For the pipelining test: how many short inputs had ended when the long one did.
std::atomic<int> g_short_done{0};
Task<int> short_input() {
  co_await concur::sleep_for(10ms);
  co_return ++g_short_done;
}
Task<int> long_input() {
  co_await concur::sleep_for(400ms);
  co_return g_short_done.load();
}

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

// Polls cancelled() like a CPU-bound task; returns how many rounds it ran.
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

int plain_square(int x) { return x * x; }
CONCUR_REGISTER(plain_square);

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class GatherSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    ex_ = concur::make_executor(GetParam().config());
    g_in_flight = 0;
    g_max_in_flight = 0;
  }
  bool is_sequential() const { return GetParam().executor == "sequential"; }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(GatherSuite, VariadicGatherReturnsTupleInArgumentOrder) {
  auto [a, b, c] =
      ex_->gather(concur::call(value_after, 30ms, 1), concur::call(value_after, 10ms, 2),
                  concur::call(value_after, 20ms, 3));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(c, 3);
}

TEST_P(GatherSuite, VoidTasksBecomeUnitInTuple) {
  auto [u, v] = ex_->gather(concur::call(nothing), concur::call(value_after, 1ms, 7));
  EXPECT_EQ(u, concur::Unit{});
  EXPECT_EQ(v, 7);
}

TEST_P(GatherSuite, RangeGatherReturnsVectorInInputOrder) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  for (int i = 0; i < 20; ++i)
    calls.push_back(concur::call(value_after, std::chrono::milliseconds((20 - i) % 7), i));
  std::vector<int> out = ex_->gather(calls);
  ASSERT_EQ(out.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i);
}

TEST_P(GatherSuite, EmptyRangeGivesEmptyVector) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> none;
  EXPECT_TRUE(ex_->gather(none).empty());
  EXPECT_TRUE(ex_->gather_settled(none).empty());
}

TEST_P(GatherSuite, PlainCallablesRunAsTasks) {
  auto [a, b] =
      ex_->gather(concur::call(plain_square, 7), concur::call([](int x) { return x + 1; }, 1));
  EXPECT_EQ(a, 49);
  EXPECT_EQ(b, 2);
}

// When each wait ran, on the steady clock: [start, end) per call.
using Span =
    std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>;
Task<Span> timed_wait(std::chrono::milliseconds d) {
  const auto start = std::chrono::steady_clock::now();
  co_await concur::sleep_for(d);
  co_return Span{start, std::chrono::steady_clock::now()};
}

// Structural, not a wall-clock bound (which a busy machine can blur): on a
// concurrent executor the second wait starts before the first has ended; on
// sequential it starts only after.
TEST_P(GatherSuite, ConcurrentExecutorsOverlapWaits) {
  auto [a, b] = ex_->gather(concur::call(timed_wait, 200ms), concur::call(timed_wait, 200ms));
  const bool overlap = a.first < b.second && b.first < a.second;
  if (is_sequential()) {
    EXPECT_FALSE(overlap) << "sequential ran two waits at once";
  } else {
    EXPECT_TRUE(overlap) << "two 200 ms waits should overlap on " << GetParam().label;
  }
}

TEST_P(GatherSuite, FailFastThrowsFirstFailureAndCancelsLongSibling) {
  const auto t0 = std::chrono::steady_clock::now();
  // The failing call comes first so that even the sequential reference never
  // starts the 60 s sibling: it is skipped, not waited for.
  EXPECT_THROW(ex_->gather(concur::call(fail_after, 20ms, std::string("quota")),
                           concur::call(value_after, 60'000ms, 1)),
               QuotaExceeded);
  EXPECT_LT(seconds_since(t0), 5.0);
  if (!is_sequential()) {
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_THROW(ex_->gather(concur::call(value_after, 60'000ms, 1),
                             concur::call(fail_after, 20ms, std::string("quota"))),
                 QuotaExceeded);
    EXPECT_LT(seconds_since(t1), 5.0) << "the sleeping sibling was not cancelled";
  }
}

TEST_P(GatherSuite, FailFastWaitsForSiblingsToStop) {
  // A sibling that only polls cancelled() must have stopped before gather throws.
  std::atomic<bool> stopped{false};
  auto watcher = [&stopped]() -> Task<int> {
    try {
      co_await concur::sleep_for(60'000ms);
    } catch (const concur::Cancelled&) {
      stopped = true;
      throw;
    }
    co_return 0;
  };
  if (is_sequential()) {
    EXPECT_THROW(
        ex_->gather(concur::call(fail_after, 5ms, std::string("x")), concur::call(watcher)),
        QuotaExceeded);
  } else {
    EXPECT_THROW(
        ex_->gather(concur::call(watcher), concur::call(fail_after, 5ms, std::string("x"))),
        QuotaExceeded);
    EXPECT_TRUE(stopped.load()) << "gather returned before its cancelled sibling stopped";
  }
}

TEST_P(GatherSuite, SettledKeepsEveryOutcomeWithCustomExceptionTypes) {
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

TEST_P(GatherSuite, SettledRangeDropsNothing) {
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

TEST_P(GatherSuite, LimitIsNeverExceeded) {
  std::vector<decltype(concur::call(tracked, 1ms, 0))> calls;
  for (int i = 0; i < 40; ++i) calls.push_back(concur::call(tracked, 10ms, i));
  auto out = ex_->gather(calls, {.limit = 3});
  EXPECT_EQ(out.size(), 40u);
  EXPECT_LE(g_max_in_flight.load(), 3);
  if (!is_sequential()) {
    EXPECT_EQ(g_max_in_flight.load(), 3) << "limit should still allow 3 at once";
  }
}

TEST_P(GatherSuite, LimitStartsTheNextInputWhenAnyOneSlotFrees) {
  // One long input holds one of the two slots; the six short ones must flow
  // through the other instead of waiting for the long one (semaphore
  // semantics, not batches of `limit`).
  g_short_done = 0;
  std::vector<concur::Call<Task<int> (*)()>> calls{concur::call(&long_input)};
  for (int i = 0; i < 6; ++i) calls.push_back(concur::call(&short_input));
  auto out = ex_->gather(calls, {.limit = 2});
  ASSERT_EQ(out.size(), 7u);
  if (!is_sequential()) {
    EXPECT_EQ(out[0], 6) << "the short inputs waited for the long one to free its slot";
  }
}

TEST_P(GatherSuite, RangeThatMakesItsCallsOnTheFlyKeepsThem) {
  // A transform view yields each call by value; the child must keep its own
  // copy (its name is read when the timeout fires, long after the view
  // handed the call over).
  auto calls =
      std::views::iota(0, 6) | std::views::transform([](int i) {
        return concur::call(value_after, i % 2 == 0 ? 1ms : 60'000ms, i).named("made-late");
      });
  // 500 ms, not 50: a 1 ms input on a loaded machine under ASan once took
  // longer than 50 ms to start and finish (the 60 s ones time out either way).
  auto rs = ex_->gather_settled(calls, {.timeout = 500ms});
  ASSERT_EQ(rs.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    const auto& r = rs[static_cast<std::size_t>(i)];
    if (i % 2 == 0) {
      ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe();
      EXPECT_EQ(r.value(), i);
    } else {
      ASSERT_FALSE(r.ok()) << i;
      EXPECT_NE(r.error().message().find("(in 'made-late')"), std::string::npos)
          << r.error().message();
    }
  }
}

Task<int> hold_thread(int i) {
  std::this_thread::sleep_for(100ms);  // holds its thread (and a one-thread loop)
  co_return i;
}

TEST_P(GatherSuite, ACallMadeOnTheFlyKeepsItsNameWhenItTimesOutBeforeStarting) {
  // More inputs than thread_pool has threads, each holding its thread: the
  // queued ones time out before they start, and their errors name the call
  // as for a stored range. (The other executors here start each child as it
  // is made, so theirs all start in time.)
  auto make = [](int i) { return concur::call(hold_thread, i).named("holder"); };
  auto view = std::views::iota(0, 8) | std::views::transform(make);
  auto rs = ex_->gather_settled(view, {.timeout = 30ms});
  ASSERT_EQ(rs.size(), 8u);
  std::size_t failed = 0;
  for (const auto& r : rs) {
    if (r.ok()) continue;
    ++failed;
    EXPECT_NE(r.error().message().find("(in 'holder')"), std::string::npos) << r.error().message();
  }
  if (GetParam().executor == "thread_pool") {
    EXPECT_GT(failed, 0u) << "no input timed out queued";
  }
}

Task<int> wait_then_hold(int i) {
  co_await concur::sleep_for(1ms);
  std::this_thread::sleep_for(150ms);  // the last leg stalls a shared thread
  co_return i;
}

TEST_P(GatherSuite, AStallInTheLastLegOfACallMadeOnTheFlyIsReportedByItsName) {
  // The report is made after the leg, when the child's frame (which held
  // the call) is already gone.
  std::mutex mutex;
  std::vector<std::string> names;
  ex_->on_stall([&](const concur::StallReport& r) {
    std::lock_guard lock(mutex);
    names.push_back(r.task);
  });
  auto make = [](int i) { return concur::call(wait_then_hold, i).named("wait-then-hold"); };
  auto view = std::views::iota(0, 2) | std::views::transform(make);
  EXPECT_EQ(ex_->gather(view), (std::vector<int>{0, 1}));
  std::lock_guard lock(mutex);
  if (ex_->detects_stalls()) {
    EXPECT_FALSE(names.empty());
  }
  for (const auto& n : names) EXPECT_EQ(n, "wait-then-hold");
}

TEST_P(GatherSuite, ARangeThatThrowsFailsThatInputAndJoinsTheRest) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> stored;
  for (int i = 0; i < 10; ++i) stored.push_back(concur::call(value_after, 20ms, i));
  auto view = std::views::iota(0, 10) | std::views::transform([&stored](int i) -> const auto& {
                if (i == 5) throw QuotaExceeded("input 5 cannot be made");
                return stored[static_cast<std::size_t>(i)];
              });
  auto rs = ex_->gather_settled(view);
  ASSERT_EQ(rs.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    const auto& r = rs[static_cast<std::size_t>(i)];
    if (i == 5) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().message(), "input 5 cannot be made");
    } else {
      ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe();
      EXPECT_EQ(r.value(), i);
    }
  }
  // Fail-fast: the same error, thrown only after the started inputs stopped.
  EXPECT_THROW(ex_->gather(view), QuotaExceeded);
}

TEST_P(GatherSuite, PerTaskTimeoutFailsOnlyTheSlowTask) {
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

TEST_P(GatherSuite, TimeoutReachesCpuTaskThatPollsCancelled) {
  std::vector<decltype(concur::call(spin_until_cancelled, 1ms))> calls{
      concur::call(spin_until_cancelled, 60'000ms)};
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ex_->gather_settled(calls, {.timeout = 50ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_FALSE(out[0].ok());
  EXPECT_THROW(out[0].value(), concur::TimeoutError);
}

TEST_P(GatherSuite, DeadlineStopsTheBatch) {
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
  EXPECT_THROW(ex_->gather(calls, {.deadline = 100ms}), concur::DeadlineExceeded);
}

TEST_P(GatherSuite, AsCompletedDeliversInCompletionOrder) {
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
  if (is_sequential()) {
    EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2}));
  } else {
    EXPECT_EQ(order, (std::vector<std::size_t>{1, 2, 0}));
  }
}

TEST_P(GatherSuite, ProgressCallbackSeesEveryInput) {
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

TEST_P(GatherSuite, NestedGatherRunsOnTheSameExecutor) {
  EXPECT_EQ(ex_->run(skynet(0, 10'000, 10)), 49'995'000L);
}

TEST_P(GatherSuite, NestedFailurePropagatesOutward) {
  auto outer = []() -> Task<int> {
    auto [a, b] = co_await concur::gather(concur::call(value_after, 1ms, 1),
                                          concur::call(fail_after, 1ms, std::string("inner")));
    co_return a + b;
  };
  auto rs = ex_->gather_settled(concur::call(outer), concur::call(value_after, 1ms, 5));
  ASSERT_FALSE(std::get<0>(rs).ok());
  EXPECT_EQ(std::get<0>(rs).error().message(), "inner");
  EXPECT_EQ(std::get<1>(rs).value(), 5);
}

TEST_P(GatherSuite, TimeoutOfParentCancelsNestedChildren) {
  auto outer = []() -> Task<int> {
    auto [a, b] = co_await concur::gather(concur::call(value_after, 60'000ms, 1),
                                          concur::call(value_after, 60'000ms, 2));
    co_return a + b;
  };
  std::vector<decltype(concur::call(outer))> calls{concur::call(outer)};
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex_->gather_settled(calls, {.timeout = 80ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
}

TEST_P(GatherSuite, HundredThousandTasks) {
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  calls.reserve(100'000);
  for (int i = 0; i < 100'000; ++i) calls.push_back(concur::call(value_after, 0ms, i));
  std::vector<int> out = ex_->gather(calls);
  ASSERT_EQ(out.size(), 100'000u);
  long long sum = std::accumulate(out.begin(), out.end(), 0LL);
  EXPECT_EQ(sum, 99'999LL * 100'000LL / 2);
}

INSTANTIATE_TEST_SUITE_P(
    Executors, GatherSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
