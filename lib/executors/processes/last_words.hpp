// SPDX-License-Identifier: BSL-1.0
// A worker's last words: when a call's code crashes the worker (a signal such
// as SIGSEGV or SIGABRT, or exit()), the worker writes which call it was
// running on a pipe of its own, so that the parent can name that call and
// tell the others in flight on the same worker apart.
//
// The running calls are kept in a fixed table of one entry per slot, written
// with atomics: the crash handler reads it from a signal handler, where no
// lock may be taken. It finds the crashing call from the context current on
// the crashing thread (a nested gather's child leads up to its call's root).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "concur/detail/context.hpp"

namespace concur::executors::processes {

class RunningTable {
 public:
  explicit RunningTable(std::size_t slots)
      : slots_(slots), entries_(std::make_unique<Entry[]>(slots)) {}

  /// Slot `slot` runs call `id` in context `root` (a context without parent).
  void set(std::size_t slot, std::uint64_t id, const detail::Context* root) noexcept {
    entries_[slot].root.store(root, std::memory_order_relaxed);
    entries_[slot].id.store(id, std::memory_order_release);
  }
  void clear(std::size_t slot) noexcept {
    entries_[slot].id.store(0, std::memory_order_release);
    entries_[slot].root.store(nullptr, std::memory_order_relaxed);
  }
  /// The call whose tree holds `ctx`, or 0. Async-signal-safe.
  std::uint64_t call_of(const detail::Context* ctx) const noexcept;
  /// The calls started and not finished, into `out` (at most `n`); returns
  /// how many there are. Async-signal-safe.
  std::size_t started(std::uint64_t* out, std::size_t n) const noexcept;
  /// The started calls among slots [from, from + n), into `out`; how many.
  std::size_t started_in(std::size_t from, std::uint64_t* out, std::size_t n) const noexcept;
  std::size_t size() const noexcept { return slots_; }

 private:
  struct Entry {
    std::atomic<std::uint64_t> id{0};
    std::atomic<const detail::Context*> root{nullptr};
  };
  std::size_t slots_;
  std::unique_ptr<Entry[]> entries_;
};

/// Installs the crash handlers (fatal signals, exit()) that write the call
/// running on the crashing thread, and every call started, to `fd` (made
/// non-blocking: a dying worker never waits for its parent to read).
/// `table` must live until the end.
void install_last_words(int fd, const RunningTable* table);

}  // namespace concur::executors::processes
