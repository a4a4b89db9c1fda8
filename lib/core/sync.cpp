// SPDX-License-Identifier: BSL-1.0
#include "concur/sync.hpp"

#include <mutex>
#include <string>

#include "concur/errors.hpp"

namespace concur {

// Semaphore: a unit released while someone waits goes straight to the oldest
// waiter, so `count_ > 0` only while nobody is parked.

bool Semaphore::take(void* self, detail::SyncAwait&) noexcept {
  return static_cast<Semaphore*>(self)->take_locked();
}

bool Semaphore::take_locked() noexcept {
  if (count_ == 0 || waiters_.any_parked()) return false;
  --count_;
  return true;
}

bool Semaphore::try_acquire() noexcept {
  std::lock_guard lock(lock_);
  return take_locked();
}

void Semaphore::release(std::size_t n) noexcept {
  std::lock_guard lock(lock_);
  for (; n > 0; --n) {
    detail::SyncNode* w = waiters_.claim_first();
    if (w == nullptr) break;
    detail::WaitList::resume(*w);
  }
  count_ += n;
}

std::size_t Semaphore::available() const noexcept {
  std::lock_guard lock(lock_);
  return count_;
}

// Lock: unlocking with waiters hands it over; it stays locked throughout.

LockGuard& LockGuard::operator=(LockGuard&& o) noexcept {
  if (this != &o) {
    unlock();
    lock_ = std::exchange(o.lock_, nullptr);
  }
  return *this;
}

LockGuard::~LockGuard() { unlock(); }

void LockGuard::unlock() noexcept {
  // Held by this guard, so unlocking cannot find the lock free.
  if (Lock* l = std::exchange(lock_, nullptr)) l->unlock();
}

bool Lock::take(void* self, detail::SyncAwait&) noexcept {
  return static_cast<Lock*>(self)->take_locked();
}

bool Lock::take_locked() noexcept {
  if (locked_ || waiters_.any_parked()) return false;
  locked_ = true;
  return true;
}

bool Lock::try_lock() noexcept {
  std::lock_guard lock(lock_);
  return take_locked();
}

void Lock::unlock() {
  std::lock_guard lock(lock_);
  if (!locked_) throw UsageError(std::string(messages::kUnlockUnlocked));
  hand_over_locked();
}

void Lock::unlock_held() noexcept {
  std::lock_guard lock(lock_);
  hand_over_locked();
}

void Lock::hand_over_locked() noexcept {
  if (detail::SyncNode* w = waiters_.claim_first()) {
    detail::WaitList::resume(*w);
  } else {
    locked_ = false;
  }
}

bool Lock::locked() const noexcept {
  std::lock_guard lock(lock_);
  return locked_;
}

// Event

bool Event::test(void* self, detail::SyncAwait&) noexcept {
  return static_cast<Event*>(self)->set_;
}

void Event::set() noexcept {
  std::lock_guard lock(lock_);
  set_ = true;
  while (detail::SyncNode* w = waiters_.claim_first()) detail::WaitList::resume(*w);
}

void Event::clear() noexcept {
  std::lock_guard lock(lock_);
  set_ = false;
}

bool Event::is_set() const noexcept {
  std::lock_guard lock(lock_);
  return set_;
}

// Latch

bool Latch::test(void* self, detail::SyncAwait&) noexcept {
  return static_cast<Latch*>(self)->count_ == 0;
}

void Latch::count_down(std::size_t n) {
  std::lock_guard lock(lock_);
  const bool too_far = n > count_;
  count_ = too_far ? 0 : count_ - n;
  if (count_ == 0) {
    while (detail::SyncNode* w = waiters_.claim_first()) detail::WaitList::resume(*w);
  }
  if (too_far) throw UsageError(std::string(messages::kLatchBelowZero));
}

bool Latch::try_wait() const noexcept {
  std::lock_guard lock(lock_);
  return count_ == 0;
}

namespace {
std::size_t waiting(detail::NodeLock& l, const detail::WaitList& w) noexcept {
  std::lock_guard lock(l);
  return w.size();
}
}  // namespace

std::size_t Semaphore::waiters() const noexcept { return waiting(lock_, waiters_); }
std::size_t Lock::waiters() const noexcept { return waiting(lock_, waiters_); }
std::size_t Event::waiters() const noexcept { return waiting(lock_, waiters_); }
std::size_t Latch::waiters() const noexcept { return waiting(lock_, waiters_); }

}  // namespace concur
