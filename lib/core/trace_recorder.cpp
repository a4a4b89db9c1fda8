// The trace recorder: cheap on the hot path, all the work at stop().
//
// Each thread appends fixed-size POD events to its own chunked buffer: no
// lock, no shared cache line, one time-stamp-counter read per event. Events
// name their task by its Context address only; stop() merges the buffers in
// time order and rebuilds each task's life from begin/wait/end events (an
// address is reused only after its task has ended, so time order tells the
// tasks apart). The call's name is read at the task's end, while the call
// still exists, and interned per thread.
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

// --- per-thread buffers ------------------------------------------------------

enum Kind : std::uint8_t { kBegin, kEnd, kWaitBegin, kWaitEnd };

struct Event {
  std::uint64_t ticks;
  const void* key;   // the task's Context
  const void* aux;   // begin: the parent batch's parent context; end: interned name
  const char* text;  // begin: executor name (a literal of the driver)
  std::uint32_t text_len;
  Kind kind;
  bool failed;
};

constexpr std::size_t kChunkEvents = 4096;
struct Chunk {
  Event events[kChunkEvents];
  Chunk* next = nullptr;
};

struct Buffer {
  std::uint64_t tid = 0;
  std::atomic<std::uint64_t> generation{0};
  Chunk* head = nullptr;
  Chunk* tail = nullptr;
  std::size_t in_tail = 0;
  std::atomic<std::size_t> total{0};  // events published to readers
  bool orphaned = false;              // guarded by the registry mutex
  // Names, copied once per thread: events point at these strings.
  std::deque<std::string> names;
  std::unordered_map<std::string_view, const std::string*> name_index;
  const char* last_data = nullptr;
  std::size_t last_len = 0;
  const std::string* last_name = nullptr;

  ~Buffer() {
    while (head != nullptr) delete std::exchange(head, head->next);
  }

  void reset(std::uint64_t gen) {
    tail = head;
    in_tail = 0;
    total.store(0, std::memory_order_relaxed);
    names.clear();
    name_index.clear();
    last_data = nullptr;
    last_len = 0;
    last_name = nullptr;
    generation.store(gen, std::memory_order_release);
  }

