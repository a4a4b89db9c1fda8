// SPDX-License-Identifier: BSL-1.0
// Pull-style as_completed (concur/completion_stream.hpp) on every in-process
// executor: completion order, every input exactly once, backpressure (calls
// start only while fewer than `limit` are outstanding), errors, timeouts,
// deadline and stop-token outcomes, and an early break or a throwing body
// that cancels and joins the rest.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

// What the calls of one test share: how many started, how many are running.
struct Counts {
  std::atomic<int> started{0};
  std::atomic<int> live{0};
  std::atomic<int> cancelled{0};
};

// Counts the call in `c` for as long as it runs.
struct Live {
  explicit Live(Counts* c) : c_(c) {
    ++c_->started;
    ++c_->live;
  }
  ~Live() { --c_->live; }
  Counts* c_;
};

Task<int> after(Counts* c, int value, std::chrono::milliseconds d) {
  Live live(c);
  try {
    co_await concur::sleep_for(d);
  } catch (const concur::Cancelled&) {
    ++c->cancelled;
    throw;
  }
  co_return value;
}

Task<int> fail_after(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  throw std::runtime_error("boom");
}

using AfterCall = decltype(concur::call(after, static_cast<Counts*>(nullptr), 0, 0ms));

std::vector<AfterCall> calls_of(Counts* c, int n, std::chrono::milliseconds each) {
  std::vector<AfterCall> calls;
  for (int i = 0; i < n; ++i) calls.push_back(concur::call(after, c, i, each));
  return calls;
}

class StreamSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    concur::Config c = GetParam().config();
    if (GetParam().executor == "thread_pool") c.set("workers", "16", "test");
    ex_ = concur::make_executor(c);
  }
  bool is_sequential() const { return GetParam().executor == "sequential"; }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(StreamSuite, YieldsEachInputOnceInCompletionOrder) {
  Counts c;
  std::vector<AfterCall> calls;
  constexpr int kN = 6;
  // The later the input, the sooner it ends (when they run side by side).
  for (int i = 0; i < kN; ++i) calls.push_back(concur::call(after, &c, i, (kN - i) * 15ms));
  std::vector<std::size_t> order;
  ex_->run(concur::as_completed(calls, [&](concur::CompletionStream<int>& s) -> Task<void> {
    EXPECT_EQ(s.size(), static_cast<std::size_t>(kN));
    while (auto done = co_await s.next()) {
      EXPECT_EQ(done->result.value(), static_cast<int>(done->index));
      order.push_back(done->index);
    }
    EXPECT_EQ(co_await s.next(), std::nullopt) << "the end stays the end";
  }));
  std::vector<std::size_t> expected;
  for (int i = 0; i < kN; ++i)
    expected.push_back(static_cast<std::size_t>(is_sequential() ? i : kN - 1 - i));
  EXPECT_EQ(order, expected);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, ASlowConsumerHoldsTheBatchBack) {
  Counts c;
  constexpr int kN = 40;
  constexpr int kLimit = 4;
  auto calls = calls_of(&c, kN, 1ms);
  int consumed = 0;
  int most_outstanding = 0;
  std::set<std::size_t> seen;
  ex_->run(concur::as_completed(
      calls,
      [&](concur::CompletionStream<int>& s) -> Task<void> {
        while (auto done = co_await s.next()) {
          ++consumed;
          seen.insert(done->index);
          most_outstanding = std::max(most_outstanding, c.started.load() - (consumed - 1));
          EXPECT_LE(c.started.load(), consumed + kLimit);
          co_await concur::sleep_for(3ms);  // slow: every call in flight finishes meanwhile
          EXPECT_LE(c.started.load(), consumed + kLimit) << "the batch ran ahead of its consumer";
        }
      },
      {.limit = kLimit}));
  EXPECT_EQ(consumed, kN);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kN));
  EXPECT_LE(most_outstanding, kLimit);
  EXPECT_EQ(c.started.load(), kN);
}

