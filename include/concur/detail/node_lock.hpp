// SPDX-License-Identifier: BSL-1.0
// The lock of one cancellation-tree node (a task's or a gather's Context).
//
// Every gather child takes its parent's lock a few times (linking, unlinking,
// counting itself out), almost always uncontended, so the lock sits on the
// hottest path of the library. std::mutex costs an out-of-line call into
// pthreads each way and 40 bytes per node; this is the classic three-state
// futex lock (Drepper, "Futexes Are Tricky") on a 4-byte atomic, inlined: an
// uncontended lock is one compare-exchange and an unlock one exchange. Under
// contention it spins briefly (critical sections are a few stores), then
// sleeps in the kernel through std::atomic::wait, so an oversubscribed
// thread_pool (hundreds of workers on two cores) does not burn CPU spinning.
#pragma once

#include <atomic>
#include <cstdint>

namespace concur::detail {

class NodeLock {
 public:
  void lock() noexcept {
    std::uint32_t expected = kFree;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return;
    lock_contended();
  }

  bool try_lock() noexcept {
    std::uint32_t expected = kFree;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void unlock() noexcept {
    // kSleepers means someone may be asleep in wait(): wake one of them.
    if (state_.exchange(kFree, std::memory_order_release) == kSleepers) state_.notify_one();
  }

 private:
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kLocked = 1;    // held, nobody asleep
  static constexpr std::uint32_t kSleepers = 2;  // held, someone may be asleep

  void lock_contended() noexcept {
    for (int spin = 0; spin < 64; ++spin) {
      pause();
      if (state_.load(std::memory_order_relaxed) == kFree && try_lock()) return;
    }
    // Marking the lock kSleepers before sleeping makes the holder's unlock
    // wake us; a lock taken this way stays kSleepers, which at worst costs
    // one spurious wake-up.
    while (state_.exchange(kSleepers, std::memory_order_acquire) != kFree) {
      state_.wait(kSleepers, std::memory_order_relaxed);
    }
  }

  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<std::uint32_t> state_{kFree};
};

}  // namespace concur::detail
