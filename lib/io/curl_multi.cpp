// SPDX-License-Identifier: BSL-1.0
#include "io/curl_multi.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "concur/errors.hpp"
#include "io/curl_global.hpp"
#include "io/curl_limits.hpp"
#include "io/engine.hpp"

namespace concur::io {

// --- MultiTransfer ---------------------------------------------------------

MultiTransfer::MultiTransfer(http::Request request) : exchange_(guarded(std::move(request))) {
  easy_ = curl_easy_init();
  if (easy_ == nullptr) throw Error("concur: curl_easy_init failed");
  exchange_.configure(easy_);
  curl_easy_setopt(easy_, CURLOPT_PRIVATE, this);
}

MultiTransfer::~MultiTransfer() { curl_easy_cleanup(easy_); }

http::Request MultiTransfer::guarded(http::Request request) {
  if (request.on_body_chunk) {
    request.on_body_chunk = [this, user = std::move(request.on_body_chunk)](std::string_view s) {
      std::lock_guard lock(mutex_);  // withdraw() waits for a call in progress
      if (waiter_ != nullptr) user(s);
    };
  }
  return request;
}

void MultiTransfer::publish(detail::Waiter* w) {
  std::lock_guard lock(mutex_);
  waiter_ = w;
}

bool MultiTransfer::awaited() {
  std::lock_guard lock(mutex_);
  // Woken (cancelled, timed out) but not yet resumed counts as gone too.
  return waiter_ != nullptr &&
         waiter_->state.load(std::memory_order_acquire) == detail::Waiter::parked;
}

bool MultiTransfer::withdraw() {
  std::lock_guard lock(mutex_);
  waiter_ = nullptr;
  return done_;
}

http::Response MultiTransfer::result() { return exchange_.finish(easy_, code_); }

void MultiTransfer::complete(CURLcode code) {
  // Under the lock: once the task has withdrawn its waiter (and may be gone),
  // nobody touches that waiter again.
  std::lock_guard lock(mutex_);
  code_ = code;
  done_ = true;
  if (waiter_ != nullptr) detail::wake(*waiter_, detail::Waiter::notified);
}

// --- CurlMulti -------------------------------------------------------------

CurlMulti::CurlMulti(Engine& engine)
    : engine_(engine), timer_(engine.context()), max_in_flight_(transfer_budget()) {
  ensure_curl_global();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw Error("concur: curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  // Every in-flight transfer may hold a connection, and as many may idle in
  // the cache for reuse; libcurl closes idle ones first when the total is hit.
  const long connections = static_cast<long>(max_in_flight_);
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, connections);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, connections);
}

CurlMulti::~CurlMulti() {
  queue_.clear();
  // Whoever still waits is woken with an error; in practice nobody does (a
  // gather joins its tasks before its executor can go).
  while (!running_.empty()) {
    MultiTransfer* t = *running_.begin();
    auto keep = std::move(t->keep_);
    remove(*t);
    t->complete(CURLE_ABORTED_BY_CALLBACK);
  }
  curl_multi_cleanup(multi_);  // closes cached connections (their sockets say REMOVE)
  for (auto& [fd, s] : sockets_) {
    s->closed = true;
    s->descriptor.release();  // libcurl owns the descriptor: never let Asio close it
  }
  timer_.cancel();
}

void CurlMulti::start(std::shared_ptr<MultiTransfer> t) {
  if (t->phase_ != MultiTransfer::Phase::created) return;
  if (!t->awaited()) {  // its task stopped before the engine got here
    t->phase_ = MultiTransfer::Phase::aborted;
    return;
  }
  if (queue_.empty() && in_flight_ < max_in_flight_ && started_this_turn_ < kStartsPerTurn) {
    add(t);
  } else {
    t->phase_ = MultiTransfer::Phase::queued;
    queue_.push_back(std::move(t));
    refill_later();
  }
}

// Thousands of transfers started in one go would open thousands of
// connections before the engine reads a single reply (and flood the server's
// accept queue); starting them in bursts between engine turns keeps replies
// flowing while the rest connect.
void CurlMulti::refill_later() {
  if (refill_pending_) return;
  refill_pending_ = true;
  engine_.post([this] {
    refill_pending_ = false;
    started_this_turn_ = 0;
    admit();
  });
}

void CurlMulti::abort(const std::shared_ptr<MultiTransfer>& t) {
  switch (t->phase_) {
    case MultiTransfer::Phase::created:
    case MultiTransfer::Phase::queued:
      t->phase_ = MultiTransfer::Phase::aborted;  // admit() skips it
      break;
    case MultiTransfer::Phase::running: {
      auto keep = std::move(t->keep_);
      // Removing a transfer mid-way makes libcurl close its connection.
      remove(*t);
      t->phase_ = MultiTransfer::Phase::aborted;
      admit();
      break;
    }
    case MultiTransfer::Phase::finished:
    case MultiTransfer::Phase::aborted:
      break;
  }
}

void CurlMulti::add(const std::shared_ptr<MultiTransfer>& t) {
  const CURLMcode c = curl_multi_add_handle(multi_, t->easy_);
  if (c != CURLM_OK) {
    t->phase_ = MultiTransfer::Phase::finished;
    t->complete(CURLE_FAILED_INIT);
    return;
  }
  t->phase_ = MultiTransfer::Phase::running;
  ++started_this_turn_;
  t->keep_ = t;
  running_.insert(t.get());
  ++in_flight_;
  peak_ = std::max(peak_, in_flight_);
}

