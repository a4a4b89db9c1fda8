// thread_pool: Python's ThreadPoolExecutor without a GIL. Every task runs on a
// oneTBB worker thread of one task_arena and every wait blocks that thread
// (BlockingDriver), so `workers` threads give `workers` tasks in flight and
// real CPU parallelism up to the core count.
//
// Nested gathers are the trap (concurrencpp #61): a task that blocks its
// thread while its children sit queued behind it deadlocks once nesting depth
// x fan-out exceeds the workers. Here a thread never blocks on a child nobody
// has started. Each spawned child is a Unit that two parties race to claim:
// the oneTBB task spawned for it (whichever worker steals it) and the parent's
// own thread, which runs its still-unclaimed children inline when it parks,
// before it blocks. So a blocked thread only ever waits for work running on
// some other thread (or for a timer), and progress follows by induction on the
// nesting depth. Helping stays inside the waiter's own subtree: its stack
// grows by at most the nesting depth, and it never picks up an unrelated long
// task that would delay its own wake-up.
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
#include <atomic>
#include <optional>
#include <stdexcept>
#include <utility>

#include "concur/detail/frame_alloc.hpp"
#include "executors/blocking_driver.hpp"

namespace concur::executors {

namespace {

// One spawned child. Both parties (the oneTBB task and the parent's thread)
// visit it exactly once: the first visitor runs it, the second frees it.
struct Unit {
  std::coroutine_handle<> handle;
  detail::Context* ctx = nullptr;
  Unit* next = nullptr;  // the parent's list of children; touched by the parent's thread only
  std::atomic<int> visits{0};

  // Units are made on one thread and usually freed on another, like frames.
  static void* operator new(std::size_t size) { return detail::allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept {
    detail::deallocate_frame(p, size);
  }
};

// The children spawned by the unit running on this thread, newest first.
thread_local Unit** tl_children = nullptr;

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

  std::string_view name() const override { return "thread_pool"; }
  int lanes() const override { return workers_; }
  // detects_stalls() stays false: a blocking call holds only its own thread,
  // which is exactly what a thread pool promises.

 private:
  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    arena_.execute([&] {
      tbb::task_group group;
      group_.store(&group, std::memory_order_release);
      run_unit(root, &ctx);
      // Units claimed inline by their parents leave their oneTBB tasks queued
      // as no-ops; they refer to `group` and must drain before it goes.
      group.wait();
      group_.store(nullptr, std::memory_order_relaxed);
    });
    if (!root.done()) throw std::logic_error("concur: thread_pool root task did not finish");
  }

  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override {
    auto* u = new Unit{h, ctx};
    // Publishes the child's frame to the visitor's acquire load; oneTBB's own
    // hand-off does so too, but ThreadSanitizer cannot see inside libtbb.
    u->visits.store(0, std::memory_order_release);
    u->next = *tl_children;
    *tl_children = u;
    tbb::task_group* group = group_.load(std::memory_order_acquire);
    group->run([this, u] { visit(u); });
  }

  bool park(detail::Waiter& w) override {
    // Run our own children nobody has claimed yet, then block. The waiter
    // may end while we help (a freed `limit` slot): stop helping then, so the
    // batch can start its next child.
    Unit** children = tl_children;
    while (children != nullptr && *children != nullptr &&
           w.state.load(std::memory_order_acquire) == detail::Waiter::parked) {
      Unit* u = *children;
      *children = u->next;
      visit(u);
    }
    return BlockingDriver::park(w);
  }

  void visit(Unit* u) {
    (void)u->visits.load(std::memory_order_acquire);
    const std::coroutine_handle<> h = u->handle;
    detail::Context* const ctx = u->ctx;
    if (u->visits.fetch_add(1, std::memory_order_acq_rel) != 0) {
      delete u;
      return;
    }
    run_unit(h, ctx);  // `u` may be freed by the other visitor from here on
  }

  // Runs one task to its end on this thread: with a blocking driver a
  // coroutine never leaves the thread that resumed it.
  void run_unit(std::coroutine_handle<> h, detail::Context* ctx) {
    Unit* children = nullptr;
    Unit** outer = std::exchange(tl_children, &children);
    {
      detail::ScopedCurrent scope(this, ctx);
      h.resume();
    }
    tl_children = outer;
    // Every gather joins its children, so all of these have ended and were
    // claimed by their oneTBB tasks: this only records our visit.
    while (children != nullptr) {
      Unit* u = children;
      children = u->next;
      visit(u);
    }
  }

  const int workers_;
  std::optional<tbb::global_control> more_threads_;
  tbb::task_arena arena_;
  std::atomic<tbb::task_group*> group_{nullptr};
};

}  // namespace

int default_thread_pool_workers() { return std::min(32, tbb::info::default_concurrency() + 4); }

std::unique_ptr<Executor> make_thread_pool(const Config& c) {
  return std::make_unique<ThreadPool>(c, c.workers > 0 ? c.workers : default_thread_pool_workers());
}

}  // namespace concur::executors
