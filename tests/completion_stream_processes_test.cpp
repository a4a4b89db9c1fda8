// SPDX-License-Identifier: BSL-1.0
// Pull-style as_completed over registered calls, on every executor including
// `processes` (calls in worker processes: no shared memory, so each call
// reports when it ran on the machine-wide steady clock, and the consumer
// notes when it received each outcome); and the synchronisation primitives
// made and used inside a registered call, within its worker.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <concur/concur.hpp>
#include <set>
#include <string>
#include <vector>

#include "support/executor_params.hpp"
#include "support/processes_helpers.hpp"

using namespace std::chrono_literals;
using concur::Task;
using concur::testing::Interval;
using concur::testing::interval;
using concur::testing::now_ns;

namespace {

Task<int> stream_value_after(std::chrono::milliseconds d, int v) {
  co_await concur::sleep_for(d);
  co_return v;
}
CONCUR_REGISTER(stream_value_after);

using IntervalCall = decltype(concur::call(interval, 0ms));

// Makes its own Semaphore, Lock, Condition, Event and Queue (they cannot be
// arguments: concur/process_local.hpp) and runs `n` subtasks through them,
// in whichever process runs the call. Works on sequential too: nothing
// waits for a later sibling.
Task<long> primitives_inside(int n) {
  concur::Semaphore slots(2);
  concur::Lock lock;
  concur::Condition counted;
  concur::Event go;
  concur::Queue<int> out(static_cast<std::size_t>(n));
  long total = 0;  // guarded by lock
  go.set();
  auto sub = [&](int i) -> Task<void> {
    co_await go.wait();
    co_await slots.acquire();
    {
      auto held = co_await lock.scoped();
      total += i;
      counted.notify_all();
    }
    slots.release();
    co_await out.push(i);
  };
  std::vector<decltype(concur::call(sub, 0))> subs;
  for (int i = 1; i <= n; ++i) subs.push_back(concur::call(sub, i));
  co_await concur::gather(subs);
  out.close();
  long drained = 0;
  while (auto v = co_await out.pop()) drained += *v;
  auto held = co_await lock.scoped();
  co_await counted.wait_for(held, [&] { return total == drained; });
  co_return total;
}
CONCUR_REGISTER(primitives_inside);

class StreamEverywhere : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override { ex_ = concur::make_executor(GetParam().config()); }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(StreamEverywhere, EveryInputOnceInTheOrderTheyEnded) {
  std::vector<IntervalCall> calls;
  constexpr int kN = 8;
  for (int i = 0; i < kN; ++i) calls.push_back(concur::call(interval, (kN - i) * 20ms));
  std::vector<Interval> in_order_received;
  std::set<std::size_t> seen;
  ex_->run(concur::as_completed(calls, [&](concur::CompletionStream<Interval>& s) -> Task<void> {
    while (auto done = co_await s.next()) {
      EXPECT_TRUE(seen.insert(done->index).second);
      in_order_received.push_back(done->result.value());
    }
  }));
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kN));
  // Completion order: each outcome ended no later than the next one received
  // (ends are 20 ms apart or more; 5 ms covers the trip back from a worker).
  for (std::size_t k = 1; k < in_order_received.size(); ++k) {
    EXPECT_LE(in_order_received[k - 1].second, in_order_received[k].second + 5'000'000)
        << "outcome " << k - 1 << " was received before one that ended earlier";
  }
}

TEST_P(StreamEverywhere, ASlowConsumerHoldsTheCallsBack) {
  constexpr int kN = 18;
  constexpr int kLimit = 3;
  std::vector<IntervalCall> calls(kN, concur::call(interval, 2ms));
  std::vector<long long> received_at;  // when the consumer got its k-th outcome
  std::vector<Interval> ran;
  ex_->run(concur::as_completed(calls,
                                [&](concur::CompletionStream<Interval>& s) -> Task<void> {
                                  while (auto done = co_await s.next()) {
                                    received_at.push_back(now_ns());
                                    ran.push_back(done->result.value());
                                    co_await concur::sleep_for(8ms);  // slower than the calls
                                  }
                                },
                                {.limit = kLimit}));
  ASSERT_EQ(ran.size(), static_cast<std::size_t>(kN));
  // When the consumer received outcome k, it had taken k before it, and at
  // most kLimit calls were outstanding: no more than k + kLimit had started.
  for (std::size_t k = 0; k < received_at.size(); ++k) {
    const auto started = std::count_if(ran.begin(), ran.end(),
                                       [&](const Interval& i) { return i.first < received_at[k]; });
    EXPECT_LE(started, static_cast<long>(k) + kLimit) << "at outcome " << k;
  }
  EXPECT_LE(concur::testing::most_at_once(ran), kLimit);
}

TEST_P(StreamEverywhere, AnEarlyBreakCancelsTheRestAndTheBlockingFormWorks) {
  std::vector<decltype(concur::call(stream_value_after, 0ms, 0))> calls;
  for (int i = 0; i < 6; ++i) calls.push_back(concur::call(stream_value_after, 60'000ms, i));
  calls[0] = concur::call(stream_value_after, 1ms, 0);  // first also on sequential
  const auto start = std::chrono::steady_clock::now();
  const int first =
      ex_->run(concur::as_completed(calls,
                                    [&](concur::CompletionStream<int>& s) -> Task<int> {
                                      auto done = co_await s.next();
                                      co_return done->result.value();
                                    },
                                    {.limit = 3}));
  EXPECT_EQ(first, 0);
  {
    auto results = concur::as_completed(*ex_, calls, {.limit = 3});
    auto done = results.next();
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(done->result.value(), 0);
  }
  // Not a speed bound: a call left running would hold this for a minute.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST_P(StreamEverywhere, PrimitivesMadeInsideACallWorkInItsWorker) {
  std::vector<decltype(concur::call(primitives_inside, 0))> calls;
  for (int n = 1; n <= 6; ++n) calls.push_back(concur::call(primitives_inside, n * 10));
  const std::vector<long> totals = ex_->gather(calls);
  for (std::size_t k = 0; k < totals.size(); ++k) {
    const long n = static_cast<long>(k + 1) * 10;
    EXPECT_EQ(totals[k], n * (n + 1) / 2);
  }
}

TEST(StreamProcesses, AnUnregisteredCallIsAUsageErrorBeforeAnyRuns) {
  auto ex = concur::testing::make_processes(1);
  auto lambda = concur::call([]() -> Task<int> { co_return 1; });
  std::vector<decltype(lambda)> calls{lambda};
  bool body_ran = false;
  EXPECT_THROW(ex->run(concur::as_completed(calls,
                                            [&](concur::CompletionStream<int>&) -> Task<void> {
                                              body_ran = true;
                                              co_return;
                                            })),
               concur::UsageError);
  EXPECT_FALSE(body_ran);
}

INSTANTIATE_TEST_SUITE_P(
    Executors, StreamEverywhere,
    ::testing::ValuesIn(concur::testing::registered_call_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // launched workers serve here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
