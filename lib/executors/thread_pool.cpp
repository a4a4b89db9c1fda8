// SPDX-License-Identifier: BSL-1.0
// thread_pool: Python's ThreadPoolExecutor without a GIL. Every task runs on a
// oneTBB worker thread of one task_arena and every wait blocks that thread
// (BlockingDriver), so `workers` threads give `workers` tasks in flight and
// real CPU parallelism up to the core count.
//
// Nested gathers are the trap (concurrencpp #61): a task that blocks its
// thread while its children sit queued behind it deadlocks once nesting depth
// x fan-out exceeds the workers. Here a wait for children (a gather joining,
// or waiting for a free `limit` slot) never just blocks: the waiting thread
// first runs its own children that no other thread has started yet, one by
// one, until the wait ends or none is left. It blocks only for children
// already running elsewhere, so progress follows by induction on the depth.
// It never runs anything else while it waits: a thread that took a sibling's
// 30 s sleep while its gather's child failed would report that failure (and
// cancel the sibling) only 30 s later.
//
// Children are not oneTBB tasks each: one oneTBB task per child cost more
// than the whole rest of a short gather child. A task's children go on its
// own work-stealing deque (ChildQueue); the deques of the tasks nested on one
// thread form that thread's Lane. A oneTBB task (a "puller") is spawned for a
// lane only when none is pending; an idle thread that takes it steals the
// oldest child of the lane's outermost deque (the largest piece of work) and
// spawns the next puller first while more wait, so one more idle thread can
// join in. Idle threads thus spread over the work as fast as they steal,
// while a thread that nobody steals from spawns one oneTBB task in all.
//
// Why not oneTBB resumable tasks (tbb::task::suspend)? A suspended task keeps
// its stack, so a skynet of 1M leaves would hold ~111k stacks at once, and a
// sleep must block its thread anyway to keep the thread-pool model honest.
#include "executors/thread_pool.hpp"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "executors/blocking_driver.hpp"
#include "executors/child_queue.hpp"

// ThreadSanitizer cannot see inside libtbb, which is not instrumented: the
// hand-off of a lane to the puller that a oneTBB thread runs is told to it
// explicitly. Nothing in other builds.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define CONCUR_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#define CONCUR_TSAN_RELEASE(addr) __tsan_release(addr)
#else
#define CONCUR_TSAN_ACQUIRE(addr) (void)(addr)
#define CONCUR_TSAN_RELEASE(addr) (void)(addr)
#endif

namespace concur::executors {

namespace {

// One OS thread's share of one pool's queued work: the child queues of the
// pool's tasks nested on it (a task waiting for children runs them inline,
// so tasks nest strictly), outermost first, and whether a puller for it is
// pending. Per pool, as a thread_pool task may run another pool's run() on
// its thread: each pool's threads take only their own pool's children, and
// one pool's pending puller must not hold back the other's.
struct Lane {
  detail::NodeLock lock;       // guards the links below and thieves' pops
  const void* pool = nullptr;  // whose lane it is now (an idle lane may change pools)
  ChildQueue* outermost = nullptr;
  ChildQueue* innermost = nullptr;
  // A puller for this lane was spawned and has not started: another one
  // would only find the same children. At most one is pending per lane, so
  // pullers that find nothing left stay few, however many batches ran.
  std::atomic<bool> puller_pending{false};

