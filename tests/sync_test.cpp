// SPDX-License-Identifier: BSL-1.0
// Semaphore, Lock, Event, Latch and Queue (concur/sync.hpp, concur/queue.hpp) on
// every in-process executor: exclusion, FIFO hand-off, wake-ups, timeouts,
// cancellation while waiting, and a producer/consumer pipeline.
//
// Tests that need two tasks waiting side by side skip `sequential`, whose
// tasks run one after another; each has a sibling that works there through a
// timeout or another thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

// Polls (through a library wait) until `pred` holds: lets a test line up
// waiters in a known order without assuming anything about timing.
template <class P>
Task<void> until(P pred) {
  while (!pred()) co_await concur::sleep_for(1ms);
}

struct Counter {
  int value = 0;  // guarded by the Lock under test, deliberately not atomic
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  void enter() {
    const int now = ++inside;
    int seen = most_inside.load();
    while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
    }
  }
};

Task<void> locked_increments(concur::Lock* lock, Counter* c, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    auto held = co_await lock->scoped();
    c->enter();
    const int v = c->value;
    co_await concur::sleep_for(0ms);  // let others run while we hold it
    c->value = v + 1;
    --c->inside;
  }
}

Task<void> semaphore_section(concur::Semaphore* sem, Counter* c) {
  co_await sem->acquire();
  c->enter();
  co_await concur::sleep_for(5ms);
  --c->inside;
  sem->release();
}

// Takes its turn at the lock only once `before` others queue, so the
// arrival order is known; records when it got in.
Task<void> queue_for_lock(concur::Lock* lock, std::size_t before, std::vector<std::size_t>* order,
                          std::size_t me) {
  co_await until([&] { return lock->waiters() == before; });
  co_await lock->lock();
  order->push_back(me);  // guarded by the lock
  lock->unlock();
}

Task<void> hold_until_queued(concur::Lock* lock, std::size_t waiters) {
  co_await until([&] { return lock->waiters() == waiters; });
  lock->unlock();
}

Task<void> wait_event(concur::Event* ev, std::atomic<int>* woken) {
  co_await ev->wait();
  ++*woken;
}

Task<void> set_when_waited(concur::Event* ev, std::size_t waiters) {
  co_await until([&] { return ev->waiters() == waiters; });
  ev->set();
}

Task<void> fail_soon() {
  co_await concur::sleep_for(20ms);
  throw std::runtime_error("boom");
}

Task<void> wait_event_noting_cancel(concur::Event* ev, std::atomic<bool>* saw_cancel) {
  try {
    co_await ev->wait();
  } catch (const concur::Cancelled&) {
    *saw_cancel = true;
    throw;
  }
}

Task<void> acquire_only(concur::Semaphore* sem) { co_await sem->acquire(); }
Task<void> lock_only(concur::Lock* l) { co_await l->lock(); }

Task<void> count_down_after(concur::Latch* l, std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  l->count_down();
}
Task<bool> wait_latch(concur::Latch* l, std::atomic<int>* before) {
  co_await l->wait();
  co_return before->load() == 0;
}

// The pipeline: producer p pushes (p, 0..n-1); consumers record what they get.
using Item = std::pair<int, int>;
Task<void> produce(concur::Queue<Item>* q, int p, int n, std::atomic<std::size_t>* most) {
  for (int i = 0; i < n; ++i) {
    co_await q->push({p, i});
    const std::size_t s = q->size();
    std::size_t seen = most->load();
    while (s > seen && !most->compare_exchange_weak(seen, s)) {
    }
  }
}
Task<void> produce_then_close(concur::Queue<Item>* q, int producers, int n,
                              std::atomic<std::size_t>* most) {
  std::vector<decltype(concur::call(produce, q, 0, n, most))> calls;
  for (int p = 0; p < producers; ++p) calls.push_back(concur::call(produce, q, p, n, most));
  co_await concur::gather(std::move(calls));
  q->close();
}
Task<std::vector<Item>> consume(concur::Queue<Item>* q) {
  std::vector<Item> got;
  while (auto item = co_await q->pop()) got.push_back(*item);
  co_return got;
}

class SyncSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    concur::Config c = GetParam().config();
    // A waiting task holds its thread_pool worker: the side-by-side tests
    // park up to eight tasks (and two joining gathers) at once.
    if (GetParam().executor == "thread_pool") c.set("workers", "16", "test");
    ex_ = concur::make_executor(c);
  }
  bool is_sequential() const { return GetParam().executor == "sequential"; }
  std::unique_ptr<concur::Executor> ex_;
};

// Tests that need two tasks waiting side by side: not on sequential, which
// runs them one after another (each has a variant that runs there).
class SyncSideBySide : public SyncSuite {};

