// SPDX-License-Identifier: BSL-1.0
// concur::Task and concur::Result on their own, without an executor where possible.
#include <gtest/gtest.h>

#include <concur/concur.hpp>
#include <memory>
#include <stdexcept>

using concur::Task;

namespace {

// Resumes a task by hand (no executor) and returns its value.
template <class T>
T run_by_hand(Task<T>& t) {
  t.handle().resume();
  EXPECT_TRUE(t.done());
  return t.handle().promise().take();
}

Task<int> forty_two() { co_return 42; }
Task<int> add_one(Task<int> inner) { co_return co_await std::move(inner) + 1; }
Task<void> thrower() {
  throw std::invalid_argument("bad");
  co_return;
}

// Sets a flag when destroyed, to see coroutine frames are freed.
struct Sentinel {
  std::shared_ptr<int> alive;
  explicit Sentinel(std::shared_ptr<int> a) : alive(std::move(a)) {}
  Sentinel(Sentinel&&) noexcept = default;
  ~Sentinel() {
    if (alive) --*alive;
  }
};
Task<int> holds(Sentinel s) {
  co_await std::suspend_always{};  // never resumed past here in the test
  co_return *s.alive;
}

TEST(Task, IsLazyUntilResumed) {
  bool ran = false;
  // The lambda must outlive its coroutine, which reaches `ran` through it.
  auto body = [&]() -> Task<int> {
    ran = true;
    co_return 1;
  };
  auto t = body();
  EXPECT_FALSE(ran);
  EXPECT_EQ(run_by_hand(t), 1);
  EXPECT_TRUE(ran);
}

TEST(Task, AwaitChainsValues) {
  auto t = add_one(add_one(forty_two()));
  EXPECT_EQ(run_by_hand(t), 44);
}

TEST(Task, ExceptionsPropagateThroughAwait) {
  auto outer = []() -> Task<void> { co_await thrower(); }();
  outer.handle().resume();
  EXPECT_THROW(outer.handle().promise().take(), std::invalid_argument);
}

TEST(Task, DeepAwaitChainDoesNotGrowTheStack) {
  // Symmetric transfer: 100,000 nested awaits would overflow a nesting stack.
  struct Chain {
    static Task<long> depth(long n) {
      if (n == 0) co_return 0;
      co_return 1 + co_await depth(n - 1);
    }
  };
  auto t = Chain::depth(100'000);
  EXPECT_EQ(run_by_hand(t), 100'000);
}

TEST(Task, DestroyingUnstartedOrSuspendedTaskFreesFrame) {
  auto alive = std::make_shared<int>(2);
  { auto never_started = holds(Sentinel{alive}); }
  EXPECT_EQ(*alive, 1);
  {
    auto suspended = holds(Sentinel{alive});
    suspended.handle().resume();
    EXPECT_FALSE(suspended.done());
  }
  EXPECT_EQ(*alive, 0);
}

TEST(Task, IsMoveOnly) {
  static_assert(!std::is_copy_constructible_v<Task<int>>);
  static_assert(std::is_nothrow_move_constructible_v<Task<int>>);
  auto a = forty_two();
  auto b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(run_by_hand(b), 42);
}

TEST(Task, LibraryWaitOutsideAnExecutorIsAUsageError) {
  auto t = []() -> Task<void> { co_await concur::sleep_for(std::chrono::milliseconds(1)); }();
  t.handle().resume();
  ASSERT_TRUE(t.done());
  try {
    t.handle().promise().take();
    FAIL() << "expected UsageError";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(concur::messages::kNoExecutor), std::string::npos);
  }
}

TEST(Result, HoldsValueOrErrorWithTypeAndMessage) {
  concur::Result<int> ok(5);
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), 5);
  concur::Result<int> bad(
      concur::ErrorInfo::from_exception(std::make_exception_ptr(std::out_of_range("too far"))));
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().type(), "std::out_of_range");
  EXPECT_EQ(bad.error().message(), "too far");
  EXPECT_EQ(bad.error().describe(), "std::out_of_range: too far");
  EXPECT_THROW(bad.value(), std::out_of_range);
}

TEST(Result, ErrorWithoutOriginalRethrowsAsConcurError) {
  concur::Result<void> remote(concur::ErrorInfo("worker::Crash", "signal 11"));
  EXPECT_FALSE(remote.ok());
  try {
    remote.value();
    FAIL();
  } catch (const concur::Error& e) {
    EXPECT_STREQ(e.what(), "worker::Crash: signal 11");
  }
}

TEST(Result, NonStandardExceptionsAreNamed) {
  auto info = concur::ErrorInfo::from_exception(std::make_exception_ptr(17));
  EXPECT_EQ(info.type(), "int");
}

}  // namespace
