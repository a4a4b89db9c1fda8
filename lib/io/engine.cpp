// SPDX-License-Identifier: BSL-1.0
#include "io/engine.hpp"

#include <boost/asio/post.hpp>

#include "io/curl_multi.hpp"

namespace concur::io {

Engine::Engine() : keep_running_(io_.get_executor()), timer_(io_) {}

// libcurl's transfers end (and their sockets close) before the io_context
// that watches those sockets is destroyed.
Engine::~Engine() { curl_.reset(); }

void Engine::dispatch(std::function<void()> fn) {
  if (owner_ == std::this_thread::get_id()) {
    fn();
  } else {
    post(std::move(fn));
  }
}

CurlMulti& Engine::curl() {
  if (!curl_) curl_ = std::make_unique<CurlMulti>(*this);
  return *curl_;
}

void Engine::add_timer(detail::Waiter& w) {
  w.driver_key = next_key_++;
  timers_.emplace(std::make_pair(w.deadline, w.driver_key), &w);
}

void Engine::remove_timer(detail::Waiter& w) noexcept {
  if (w.driver_key == 0) return;
  timers_.erase(std::make_pair(w.deadline, w.driver_key));
  w.driver_key = 0;
}

std::size_t Engine::fire_expired() {
  const auto now = detail::Clock::now();
  std::size_t fired = 0;
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    detail::Waiter* w = timers_.begin()->second;
    timers_.erase(timers_.begin());
    w->driver_key = 0;
    detail::wake(*w, detail::Waiter::timed_out);
    ++fired;
  }
  return fired;
}

// Re-arms the one asio timer only when the earliest deadline changed, so a
// loop turn with unchanged timers costs no syscall.
void Engine::arm() {
  const detail::TimePoint next = timers_.empty() ? detail::kNever : timers_.begin()->first.first;
  if (next == armed_for_) return;
  armed_for_ = next;
  if (next == detail::kNever) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(next);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed or cancelled
    armed_for_ = detail::kNever;
  });
}

void Engine::run_once(bool block) {
  // A timer that is already due makes work ready: do not sleep then.
  if (fire_expired() > 0) block = false;
  if (block) {
    arm();
    if (io_.stopped()) io_.restart();
    io_.run_one();
  }
  if (io_.stopped()) io_.restart();
  io_.poll();
  fire_expired();
}

void Engine::run_until(detail::TimePoint wake_at) {
  fire_expired();
  arm();
  if (io_.stopped()) io_.restart();
  // run_one_until sleeps in the reactor (epoll) with a timeout: no polling.
  if (wake_at == detail::kNever) {
    io_.run_one();
  } else {
    io_.run_one_until(wake_at);
  }
  if (io_.stopped()) io_.restart();
  io_.poll();
  fire_expired();
}

void Engine::post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

}  // namespace concur::io
