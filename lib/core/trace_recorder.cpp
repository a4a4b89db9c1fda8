// SPDX-License-Identifier: BSL-1.0
// The trace recorder: cheap on the hot path, all the work at stop().
//
// Each thread appends small records of 8-byte words to its own chunked
// buffer: no lock, no cache line shared with another thread written, one
// time-stamp-counter read and five stores per event. Records name their task
// by its Context address only; stop() merges the per-thread streams in time
// order and rebuilds each task's life from begin/wait/end records (an address
// is reused only after its task has ended, so time order tells the tasks
// apart). The call's name is read at the task's end, while the call still
// exists, and interned per thread.
//
// What a no-op task pays while recording (concur-bench-trace, ~20 ns on a
// 2.4 GHz Zen 3): about half is the two counter reads, a sixth the call's
// name, the rest the two hook calls and the appends.
//
// Memory is kept for the next recording: a thread reuses its own chunks, and
// chunks of threads that have ended go to a free list. A freshly allocated
// page costs a fault and a 4 KiB clear on first write; after the first
// recording the hot path only writes to pages that are already mapped.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "concur/detail/context.hpp"
#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/trace.hpp"

namespace concur::trace {

namespace {

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

// Ticks per nanosecond over a window long enough to be precise; used when a
// recording was too short to calibrate itself.
double process_ns_per_tick() {
  static const double v = [] {
    const auto t0 = Clock::now();
    const std::uint64_t k0 = ticks();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::uint64_t k1 = ticks();
    const auto t1 = Clock::now();
    return k1 == k0 ? 1.0 : static_cast<double>((t1 - t0).count()) / static_cast<double>(k1 - k0);
  }();
  return v;
}

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

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: threads may outlive main's statics
  return *r;
}

// Bumped by every Recorder; a buffer of an older generation starts over.
// Outside Registry so that the hot path reads it without a static guard.
std::atomic<std::uint64_t> g_generation{0};

std::uint64_t this_tid() { return static_cast<std::uint64_t>(::syscall(SYS_gettid)); }

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

// --- rebuilding tasks from records -------------------------------------------

// Walks one thread's records in order, skipping (and applying) driver records.
class Cursor {
 public:
  // `only`: the executor whose tasks are kept (empty: all).
  Cursor(const Buffer& b, std::string_view only)
      : tid_(b.tid), published_(b.published.load(std::memory_order_acquire)), only_(only) {
    set_driver("unknown");
    if (b.head == nullptr || published_ == nullptr) return;
    enter(b.head);
    settle();
  }
  bool done() const noexcept { return p_ == nullptr; }
  const std::uint64_t* record() const noexcept { return p_; }
  std::uint64_t ticks() const noexcept { return p_[0]; }
  std::uint64_t tid() const noexcept { return tid_; }
  std::string_view driver() const noexcept { return driver_; }
  /// Whether tasks begun here now are kept, and run as fibers.
  bool keep() const noexcept { return keep_; }
  bool fibers() const noexcept { return fibers_; }
  void advance() noexcept {
    p_ += record_words(p_[1] & kKindMask);
    settle();
  }

 private:
  void enter(const Chunk* c) noexcept {
    chunk_ = c;
    p_ = c->words;
    limit_ = c->holds(published_) ? published_ : c->words + c->used;
  }
  void settle() noexcept {
    for (;;) {
      if (p_ == limit_) {
        if (limit_ == published_ || chunk_->next == nullptr) {
          p_ = nullptr;
          return;
        }
        enter(chunk_->next);
        continue;
      }
      if ((p_[1] & kKindMask) != kDriver) return;
      set_driver(std::string_view(reinterpret_cast<const char*>(static_cast<std::uintptr_t>(p_[0])),
                                  p_[1] >> kKindBits));
      p_ += record_words(kDriver);
    }
  }
  void set_driver(std::string_view d) noexcept {
    driver_ = d;
    keep_ = only_.empty() || d == only_;
    fibers_ = d == "fibers";
  }

  std::uint64_t tid_;
  const std::uint64_t* published_;
  const Chunk* chunk_ = nullptr;
  const std::uint64_t* p_ = nullptr;
  const std::uint64_t* limit_ = nullptr;
  std::string_view only_;
  std::string_view driver_;
  bool keep_ = true;
  bool fibers_ = false;
};

// The tasks begun and not yet ended while stop() replays the records, by
// Context address: open addressing with linear probing, so that replaying a
// task allocates nothing here (a node-based map allocated twice per task).
struct Open {
  std::size_t index;  // into the rebuilt tasks; kSkipped: another executor's task
  bool waiting;
};
constexpr std::size_t kSkipped = ~std::size_t{0};

class OpenTasks {
 public:
  OpenTasks() : slots_(256) {}

