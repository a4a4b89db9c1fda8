// SPDX-License-Identifier: BSL-1.0
// Fiber stacks for the fibers executor: fixed size, carved from large
// anonymous mappings and recycled through a free list.
//
// Why not boost::fibers::pooled_fixedsize_stack: its boost::pool is not
// thread-safe, and with threads > 1 a fiber is often created on one thread
// and destroyed on another. Why slabs: one mapping per stack (plus a guard
// page) would cost two kernel VMAs per fiber, and vm.max_map_count (65530 by
// default) would cap the executor near 32,000 fibers. Like Boost's pooled
// stacks there is no guard page, so stack_kb must cover the deepest task.
#pragma once

#include <boost/context/stack_context.hpp>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

namespace concur::executors::fibers {

class StackPool {
 public:
  explicit StackPool(std::size_t stack_bytes);
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool();

  /// A stack of stack_size() bytes. Throws concur::Error (messages::kStackAllocation)
  /// when the memory cannot be mapped.
  boost::context::stack_context allocate();
  void deallocate(boost::context::stack_context& sc) noexcept;
  std::size_t stack_size() const noexcept { return size_; }

 private:
  void grow();  // maps one more slab; called with mutex_ held

  const std::size_t size_;
  std::mutex mutex_;
  std::vector<void*> free_;  // lowest address of each free stack
  std::vector<std::pair<void*, std::size_t>> slabs_;
};

/// The StackAllocator Boost.Fiber copies into each fiber.
struct PooledStack {
  StackPool* pool;
  boost::context::stack_context allocate() { return pool->allocate(); }
  void deallocate(boost::context::stack_context& sc) noexcept { pool->deallocate(sc); }
};

}  // namespace concur::executors::fibers
