// SPDX-License-Identifier: BSL-1.0
// Cancelling a running batch from another thread (GatherOptions::stop,
// Executor::run with a std::stop_token) on every in-process executor.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <stop_token>
#include <thread>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

std::atomic<int> g_started{0};

Task<int> long_wait(int v) {
  ++g_started;
  co_await concur::sleep_for(60'000ms);
  co_return v;
}

// CPU-bound: polls cancelled() and blocks its thread in between.
Task<int> spin(int v) {
  ++g_started;
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (!concur::cancelled() && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(1ms);
  concur::throw_if_cancelled();
  co_return v;
}

Task<void> wait_forever(concur::Event* never) { co_await never->wait(); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Requests stop on `source` after `after`, from its own thread.
struct StopLater {
  std::jthread thread;
  StopLater(std::stop_source& source, std::chrono::milliseconds after)
      : thread([&source, after] {
          std::this_thread::sleep_for(after);
          source.request_stop();
        }) {}
};

class ExternalCancelSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    ex_ = concur::make_executor(GetParam().config());
    g_started = 0;
  }
  std::unique_ptr<concur::Executor> ex_;
};

TEST_P(ExternalCancelSuite, ABatchCancelledAt100msGivesACancelledResultForEveryInput) {
  std::vector<decltype(concur::call(long_wait, 0))> calls;
  for (int i = 0; i < 20; ++i) calls.push_back(concur::call(long_wait, i));
  std::stop_source source;
  const auto t0 = std::chrono::steady_clock::now();
  StopLater later(source, 100ms);
  auto rs = ex_->gather_settled(calls, {.limit = 8, .stop = source.get_token()});
  EXPECT_LT(seconds_since(t0), 30.0);
  ASSERT_EQ(rs.size(), 20u);
  for (auto& r : rs) EXPECT_THROW(r.value(), concur::Cancelled);
  EXPECT_LE(g_started.load(), 8) << "inputs past the limit must not start after the stop";
}

TEST_P(ExternalCancelSuite, AFailFastGatherThrowsCancelledAndCpuTasksSeeIt) {
  ex_->on_stall({});  // the spinning task blocks its thread on purpose
  std::stop_source source;
  StopLater later(source, 100ms);
  EXPECT_THROW(
      ex_->gather({.stop = source.get_token()}, concur::call(spin, 1), concur::call(long_wait, 2)),
      concur::Cancelled);
}

TEST_P(ExternalCancelSuite, AStopAlreadyRequestedStartsNothing) {
  std::vector<decltype(concur::call(long_wait, 0))> calls(5, concur::call(long_wait, 0));
  std::stop_source source;
  source.request_stop();
  auto rs = ex_->gather_settled(calls, {.stop = source.get_token()});
  ASSERT_EQ(rs.size(), 5u);
  for (auto& r : rs) EXPECT_THROW(r.value(), concur::Cancelled);
  EXPECT_EQ(g_started.load(), 0);
}

TEST_P(ExternalCancelSuite, RunWithAStopTokenCancelsWaitsOnPrimitivesToo) {
  concur::Event never;
  std::stop_source source;
  StopLater later(source, 100ms);
  EXPECT_THROW(ex_->run(wait_forever(&never), source.get_token()), concur::Cancelled);
  EXPECT_EQ(never.waiters(), 0u);
}

TEST_P(ExternalCancelSuite, ATokenNeverStoppedChangesNothing) {
  std::stop_source source;
  auto [a, b] =
      ex_->gather({.stop = source.get_token()}, concur::call([]() -> Task<int> { co_return 1; }),
                  concur::call([]() -> Task<int> { co_return 2; }));
  EXPECT_EQ(a + b, 3);
  EXPECT_EQ(ex_->run([]() -> Task<int> { co_return 7; }(), source.get_token()), 7);
}

INSTANTIATE_TEST_SUITE_P(
    Executors, ExternalCancelSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
