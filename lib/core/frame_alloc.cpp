#include "concur/detail/frame_alloc.hpp"

#include <oneapi/tbb/scalable_allocator.h>

#include <new>

namespace concur::detail {

// ThreadSanitizer tracks memory handed out by malloc, which it intercepts;
// tbbmalloc is not instrumented, so a frame reusing another thread's freed
// block would look like a race. Sanitized builds use the standard allocator.
#if defined(__SANITIZE_THREAD__)
void* allocate_frame(std::size_t size) { return ::operator new(size); }
void deallocate_frame(void* frame, std::size_t size) noexcept { ::operator delete(frame, size); }
#else
void* allocate_frame(std::size_t size) {
  void* p = scalable_malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void deallocate_frame(void* frame, std::size_t) noexcept { scalable_free(frame); }
#endif

}  // namespace concur::detail
