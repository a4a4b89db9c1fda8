// SPDX-License-Identifier: BSL-1.0
// concur::Condition (concur/condition.hpp) on every in-process executor:
// producer/consumer hand-off, FIFO wake-up, notify(n) and notify_all, timed
// waits, cancellation while waiting (the lock is held again before the
// exception leaves), notify from a plain thread, and misuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

template <class P>
Task<void> until(P pred) {
  while (!pred()) co_await concur::sleep_for(1ms);
}

struct Jobs {
  concur::Lock lock;
  concur::Condition changed;
  std::deque<int> items;  // guarded by lock
  bool closed = false;    // guarded by lock
};

Task<void> produce(Jobs* j, int first, int count) {
  for (int i = first; i < first + count; ++i) {
    {
      auto held = co_await j->lock.scoped();
      j->items.push_back(i);
    }
    j->changed.notify();
    if (i % 7 == 0) co_await concur::sleep_for(0ms);
  }
}

Task<void> produce_then_close(Jobs* j, int producers, int each) {
  std::vector<decltype(concur::call(produce, j, 0, 0))> calls;
  for (int p = 0; p < producers; ++p) calls.push_back(concur::call(produce, j, p * each, each));
  co_await concur::gather(std::move(calls));
  auto held = co_await j->lock.scoped();
  j->closed = true;
  j->changed.notify_all();
}

Task<std::vector<int>> consume(Jobs* j) {
  std::vector<int> got;
  auto held = co_await j->lock.scoped();
  for (;;) {
    co_await j->changed.wait_for(held, [&] { return !j->items.empty() || j->closed; });
    EXPECT_TRUE(j->lock.locked());
    if (j->items.empty()) co_return got;  // closed and drained
    got.push_back(j->items.front());
    j->items.pop_front();
  }
}

// Queues on the condition only once `before` others wait there, so the
// arrival order is known; records the order it was woken in.
Task<void> wait_in_turn(concur::Lock* lock, concur::Condition* cond, std::size_t before,
                        std::vector<std::size_t>* woken, std::atomic<std::size_t>* count,
                        std::size_t me) {
  co_await until([&] { return cond->waiters() == before; });
  auto held = co_await lock->scoped();
  co_await cond->wait(held);
  woken->push_back(me);  // guarded by the lock
  ++*count;
}

class ConditionSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  void SetUp() override {
    concur::Config c = GetParam().config();
    // A waiting task holds its thread_pool worker.
    if (GetParam().executor == "thread_pool") c.set("workers", "16", "test");
    ex_ = concur::make_executor(c);
  }
  std::unique_ptr<concur::Executor> ex_;
};

// Tests where one task must notify while another waits: not on sequential,
// which runs them one after another (each has a variant that runs there).
class ConditionSideBySide : public ConditionSuite {};

TEST_P(ConditionSideBySide, ProducersAndConsumersHandOverEveryItemOnce) {
  Jobs j;
  auto [none, a, b, c] =
      ex_->gather(concur::call(produce_then_close, &j, 3, 40), concur::call(consume, &j),
                  concur::call(consume, &j), concur::call(consume, &j));
  std::vector<int> all;
  for (const auto* got : {&a, &b, &c}) all.insert(all.end(), got->begin(), got->end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 120u);
  for (int i = 0; i < 120; ++i) EXPECT_EQ(all[static_cast<std::size_t>(i)], i);
  EXPECT_FALSE(j.lock.locked());
  EXPECT_EQ(j.changed.waiters(), 0u);
}