  Open* find(const void* key) noexcept {
    if (key == nullptr) return nullptr;  // null marks the empty slots
    for (std::size_t i = home(key);; i = next(i)) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == nullptr) return nullptr;
    }
  }
  /// `key` (not null) must not be present.
  void insert(const void* key, Open value) {
    if (2 * (count_ + 1) > slots_.size()) grow();
    std::size_t i = home(key);
    while (slots_[i].key != nullptr) i = next(i);
    slots_[i] = {key, value};
    ++count_;
  }
  /// Removes the entry `found` (from find()); shifts later entries of its
  /// probe run back, so no tombstones are needed.
  void erase(Open* found) noexcept {
    std::size_t hole = static_cast<std::size_t>(reinterpret_cast<const char*>(found) -
                                                reinterpret_cast<const char*>(&slots_[0].value)) /
                       sizeof(Slot);
    for (std::size_t i = next(hole); slots_[i].key != nullptr; i = next(i)) {
      const std::size_t want = home(slots_[i].key);
      // The entry at i may fill the hole unless its home lies in (hole, i].
      const bool stays = hole < i ? (hole < want && want <= i) : (hole < want || want <= i);
      if (stays) continue;
      slots_[hole] = slots_[i];
      hole = i;
    }
    slots_[hole].key = nullptr;
    --count_;
  }
  template <class F>
  void for_each(F f) const {
    for (const Slot& s : slots_)
      if (s.key != nullptr) f(s.value);
  }

 private:
  struct Slot {
    const void* key = nullptr;
    Open value{};
  };
  std::size_t home(const void* key) const noexcept {
    std::uint64_t x = word(key);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return static_cast<std::size_t>(x) & (slots_.size() - 1);
  }
  std::size_t next(std::size_t i) const noexcept { return (i + 1) & (slots_.size() - 1); }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    count_ = 0;
    for (const Slot& s : old)
      if (s.key != nullptr) insert(s.key, s.value);
  }

  std::vector<Slot> slots_;  // a power of two in size, at most half full
  std::size_t count_ = 0;
};

