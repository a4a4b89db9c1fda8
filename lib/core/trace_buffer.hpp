// SPDX-License-Identifier: BSL-1.0
// The trace recorder's storage, shared by its two jobs: the hooks write it on
// the hot path (trace_hooks.cpp) and stop() reads it back (trace_replay.cpp).
//
// Each thread appends small records of 8-byte words to its own chunked
// buffer: no lock, no cache line shared with another thread written, one
// time-stamp-counter read and five stores per event. Records name their task
// by its Context address only; the replay merges the per-thread streams in
// time order and rebuilds each task's life from begin/wait/end records.
//
// Memory is kept for the next recording: a thread reuses its own chunks, and
// chunks of threads that have ended go to a free list. A freshly allocated
// page costs a fault and a 4 KiB clear on first write; after the first
// recording the hot path only writes to pages that are already mapped.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "concur/detail/context.hpp"
#include "concur/trace.hpp"

namespace concur::trace::detail {

// --- timestamps --------------------------------------------------------------

// The CPU's time-stamp counter costs a third of a steady_clock read; it is
// converted to steady-clock nanoseconds at stop() against two clock readings.
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
#endif
}

struct Calibration {
  std::uint64_t tick0 = 0;
  Clock::time_point time0;
  double ns_per_tick = 1.0;
  Nanos to_offset(std::uint64_t t) const {
    const double d = static_cast<double>(static_cast<std::int64_t>(t - tick0)) * ns_per_tick;
    return Nanos(static_cast<std::int64_t>(d));
  }
};

// --- records -----------------------------------------------------------------

// A record is 2 or 3 words; the second word always carries the kind in its
// low 3 bits (Context addresses are 8-aligned):
//   begin      ticks, context | kBegin, parent task's context (0: top level)
//   end        ticks, context | kEnd or kEndFailed, interned name (0: lost)
//   wait b/e   ticks, context | kWaitBegin or kWaitEnd
//   driver     name data, length << 3 | kDriver: the executor of the begins
//              that follow on this thread (written only when it changes)
//   elsewhere  ticks, context | kElsewhere: that task ran in another process
enum Kind : std::uint64_t { kBegin, kEnd, kEndFailed, kWaitBegin, kWaitEnd, kDriver, kElsewhere };
constexpr std::uint64_t kKindBits = 3;
constexpr std::uint64_t kKindMask = (1U << kKindBits) - 1;
static_assert(alignof(concur::detail::Context) >= 8, "the kind lives in the address's low bits");

constexpr std::size_t record_words(std::uint64_t kind) noexcept {
  return kind == kBegin || kind == kEnd || kind == kEndFailed ? 3 : 2;
}

inline std::uint64_t word(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }
template <class T>
inline T* pointer(std::uint64_t w) noexcept {
  return reinterpret_cast<T*>(static_cast<std::uintptr_t>(w & ~kKindMask));
}

struct Chunk {
  static constexpr std::size_t kBytes = 64 * 1024;
  static constexpr std::size_t kWords = (kBytes - 2 * sizeof(void*)) / sizeof(std::uint64_t);
  Chunk* next = nullptr;
  std::size_t used = 0;         // words written; set when its writer moves on to the next chunk
  std::uint64_t words[kWords];  // left uninitialised: written before read

  bool holds(const std::uint64_t* p) const noexcept { return p >= words && p <= words + kWords; }
};

// Memory kept between recordings: per thread (its own chunks) and shared (the
// free list). Beyond these, chunks go back to the allocator.
constexpr std::size_t kKeepPerThread = 256;  // 16 MiB
constexpr std::size_t kKeepFree = 256;       // 16 MiB
// Mapped and touched when a recording starts, so the first chunk a thread
// takes is ready to write.
constexpr std::size_t kWarmFree = 4;

