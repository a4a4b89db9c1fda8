// SPDX-License-Identifier: BSL-1.0
// The HTTP wait on a suspending driver (event_loop, fibers): the awaiting
// task parks on a Waiter while its transfer runs on the driver's io::Engine.
#pragma once

#include <coroutine>
#include <memory>

#include "concur/detail/driver.hpp"
#include "concur/http.hpp"
#include "io/curl_multi.hpp"

namespace concur::io {
class Engine;
}

namespace concur::http::detail_ {

class EngineWait {
 public:
  /// Throws InvalidRequest for a request that cannot be sent.
  EngineWait(io::Engine& engine, concur::detail::Driver& driver, concur::detail::Context& ctx,
             Request request);
  EngineWait(const EngineWait&) = delete;
  EngineWait& operator=(const EngineWait&) = delete;

  bool await_ready() { return ctx_.stop_requested(); }
  bool await_suspend(std::coroutine_handle<> h);
  Response await_resume();

 private:
  io::Engine& engine_;
  concur::detail::Driver& driver_;
  concur::detail::Context& ctx_;
  std::shared_ptr<io::MultiTransfer> transfer_;
  concur::detail::Waiter waiter_;
  bool parked_ = false;
  bool started_ = false;
};

}  // namespace concur::http::detail_