  bool idle() const noexcept {
    return outermost == nullptr && !puller_pending.load(std::memory_order_acquire);
  }
};

// This thread's lanes, one per pool it has spawned children for: almost
// always one. The last one used is cached in plain thread-locals, as a
// thread_local with a destructor costs a guard on every use.
constinit thread_local const void* tl_lane_pool = nullptr;
constinit thread_local Lane* tl_lane = nullptr;
thread_local std::vector<std::pair<const void*, std::unique_ptr<Lane>>> tl_all_lanes;

Lane& find_lane(const void* pool) {
  Lane* found = nullptr;
  for (auto& [p, lane] : tl_all_lanes) {
    if (p == pool) found = lane.get();
  }
  // An idle lane (nothing queued, no puller pending: every run waits for
  // its pullers) is free to serve another pool, e.g. a new pool made at a
  // dead one's address.
  for (auto it = tl_all_lanes.begin(); found == nullptr && it != tl_all_lanes.end(); ++it) {
    if (it->second->idle()) {
      it->first = pool;
      found = it->second.get();
    }
  }
  if (found == nullptr) {
    found = tl_all_lanes.emplace_back(pool, std::make_unique<Lane>()).second.get();
  }
  {
    // A puller of the lane's previous pool checks this before taking anything.
    std::lock_guard guard(found->lock);
    found->pool = pool;
  }
  tl_lane_pool = pool;
  tl_lane = found;
  return *found;
}

inline Lane& lane_of(const void* pool) { return pool == tl_lane_pool ? *tl_lane : find_lane(pool); }

// A task's child queue, made when it first spawns: most tasks spawn nothing.
class LazyChildQueue {
 public:
  LazyChildQueue() noexcept {}
  LazyChildQueue(const LazyChildQueue&) = delete;
  LazyChildQueue& operator=(const LazyChildQueue&) = delete;
  ~LazyChildQueue() {
    if (made_) queue_.~ChildQueue();
  }
  bool made() const noexcept { return made_; }
  ChildQueue& get() noexcept {
    if (!made_) {
      ::new (static_cast<void*>(&queue_)) ChildQueue;
      made_ = true;
    }
    return queue_;
  }

 private:
  union {
    ChildQueue queue_;
  };
  bool made_ = false;
};

// The child queue of the task running on this thread.
thread_local LazyChildQueue* tl_children = nullptr;

class ThreadPool final : public Executor, private BlockingDriver {
 public:
  ThreadPool(Config c, int workers) : Executor(std::move(c)), workers_(workers) {
    // oneTBB never runs more threads than cores unless told to; blocking I/O
    // needs them. The active limit is the smallest of all live controls, so
    // only raise it: never cap other arenas in the process.
    if (workers_ > tbb::info::default_concurrency()) {
      more_threads_.emplace(tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(workers_));
    }
    // One slot is kept for the caller, which runs the root task as a lane.
    arena_.initialize(workers_, 1);
  }
  ~ThreadPool() override { check_destroy_allowed(); }

  std::string_view name() const override { return "thread_pool"; }
  int lanes() const override { return workers_; }
  // detects_stalls() stays false: a blocking call holds only its own thread,
  // which is exactly what a thread pool promises.

 private:
  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    // The pullers of this run: waited for before returning, as a puller
    // still queued points at a thread's Lane and at this executor.
    tbb::task_group pullers;
    arena_.execute([&] {
      tbb::task_group* outer = std::exchange(tl_pullers, &pullers);
      run_task(root, &ctx);
      // Every child has ended; a puller still queued (at most one per lane)
      // finds nothing to do. (One run at a time: see Executor.)
      pullers.wait();
      tl_pullers = outer;
    });
    if (!root.done()) throw std::logic_error("concur: thread_pool root task did not finish");
  }

  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override {
    ChildQueue& q = tl_children->get();
    Lane& lane = lane_of(this);
    if (q.lane == nullptr) link(lane, q);
    q.push({h, ctx});
    offer(lane);
  }

  bool park(detail::Waiter& w) override {
    if (w.for_children) {
      // Run this task's own children that nobody has started, until the
      // wait ends: waiting without doing so could deadlock (see the top).
      if (tl_children->made()) {
        ChildQueue& q = tl_children->get();
        QueuedChild c;
        while (w.state.load(std::memory_order_acquire) == detail::Waiter::parked && q.take(c)) {
          run_task(c.handle, c.ctx);
        }
      }
      // Every child ran here: no need to go near the parker's mutex.
      if (w.state.load(std::memory_order_acquire) != detail::Waiter::parked) return false;
    }
    // What is left runs on other threads: block until the waker says so.
    return BlockingDriver::park(w);
  }

