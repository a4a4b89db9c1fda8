// SPDX-License-Identifier: BSL-1.0
// processes with worker_concurrency > 1 (DESIGN §5): every worker overlaps
// its calls' waits on an in-process executor, and the faults that several
// calls in flight on one worker bring: a crash among them, cancellation and
// timeouts reaching calls running and queued there, a call stuck in a CPU
// loop that must not hold innocent calls, and stall reports from workers.
//
// Overlap is asserted from the intervals the calls measure themselves (the
// steady clock is one per host), never from a wall-clock speed-up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/trace.hpp>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/processes_helpers.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

using concur::testing::Interval;
using concur::testing::most_at_once;
using concur::testing::now_ns;

using concur::testing::interval;

int worker_pid() { return static_cast<int>(getpid()); }
CONCUR_REGISTER(worker_pid);

Task<int> pid_after(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  co_return static_cast<int>(getpid());
}
CONCUR_REGISTER(pid_after);

Task<int> crash_after(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  volatile int* nowhere = nullptr;
  *nowhere = 1;  // SIGSEGV
  co_return 0;
}
CONCUR_REGISTER(crash_after);

Task<int> fail_after(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  throw std::runtime_error("failed on purpose");
}
CONCUR_REGISTER(fail_after);

// Holds its thread and never polls for cancellation: only a kill stops it.
int stuck(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  return worker_pid();
}
CONCUR_REGISTER(stuck);

// A trivial call with the same signature as stuck(), to share a range with it.
int quick(std::chrono::milliseconds) { return worker_pid(); }
CONCUR_REGISTER(quick);

// CPU work that never waits: on an event loop it holds every other call.
int cpu_burn(std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  volatile long spins = 0;
  while (std::chrono::steady_clock::now() < end) spins = spins + 1;
  return worker_pid();
}
CONCUR_REGISTER(cpu_burn);

// Four nested waits inside one call, in its worker.
Task<std::vector<Interval>> nested_intervals(std::chrono::milliseconds d) {
  std::vector<decltype(concur::call(interval, 1ms))> calls(4, concur::call(interval, d));
  co_return co_await concur::gather(calls);
}
CONCUR_REGISTER(nested_intervals);

std::unique_ptr<concur::Executor> make(
    int workers, const std::vector<std::pair<std::string, std::string>>& more = {}) {
  return concur::testing::make_processes(workers, more);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void warm(concur::Executor& ex) {
  std::vector<decltype(concur::call(pid_after, 1ms))> calls(4, concur::call(pid_after, 20ms));
  ex.gather(calls);
}

TEST(ProcessesConcurrency, EightWaitsOnTwoWorkersOverlapInOneLatency) {
  auto ex = make(2, {{"worker_concurrency", "4"}});
  warm(*ex);
  std::vector<decltype(concur::call(interval, 1ms))> calls(8, concur::call(interval, 300ms));
  const std::vector<Interval> spans = ex->gather(calls);
  EXPECT_EQ(most_at_once(spans), 8) << "8 calls of 300 ms on 2 workers x 4 did not all overlap";
}

TEST(ProcessesConcurrency, OneCallAtATimeIsStillThereWithConcurrencyOne) {
  auto ex = make(2, {{"worker_concurrency", "1"}});
  warm(*ex);
  std::vector<decltype(concur::call(interval, 1ms))> calls(6, concur::call(interval, 50ms));
  EXPECT_EQ(most_at_once(ex->gather(calls)), 2);
}

TEST(ProcessesConcurrency, SequentialWorkerExecutorRunsOneCallAtATime) {
  auto ex = make(1, {{"worker_executor", "sequential"}, {"worker_concurrency", "8"}});
  EXPECT_EQ(ex->lanes(), 1) << "a sequential worker runs one call at a time";
  std::vector<decltype(concur::call(interval, 1ms))> calls(3, concur::call(interval, 30ms));
  EXPECT_EQ(most_at_once(ex->gather(calls)), 1);
}

class WorkerExecutors : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkerExecutors, NestedGatherInsideACallOverlapsItsWaits) {
  auto ex = make(1, {{"worker_executor", GetParam()}, {"worker_concurrency", "4"}});
  auto [spans] = ex->gather(concur::call(nested_intervals, 200ms));
  ASSERT_EQ(spans.size(), 4u);
  EXPECT_EQ(most_at_once(spans), 4) << "nested waits ran one after another on " << GetParam();
}

TEST_P(WorkerExecutors, CallsOfOneWorkerOverlap) {
  auto ex = make(1, {{"worker_executor", GetParam()}, {"worker_concurrency", "4"}});
  std::vector<decltype(concur::call(interval, 1ms))> calls(4, concur::call(interval, 200ms));
  EXPECT_EQ(most_at_once(ex->gather(calls)), 4);
}

INSTANTIATE_TEST_SUITE_P(InWorkers, WorkerExecutors,
                         ::testing::Values("event_loop", "fibers", "thread_pool"));