TEST_P(SyncSuite, LockKeepsOneTaskInsideAndLosesNoUpdate) {
  concur::Lock lock;
  Counter c;
  std::vector<decltype(concur::call(locked_increments, &lock, &c, 0))> calls;
  for (int i = 0; i < 16; ++i) calls.push_back(concur::call(locked_increments, &lock, &c, 20));
  ex_->gather(calls);
  EXPECT_EQ(c.value, 16 * 20);
  EXPECT_EQ(c.most_inside.load(), 1);
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(lock.waiters(), 0u);
}

TEST_P(SyncSideBySide, LockHandsOverInArrivalOrder) {
  concur::Lock lock;
  ASSERT_TRUE(lock.try_lock());
  std::vector<std::size_t> order;
  constexpr std::size_t kWaiters = 6;
  std::vector<decltype(concur::call(queue_for_lock, &lock, std::size_t{0}, &order, std::size_t{0}))>
      calls;
  for (std::size_t i = 0; i < kWaiters; ++i)
    calls.push_back(concur::call(queue_for_lock, &lock, i, &order, i));
  ex_->run([&]() -> Task<void> {
    co_await concur::gather(concur::call(hold_until_queued, &lock, kWaiters),
                            concur::call([&]() { return concur::gather(calls); }));
  }());
  const std::vector<std::size_t> expected{0, 1, 2, 3, 4, 5};
  EXPECT_EQ(order, expected);
  EXPECT_FALSE(lock.locked());
}

TEST_P(SyncSuite, LockTryLockForGivesUpAndTheHolderStillOwnsIt) {
  concur::Lock lock;
  const bool got = ex_->run([&]() -> Task<bool> {
    auto held = co_await lock.scoped();
    co_return co_await lock.try_lock_for(30ms);  // not recursive: waits for ourselves
  }());
  EXPECT_FALSE(got);
  EXPECT_FALSE(lock.locked());  // the guard unlocked it
  EXPECT_EQ(lock.waiters(), 0u);
}

TEST_P(SyncSuite, LockWaiterCancelledByItsTimeoutLeavesTheQueue) {
  concur::Lock lock;
  auto results = ex_->run([&]() -> Task<std::vector<concur::Result<void>>> {
    co_await lock.lock();
    std::vector<decltype(concur::call(lock_only, &lock))> calls(3, concur::call(lock_only, &lock));
    auto rs = co_await concur::gather_settled(calls, {.timeout = 40ms});
    lock.unlock();
    co_return rs;
  }());
  ASSERT_EQ(results.size(), 3u);
  for (auto& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_THROW(r.value(), concur::TimeoutError);
  }
  EXPECT_FALSE(lock.locked()) << "the unlock must not be handed to a waiter that left";
  EXPECT_EQ(lock.waiters(), 0u);
}

TEST_P(SyncSuite, UnlockingAnUnlockedLockIsAUsageError) {
  concur::Lock lock;
  try {
    lock.unlock();
    FAIL() << "expected UsageError";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(concur::messages::kUnlockUnlocked), std::string::npos);
  }
}

TEST_P(SyncSuite, SemaphoreBoundsTasksInside) {
  concur::Semaphore sem(3);
  Counter c;
  std::vector<decltype(concur::call(semaphore_section, &sem, &c))> calls(
      12, concur::call(semaphore_section, &sem, &c));
  ex_->gather(calls);
  EXPECT_LE(c.most_inside.load(), 3);
  // Single-threaded interleaving fills every unit; thread_pool may have fewer threads free.
  if (GetParam().executor == "event_loop" || GetParam().label == "fibers_1") {
    EXPECT_EQ(c.most_inside.load(), 3);
  }
  EXPECT_EQ(sem.available(), 3u);
  EXPECT_EQ(sem.waiters(), 0u);
}

TEST_P(SyncSideBySide, SemaphoreReleaseGoesToTheOldestWaiterNotANewcomer) {
  concur::Semaphore sem(0);
  bool newcomer_got_it = true;
  ex_->run([&]() -> Task<void> {
    co_await concur::gather(concur::call(acquire_only, &sem), concur::call([&]() -> Task<void> {
                              co_await until([&] { return sem.waiters() == 1; });
                              sem.release();
                              newcomer_got_it = sem.try_acquire();
                            }));
  }());
  EXPECT_FALSE(newcomer_got_it);
  EXPECT_EQ(sem.available(), 0u);
}

TEST_P(SyncSuite, SemaphoreWaiterCancelledWhileWaitingDoesNotSwallowAUnit) {
  concur::Semaphore sem(0);
  std::vector<decltype(concur::call(acquire_only, &sem))> calls{concur::call(acquire_only, &sem)};
  auto rs = ex_->gather_settled(calls, {.timeout = 30ms});
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(rs[0].ok());
  EXPECT_EQ(sem.waiters(), 0u);
  sem.release();
  EXPECT_EQ(sem.available(), 1u);
  EXPECT_TRUE(sem.try_acquire());
}

