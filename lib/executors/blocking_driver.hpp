// SPDX-License-Identifier: BSL-1.0
// A driver whose waits block the OS thread: the sequential executor, the
// threads of thread_pool, and the inside of a worker process. Each thread
// parks on its own mutex/condition variable; a wake from any thread notifies
// it. Spawned children run inline, to completion, on the spawning thread.
#pragma once

#include "concur/detail/driver.hpp"

namespace concur::executors {

class BlockingDriver : public detail::Driver {
 public:
  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override;
  void prepare(detail::Waiter& w) override;
  bool park(detail::Waiter& w) override;
  void unpark(detail::Waiter& w) noexcept override;
};

}  // namespace concur::executors
