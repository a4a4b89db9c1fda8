// SPDX-License-Identifier: BSL-1.0
// Replaying a recording at stop(): the per-thread record streams are merged
// in time order and each task's life is rebuilt from its begin/wait/end
// records (an address is reused only after its task has ended, so time order
// tells the tasks apart); then the tasks other processes reported and the
// stalls are added.
#include "core/trace_replay.hpp"

#include <unistd.h>

#include <algorithm>
#include <string_view>
#include <vector>

namespace concur::trace::detail {

namespace {

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

}  // namespace

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

}  // namespace concur::trace::detail
