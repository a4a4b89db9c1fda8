// SPDX-License-Identifier: BSL-1.0
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
#include <new>

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

/// A std allocator over the same cache: for a gather's per-input storage,
/// made and freed once per gather, often with a handful of inputs.
template <class T>
struct FrameAllocator {
  using value_type = T;
  FrameAllocator() noexcept = default;
  template <class U>
  FrameAllocator(const FrameAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(allocate_frame(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { deallocate_frame(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const FrameAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace concur::detail
