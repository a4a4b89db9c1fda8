// Where coroutine frames live.
//
// Every task and every gather child is a heap-allocated coroutine frame, and
// on thread_pool and fibers with several threads a frame is often freed on a
// different thread than the one that made it. glibc's malloc handles that
// cross-thread free slowly (arena locks, consolidation); oneTBB's scalable
// allocator keeps per-thread pools and hands remote frees back cheaply. The
// promise types take their frames from here, so the choice stays in one place
// (lib/core/frame_alloc.cpp) and out of the public headers.
#pragma once

#include <cstddef>

namespace concur::detail {

void* allocate_frame(std::size_t size);
void deallocate_frame(void* frame, std::size_t size) noexcept;

/// Base of every promise type: routes frame allocation to allocate_frame.
struct FrameAllocated {
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    deallocate_frame(frame, size);
  }
};

}  // namespace concur::detail