// memcmp(a, b, n) == 0 without a library call for the short names tasks
// usually have (up to 16 bytes: two overlapping loads per side).
inline bool same_text(const char* a, const char* b, std::size_t n) noexcept {
  const auto load8 = [](const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  const auto load4 = [](const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  if (n >= 8 && n <= 16) return load8(a) == load8(b) && load8(a + n - 8) == load8(b + n - 8);
  if (n >= 4 && n < 8) return load4(a) == load4(b) && load4(a + n - 4) == load4(b + n - 4);
  return n == 0 || std::memcmp(a, b, n) == 0;
}

// --- per-thread buffers ------------------------------------------------------

// Aligned so that no two threads' buffers share a cache line (or the pair the
// prefetcher fetches together): each thread writes its own on every event.
struct alignas(128) Buffer {
  // Touched by every event of the owning thread, and written by it alone;
  // `generation` and `published` are also read by stop().
  std::uint64_t* cur = nullptr;
  std::uint64_t* end = nullptr;
  std::atomic<const std::uint64_t*> published{nullptr};  // end of the complete records
  std::atomic<std::uint64_t> generation{0};
  const char* driver = nullptr;     // the driver name last written as a kDriver record
  const char* last_data = nullptr;  // the name last interned, as the call gave it
  std::size_t last_len = 0;
  const std::string* last_name = nullptr;

  Chunk* chunk = nullptr;  // the chunk `cur` points into
  Chunk* head = nullptr;
  std::uint64_t tid = 0;
  bool orphaned = false;  // guarded by the registry mutex

  // Names, copied once per thread and recording: end records point at these.
  std::deque<std::string> names;
  std::unordered_map<std::string_view, const std::string*> name_index;

  ~Buffer() {
    while (head != nullptr) delete std::exchange(head, head->next);
  }

  void reset(std::uint64_t gen) noexcept;
  std::uint64_t* next_chunk() noexcept;

  // Room for `n` words, or nullptr (out of memory: the event is dropped).
  template <std::size_t n>
  std::uint64_t* reserve() noexcept {
    if (static_cast<std::size_t>(end - cur) < n) [[unlikely]]
      return next_chunk();
    return cur;
  }
  void commit(std::uint64_t* to) noexcept {
    cur = to;
    published.store(to, std::memory_order_release);
  }

  const std::string* intern(std::string_view s) {
    // The same text at the same address is the common case (the name of the
    // previous task); the text is compared too, as a name's storage may have
    // been reused for another.
    if (s.data() == last_data && s.size() == last_len &&
        same_text(s.data(), last_name->data(), s.size())) [[likely]]
      return last_name;
    return intern_slow(s);
  }
  // Out of line, so that the hooks' common path stays small.
  [[gnu::noinline]] const std::string* intern_slow(std::string_view s) {
    auto it = name_index.find(s);
    const std::string* stored;
    if (it != name_index.end()) {
      stored = it->second;
    } else {
      stored = &names.emplace_back(s);
      name_index.emplace(std::string_view(*stored), stored);
    }
    last_data = s.data();
    last_len = s.size();
    last_name = stored;
    return stored;
  }
};

struct StallEntry {
  std::string executor, task;
  std::uint64_t tid;
  Clock::time_point start, end;
};
struct ExternalEntry {
  std::string name, executor;
  int pid;
  Clock::time_point start, end;
  bool failed;
  std::vector<std::pair<Clock::time_point, Clock::time_point>> waits;
};

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<Buffer>> buffers;
  bool active = false;                   // guarded by mutex
  Calibration cal;                       // guarded by mutex (written at start)
  std::vector<StallEntry> stalls;        // guarded by mutex
  std::vector<ExternalEntry> externals;  // guarded by mutex
  Chunk* free = nullptr;                 // guarded by mutex
  std::size_t free_count = 0;            // guarded by mutex

  // Takes `c` for later use, or frees it if enough are kept. Mutex held.
  void give_locked(Chunk* c) noexcept {
    if (free_count >= kKeepFree) {
      delete c;
      return;
    }
    c->next = free;
    free = c;
    ++free_count;
  }
};

inline Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: threads may outlive main's statics
  return *r;
}

// Bumped by every Recorder; a buffer of an older generation starts over.
// Outside Registry so that the hot path reads it without a static guard.
inline std::atomic<std::uint64_t> g_generation{0};

inline std::uint64_t this_tid() { return static_cast<std::uint64_t>(::syscall(SYS_gettid)); }

}  // namespace concur::trace::detail