  Event& next_slot() {
    if (tail == nullptr) {
      head = tail = new Chunk;
      in_tail = 0;
    } else if (in_tail == kChunkEvents) {
      if (tail->next == nullptr) tail->next = new Chunk;
      tail = tail->next;
      in_tail = 0;
    }
    return tail->events[in_tail++];
  }
  void publish() {
    total.store(total.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  const std::string* intern(std::string_view s) {
    if (s.data() == last_data && s.size() == last_len &&
        (s.empty() || std::memcmp(s.data(), last_name->data(), s.size()) == 0))
      return last_name;
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
  std::atomic<std::uint64_t> generation{0};
  bool active = false;                   // guarded by mutex
  Calibration cal;                       // guarded by mutex (written at start)
  std::vector<StallEntry> stalls;        // guarded by mutex
  std::vector<ExternalEntry> externals;  // guarded by mutex
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: threads may outlive main's statics
  return *r;
}

std::uint64_t this_tid() { return static_cast<std::uint64_t>(::syscall(SYS_gettid)); }

// The thread's buffer; marks it orphaned when the thread ends, so the next
// recording can free it while this one can still read it.
struct ThreadSlot {
  Buffer* buffer = nullptr;
  std::uint64_t generation = 0;
  ~ThreadSlot() {
    if (buffer == nullptr) return;
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    buffer->orphaned = true;
  }
};
thread_local ThreadSlot tl_slot;

Buffer& my_buffer() {
  Registry& r = registry();
  const std::uint64_t gen = r.generation.load(std::memory_order_acquire);
  ThreadSlot& slot = tl_slot;
  if (slot.generation != gen || slot.buffer == nullptr) {
    if (slot.buffer == nullptr) {
      auto b = std::make_unique<Buffer>();
      b->tid = this_tid();
      slot.buffer = b.get();
      std::lock_guard lock(r.mutex);
      r.buffers.push_back(std::move(b));
    }
    slot.buffer->reset(gen);
    slot.generation = gen;
  }
  return *slot.buffer;
}

// --- rebuilding tasks from events ------------------------------------------

struct Stamped {
  const Event* e;
  std::uint64_t tid;
};

Trace rebuild(const Registry& r, std::uint64_t gen, const Calibration& cal,
              Clock::time_point stop_time, const std::string& only_executor) {
  Trace t;
  t.origin = cal.time0;
  t.duration = stop_time - cal.time0;
  t.pid = static_cast<int>(::getpid());

  std::vector<Stamped> all;
  for (const auto& b : r.buffers) {
    if (b->generation.load(std::memory_order_acquire) != gen) continue;
    std::size_t n = b->total.load(std::memory_order_acquire);
    for (const Chunk* c = b->head; c != nullptr && n > 0; c = c->next) {
      const std::size_t k = std::min(n, kChunkEvents);
      for (std::size_t i = 0; i < k; ++i) all.push_back({&c->events[i], b->tid});
      n -= k;
    }
  }
  // Each buffer is already in time order; a stable sort keeps equal stamps of
  // one thread in program order.
  std::stable_sort(all.begin(), all.end(),
                   [](const Stamped& a, const Stamped& b) { return a.e->ticks < b.e->ticks; });

  struct Open {
    std::size_t index;
    bool waiting;
  };
  std::unordered_map<const void*, Open> open;
  std::vector<TaskRecord> tasks;
  auto close = [&](TaskRecord& task, Nanos at) {
    if (!task.segments.empty()) task.segments.back().end = at;
    task.end = at;
  };
  for (const Stamped& s : all) {
    const Event& e = *s.e;
    const Nanos at = cal.to_offset(e.ticks);
    auto it = open.find(e.key);
    switch (e.kind) {
      case kBegin: {
        if (it != open.end()) {  // its end was lost: never seen in practice
          close(tasks[it->second.index], at);
          open.erase(it);
        }
        TaskRecord task;
        task.id = tasks.size() + 1;
        if (auto p = open.find(e.aux); p != open.end()) task.parent = tasks[p->second.index].id;
        task.executor.assign(e.text, e.text_len);
        task.name = "task";
        task.pid = t.pid;
        task.tid = s.tid;
        if (task.executor == "fibers") task.fiber = task.id;  // one fiber per task
        task.start = at;
        task.segments.push_back({Segment::running, at, at, s.tid});
        open.emplace(e.key, Open{tasks.size(), false});
        tasks.push_back(std::move(task));
        break;
      }
      case kWaitBegin:
        if (it != open.end() && !it->second.waiting) {
          TaskRecord& task = tasks[it->second.index];
          task.segments.back().end = at;
          task.segments.push_back({Segment::waiting, at, at, s.tid});
          it->second.waiting = true;
        }
        break;
      case kWaitEnd:
        if (it != open.end() && it->second.waiting) {
          TaskRecord& task = tasks[it->second.index];
          task.segments.back().end = at;
          task.segments.push_back({Segment::running, at, at, s.tid});
          it->second.waiting = false;
        }
        break;
      case kEnd:
        if (it != open.end()) {
          TaskRecord& task = tasks[it->second.index];
          close(task, at);
          task.failed = e.failed;
          if (e.aux != nullptr) task.name = *static_cast<const std::string*>(e.aux);
          open.erase(it);
        }
        break;
    }
  }
  // Tasks still running when recording stopped end there.
  for (auto& [key, o] : open) {
    TaskRecord& task = tasks[o.index];
    close(task, t.duration);
    task.name += " (unfinished)";
  }
  // Zero-length segments (a wait that ended at once) say nothing.
  for (TaskRecord& task : tasks) {
    std::erase_if(task.segments, [](const Segment& g) { return g.end <= g.start; });
  }

  for (const ExternalEntry& x : r.externals) {
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

  if (!only_executor.empty()) {
    std::erase_if(tasks, [&](const TaskRecord& x) { return x.executor != only_executor; });
  }
  const auto by_start = [](const TaskRecord& a, const TaskRecord& b) { return a.start < b.start; };
  // Tasks of this process are already in start order; only external ones may not be.
  if (!std::is_sorted(tasks.begin(), tasks.end(), by_start))
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

void task_begin() noexcept {
  concur::detail::Context* ctx = concur::detail::current_context();
  if (ctx == nullptr) return;
  Buffer& b = my_buffer();
  Event& e = b.next_slot();
  e.ticks = ticks();
  e.key = ctx;
  // The batch's own parent is the task that awaited the gather.
  const concur::detail::Context* batch = ctx->parent();
  e.aux = batch != nullptr ? batch->parent() : nullptr;
  std::string_view ex = "unknown";
  if (concur::detail::Driver* d = concur::detail::current_driver()) ex = d->name();
  e.text = ex.data();
  e.text_len = static_cast<std::uint32_t>(ex.size());
  e.kind = kBegin;
  e.failed = false;
  b.publish();
}

void task_end(concur::detail::Context& ctx, bool failed) noexcept {
  const std::uint64_t now = ticks();
  Buffer& b = my_buffer();
  const std::string* name = nullptr;
  try {
    name = b.intern(ctx.name());
  } catch (...) {
    // Out of memory for a name: keep the event, lose the name.
  }
  Event& e = b.next_slot();
  e.ticks = now;
  e.key = &ctx;
  e.aux = name;
  e.text = nullptr;
  e.text_len = 0;
  e.kind = kEnd;
  e.failed = failed;
  b.publish();
}

namespace {
void mark(const concur::detail::Context* ctx, Kind kind) noexcept {
  if (ctx == nullptr) return;
  Buffer& b = my_buffer();
  Event& e = b.next_slot();
  e.ticks = ticks();
  e.key = ctx;
  e.aux = nullptr;
  e.text = nullptr;
  e.text_len = 0;
  e.kind = kind;
  e.failed = false;
  b.publish();
}
}  // namespace

void wait_begin(const concur::detail::Context* ctx) noexcept { mark(ctx, kWaitBegin); }
void wait_end(const concur::detail::Context* ctx) noexcept { mark(ctx, kWaitEnd); }

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
  // Buffers of threads that have ended since the last recording go now.
  std::erase_if(r.buffers, [](const std::unique_ptr<Buffer>& b) { return b->orphaned; });
  r.stalls.clear();
  r.externals.clear();
  r.generation.fetch_add(1, std::memory_order_acq_rel);
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
  return rebuild(r, r.generation.load(std::memory_order_acquire), cal, time1, executor_);
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
