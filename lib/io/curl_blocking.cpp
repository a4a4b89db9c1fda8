// SPDX-License-Identifier: BSL-1.0
// A single transfer on a one-handle multi, rather than curl_easy_perform:
// curl_easy_perform notices cancellation only through its progress callback,
// which libcurl calls about once a second while a reply is awaited, whereas
// curl_multi_poll returns the moment another thread calls curl_multi_wakeup.
// So the wait here is a Waiter whose "driver" wakes the poll: cancelling the
// task (any thread) interrupts the transfer at once. The easy and multi
// handles live per thread; the multi's connection cache gives keep-alive.
#include "io/curl_blocking.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <stdexcept>
#include <string>

#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"
#include "io/curl_exchange.hpp"
#include "io/curl_global.hpp"

namespace concur::io {

namespace {

using detail::Waiter;

// The transfer is the task's wait: recorded for the trace like a sleep, so a
// thread blocked on a reply is drawn as waiting, not as running.
class TracedWait {
 public:
  explicit TracedWait(const detail::Context& ctx) noexcept
      : ctx_(trace::detail::enabled() ? &ctx : nullptr) {
    if (ctx_ != nullptr) trace::detail::wait_begin(ctx_);
  }
  ~TracedWait() {
    if (ctx_ != nullptr && trace::detail::enabled()) trace::detail::wait_end(ctx_);
  }
  TracedWait(const TracedWait&) = delete;
  TracedWait& operator=(const TracedWait&) = delete;

 private:
  const detail::Context* ctx_;
};

// How long one curl_multi_poll may sleep: until the task's deadline (rounded
// up, so the deadline has passed when it returns), at most a minute (libcurl
// shortens it further for its own timeouts; a cancel wakes it at once).
int poll_timeout_ms(detail::TimePoint deadline) {
  constexpr int kMax = 60'000;
  if (deadline == detail::kNever) return kMax;
  const auto left = deadline - detail::Clock::now();
  if (left <= left.zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, kMax));
}

class ThreadCurl final : public detail::Driver {
 public:
  ThreadCurl() {
    ensure_curl_global();
    multi_ = curl_multi_init();
    easy_ = curl_easy_init();
    if (multi_ == nullptr || easy_ == nullptr) {
      cleanup();
      throw Error("concur: cannot create libcurl handles");
    }
  }
  ~ThreadCurl() override { cleanup(); }
  ThreadCurl(const ThreadCurl&) = delete;
  ThreadCurl& operator=(const ThreadCurl&) = delete;

  bool busy() const noexcept { return busy_; }

  http::Response perform(http::Request request, detail::Context& ctx) {
    CurlExchange exchange(std::move(request));
    curl_easy_reset(easy_);  // keeps the connections (they live in the multi)
    exchange.configure(easy_);

    Waiter w;
    w.driver = this;
    w.ctx = &ctx;
    w.state.store(Waiter::parked, std::memory_order_release);
    if (!ctx.attach(w)) std::rethrow_exception(ctx.stop_exception());
    const TracedWait traced(ctx);
    busy_ = true;
    if (curl_multi_add_handle(multi_, easy_) != CURLM_OK) {
      release(w, ctx);
      throw Error("concur: curl_multi_add_handle failed");
    }
    bool finished = false;
    CURLcode code = CURLE_OK;
    for (;;) {
      int running = 0;
      const CURLMcode mc = curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) {
          finished = true;
          code = msg->data.result;
        }
      }
      if (finished || mc != CURLM_OK) break;
      if (w.state.load(std::memory_order_acquire) != Waiter::parked || ctx.stop_requested()) break;
      curl_multi_poll(multi_, nullptr, 0, poll_timeout_ms(ctx.deadline()), nullptr);
    }
    // Removing an unfinished transfer closes its connection: no socket leaks.
    release(w, ctx);
    if (!finished) {
      if (ctx.stop_requested()) std::rethrow_exception(ctx.stop_exception());
      throw Error("concur: libcurl's multi interface failed during a transfer");
    }
    return exchange.finish(easy_, code);
  }

  // The Driver face: only unpark is ever used, by a cancel from any thread.
  std::string_view name() const override { return "curl (blocking)"; }
  void spawn(std::coroutine_handle<>, detail::Context*) override {
    throw std::logic_error("concur: the blocking HTTP waiter cannot spawn tasks");
  }
  bool park(Waiter&) override { return false; }
  void unpark(Waiter&) noexcept override { curl_multi_wakeup(multi_); }

 private:
  void release(Waiter& w, detail::Context& ctx) noexcept {
    ctx.detach(w);  // after this no cancel can reach `w` (or this object)
    curl_multi_remove_handle(multi_, easy_);
    busy_ = false;
  }
  void cleanup() noexcept {
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }

  CURLM* multi_ = nullptr;
  CURL* easy_ = nullptr;
  bool busy_ = false;
};

}  // namespace

http::Response perform_blocking(http::Request request, detail::Context& ctx) {
  thread_local ThreadCurl curl;
  // A transfer started from inside another on this thread (never by concur's
  // executors, but cheap to allow) gets handles of its own.
  if (curl.busy()) {
    ThreadCurl nested;
    return nested.perform(std::move(request), ctx);
  }
  return curl.perform(std::move(request), ctx);
}

}  // namespace concur::io