TEST_P(ConditionSideBySide, NotifyWakesTheOldestWaiterFirst) {
  concur::Lock lock;
  concur::Condition cond;
  std::vector<std::size_t> woken;
  std::atomic<std::size_t> count{0};
  constexpr std::size_t kWaiters = 5;
  std::vector<decltype(concur::call(wait_in_turn, &lock, &cond, std::size_t{0}, &woken, &count,
                                    std::size_t{0}))>
      calls;
  for (std::size_t i = 0; i < kWaiters; ++i)
    calls.push_back(concur::call(wait_in_turn, &lock, &cond, i, &woken, &count, i));
  ex_->run([&]() -> Task<void> {
    co_await concur::gather(concur::call([&]() { return concur::gather(calls); }),
                            concur::call([&]() -> Task<void> {
                              co_await until([&] { return cond.waiters() == kWaiters; });
                              // One at a time: the woken one records itself before
                              // the next notify, so the order seen is the wake order.
                              for (std::size_t n = 0; n < kWaiters; ++n) {
                                cond.notify();
                                co_await until([&] { return count.load() == n + 1; });
                              }
                            }));
  }());
  EXPECT_EQ(woken, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
}

TEST_P(ConditionSideBySide, NotifyNWakesThatManyAndNotifyAllTheRest) {
  concur::Lock lock;
  concur::Condition cond;
  std::atomic<int> woken{0};
  auto waiter = concur::call([&]() -> Task<void> {
    auto held = co_await lock.scoped();
    co_await cond.wait(held);
    ++woken;
  });
  std::vector<decltype(waiter)> waiters(4, waiter);
  int after_notify_two = -1;
  std::size_t still_waiting = 0;
  ex_->run([&]() -> Task<void> {
    co_await concur::gather(concur::call([&]() { return concur::gather(waiters); }),
                            concur::call([&]() -> Task<void> {
                              co_await until([&] { return cond.waiters() == 4; });
                              cond.notify(2);
                              co_await until([&] { return woken.load() == 2; });
                              co_await concur::sleep_for(20ms);  // a third would show here
                              after_notify_two = woken.load();
                              still_waiting = cond.waiters();
                              cond.notify_all();
                            }));
  }());
  EXPECT_EQ(after_notify_two, 2);
  EXPECT_EQ(still_waiting, 2u);
  EXPECT_EQ(woken.load(), 4);
}

TEST_P(ConditionSideBySide, ACancelledWaiterThrowsOnlyOnceItHoldsTheLockAgain) {
  concur::Lock lock;
  concur::Condition cond;
  std::atomic<bool> holder_done{false};
  bool held_when_thrown = false;
  bool holder_had_finished = false;
  auto waiter = concur::call([&]() -> Task<void> {
    auto held = co_await lock.scoped();
    try {
      co_await cond.wait(held);
    } catch (const concur::TimeoutError&) {
      held_when_thrown = lock.locked() && held.owns_lock();
      holder_had_finished = holder_done.load();
      throw;
    }
  });
  auto holder = concur::call([&]() -> Task<void> {
    co_await until([&] { return cond.waiters() == 1; });
    auto held = co_await lock.scoped();  // free: the waiter let it go
    co_await concur::sleep_for(60ms);    // the waiter times out meanwhile
    holder_done = true;
  });
  ex_->run([&]() -> Task<void> {
    auto [w, h] = co_await concur::gather_settled(
        concur::call([&]() { return concur::wait_for(waiter, 20ms); }), holder);
    EXPECT_THROW(w.value(), concur::TimeoutError);
    EXPECT_TRUE(h.ok());
  }());
  EXPECT_TRUE(held_when_thrown);
  EXPECT_TRUE(holder_had_finished) << "the cancelled waiter must wait for the holder to unlock";
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(cond.waiters(), 0u);
}

TEST_P(ConditionSuite, TimedWaitGivesUpAndHoldsTheLockAgain) {
  concur::Lock lock;
  concur::Condition cond;
  auto [notified, held_after] = ex_->run([&]() -> Task<std::pair<bool, bool>> {
    auto held = co_await lock.scoped();
    const bool n = co_await cond.wait_for(held, 20ms);
    co_return std::pair{n, lock.locked() && held.owns_lock()};
  }());
  EXPECT_FALSE(notified);
  EXPECT_TRUE(held_after);
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(cond.waiters(), 0u);
}

TEST_P(ConditionSuite, ANotifyWithNobodyWaitingIsNotKept) {
  concur::Lock lock;
  concur::Condition cond;
  cond.notify();
  cond.notify_all();
  const bool notified = ex_->run([&]() -> Task<bool> {
    auto held = co_await lock.scoped();
    co_return co_await cond.wait_for(held, 20ms);
  }());
  EXPECT_FALSE(notified);
}

TEST_P(ConditionSuite, AWaiterCancelledByItsTimeoutLeavesTheQueueWithTheLockHeld) {
  concur::Lock lock;
  concur::Condition cond;
  std::atomic<int> held_when_thrown{0};
  auto wait_forever = concur::call([&]() -> Task<void> {
    auto held = co_await lock.scoped();
    try {
      co_await cond.wait_for(held, [] { return false; });
    } catch (const concur::TimeoutError&) {
      if (lock.locked() && held.owns_lock()) ++held_when_thrown;
      throw;
    }
  });
  std::vector<decltype(wait_forever)> calls(3, wait_forever);
  auto rs = ex_->gather_settled(calls, {.timeout = 30ms});
  ASSERT_EQ(rs.size(), 3u);
  for (auto& r : rs) EXPECT_THROW(r.value(), concur::TimeoutError);
  EXPECT_EQ(held_when_thrown.load(), 3);
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(cond.waiters(), 0u);
}

TEST_P(ConditionSuite, AnAlreadyCancelledTaskThrowsWithoutLettingTheLockGo) {
  concur::Lock lock;
  concur::Condition cond;
  bool held_when_thrown = false;
  auto late = concur::call([&]() -> Task<void> {
    auto held = co_await lock.scoped();
    while (!concur::cancelled()) std::this_thread::sleep_for(1ms);
    try {
      co_await cond.wait(held);
    } catch (const concur::TimeoutError&) {
      held_when_thrown = lock.locked();
      throw;
    }
  });
  std::vector<decltype(late)> calls{late};
  auto rs = ex_->gather_settled(calls, {.timeout = 10ms});
  EXPECT_FALSE(rs[0].ok());
  EXPECT_TRUE(held_when_thrown);
  EXPECT_FALSE(lock.locked());
}

TEST_P(ConditionSuite, NotifyFromAnotherThreadWakesATask) {
  concur::Lock lock;
  concur::Condition cond;
  std::atomic<bool> ready{false};
  std::atomic<bool> done{false};
  std::thread notifier;
  ex_->run([&]() -> Task<void> {
    notifier = std::thread([&] {
      std::this_thread::sleep_for(10ms);
      ready = true;
      // Not under the lock: a notify may pass before the waiter queues, so repeat.
      while (!done) {
        cond.notify();
        std::this_thread::sleep_for(2ms);
      }
    });
    auto held = co_await lock.scoped();
    co_await cond.wait_for(held, [&] { return ready.load(); });
    done = true;
  }());
  notifier.join();
  EXPECT_TRUE(ready.load());
}

TEST_P(ConditionSuite, WaitingWithoutHoldingTheLockIsAUsageError) {
  concur::Lock lock;
  concur::Condition cond;
  ex_->run([&]() -> Task<void> {
    try {
      co_await cond.wait(lock);
      ADD_FAILURE() << "expected UsageError";
    } catch (const concur::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(concur::messages::kConditionNotLocked),
                std::string::npos);
    }
    concur::LockGuard none;
    EXPECT_THROW(co_await cond.wait(none), concur::UsageError);
  }());
  EXPECT_EQ(cond.waiters(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Executors, ConditionSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);
INSTANTIATE_TEST_SUITE_P(
    Executors, ConditionSideBySide,
    ::testing::ValuesIn(concur::testing::side_by_side_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
