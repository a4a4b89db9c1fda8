// SPDX-License-Identifier: BSL-1.0
#include "executors/stall_watch.hpp"

#include <time.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace concur::executors {

std::chrono::nanoseconds coarse_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

struct StallWatch::Scan {
  std::chrono::nanoseconds now;
  std::chrono::nanoseconds next_wake;  // the earliest time a watch wants a look
};

namespace {

// One thread for the whole process: it sleeps until the earliest moment a
// running leg could cross its next report time, so it wakes about once per
// threshold while tasks run and never while no watch is registered.
class Watchdog {
 public:
  static Watchdog& instance() {
    // Leaked on purpose: executors may be destroyed during static destruction.
    static Watchdog* w = new Watchdog;
    return *w;
  }

  void add(StallWatch* w) {
    std::lock_guard lock(mutex_);
    watches_.push_back(w);
    if (!started_) {
      started_ = true;
      std::thread([this] { loop(); }).detach();
    }
    cv_.notify_one();
  }
  void remove(StallWatch* w) {
    // Under the lock: a scan (and the report it makes) never outlives its watch.
    std::lock_guard lock(mutex_);
    watches_.erase(std::remove(watches_.begin(), watches_.end(), w), watches_.end());
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (watches_.empty()) {
        cv_.wait(lock);
        continue;
      }
      StallWatch::Scan s{coarse_now(), std::chrono::hours(24)};
      s.next_wake += s.now;
      for (StallWatch* w : watches_) w->scan(s);
      const auto sleep =
          std::max(s.next_wake - s.now, std::chrono::nanoseconds(std::chrono::milliseconds(1)));
      cv_.wait_for(lock, sleep);
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<StallWatch*> watches_;
  bool started_ = false;
};

}  // namespace

StallWatch::StallWatch(std::chrono::nanoseconds threshold, OngoingReport report)
    : threshold_(threshold), report_(std::move(report)) {
  if (threshold_.count() > 0) Watchdog::instance().add(this);
}

StallWatch::~StallWatch() {
  if (threshold_.count() > 0) Watchdog::instance().remove(this);
}

// On the watchdog thread, with the registry locked.
void StallWatch::scan(Scan& s) noexcept {
  const std::uint64_t leg = leg_.load(std::memory_order_seq_cst);
  if (leg == 0) {
    seen_leg_ = 0;
    s.next_wake = std::min(s.next_wake, s.now + threshold_);  // idle: look again later
    return;
  }
  const std::chrono::nanoseconds start(start_ns_.load(std::memory_order_relaxed));
  const auto* object = name_object_.load(std::memory_order_relaxed);
  const auto get = name_get_.load(std::memory_order_relaxed);
  if (leg != seen_leg_) {
    seen_leg_ = leg;
    next_report_ = threshold_;
  }
  const auto held = s.now - start;
  if (held >= next_report_) {
    std::string name;
    bool same_leg = false;
    reading_.store(true, std::memory_order_seq_cst);
    if (leg_.load(std::memory_order_seq_cst) == leg) {
      same_leg = true;
      try {
        name = std::string(detail::CallName{object, get}());
      } catch (...) {
        name = "task";
      }
    }
    reading_.store(false, std::memory_order_seq_cst);
    if (!same_leg) return;  // it ended meanwhile; its own thread reports it
    while (next_report_ <= held) next_report_ *= 2;  // 1x, 2x, 4x, ... the threshold
    try {
      report_(name, held);
    } catch (...) {
      // A handler must not throw; the watchdog must not die of it either.
    }
  }
  // Not before an eighth of the threshold: legs that keep ending just short
  // of it must not make the watchdog spin.
  s.next_wake = std::min(s.next_wake, std::max(start + next_report_, s.now + threshold_ / 8));
}

}  // namespace concur::executors