TEST(ProcessesConcurrency, ACrashFailsTheCallsInFlightBesideItAndNamesTheCulprit) {
  auto ex = make(1, {{"worker_concurrency", "4"}});
  const int before = std::get<0>(ex->gather(concur::call(worker_pid)));
  std::vector<decltype(concur::call(pid_after, 1ms))> calls{
      concur::call(pid_after, 3000ms), concur::call(pid_after, 3000ms),
      concur::call(pid_after, 3000ms), concur::call(crash_after, 100ms)};
  auto rs = ex->gather_settled(calls);
  ASSERT_EQ(rs.size(), 4u);
  ASSERT_FALSE(rs[3].ok());
  EXPECT_THROW(rs[3].value(), concur::WorkerCrashed);
  EXPECT_NE(rs[3].error().message().find("while running 'crash_after'"), std::string::npos)
      << rs[3].error().message();
  EXPECT_NE(rs[3].error().message().find("SIGSEGV"), std::string::npos);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_FALSE(rs[i].ok()) << i;
    EXPECT_THROW(rs[i].value(), concur::WorkerCrashed);
    EXPECT_NE(rs[i].error().message().find("in flight"), std::string::npos)
        << rs[i].error().message();
    EXPECT_NE(rs[i].error().message().find("crash_after"), std::string::npos)
        << rs[i].error().message();
  }
  // A new worker took its place.
  const int after = std::get<0>(ex->gather(concur::call(worker_pid)));
  EXPECT_NE(after, before);
}

TEST(ProcessesConcurrency, CallsNotStartedWhenAWorkerCrashesAreSentAgain) {
  // Trivial calls make the window large, so many are queued inside the
  // worker behind the crashing one; only the crasher may fail.
  auto ex = make(1, {{"worker_concurrency", "2"}});
  std::vector<decltype(concur::call(pid_after, 1ms))> calls;
  for (int i = 0; i < 200; ++i) calls.push_back(concur::call(pid_after, 0ms));
  ex->gather(calls);
  calls[50] = concur::call(crash_after, 0ms);
  auto rs = ex->gather_settled(calls);
  int failed = 0;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    if (rs[i].ok()) continue;
    ++failed;
    EXPECT_THROW(rs[i].value(), concur::WorkerCrashed);
  }
  EXPECT_FALSE(rs[50].ok());
  // At most the other slot's call can have been in flight beside the crasher.
  EXPECT_LE(failed, 2) << "calls that never started were failed instead of sent again";
}