TEST_P(SyncSuite, SemaphoreTryAcquireForTimesOutThenSucceedsOnceReleased) {
  concur::Semaphore sem(0);
  auto [missed, got] = ex_->run([&]() -> Task<std::pair<bool, bool>> {
    const bool a = co_await sem.try_acquire_for(20ms);
    sem.release();
    const bool b = co_await sem.try_acquire_for(20ms);
    co_return std::pair{a, b};
  }());
  EXPECT_FALSE(missed);
  EXPECT_TRUE(got);
  EXPECT_EQ(sem.available(), 0u);
}

TEST_P(SyncSideBySide, EventSetWakesEveryWaiter) {
  concur::Event ev;
  std::atomic<int> woken{0};
  constexpr std::size_t kWaiters = 5;
  std::vector<decltype(concur::call(wait_event, &ev, &woken))> waiters(
      kWaiters, concur::call(wait_event, &ev, &woken));
  ex_->run([&]() -> Task<void> {
    co_await concur::gather(concur::call([&]() { return concur::gather(waiters); }),
                            concur::call(set_when_waited, &ev, kWaiters));
  }());
  EXPECT_EQ(woken.load(), 5);
  EXPECT_TRUE(ev.is_set());
}

TEST_P(SyncSuite, EventSetFromAnotherThreadWakesATask) {
  concur::Event ev;
  std::thread setter;
  ex_->run([&]() -> Task<void> {
    setter = std::thread([&] {
      std::this_thread::sleep_for(20ms);
      ev.set();
    });
    co_await ev.wait();
  }());
  setter.join();
  EXPECT_TRUE(ev.is_set());
}

TEST_P(SyncSuite, EventAlreadySetDoesNotWaitAndClearMakesItWaitAgain) {
  concur::Event ev;
  ev.set();
  auto [first, after_clear] = ex_->run([&]() -> Task<std::pair<bool, bool>> {
    co_await ev.wait();
    const bool a = co_await ev.wait_for(1ms);
    ev.clear();
    const bool b = co_await ev.wait_for(20ms);
    co_return std::pair{a, b};
  }());
  EXPECT_TRUE(first);
  EXPECT_FALSE(after_clear);
}

TEST_P(SyncSideBySide, EventWaiterCancelledBySiblingFailureStops) {
  concur::Event ev;
  std::atomic<bool> saw_cancel{false};
  EXPECT_THROW(ex_->gather(concur::call(wait_event_noting_cancel, &ev, &saw_cancel),
                           concur::call(fail_soon)),
               std::runtime_error);
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_EQ(ev.waiters(), 0u);
}

TEST_P(SyncSuite, AnAlreadyCancelledTaskThrowsWithoutTaking) {
  concur::Semaphore sem(1);
  auto late = concur::call([&]() -> Task<void> {
    while (!concur::cancelled()) std::this_thread::sleep_for(1ms);
    co_await sem.acquire();
  });
  std::vector<decltype(late)> calls{late};
  auto rs = ex_->gather_settled(calls, {.timeout = 10ms});
  ASSERT_FALSE(rs[0].ok());
  EXPECT_EQ(sem.available(), 1u);
}

TEST_P(SyncSideBySide, LatchLetsWaitersThroughOnlyOnceEveryoneCountedDown) {
  concur::Latch done(3);
  std::atomic<int> pending{3};
  auto count = [&](std::chrono::milliseconds d) {
    return concur::call([&, d]() -> Task<void> {
      co_await concur::sleep_for(d);
      --pending;
      done.count_down();
    });
  };
  auto waiter = concur::call(wait_latch, &done, &pending);
  auto [w1, w2, a, b, c] = ex_->gather(waiter, waiter, count(5ms), count(15ms), count(25ms));
  EXPECT_TRUE(w1);
  EXPECT_TRUE(w2);
  EXPECT_TRUE(done.try_wait());
  EXPECT_EQ(done.waiters(), 0u);
}

TEST_P(SyncSuite, LatchCountedDownByEarlierTasksDoesNotWait) {
  concur::Latch done(2);
  std::atomic<int> pending{0};
  auto [a, b, through] = ex_->gather(concur::call(count_down_after, &done, 1ms),
                                     concur::call(count_down_after, &done, 2ms),
                                     concur::call(wait_latch, &done, &pending));
  EXPECT_TRUE(through);
  EXPECT_FALSE(ex_->run([&]() -> Task<bool> {
    concur::Latch never(1);
    co_return co_await never.wait_for(20ms);
  }()));
}

TEST_P(SyncSuite, CountingALatchBelowZeroIsAUsageError) {
  concur::Latch l(1);
  EXPECT_THROW(l.count_down(2), concur::UsageError);
  EXPECT_TRUE(l.try_wait());
}

