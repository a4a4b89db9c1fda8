// SPDX-License-Identifier: BSL-1.0
// The work-stealing deque under thread_pool (lib/executors/child_queue.hpp):
// the owner takes its newest child, thieves the oldest, a ring grows past its
// inline slots without losing or repeating an entry, and under contention
// every pushed child is taken exactly once. Also run under ThreadSanitizer.
#include "executors/child_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

namespace {

using concur::executors::ChildQueue;
using concur::executors::QueuedChild;

// Distinct fake frames: the queue never resumes what it holds.
struct Frames {
  explicit Frames(std::size_t n) : bytes(n) {}
  QueuedChild at(std::size_t i) {
    return {std::coroutine_handle<>::from_address(&bytes[i]), nullptr};
  }
  std::size_t index_of(const QueuedChild& c) const {
    return static_cast<std::size_t>(static_cast<const char*>(c.handle.address()) - bytes.data());
  }
  std::vector<char> bytes;
};

TEST(ChildQueue, OwnerTakesTheNewestAndThievesTheOldest) {
  Frames f(3);
  ChildQueue q;
  for (std::size_t i = 0; i < 3; ++i) q.push(f.at(i));
  QueuedChild c;
  ASSERT_TRUE(q.steal(c));
  EXPECT_EQ(f.index_of(c), 0u);
  ASSERT_TRUE(q.take(c));
  EXPECT_EQ(f.index_of(c), 2u);
  ASSERT_TRUE(q.take(c));
  EXPECT_EQ(f.index_of(c), 1u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.take(c));
  EXPECT_FALSE(q.steal(c));
}

TEST(ChildQueue, GrowsPastItsInlineSlotsKeepingEveryEntry) {
  constexpr std::size_t kN = 1000;
  Frames f(kN);
  ChildQueue q;
  QueuedChild c;
  // Steal a few first so the live range does not start at slot 0.
  for (std::size_t i = 0; i < 5; ++i) q.push(f.at(i));
  for (std::size_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(q.steal(c));
    EXPECT_EQ(f.index_of(c), i);
  }
  for (std::size_t i = 0; i < kN; ++i) q.push(f.at(i));
  for (std::size_t i = 0; i < kN / 2; ++i) {
    ASSERT_TRUE(q.steal(c));
    EXPECT_EQ(f.index_of(c), i);
  }
  for (std::size_t i = kN; i > kN / 2; --i) {
    ASSERT_TRUE(q.take(c));
    EXPECT_EQ(f.index_of(c), i - 1);
  }
  EXPECT_FALSE(q.take(c));
}

TEST(ChildQueue, UnderContentionEveryChildIsTakenExactlyOnce) {
  constexpr std::size_t kN = 200'000;
  Frames f(kN);
  std::vector<std::atomic<int>> seen(kN);
  ChildQueue q;
  std::atomic<bool> done{false};
  std::atomic<std::size_t> stolen{0};

  auto thief = [&] {
    QueuedChild c;
    for (;;) {
      // Read before the steal: once the owner is done, an empty queue stays empty.
      const bool owner_done = done.load(std::memory_order_acquire);
      if (q.steal(c)) {
        seen[f.index_of(c)].fetch_add(1, std::memory_order_relaxed);
        stolen.fetch_add(1, std::memory_order_relaxed);
      } else if (owner_done) {
        return;
      }
    }
  };
  std::thread t1(thief), t2(thief);

  // The owner pushes in bursts (growing the ring while thieves read it)
  // and takes some back, racing the thieves for the last entries.
  QueuedChild c;
  std::size_t taken = 0;
  for (std::size_t i = 0; i < kN;) {
    const std::size_t burst = 1 + (i * 7919) % 97;
    for (std::size_t k = 0; k < burst && i < kN; ++k, ++i) q.push(f.at(i));
    for (std::size_t k = 0; k < burst / 2; ++k) {
      if (!q.take(c)) break;
      seen[f.index_of(c)].fetch_add(1, std::memory_order_relaxed);
      ++taken;
    }
  }
  // On a loaded machine the thieves may not have run at all yet: give them
  // (boundedly) the chance to steal from what is left before the owner
  // races them for the rest, so the race is exercised.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (stolen.load(std::memory_order_relaxed) == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  while (q.take(c)) {
    seen[f.index_of(c)].fetch_add(1, std::memory_order_relaxed);
    ++taken;
  }
  done.store(true, std::memory_order_release);
  t1.join();
  t2.join();

  EXPECT_EQ(taken + stolen.load(), kN);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kN; ++i) wrong += seen[i].load() != 1 ? 1 : 0;
  EXPECT_EQ(wrong, 0u) << "entries taken twice or never";
  EXPECT_GT(stolen.load(), 0u) << "the thieves never got anything: the race was not exercised";
}

}  // namespace