  // Spawns a puller for `lane` unless one is pending. A puller that starts
  // just as a child is pushed may leave that child behind, and if oneTBB
  // cannot spawn a puller none runs: either way the child stays queued for
  // its owner, whose wait for children runs it.
  void offer(Lane& lane) noexcept {
    if (lane.puller_pending.load(std::memory_order_acquire) ||
        lane.puller_pending.exchange(true, std::memory_order_acq_rel)) {
      return;
    }
    tbb::task_group* pullers = tl_pullers;
    CONCUR_TSAN_RELEASE(&lane);
    try {
      pullers->run([this, &lane, pullers] {
        CONCUR_TSAN_ACQUIRE(&lane);
        pull(lane, pullers);
      });
    } catch (...) {
      lane.puller_pending.store(false, std::memory_order_release);
    }
  }

  // A oneTBB task an idle thread took: runs children queued on `lane`, the
  // outermost (largest) first, until none is left, letting the next idle
  // thread in before each.
  void pull(Lane& lane, tbb::task_group* pullers) noexcept {
    tbb::task_group* outer = std::exchange(tl_pullers, pullers);
    lane.puller_pending.store(false, std::memory_order_seq_cst);
    for (;;) {
      QueuedChild c;
      bool more = false;
      {
        std::lock_guard guard(lane.lock);
        if (lane.pool != this) break;  // the lane went idle and now serves another pool
        ChildQueue* q = lane.outermost;
        while (q != nullptr && !q->steal(c)) q = q->inner;
        if (q == nullptr) break;
        for (; q != nullptr && !more; q = q->inner) more = !q->empty();
      }
      if (more) offer(lane);
      run_task(c.handle, c.ctx);
    }
    tl_pullers = outer;
  }

  // Puts `q` on its thread's lane, innermost, where pullers can see it.
  static void link(Lane& lane, ChildQueue& q) noexcept {
    std::lock_guard guard(lane.lock);
    q.outer = lane.innermost;
    q.inner = nullptr;
    q.lane = &lane;
    if (lane.innermost != nullptr) {
      lane.innermost->inner = &q;
    } else {
      lane.outermost = &q;
    }
    lane.innermost = &q;
  }

  // Takes `q` (the innermost, as tasks nest) off its lane.
  static void unlink(Lane& lane, ChildQueue& q) noexcept {
    std::lock_guard guard(lane.lock);
    lane.innermost = q.outer;
    if (lane.innermost != nullptr) {
      lane.innermost->inner = nullptr;
    } else {
      lane.outermost = nullptr;
    }
  }

  // Runs one task to its end on this thread: with a blocking driver a
  // coroutine never leaves the thread that resumed it.
  void run_task(std::coroutine_handle<> h, detail::Context* ctx) noexcept {
    LazyChildQueue children;
    LazyChildQueue* outer = std::exchange(tl_children, &children);
    {
      detail::ScopedCurrent scope(this, ctx);
      h.resume();
    }
    tl_children = outer;
    // Every gather of the task has joined, so the queue is empty; a thief
    // looks at it only under the lane's lock.
    if (children.made() && children.get().lane != nullptr)
      unlink(*static_cast<Lane*>(children.get().lane), children.get());
  }

  // The pullers of the run this thread works for.
  static thread_local tbb::task_group* tl_pullers;

  const int workers_;
  std::optional<tbb::global_control> more_threads_;
  tbb::task_arena arena_;
};

thread_local tbb::task_group* ThreadPool::tl_pullers = nullptr;

}  // namespace

int default_thread_pool_workers() { return std::min(32, tbb::info::default_concurrency() + 4); }

std::unique_ptr<Executor> make_thread_pool(const Config& c) {
  return std::make_unique<ThreadPool>(c, c.workers > 0 ? c.workers : default_thread_pool_workers());
}

}  // namespace concur::executors