TEST_P(SyncSideBySide, QueuePipelineDeliversEveryItemOnceInEachProducersOrder) {
  concur::Queue<Item> q(4);
  std::atomic<std::size_t> most{0};
  constexpr int kProducers = 3;
  constexpr int kItems = 60;
  auto [none, a, b] = ex_->gather(concur::call(produce_then_close, &q, kProducers, kItems, &most),
                                  concur::call(consume, &q), concur::call(consume, &q));
  std::map<Item, int> seen;
  for (const auto* got : {&a, &b}) {
    std::map<int, int> last;  // per producer, what this consumer saw last
    for (const Item& it : *got) {
      ++seen[it];
      auto [pos, fresh] = last.try_emplace(it.first, it.second);
      if (!fresh) {
        EXPECT_GT(it.second, pos->second) << "producer " << it.first << " out of order";
        pos->second = it.second;
      }
    }
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kProducers * kItems));
  for (const auto& [item, n] : seen) EXPECT_EQ(n, 1);
  EXPECT_LE(most.load(), 4u);
  EXPECT_TRUE(q.closed());
  EXPECT_EQ(q.size(), 0u);
}

TEST_P(SyncSuite, QueueWithRoomForEverythingDrainsAfterClose) {
  concur::Queue<Item> q(200);
  std::atomic<std::size_t> most{0};
  auto [none, got] =
      ex_->gather(concur::call(produce_then_close, &q, 2, 50, &most), concur::call(consume, &q));
  ASSERT_EQ(got.size(), 100u);
  std::vector<Item> sorted = got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
}

TEST_P(SyncSuite, QueueCloseWakesAWaitingConsumerWithNothing) {
  concur::Queue<int> q(2);
  std::thread closer;
  const auto got = ex_->run([&]() -> Task<std::optional<int>> {
    closer = std::thread([&] {
      std::this_thread::sleep_for(20ms);
      q.close();
    });
    co_return co_await q.pop();
  }());
  closer.join();
  EXPECT_FALSE(got.has_value());
}

TEST_P(SyncSuite, QueueCloseFailsAWaitingProducerAndLaterPushes) {
  concur::Queue<int> q(1);
  int first = 1;
  ASSERT_TRUE(q.try_push(first));
  std::thread closer;
  ex_->run([&]() -> Task<void> {
    closer = std::thread([&] {
      std::this_thread::sleep_for(20ms);
      q.close();
    });
    EXPECT_THROW(co_await q.push(2), concur::QueueClosed);
    EXPECT_THROW(co_await q.push(3), concur::QueueClosed);
    // What was queued before the close is still there to drain.
    auto left = co_await q.pop();
    EXPECT_EQ(left, std::optional<int>(1));
    EXPECT_EQ(co_await q.pop(), std::nullopt);
  }());
  closer.join();
}

TEST_P(SyncSuite, QueueConsumerCancelledWhileWaitingTakesNothing) {
  concur::Queue<int> q(2);
  auto pop = concur::call([&]() -> Task<int> { co_return *co_await q.pop(); });
  std::vector<decltype(pop)> calls{pop};
  auto rs = ex_->gather_settled(calls, {.timeout = 30ms});
  ASSERT_FALSE(rs[0].ok());
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  int v = 7;
  ASSERT_TRUE(q.try_push(v));
  EXPECT_EQ(q.try_pop(), std::optional<int>(7));
}

TEST_P(SyncSideBySide, QueueFullProducerWaitsAndIsServedFirstInFirstOut) {
  concur::Queue<int> q(1);
  std::vector<int> got;
  ex_->run([&]() -> Task<void> {
    co_await q.push(0);
    co_await concur::gather(concur::call([&]() -> Task<void> { co_await q.push(1); }),
                            concur::call([&]() -> Task<void> {
                              co_await concur::sleep_for(20ms);
                              for (int i = 0; i < 2; ++i) got.push_back(*co_await q.pop());
                            }));
  }());
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
}

TEST(SyncUsage, WaitingOutsideAnyExecutorIsAUsageError) {
  concur::Event ev;
  auto t = [&]() -> Task<void> { co_await ev.wait(); }();
  // Drive the task by hand on no executor: the wait must refuse.
  auto h = t.handle();
  h.resume();
  ASSERT_TRUE(h.done());
  EXPECT_THROW(h.promise().take(), concur::UsageError);
}

TEST(SyncUsage, AQueueWithNoRoomIsAUsageError) {
  try {
    concur::Queue<int> q(0);
    FAIL() << "expected UsageError";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(concur::messages::kQueueCapacity), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Executors, SyncSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);
INSTANTIATE_TEST_SUITE_P(
    Executors, SyncSideBySide, ::testing::ValuesIn(concur::testing::side_by_side_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
