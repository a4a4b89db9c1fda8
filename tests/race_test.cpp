// SPDX-License-Identifier: BSL-1.0
// race, first_completed and wait_for on every in-process executor.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/counted_tasks.hpp"
#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

using concur::testing::fail_after;
using concur::testing::g_cancelled;
using concur::testing::g_ended;
using concur::testing::g_started;
using concur::testing::QuotaExceeded;
using concur::testing::seconds_since;
using concur::testing::value_after;

// Both kinds of call in one range.
struct Attempt {
  bool fails;
  std::chrono::milliseconds delay;
  int value;
  Task<int> operator()() const {
    return fails ? fail_after(delay, std::to_string(value)) : value_after(delay, value);
  }
};

namespace llm = concur::llm;
namespace fl = concur::fake_llm;

Task<std::string> ask(const llm::Client* client, std::string prompt) {
  llm::ChatRequest r;
  r.messages = {{"user", std::move(prompt)}};
  co_return (co_await client->chat(std::move(r))).content;
}

llm::Client client_of(const fl::Server& server) {
  llm::ClientOptions o;
  o.base_url = server.base_url();
  o.model = "test-model";
  return llm::Client(o);
}

class RaceSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    ex_ = concur::make_executor(GetParam().config());
    g_started = g_ended = g_cancelled = 0;
  }
  bool is_sequential() const { return GetParam().executor == "sequential"; }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(RaceSuite, FirstSuccessWinsAndTheOthersAreCancelledAndJoined) {
  // The first attempt is slow only where others run beside it (sequential
  // runs it to its end first): under load a 200 ms lead was not enough.
  const auto first_delay = is_sequential() ? 200ms : 20'000ms;
  std::vector<Attempt> attempts{{false, first_delay, 1}, {false, 10ms, 2}, {false, 60'000ms, 3}};
  int ended_when_returned = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const int winner = ex_->run([&]() -> Task<int> {
    const int w = co_await concur::race(attempts);
    ended_when_returned = g_ended.load();
    co_return w;
  }());
  EXPECT_LT(seconds_since(t0), 30.0);
  // sequential runs the first attempt to its end first: it wins, the rest never start.
  EXPECT_EQ(winner, is_sequential() ? 1 : 2);
  EXPECT_EQ(ended_when_returned, g_started.load()) << "a loser outlived the race";
  if (!is_sequential()) {
    EXPECT_EQ(g_cancelled.load(), 2);
  }
}

TEST_P(RaceSuite, FailuresDoNotWinWhileASuccessMayCome) {
  std::vector<Attempt> attempts{{true, 5ms, 1}, {false, 30ms, 7}};
  EXPECT_EQ(ex_->run(concur::race(attempts)), 7);
}

TEST_P(RaceSuite, WhenEveryCallFailsTheFirstFailureIsThrown) {
  std::vector<Attempt> attempts{{true, 5ms, 1}, {true, 300ms, 2}};
  try {
    ex_->run(concur::race(attempts));
    FAIL() << "expected QuotaExceeded";
  } catch (const QuotaExceeded& e) {
    EXPECT_STREQ(e.what(), "1");
  }
}

TEST_P(RaceSuite, FirstCompletedGivesTheFirstOutcomeEvenAFailure) {
  std::vector<Attempt> attempts{{false, 300ms, 1}, {true, 5ms, 2}};
  if (is_sequential()) std::swap(attempts[0], attempts[1]);  // its first call ends first
  auto first = ex_->run(concur::first_completed(attempts));
  EXPECT_EQ(first.index, is_sequential() ? 0u : 1u);
  EXPECT_THROW(first.result.value(), QuotaExceeded);
  EXPECT_EQ(g_ended.load(), g_started.load());
}

TEST_P(RaceSuite, AnEmptyRaceIsAUsageError) {
  std::vector<Attempt> none;
  EXPECT_THROW(ex_->run(concur::race(none)), concur::UsageError);
}

TEST_P(RaceSuite, WaitForGivesTheValueInTime) {
  EXPECT_EQ(ex_->run(concur::wait_for(concur::call(value_after, 5ms, 4), 10s)), 4);
  EXPECT_EQ(ex_->run(concur::wait_for(value_after(5ms, 5), 10s)), 5);
}

TEST_P(RaceSuite, WaitForTimesOutAndTheCallHasStopped) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(ex_->run(concur::wait_for(concur::call(value_after, 60'000ms, 1), 30ms)),
               concur::TimeoutError);
  EXPECT_LT(seconds_since(t0), 30.0);
  EXPECT_EQ(g_cancelled.load(), 1);
  EXPECT_EQ(g_ended.load(), 1);
}

TEST_P(RaceSuite, WaitForPassesTheCallsOwnFailureThrough) {
  EXPECT_THROW(ex_->run(concur::wait_for(concur::call(fail_after, 1ms, std::string("x")), 10s)),
               QuotaExceeded);
}

TEST_P(RaceSuite, AHedgedRequestTakesTheFasterReplicasReply) {
  fl::Server slow({.latency = fl::Latency::fixed(1500ms)});
  fl::Server fast({.latency = fl::Latency::fixed(10ms)});
  llm::Client to_slow = client_of(slow);
  llm::Client to_fast = client_of(fast);
  const std::string prompt = "hedge me";
  std::vector<decltype(concur::call(ask, &to_slow, prompt))> replicas{
      concur::call(ask, &to_slow, prompt), concur::call(ask, &to_fast, prompt)};
  if (is_sequential()) std::swap(replicas[0], replicas[1]);  // its first call ends first
  auto first = ex_->run(concur::first_completed(replicas));
  EXPECT_EQ(first.result.value(), fl::reply_for(prompt));
  EXPECT_EQ(first.index, is_sequential() ? 0u : 1u) << "the fast replica should win";
  EXPECT_EQ(fast.stats().by_status.at(200), 1u);
  // The loser was cancelled, not waited for: the slow replica never got to reply.
  EXPECT_EQ(slow.stats().by_status.count(200), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Executors, RaceSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