TEST(ProcessesConcurrency, FailFastCancelsEveryCallRunningInTheWorker) {
  auto ex = make(1, {{"worker_concurrency", "4"}});
  const int before = std::get<0>(ex->gather(concur::call(worker_pid)));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(ex->gather(concur::call(pid_after, 60'000ms), concur::call(pid_after, 60'000ms),
                          concur::call(pid_after, 60'000ms), concur::call(fail_after, 100ms)),
               std::runtime_error);
  EXPECT_LT(seconds_since(t0), 10.0) << "the cancellation did not reach the sleeping calls";
  EXPECT_EQ(std::get<0>(ex->gather(concur::call(worker_pid))), before)
      << "cooperative calls were cancelled by killing their worker";
}

TEST(ProcessesConcurrency, PerTaskTimeoutsReachCallsRunningAndQueuedInOneWorker) {
  auto ex = make(1, {{"worker_concurrency", "2"}});
  std::vector<decltype(concur::call(pid_after, 1ms))> calls(6, concur::call(pid_after, 60'000ms));
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex->gather_settled(calls, {.timeout = 100ms});
  EXPECT_LT(seconds_since(t0), 20.0);
  for (auto& r : rs) {
    ASSERT_FALSE(r.ok());
    EXPECT_THROW(r.value(), concur::TimeoutError);
  }
}

TEST(ProcessesConcurrency, TimeoutCountsFromTheCallsOwnStart) {
  // Two slots: calls 7 and 8 start ~300 ms in and end ~400 ms in, past their
  // 300 ms timeout if it counted from the gather, yet each runs 100 ms (a
  // 200 ms margin per call, for a loaded machine).
  auto ex = make(1, {{"worker_concurrency", "2"}});
  warm(*ex);
  std::vector<decltype(concur::call(pid_after, 1ms))> calls(8, concur::call(pid_after, 100ms));
  auto rs = ex->gather_settled(calls, {.timeout = 300ms});
  for (auto& r : rs) EXPECT_TRUE(r.ok()) << r.error().describe();
}

TEST(ProcessesConcurrency, AStuckCallDoesNotHoldInnocentCallsWhileAnotherWorkerIsIdle) {
  // One call holds its worker's only thread and ignores its timeout; the
  // trivial calls sent to the same worker must move to the idle one and
  // succeed, and the stuck one times out alone.
  auto ex = make(2, {{"cancel_grace_ms", "100"}});
  std::vector<decltype(concur::call(stuck, 1ms))> warmup(200, concur::call(quick, 0ms));
  ex->gather(warmup);  // many trivial calls: a large pipelining window
  std::vector<decltype(concur::call(stuck, 1ms))> calls{concur::call(stuck, 60'000ms)};
  for (int i = 0; i < 40; ++i) calls.push_back(concur::call(quick, 0ms));
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex->gather_settled(calls, {.timeout = 2000ms});
  EXPECT_LT(seconds_since(t0), 30.0);
  ASSERT_FALSE(rs[0].ok());
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  for (std::size_t i = 1; i < rs.size(); ++i) {
    EXPECT_TRUE(rs[i].ok()) << i << ": " << rs[i].error().describe();
  }
}

TEST(ProcessesConcurrency, TrivialCallsFinishBeforeALegitimatelySlowCallOnOneThread) {
  // One call per worker at a time: a 1.5 s call must not hold the trivial
  // calls sent behind it while the other worker is idle.
  auto ex = make(2, {{"worker_concurrency", "1"}});
  std::vector<decltype(concur::call(stuck, 1ms))> warmup(200, concur::call(quick, 0ms));
  ex->gather(warmup);
  std::vector<decltype(concur::call(stuck, 1ms))> calls{concur::call(stuck, 1500ms)};
  for (int i = 0; i < 40; ++i) calls.push_back(concur::call(quick, 0ms));
  std::vector<std::size_t> order;
  ex->as_completed(calls, [&](std::size_t i, concur::Result<int>&& r) {
    EXPECT_TRUE(r.ok()) << i;
    order.push_back(i);
  });
  ASSERT_EQ(order.size(), calls.size());
  EXPECT_EQ(order.back(), 0u) << "a trivial call waited behind the slow one";
}

TEST(ProcessesConcurrency, ACpuBoundCallInAWorkerIsReportedByTheStallDetector) {
  auto ex = make(1, {{"worker_concurrency", "4"}, {"stall_ms", "50"}});
  std::mutex m;
  std::vector<concur::StallReport> reports;
  ex->on_stall([&](const concur::StallReport& r) {
    std::lock_guard lock(m);
    reports.push_back(r);
  });
  ex->gather(concur::call(cpu_burn, 300ms), concur::call(pid_after, 10ms));
  std::lock_guard lock(m);
  EXPECT_GE(ex->stall_count(), 1u);
  // Reports while it lasts (ongoing), then one when it ends: all name it.
  ASSERT_GE(reports.size(), 1u);
  for (const auto& r : reports) {
    EXPECT_EQ(r.task, "cpu_burn");
    EXPECT_EQ(r.executor, "processes");
  }
  const auto final_report = std::find_if(reports.begin(), reports.end(),
                                         [](const concur::StallReport& r) { return !r.ongoing; });
  ASSERT_NE(final_report, reports.end());
  EXPECT_GE(final_report->duration, 200ms);
}

TEST(ProcessesConcurrency, OneCallPerWorkerHasNobodyToStall) {
  auto ex = make(1, {{"worker_concurrency", "1"}, {"stall_ms", "50"}});
  ex->on_stall({});
  ex->gather(concur::call(cpu_burn, 200ms));
  EXPECT_EQ(ex->stall_count(), 0u) << "a CPU-bound call alone on its worker stalls nobody";
}

TEST(ProcessesConcurrency, TracesHoldOneTaskPerCallWithTheWorkersWaits) {
  auto ex = make(2, {{"worker_concurrency", "4"}});
  warm(*ex);
  concur::trace::Recorder recorder(*ex);
  std::vector<decltype(concur::call(interval, 1ms))> calls(8, concur::call(interval, 100ms));
  ex->gather(calls);
  const concur::trace::Trace t = recorder.stop();
  // The parent's stand-ins are bookkeeping: the trace holds the calls only.
  ASSERT_EQ(t.tasks.size(), 8u);
  std::set<int> pids;
  for (const auto& task : t.tasks) {
    EXPECT_EQ(task.name, "interval");
    EXPECT_NE(task.pid, getpid());
    pids.insert(task.pid);
    const auto span = task.end - task.start;
    EXPECT_GE(task.waited() * 10, span * 8) << "a sleeping call drawn as running";
  }
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_EQ(t.lanes().size(), 2u) << "lanes: one per worker, none for the parent";
}

TEST(ProcessesConcurrency, BadWorkerSettingsAreConfigErrorsNamingTheKey) {
  concur::Config c;
  EXPECT_THROW(c.set("worker_executor", "processes", "test"), concur::ConfigError);
  try {
    c.set("worker_executor", "cluster", "test");
    FAIL() << "accepted";
  } catch (const concur::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("worker_executor"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.set("worker_concurrency", "0", "test"), concur::ConfigError);
  c.worker_concurrency = 0;
  EXPECT_THROW(c.validate(), concur::ConfigError);
}

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // launched workers serve here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
