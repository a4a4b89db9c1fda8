#include "concur/detail/frame_alloc.hpp"

#include <oneapi/tbb/scalable_allocator.h>

#include <new>

namespace concur::detail {

void* allocate_frame(std::size_t size) {
  void* p = scalable_malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void deallocate_frame(void* frame, std::size_t) noexcept { scalable_free(frame); }

}  // namespace concur::detail