Trace rebuild(const Registry& r, std::uint64_t gen, const Calibration& cal,
              Clock::time_point stop_time, const std::string& only_executor) {
  Trace t;
  t.origin = cal.time0;
  t.duration = stop_time - cal.time0;
  t.pid = static_cast<int>(::getpid());

  std::vector<Cursor> cursors;
  std::size_t words = 0;
  for (const auto& b : r.buffers) {
    if (b->generation.load(std::memory_order_acquire) != gen) continue;
    Cursor c(*b, only_executor);
    if (c.done()) continue;
    for (const Chunk* k = b->head; k != nullptr; k = k->next) {
      if (k->holds(b->published.load(std::memory_order_relaxed))) {
        words += static_cast<std::size_t>(b->published.load(std::memory_order_relaxed) - k->words);
        break;
      }
      words += k->used;
    }
    cursors.push_back(c);
  }

  OpenTasks open;
  std::vector<TaskRecord> tasks;
  std::vector<std::size_t> elsewhere;  // stand-ins of tasks that ran out of process
  tasks.reserve(words / 6 + 1);        // a task takes at least a begin and an end: 6 words
  auto close = [&](TaskRecord& task, Nanos at) {
    if (!task.segments.empty()) task.segments.back().end = at;
    task.end = at;
    // Zero-length segments (a wait that ended at once) say nothing.
    std::erase_if(task.segments, [](const Segment& g) { return g.end <= g.start; });
  };
  auto apply = [&](const Cursor& c) {
    const std::uint64_t* w = c.record();
    const Nanos at = cal.to_offset(w[0]);
    const std::uint64_t kind = w[1] & kKindMask;
    const void* key = pointer<const void>(w[1]);
    Open* it = open.find(key);
    switch (kind) {
      case kBegin: {
        if (it != nullptr) {  // its end was lost (out of memory)
          if (it->index != kSkipped) close(tasks[it->index], at);
          open.erase(it);
        }
        if (!c.keep()) {
          open.insert(key, Open{kSkipped, false});
          break;
        }
        TaskRecord task;
        task.id = tasks.size() + 1;
        if (const Open* p = open.find(pointer<const void>(w[2]));
            p != nullptr && p->index != kSkipped)
          task.parent = tasks[p->index].id;
        task.executor = c.driver();
        task.pid = t.pid;
        task.tid = c.tid();
        if (c.fibers()) task.fiber = task.id;  // one fiber per task
        task.start = at;
        task.segments.push_back({Segment::running, at, at, c.tid()});
        open.insert(key, Open{tasks.size(), false});
        tasks.push_back(std::move(task));
        break;
      }
      case kWaitBegin:
        if (it != nullptr && it->index != kSkipped && !it->waiting) {
          TaskRecord& task = tasks[it->index];
          task.segments.back().end = at;
          task.segments.push_back({Segment::waiting, at, at, c.tid()});
          it->waiting = true;
        }
        break;
      case kWaitEnd:
        if (it != nullptr && it->index != kSkipped && it->waiting) {
          TaskRecord& task = tasks[it->index];
          task.segments.back().end = at;
          task.segments.push_back({Segment::running, at, at, c.tid()});
          it->waiting = false;
        }
        break;
      case kElsewhere:
        if (it != nullptr && it->index != kSkipped) elsewhere.push_back(it->index);
        break;
      case kEnd:
      case kEndFailed:
        if (it != nullptr) {
          if (it->index != kSkipped) {
            TaskRecord& task = tasks[it->index];
            close(task, at);
            task.failed = kind == kEndFailed;
            const auto* name = pointer<const std::string>(w[2]);
            task.name = name != nullptr ? std::string_view(*name) : std::string_view("task");
          }
          open.erase(it);
        }
        break;
      default:
        break;
    }
  };

  // Each thread's records are in time order already: merge them. Equal stamps
  // keep their thread's program order, and between threads the buffer order.
  if (cursors.size() == 1) {
    for (Cursor& c = cursors.front(); !c.done(); c.advance()) apply(c);
  } else if (!cursors.empty()) {
    const auto later = [&](std::size_t a, std::size_t b) {
      const std::uint64_t ta = cursors[a].ticks(), tb = cursors[b].ticks();
      return ta != tb ? ta > tb : a > b;
    };
    std::vector<std::size_t> heap(cursors.size());
    for (std::size_t i = 0; i < heap.size(); ++i) heap[i] = i;
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Cursor& c = cursors[heap.back()];
      apply(c);
      c.advance();
      if (c.done()) {
        heap.pop_back();
      } else {
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }

  // Tasks still running when recording stopped end there.
  open.for_each([&](const Open& o) {
    if (o.index == kSkipped) return;
    TaskRecord& task = tasks[o.index];
    close(task, t.duration);
    task.name = "task (unfinished)";
  });

  // A routed call's stand-in is the parent's bookkeeping, not a task: its
  // worker reports the task itself (below). Ids stay 1..n.
  if (!elsewhere.empty()) {
    std::vector<std::uint64_t> new_id(tasks.size() + 1, 0);
    std::vector<bool> drop(tasks.size(), false);
    for (std::size_t i : elsewhere) drop[i] = true;
    std::vector<TaskRecord> kept;
    kept.reserve(tasks.size() - elsewhere.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (drop[i]) continue;
      new_id[tasks[i].id] = kept.size() + 1;
      kept.push_back(std::move(tasks[i]));
    }
    for (TaskRecord& task : kept) {
      task.id = new_id[task.id];
      task.parent = task.parent < new_id.size() ? new_id[task.parent] : 0;
    }
    tasks = std::move(kept);
  }

  for (const ExternalEntry& x : r.externals) {
    if (!only_executor.empty() && x.executor != only_executor) continue;
    TaskRecord task;
    task.id = tasks.size() + 1;
    task.name = x.name;
    task.executor = x.executor;
    task.pid = x.pid;
    task.tid = static_cast<std::uint64_t>(x.pid);
    task.start = x.start - cal.time0;
    task.end = x.end - cal.time0;
    task.failed = x.failed;
    Nanos cursor = task.start;
    for (const auto& [ws, we] : x.waits) {
      const Nanos a = std::clamp<Nanos>(ws - cal.time0, cursor, task.end);
      const Nanos b = std::clamp<Nanos>(we - cal.time0, a, task.end);
      if (a > cursor) task.segments.push_back({Segment::running, cursor, a, task.tid});
      if (b > a) task.segments.push_back({Segment::waiting, a, b, task.tid});
      cursor = b;
    }
    if (task.end > cursor) task.segments.push_back({Segment::running, cursor, task.end, task.tid});
    tasks.push_back(std::move(task));
  }

  const auto by_start = [](const TaskRecord& a, const TaskRecord& b) { return a.start < b.start; };
  // Tasks of this process are already in start order; only external ones may not be.
  if (!r.externals.empty() && !std::is_sorted(tasks.begin(), tasks.end(), by_start))
    std::stable_sort(tasks.begin(), tasks.end(), by_start);
  t.tasks = std::move(tasks);

  for (const StallEntry& s : r.stalls) {
    if (!only_executor.empty() && s.executor != only_executor) continue;
    t.stalls.push_back({s.executor, s.task, t.pid, s.tid, s.start - cal.time0, s.end - cal.time0});
  }
  return t;
}

}  // namespace

