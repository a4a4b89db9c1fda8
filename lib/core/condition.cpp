// SPDX-License-Identifier: BSL-1.0
#include "concur/condition.hpp"

#include <exception>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

#include "concur/errors.hpp"

namespace concur {

namespace detail {

// The queued part of one Condition wait. The caller's Lock is unlocked only
// once this waiter is in the queue, inside the same critical section of the
// Condition's lock that queues it: a task that takes the Lock next and
// notifies finds us there.
class ConditionWait : public SyncAwait {
 public:
  ConditionWait(Condition& c, Lock& user_lock, TimePoint until) noexcept
      : SyncAwait(c.lock_, c.waiters_, &user_lock, &enter, until) {}

  /// Whether the caller's Lock was unlocked (it must be locked again).
  bool released() const noexcept { return released_; }
  /// Locks `l` again, not a cancellation point (see Lock::relock).
  static SyncWaitVoid relock(Lock& l) noexcept { return l.relock(); }

 private:
  // SyncAwait tries twice: once from await_ready (nothing to do yet: a
  // Condition wait never completes at once) and once from await_suspend,
  // right before it queues the waiter, where the Lock is let go.
  static bool enter(void* user_lock, SyncAwait& op) noexcept {
    auto& self = static_cast<ConditionWait&>(op);
    if (!std::exchange(self.armed_, true)) return false;
    static_cast<Lock*>(user_lock)->unlock_held();
    self.released_ = true;
    return false;
  }

  bool armed_ = false;
  bool released_ = false;
};

// wait() and wait_for(d) in one body: R is void or bool (notified).
template <class R>
Task<R> condition_wait(Condition& c, Lock& lock, TimePoint until) {
  if (!lock.locked()) throw UsageError(std::string(messages::kConditionNotLocked));
  ConditionWait w(c, lock, until);
  bool notified = false;
  std::exception_ptr stopped;
  try {
    notified = co_await w;
  } catch (...) {
    stopped = std::current_exception();
  }
  if (w.released())
    co_await ConditionWait::relock(lock);  // also when stopped: the caller's guard owns it
  if (stopped) std::rethrow_exception(stopped);
  if constexpr (!std::is_void_v<R>) co_return notified;
}

}  // namespace detail

Task<void> Condition::wait(Lock& lock) {
  return detail::condition_wait<void>(*this, lock, detail::kNever);
}

Task<bool> Condition::wait_until(Lock& lock, detail::TimePoint until) {
  return detail::condition_wait<bool>(*this, lock, until);
}

Lock& Condition::held_lock(LockGuard& held) {
  if (held.mutex() == nullptr) throw UsageError(std::string(messages::kConditionNotLocked));
  return *held.mutex();
}

void Condition::notify(std::size_t n) noexcept {
  std::lock_guard lock(lock_);
  for (; n > 0; --n) {
    detail::SyncNode* w = waiters_.claim_first();
    if (w == nullptr) break;
    detail::WaitList::resume(*w);
  }
}

void Condition::notify_all() noexcept {
  std::lock_guard lock(lock_);
  while (detail::SyncNode* w = waiters_.claim_first()) detail::WaitList::resume(*w);
}

std::size_t Condition::waiters() const noexcept {
  std::lock_guard lock(lock_);
  return waiters_.size();
}

}  // namespace concur