void CurlMulti::remove(MultiTransfer& t) {
  curl_multi_remove_handle(multi_, t.easy_);
  running_.erase(&t);
  --in_flight_;
}

void CurlMulti::admit() {
  while (in_flight_ < max_in_flight_ && !queue_.empty()) {
    if (started_this_turn_ >= kStartsPerTurn) {
      refill_later();
      return;
    }
    std::shared_ptr<MultiTransfer> t = std::move(queue_.front());
    queue_.pop_front();
    if (t->phase_ != MultiTransfer::Phase::queued) continue;
    // Its task may have stopped with the abort still on its way here: a
    // cancelled batch must not reach the server after all.
    if (!t->awaited()) {
      t->phase_ = MultiTransfer::Phase::aborted;
      continue;
    }
    add(t);
  }
}

int CurlMulti::on_socket(CURL*, curl_socket_t fd, int what, void* self, void*) {
  auto* m = static_cast<CurlMulti*>(self);
  if (what == CURL_POLL_REMOVE) {
    auto it = m->sockets_.find(fd);
    if (it != m->sockets_.end()) {
      it->second->closed = true;
      // Deregisters from epoll and fails pending waits with operation_aborted;
      // libcurl closes the descriptor itself right after.
      it->second->descriptor.release();
      m->sockets_.erase(it);
    }
    return 0;
  }
  try {
    std::shared_ptr<Socket>& s = m->sockets_[fd];
    if (!s) s = std::make_shared<Socket>(m->engine_.context(), fd);
    s->wanted = what;
    m->watch(s);
  } catch (const std::exception&) {
    // The reactor refused the descriptor: the transfer's own timeout (or its
    // task's cancellation) still ends it. Nothing may unwind through libcurl.
    m->sockets_.erase(fd);
  }
  return 0;
}

void CurlMulti::watch(const std::shared_ptr<Socket>& s) {
  using boost::asio::posix::descriptor_base;
  const curl_socket_t fd = s->descriptor.native_handle();
  if ((s->wanted & CURL_POLL_IN) != 0 && !s->reading) {
    s->reading = true;
    s->descriptor.async_wait(descriptor_base::wait_read,
                             [this, s, fd](const boost::system::error_code& ec) {
                               s->reading = false;
                               if (s->closed || ec == boost::asio::error::operation_aborted) return;
                               on_ready(s, fd, ec ? CURL_CSELECT_ERR : CURL_CSELECT_IN);
                             });
  }
  if ((s->wanted & CURL_POLL_OUT) != 0 && !s->writing) {
    s->writing = true;
    s->descriptor.async_wait(descriptor_base::wait_write,
                             [this, s, fd](const boost::system::error_code& ec) {
                               s->writing = false;
                               if (s->closed || ec == boost::asio::error::operation_aborted) return;
                               on_ready(s, fd, ec ? CURL_CSELECT_ERR : CURL_CSELECT_OUT);
                             });
  }
}

void CurlMulti::on_ready(const std::shared_ptr<Socket>& s, curl_socket_t fd, int direction) {
  // A wait left over from before libcurl changed its mind: just drop it.
  const int wanted_bit = direction == CURL_CSELECT_OUT ? CURL_POLL_OUT : CURL_POLL_IN;
  if (direction != CURL_CSELECT_ERR && (s->wanted & wanted_bit) == 0) return;
  act(fd, direction);
  // Asio's waits are one-shot: watch again for whatever libcurl still wants.
  if (!s->closed) watch(s);
}

int CurlMulti::on_timer(CURLM*, long timeout_ms, void* self) {
  auto* m = static_cast<CurlMulti*>(self);
  if (timeout_ms < 0) {
    m->timer_.cancel();
    m->timer_due_ = Clock::time_point::max();
    return 0;
  }
  // libcurl moves its timeout with nearly every call; re-arming the kernel
  // timer each time was a tenth of the engine's CPU. A timer already due
  // earlier stays: firing early only makes libcurl say when it is next due.
  const auto due = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (m->timer_due_ <= due) return 0;
  m->timer_due_ = due;
  // Even a zero timeout goes through the io_context: libcurl forbids calling
  // curl_multi_socket_action from inside its own callbacks.
  m->timer_.expires_at(due);
  m->timer_.async_wait([m](const boost::system::error_code& ec) {
    if (ec) return;  // replaced by an earlier one, or cancelled
    m->timer_due_ = Clock::time_point::max();
    m->act(CURL_SOCKET_TIMEOUT, 0);
  });
  return 0;
}

void CurlMulti::act(curl_socket_t fd, int events) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, events, &running);
  collect_finished();
}

void CurlMulti::collect_finished() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* const easy = msg->easy_handle;  // msg dies with remove()
    const CURLcode code = msg->data.result;
    MultiTransfer* t = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
    auto keep = std::move(t->keep_);
    remove(*t);
    t->phase_ = MultiTransfer::Phase::finished;
    t->complete(code);
  }
  admit();
}

}  // namespace concur::io