// --- hooks -------------------------------------------------------------------

namespace detail {

namespace {
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

}  // namespace detail

// --- public API --------------------------------------------------------------

Nanos TaskRecord::waited() const {
  Nanos w{0};
  for (const Segment& s : segments)
    if (s.kind == Segment::waiting) w += s.end - s.start;
  return w;
}

std::vector<std::pair<int, std::uint64_t>> Trace::lanes() const {
  std::vector<std::pair<int, std::uint64_t>> out;
  for (const TaskRecord& task : tasks) {
    const std::pair<int, std::uint64_t> lane{task.pid, task.tid};
    if (std::find(out.begin(), out.end(), lane) == out.end()) out.push_back(lane);
  }
  return out;
}

Nanos Trace::span() const {
  if (tasks.empty()) return Nanos(0);
  Nanos first = tasks.front().start, last = tasks.front().end;
  for (const TaskRecord& task : tasks) {
    first = std::min(first, task.start);
    last = std::max(last, task.end);
  }
  return last - first;
}

Recorder::Recorder() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (r.active) throw UsageError("concur::trace: a Recorder is already recording");
  // Buffers of threads that have ended since the last recording go now; their
  // chunks serve the threads of this one.
  std::erase_if(r.buffers, [&](std::unique_ptr<Buffer>& b) {
    if (!b->orphaned) return false;
    while (b->head != nullptr) r.give_locked(std::exchange(b->head, b->head->next));
    return true;
  });
  // Map and touch a few chunks ahead, so a thread's first events do not pay
  // for page faults. Once per process in practice: chunks are reused.
  while (r.free_count < kWarmFree) {
    auto* c = new Chunk;
    for (std::size_t i = 0; i < Chunk::kWords; i += 4096 / sizeof(std::uint64_t)) c->words[i] = 0;
    r.give_locked(c);
  }
  r.stalls.clear();
  r.externals.clear();
  g_generation.fetch_add(1, std::memory_order_acq_rel);
  r.cal.time0 = Clock::now();
  r.cal.tick0 = ticks();
  r.active = true;
  active_ = true;
  detail::g_enabled.store(true, std::memory_order_release);
}

Recorder::Recorder(const Executor& ex) : Recorder() { executor_ = std::string(ex.name()); }

Recorder::~Recorder() {
  if (active_) (void)stop();
}

Trace Recorder::stop() {
  if (!active_) return Trace{};
  active_ = false;
  Registry& r = registry();
  detail::g_enabled.store(false, std::memory_order_release);
  const std::uint64_t tick1 = ticks();
  const auto time1 = Clock::now();
  Calibration cal;
  {
    std::lock_guard lock(r.mutex);
    r.active = false;
    cal = r.cal;
  }
  const auto window = time1 - cal.time0;
  if (window >= std::chrono::milliseconds(50) && tick1 > cal.tick0) {
    cal.ns_per_tick = static_cast<double>(window.count()) / static_cast<double>(tick1 - cal.tick0);
  } else {
    cal.ns_per_tick = process_ns_per_tick();  // too short to calibrate itself
  }
  std::lock_guard lock(r.mutex);
  return rebuild(r, g_generation.load(std::memory_order_acquire), cal, time1, executor_);
}

bool recording() noexcept { return detail::enabled(); }

void record_task(std::string_view name, std::string_view executor, int lane_pid,
                 Clock::time_point start, Clock::time_point end, bool failed,
                 std::span<const std::pair<Clock::time_point, Clock::time_point>> waits) {
  if (!detail::enabled()) return;
  ExternalEntry x{std::string(name),
                  std::string(executor),
                  lane_pid,
                  start,
                  std::max(start, end),
                  failed,
                  {waits.begin(), waits.end()}};
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (r.active) r.externals.push_back(std::move(x));
}

}  // namespace concur::trace
