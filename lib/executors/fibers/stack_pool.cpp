// SPDX-License-Identifier: BSL-1.0
#include "executors/fibers/stack_pool.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "concur/errors.hpp"

namespace concur::executors::fibers {

namespace {
// Stacks per mapping: big enough that a million fibers need few syscalls,
// small enough that a modest stack_kb does not reserve much unused memory.
constexpr std::size_t kSlabBytes = std::size_t{4} << 20;
// Free stacks kept resident for reuse. Beyond these, a freed stack gives its
// pages back: otherwise a wave of 100,000 finishing fibers (each touching a
// second page on its way out) doubled the process's peak, and the pool held
// that memory for the executor's life whatever stack_kb was.
constexpr std::size_t kResidentFree = 1024;

std::size_t page_rounded(std::size_t bytes) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}
}  // namespace

StackPool::StackPool(std::size_t stack_bytes) : size_(page_rounded(stack_bytes)) {}

StackPool::~StackPool() {
  for (auto [base, bytes] : slabs_) ::munmap(base, bytes);
}

void StackPool::grow() {
  std::size_t count = kSlabBytes > size_ ? kSlabBytes / size_ : 1;
  // MAP_NORESERVE: only the pages a fiber touches cost memory, so 100,000
  // mostly idle stacks stay far below their nominal size.
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK;
  void* base = ::mmap(nullptr, count * size_, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (base == MAP_FAILED && count > 1) {  // memory is tight: one stack may still fit
    count = 1;
    base = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, flags, -1, 0);
  }
  if (base == MAP_FAILED) {
    const int err = errno;
    throw Error(
        fmt::format("concur fibers: {} of {} KiB ({}); lower stack_kb or allow the "
                    "process more memory",
                    messages::kStackAllocation, size_ / 1024, std::strerror(err)));
  }
  slabs_.emplace_back(base, count * size_);
  for (std::size_t i = 0; i < count; ++i) free_.push_back(static_cast<char*>(base) + i * size_);
}

boost::context::stack_context StackPool::allocate() {
  void* low = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (free_.empty()) grow();
    low = free_.back();
    free_.pop_back();
  }
  boost::context::stack_context sc;
  sc.size = size_;
  sc.sp = static_cast<char*>(low) + size_;  // stacks grow down
  return sc;
}

void StackPool::deallocate(boost::context::stack_context& sc) noexcept {
  void* low = static_cast<char*>(sc.sp) - sc.size;
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    release = free_.size() >= kResidentFree;
  }
  // Outside the lock: the syscall must not serialise the other threads.
  // MADV_DONTNEED on a private anonymous mapping: the next use gets zero pages.
  if (release) ::madvise(low, size_, MADV_DONTNEED);
  std::lock_guard lock(mutex_);
  free_.push_back(low);  // capacity was reserved by grow(), so no allocation throws here
}

}  // namespace concur::executors::fibers