TEST_P(StreamSuite, FailuresAndTimeoutsAreOutcomes) {
  Counts c;
  using Any = concur::Call<Task<int> (*)(std::chrono::milliseconds), std::chrono::milliseconds>;
  std::vector<Any> calls{concur::call(fail_after, 1ms), concur::call(fail_after, 10'000ms),
                         concur::call(fail_after, 2ms)};
  std::vector<std::string> kinds(3);
  ex_->run(concur::as_completed(calls,
                                [&](concur::CompletionStream<int>& s) -> Task<void> {
                                  while (auto done = co_await s.next()) {
                                    EXPECT_FALSE(done->result.ok());
                                    if (!done->result.ok())
                                      kinds[done->index] = done->result.error().type();
                                  }
                                },
                                {.timeout = 40ms}));
  EXPECT_NE(kinds[0].find("runtime_error"), std::string::npos) << kinds[0];
  EXPECT_NE(kinds[1].find("TimeoutError"), std::string::npos) << kinds[1];
  EXPECT_NE(kinds[2].find("runtime_error"), std::string::npos) << kinds[2];
}

TEST_P(StreamSuite, AnEarlyBreakCancelsAndJoinsTheRest) {
  Counts c;
  auto calls = calls_of(&c, 20, 10'000ms);
  calls[0] = concur::call(after, &c, 0, 1ms);
  const std::size_t first =
      ex_->run(concur::as_completed(calls,
                                    [&](concur::CompletionStream<int>& s) -> Task<std::size_t> {
                                      auto done = co_await s.next();
                                      co_return done->index;  // leaves the rest unconsumed
                                    },
                                    {.limit = 5}));
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(c.live.load(), 0) << "a call outlived as_completed";
  EXPECT_LE(c.started.load(), 6);
  EXPECT_EQ(c.cancelled.load(), c.started.load() - 1);
}

TEST_P(StreamSuite, ABodyThatThrowsCancelsJoinsAndRethrows) {
  Counts c;
  auto calls = calls_of(&c, 10, 10'000ms);
  calls[3] = concur::call(after, &c, 3, 1ms);
  EXPECT_THROW(ex_->run(concur::as_completed(calls,
                                             [&](concur::CompletionStream<int>& s) -> Task<void> {
                                               co_await s.next();
                                               throw std::logic_error("consumer failed");
                                             },
                                             {.limit = 4})),
               std::logic_error);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, AStopFromAnotherThreadGivesEveryInputItsCancelled) {
  Counts c;
  constexpr int kN = 30;
  auto calls = calls_of(&c, kN, 10'000ms);
  // On sequential the first call runs inline until stopped: one at a time.
  const int in_flight = is_sequential() ? 1 : 4;
  std::stop_source stop;
  std::jthread stopper([&] {
    while (c.started.load() < in_flight) std::this_thread::sleep_for(1ms);
    stop.request_stop();
  });
  std::set<std::size_t> seen;
  int cancelled = 0;
  ex_->run(concur::as_completed(calls,
                                [&](concur::CompletionStream<int>& s) -> Task<void> {
                                  while (auto done = co_await s.next()) {
                                    seen.insert(done->index);
                                    if (!done->result.ok() &&
                                        done->result.error().type().find("Cancelled") !=
                                            std::string::npos) {
                                      ++cancelled;
                                    }
                                  }
                                },
                                {.limit = 4, .stop = stop.get_token()}));
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kN));
  EXPECT_EQ(cancelled, kN);
  EXPECT_EQ(c.started.load(), in_flight) << "nothing starts once stopped";
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, ThePastDeadlineEndsEveryInputWithDeadlineExceeded) {
  Counts c;
  auto calls = calls_of(&c, 12, 10'000ms);
  int deadline_errors = 0;
  std::size_t yielded = 0;
  ex_->run(concur::as_completed(calls,
                                [&](concur::CompletionStream<int>& s) -> Task<void> {
                                  while (auto done = co_await s.next()) {
                                    ++yielded;
                                    if (done->result.error().type().find("DeadlineExceeded") !=
                                        std::string::npos)
                                      ++deadline_errors;
                                  }
                                },
                                {.limit = 3, .deadline = 30ms}));
  EXPECT_EQ(yielded, 12u);
  EXPECT_EQ(deadline_errors, 12);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, TheAwaitingTaskCancelledStopsTheStream) {
  Counts c;
  auto calls = calls_of(&c, 8, 10'000ms);
  bool next_threw = false;
  auto consumer = concur::call([&]() -> Task<void> {
    co_await concur::as_completed(calls,
                                  [&](concur::CompletionStream<int>& s) -> Task<void> {
                                    try {
                                      co_await s.next();
                                    } catch (const concur::Cancelled&) {
                                      next_threw = true;
                                      throw;
                                    }
                                  },
                                  {.limit = 2});
  });
  if (is_sequential()) {
    // Its calls run inline to their end: cancel it from outside instead.
    std::stop_source stop;
    std::jthread stopper([&] {
      std::this_thread::sleep_for(30ms);
      stop.request_stop();
    });
    EXPECT_THROW(ex_->run(consumer(), stop.get_token()), concur::Cancelled);
  } else {
    EXPECT_THROW(ex_->gather(consumer, concur::call(fail_after, 20ms)), std::runtime_error);
    EXPECT_TRUE(next_threw);
  }
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, AnEmptyRangeEndsAtOnceAndVoidCallsWork) {
  std::vector<AfterCall> none;
  const bool ended =
      ex_->run(concur::as_completed(none, [](concur::CompletionStream<int>& s) -> Task<bool> {
        co_return !(co_await s.next());
      }));
  EXPECT_TRUE(ended);
  std::atomic<int> ran{0};
  auto v = concur::call([&]() -> Task<void> {
    ++ran;
    co_return;
  });
  std::vector<decltype(v)> voids(5, v);
  int ok = 0;
  ex_->run(concur::as_completed(voids,
                                [&](concur::CompletionStream<void>& s) -> Task<void> {
                                  while (auto done = co_await s.next())
                                    ok += done->result.ok() ? 1 : 0;
                                },
                                {.limit = 2}));
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(ran.load(), 5);
}

TEST_P(StreamSuite, NextFromAnotherTaskIsAUsageError) {
  Counts c;
  auto calls = calls_of(&c, 2, 1ms);
  ex_->run(concur::as_completed(calls, [&](concur::CompletionStream<int>& s) -> Task<void> {
    auto [r] =
        co_await concur::gather_settled(concur::call([&]() -> Task<void> { co_await s.next(); }));
    EXPECT_THROW(r.value(), concur::UsageError);
    while (co_await s.next()) {
    }
  }));
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, TheBlockingFormYieldsEveryInputAndHoldsTheBatchBack) {
  Counts c;
  constexpr int kN = 20;
  constexpr int kLimit = 3;
  auto calls = calls_of(&c, kN, 1ms);
  std::set<std::size_t> seen;
  int consumed = 0;
  {
    auto results = concur::as_completed(*ex_, calls, {.limit = kLimit});
    while (auto done = results.next()) {
      ++consumed;
      EXPECT_TRUE(seen.insert(done->index).second);
      EXPECT_EQ(done->result.value(), static_cast<int>(done->index));
      std::this_thread::sleep_for(2ms);  // a slow consumer thread
      EXPECT_LE(c.started.load(), consumed + kLimit);
    }
    EXPECT_EQ(results.next(), std::nullopt);
  }
  EXPECT_EQ(consumed, kN);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_P(StreamSuite, TheBlockingFormDestroyedEarlyCancelsAndJoinsTheRest) {
  Counts c;
  auto calls = calls_of(&c, 10, 10'000ms);
  calls[0] = concur::call(after, &c, 0, 1ms);
  {
    auto results = concur::as_completed(*ex_, calls, {.limit = 4});
    auto first = results.next();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->index, 0u);
  }  // the rest are cancelled and joined here
  EXPECT_EQ(c.live.load(), 0);
  EXPECT_EQ(c.cancelled.load(), c.started.load() - 1);
  // The executor is free again.
  EXPECT_EQ(ex_->run([]() -> Task<int> { co_return 7; }()), 7);
}

INSTANTIATE_TEST_SUITE_P(
    Executors, StreamSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
