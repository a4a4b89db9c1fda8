// SPDX-License-Identifier: BSL-1.0
#include "concur/detail/frame_alloc.hpp"

#include <oneapi/tbb/scalable_allocator.h>

#include <cstdint>
#include <new>

namespace concur::detail {

// ThreadSanitizer tracks memory handed out by malloc, which it intercepts;
// tbbmalloc is not instrumented, so a frame reusing another thread's freed
// block would look like a race. AddressSanitizer would not see a frame used
// after it went back to the cache below. Sanitized builds use the standard
// allocator.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
void* allocate_frame(std::size_t size) { return ::operator new(size); }
void deallocate_frame(void* frame, std::size_t size) noexcept { ::operator delete(frame, size); }
#else

namespace {

// A gather makes and frees two frames per child (the child and its task),
// usually on the same thread and in bursts of one size, so a small
// per-thread cache in front of tbbmalloc pays: taking a block from it is a
// thread-local load and two stores, where tbbmalloc costs a call, a
// pthread_getspecific and its own bookkeeping (a fifth of the cost of a
// nested gather's child before this cache). A block freed on another thread
// than the one that made it simply joins that thread's cache; tbbmalloc still
// handles what overflows the cache, from any thread.
constexpr std::size_t kGranule = 32;
constexpr std::size_t kClasses = 64;  // frames (and a small gather's child records) up to 2 KiB
constexpr std::uint32_t kMaxPerClass = 64;
// Per thread: 512 thread_pool workers hold at most 32 MiB between them.
constexpr std::size_t kMaxCachedBytes = 64 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

// Plain data, so the hot path needs no thread_local initialisation guard.
struct FrameCache {
  FreeBlock* head[kClasses];
  std::uint32_t count[kClasses];
  std::size_t bytes;
  enum : std::uint8_t { unarmed, armed, reaped } reaper;
};

constinit thread_local FrameCache tl_cache{};

std::size_t class_of(std::size_t size) noexcept { return (size - 1) / kGranule; }

// Gives a thread's cached blocks back to tbbmalloc when the thread ends.
struct Reaper {
  ~Reaper() {
    FrameCache& c = tl_cache;
    for (std::size_t k = 0; k < kClasses; ++k) {
      while (FreeBlock* b = c.head[k]) {
        c.head[k] = b->next;
        scalable_free(b);
      }
      c.count[k] = 0;
    }
    c.bytes = 0;
    // Frames freed by thread_local objects destroyed after this one go
    // straight back to tbbmalloc.
    c.reaper = FrameCache::reaped;
  }
};

// False once the thread is ending and its cache is gone.
bool arm_reaper() {
  if (tl_cache.reaper == FrameCache::reaped) return false;
  thread_local Reaper reaper;
  (void)reaper;
  tl_cache.reaper = FrameCache::armed;
  return true;
}

}  // namespace

void* allocate_frame(std::size_t size) {
  if (size <= kGranule * kClasses) {
    const std::size_t k = class_of(size);
    FrameCache& c = tl_cache;
    if (FreeBlock* b = c.head[k]) {
      c.head[k] = b->next;
      --c.count[k];
      c.bytes -= (k + 1) * kGranule;
      return b;
    }
    // Allocate the whole class size so any frame of the class can reuse it.
    size = (k + 1) * kGranule;
  }
  void* p = scalable_malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void deallocate_frame(void* frame, std::size_t size) noexcept {
  if (size <= kGranule * kClasses) {
    const std::size_t k = class_of(size);
    const std::size_t block = (k + 1) * kGranule;
    FrameCache& c = tl_cache;
    if (c.count[k] < kMaxPerClass && c.bytes + block <= kMaxCachedBytes &&
        (c.reaper == FrameCache::armed || arm_reaper())) {
      auto* b = static_cast<FreeBlock*>(frame);
      b->next = c.head[k];
      c.head[k] = b;
      ++c.count[k];
      c.bytes += block;
      return;
    }
  }
  scalable_free(frame);
}
#endif

}  // namespace concur::detail
