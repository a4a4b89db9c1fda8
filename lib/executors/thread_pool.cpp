// thread_pool: Python's ThreadPoolExecutor without a GIL. Every task runs on a
// oneTBB worker thread of one task_arena and every wait blocks that thread
// (BlockingDriver), so `workers` threads give `workers` tasks in flight and
// real CPU parallelism up to the core count.
//
// Nested gathers are the trap (concurrencpp #61): a task that blocks its
// thread while its children sit queued behind it deadlocks once nesting depth
// x fan-out exceeds the workers. Here a wait for children (a gather joining,
// or waiting for a free `limit` slot) never just blocks: the waiting thread
// runs its own children that no other thread has taken yet (they sit on its
// oneTBB deque) until the wait ends. A thread blocks only for children
// already running elsewhere, so progress follows by induction on the depth.
//
// Each task runs in its own oneTBB isolation region, so a waiting thread
// never picks up anything but its own children. Plain task_group::wait would
// also steal unrelated work, and a thread that took a sibling's 30 s sleep
// while its gather's child failed would report that failure (and cancel the
// sibling) only 30 s later: fail-fast and timeouts must not depend on that.
// The cost is parallelism on deep CPU-bound trees: an idle thread steals a
// whole subtree at a time. Every other wait (a sleep, I/O) blocks its thread,
// which is the thread-pool model.
//
// The wait uses oneTBB's wait_context, the mechanism under task_group::wait:
// the public API can only wait for a whole group, and a slot wait must end as
// soon as any one child does.
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
#include <new>
#include <optional>
#include <stdexcept>
#include <utility>

#include "concur/detail/frame_alloc.hpp"
#include "executors/blocking_driver.hpp"

// ThreadSanitizer cannot see inside libtbb, which is not instrumented: the
// hand-off of a child to the thread that runs it and the end of a child wait
// are told to it explicitly. Nothing in other builds.
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

// task_group keeps its context protected; the child waits need it.
class Group : public tbb::task_group {
 public:
  using tbb::task_group::context;
};

// One wait for children: released (to zero) by whoever wakes the waiter.
struct ChildWait {
  tbb::detail::d1::wait_context done{1};

  // One per gather that waits: from the same per-thread cache as frames.
  static void* operator new(std::size_t size) { return detail::allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept {
    detail::deallocate_frame(p, size);
  }
};
constexpr std::uint64_t kChildWait = 0xC41D;  // Waiter::driver_key of a ChildWait

// The children of one running task, in a group of their own: one shared
// group would make every spawn and every end on every thread hit the same
// reference count. Made on the first spawn, as most tasks spawn nothing; not
// a std::optional, which zero-fills the whole task_group on every task.
class Children {
 public:
  Children() noexcept {}
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    if (made_) group().~Group();
  }
  bool made() const noexcept { return made_; }
  Group& group() noexcept { return *std::launder(reinterpret_cast<Group*>(storage_)); }
  Group& make() {
    if (!made_) {
      ::new (static_cast<void*>(storage_)) Group();
      made_ = true;
    }
    return group();
  }

 private:
  alignas(Group) unsigned char storage_[sizeof(Group)];
  bool made_ = false;
};

// The children of the task running on this thread.
thread_local Children* tl_children = nullptr;

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
    arena_.execute([&] { run_task(root, &ctx); });
    if (!root.done()) throw std::logic_error("concur: thread_pool root task did not finish");
  }

  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override {
    CONCUR_TSAN_RELEASE(h.address());
    tl_children->make().run([this, h, ctx] {
      CONCUR_TSAN_ACQUIRE(h.address());
      run_task(h, ctx);
    });
  }

  void prepare(detail::Waiter& w) override {
    if (!w.for_children) return BlockingDriver::prepare(w);
    try {
      w.driver_data = new ChildWait;
    } catch (const std::bad_alloc&) {
      // Out of memory: block for this one wait rather than throw out of a
      // gather's join, which must not fail. Children already running on
      // other threads still end it.
      return BlockingDriver::prepare(w);
    }
    w.driver_key = kChildWait;
  }

  bool park(detail::Waiter& w) override {
    if (w.driver_key != kChildWait) return BlockingDriver::park(w);
    // Runs queued tasks until unpark() releases `done` (at once if it
    // already has).
    // A child wait has children running, so the group exists.
    auto* wait = static_cast<ChildWait*>(w.driver_data);
    tbb::detail::d1::wait(wait->done, tl_children->group().context());
    CONCUR_TSAN_ACQUIRE(wait);
    return false;  // the wait is over; the coroutine simply continues
  }

  void unpark(detail::Waiter& w) noexcept override {
    if (w.driver_key != kChildWait) return BlockingDriver::unpark(w);
    auto* wait = static_cast<ChildWait*>(w.driver_data);
    CONCUR_TSAN_RELEASE(wait);
    wait->done.release();
  }

  void finish(detail::Waiter& w) noexcept override {
    if (w.driver_key != kChildWait) return;
    delete static_cast<ChildWait*>(w.driver_data);
    w.driver_data = nullptr;
    w.driver_key = 0;
  }

  // Runs one task to its end on this thread: with a blocking driver a
  // coroutine never leaves the thread that resumed it.
  void run_task(std::coroutine_handle<> h, detail::Context* ctx) {
    // The isolation makes every wait inside this task run only the tasks it
    // spawned itself, never a sibling's long task (see the top of the file).
    tbb::this_task_arena::isolate([&] {
      Children children;
      auto* outer = std::exchange(tl_children, &children);
      {
        detail::ScopedCurrent scope(this, ctx);
        h.resume();
      }
      tl_children = outer;
      // Every gather has joined, but a child's oneTBB task may still be
      // returning on another thread: the group must outlive it.
      if (children.made()) children.group().wait();
    });
  }

  const int workers_;
  std::optional<tbb::global_control> more_threads_;
  tbb::task_arena arena_;
};

}  // namespace

int default_thread_pool_workers() { return std::min(32, tbb::info::default_concurrency() + 4); }

std::unique_ptr<Executor> make_thread_pool(const Config& c) {
  return std::make_unique<ThreadPool>(c, c.workers > 0 ? c.workers : default_thread_pool_workers());
}

}  // namespace concur::executors
