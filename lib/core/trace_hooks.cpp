// SPDX-License-Identifier: BSL-1.0
// The trace recorder's hot path: the hooks the core calls on every task
// begin, end and wait, appending records to the calling thread's buffer
// (trace_buffer.hpp), and the slow paths behind them (a thread's first
// event of a recording, a full chunk). Nothing here takes a lock per event.
//
// What a no-op task pays while recording (concur-bench-trace, ~20 ns on a
// 2.4 GHz Zen 3): about half is the two counter reads, a sixth the call's
// name, the rest the two hook calls and the appends.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "concur/detail/context.hpp"
#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "core/trace_buffer.hpp"

namespace concur::trace::detail {

namespace {

Chunk* take_chunk() noexcept {
  Registry& r = registry();
  {
    std::lock_guard lock(r.mutex);
    if (Chunk* c = r.free) {
      r.free = c->next;
      --r.free_count;
      c->next = nullptr;
      return c;
    }
  }
  try {
    return new Chunk;
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

void Buffer::reset(std::uint64_t gen) noexcept {
  // Keep a bounded number of chunks for this recording; the rest are shared.
  if (Chunk* c = head) {
    std::size_t kept = 1;
    while (c->next != nullptr && kept < kKeepPerThread) {
      c = c->next;
      ++kept;
    }
    if (Chunk* extra = std::exchange(c->next, nullptr)) {
      Registry& r = registry();
      std::lock_guard lock(r.mutex);
      while (extra != nullptr) r.give_locked(std::exchange(extra, extra->next));
    }
  }
  chunk = head;
  cur = head != nullptr ? head->words : nullptr;
  end = head != nullptr ? head->words + Chunk::kWords : nullptr;
  driver = nullptr;
  names.clear();
  name_index.clear();
  last_data = nullptr;
  last_len = 0;
  last_name = nullptr;
  published.store(cur, std::memory_order_relaxed);
  generation.store(gen, std::memory_order_release);
}

[[gnu::noinline]] std::uint64_t* Buffer::next_chunk() noexcept {
  Chunk* c = chunk != nullptr ? chunk->next : head;
  if (c == nullptr) {
    c = take_chunk();
    if (c == nullptr) return nullptr;
    (chunk != nullptr ? chunk->next : head) = c;
  }
  // Readers learn where this chunk ends before `published` moves past it.
  if (chunk != nullptr) chunk->used = static_cast<std::size_t>(cur - chunk->words);
  chunk = c;
  cur = c->words;
  end = c->words + Chunk::kWords;
  return cur;
}

namespace {

// The thread's buffer. `tl_buffer` is trivially constructed and destroyed, so
// reading it costs no guard; `tl_slot` exists to mark the buffer orphaned when
// the thread ends, so the next recording can recycle it while this one can
// still read it.
thread_local Buffer* tl_buffer = nullptr;
thread_local bool tl_exited = false;

struct ThreadSlot {
  Buffer* buffer = nullptr;
  ~ThreadSlot() {
    tl_buffer = nullptr;
    tl_exited = true;
    if (buffer == nullptr) return;
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    buffer->orphaned = true;
  }
};
thread_local ThreadSlot tl_slot;

// The slow path of my_buffer(): a thread's first event, or its first of a
// new recording. Null if out of memory or the thread is exiting.
[[gnu::noinline]] Buffer* attach() noexcept {
  if (tl_exited) return nullptr;
  Buffer* b = tl_buffer;
  if (b == nullptr) {
    try {
      auto fresh = std::make_unique<Buffer>();
      fresh->tid = this_tid();
      b = fresh.get();
      Registry& r = registry();
      std::lock_guard lock(r.mutex);
      r.buffers.push_back(std::move(fresh));
    } catch (...) {
      return nullptr;
    }
    tl_slot.buffer = b;
    tl_buffer = b;
  }
  b->reset(g_generation.load(std::memory_order_acquire));
  return b;
}

inline Buffer* my_buffer() noexcept {
  Buffer* b = tl_buffer;
  if (b != nullptr && b->generation.load(std::memory_order_relaxed) ==
                          g_generation.load(std::memory_order_acquire)) [[likely]]
    return b;
  return attach();
}

std::atomic<WaitSink*> g_sink{nullptr};
inline WaitSink* sink() noexcept { return g_sink.load(std::memory_order_acquire); }

}  // namespace

void task_begin() noexcept {
  concur::detail::Context* ctx = concur::detail::current_context();
  if (ctx == nullptr || sink() != nullptr) return;
  const std::uint64_t now = ticks();
  Buffer* b = my_buffer();
  if (b == nullptr) return;
  // The batch's own parent is the task that awaited the gather.
  const concur::detail::Context* batch = ctx->parent();
  const concur::detail::Context* parent = batch != nullptr ? batch->parent() : nullptr;
  std::string_view ex = "unknown";
  if (concur::detail::Driver* d = concur::detail::current_driver()) ex = d->name();
  std::uint64_t* w;
  if (ex.data() == b->driver) [[likely]] {
    w = b->reserve<3>();
    if (w == nullptr) return;
  } else {
    // Drivers name themselves with string literals, so the text outlives the trace.
    w = b->reserve<5>();
    if (w == nullptr) return;
    w[0] = word(ex.data());
    w[1] = static_cast<std::uint64_t>(ex.size()) << kKindBits | kDriver;
    w += 2;
    b->driver = ex.data();
  }
  w[0] = now;
  w[1] = word(ctx) | kBegin;
  w[2] = word(parent);
  b->commit(w + 3);
}

void task_end(concur::detail::Context& ctx, bool failed) noexcept {
  if (sink() != nullptr) return;
  const std::uint64_t now = ticks();
  Buffer* b = my_buffer();
  if (b == nullptr) return;
  const std::string* name = nullptr;
  try {
    name = b->intern(ctx.name());
  } catch (...) {
    // Out of memory for a name: keep the event, lose the name.
  }
  std::uint64_t* w = b->reserve<3>();
  if (w == nullptr) return;
  w[0] = now;
  w[1] = word(&ctx) | (failed ? kEndFailed : kEnd);
  w[2] = word(name);
  b->commit(w + 3);
}

namespace {
void mark(const concur::detail::Context* ctx, Kind kind) noexcept {
  if (ctx == nullptr) return;
  const std::uint64_t now = ticks();
  Buffer* b = my_buffer();
  if (b == nullptr) return;
  std::uint64_t* w = b->reserve<2>();
  if (w == nullptr) return;
  w[0] = now;
  w[1] = word(ctx) | kind;
  b->commit(w + 2);
}
}  // namespace

void set_wait_sink(WaitSink* s) noexcept {
  g_sink.store(s, std::memory_order_release);
  g_enabled.store(true, std::memory_order_relaxed);
}

void wait_begin(const concur::detail::Context* ctx) noexcept {
  if (WaitSink* s = sink()) [[unlikely]] {
    s->wait(ctx, true);
    return;
  }
  mark(ctx, kWaitBegin);
}
void wait_end(const concur::detail::Context* ctx) noexcept {
  if (WaitSink* s = sink()) [[unlikely]] {
    s->wait(ctx, false);
    return;
  }
  mark(ctx, kWaitEnd);
}
void task_elsewhere(const concur::detail::Context* ctx) noexcept {
  if (sink() == nullptr) mark(ctx, kElsewhere);
}

void stall(std::string_view executor, std::string_view task,
           std::chrono::nanoseconds held) noexcept {
  try {
    const auto now = Clock::now();
    Registry& r = registry();
    StallEntry s{std::string(executor), std::string(task), this_tid(), now - held, now};
    std::lock_guard lock(r.mutex);
    if (r.active) r.stalls.push_back(std::move(s));
  } catch (...) {
    // A report lost for want of memory is not worth failing the task over.
  }
}

}  // namespace concur::trace::detail
