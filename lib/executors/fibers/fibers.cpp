// SPDX-License-Identifier: BSL-1.0
// fibers: Go's M:N model on Boost.Fiber. Every task runs in its own fiber; a
// library wait blocks only that fiber. With threads = N > 1, ready fibers go
// through one shared queue, so a fiber may continue on another thread after
// any wait (Boost.Fiber's shared_work, but owned by the executor rather than
// process-wide, and with idle threads woken instead of spinning).
//
// When no fiber is ready, one idle thread sleeps in the shared io::Engine
// (timers, and later libcurl's sockets) until the next deadline or event; the
// other idle threads sleep on a condition variable. Nothing polls: Boost's
// asio example keeps a fiber yielding in a loop, which costs a core per thread
// (boostorg/fiber #98, #100, #102); here an idle executor makes no system
// calls until something is due.
//
// Waits do not use Boost.Fiber's condition variables: Waiter::try_wake already
// decides who wakes a wait, so the driver only needs "suspend this fiber" and
// "make it ready", which Boost.Fiber's context API gives without any mutex that
// could suspend a scheduler. Timeouts live in one timer set per executor,
// guarded by a mutex, because a fiber that parks on one thread may resume and
// cancel its timer on another.
#include "executors/fibers.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/scheduler.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "concur/detail/driver.hpp"
#include "executors/fibers/stack_pool.hpp"
#include "executors/stall_watch.hpp"
#include "io/engine.hpp"

namespace concur::executors {

namespace {

namespace bf = boost::fibers;
using detail::Clock;
using detail::kNever;
using detail::TimePoint;
using detail::Waiter;
using fibers::PooledStack;
using fibers::StackPool;

// coarse_now() (stall_watch.hpp): a few ns; its ~4 ms resolution is plenty
// for stall thresholds and for rate-limiting housekeeping.

// One fiber that runs a concur coroutine. Lives on that fiber's own stack.
struct FiberState {
  bf::context* fiber = nullptr;  // to make it ready again
  // Held from "about to suspend" until the fiber has switched out (Boost
  // releases it on the other side of the switch), so a wake from another
  // thread cannot make the fiber ready while it is still running.
  bf::detail::spinlock splk;
  // Both guarded by splk. A wake can arrive before the fiber has switched
  // out (a sibling on another thread finishing, a cancel, or the fiber's own
  // context already stopped when it attaches its waiter). Making a running
  // fiber ready would let another thread resume it while it still runs, so
  // such a wake is left pending and park() then returns without suspending.
  bool suspended = false;
  bool wake_pending = false;
  std::chrono::nanoseconds leg_start{0};  // when it last got the thread
  StallWatch* watch = nullptr;            // of the thread running this leg
  detail::CallName name;                  // of its task, for stall reports
  std::string_view eager_name;            // resolved up front when threads > 1

  // The name the watchdog reads while a leg runs (same choice as end_leg).
  static std::string_view leg_name(const void* self) {
    const auto* st = static_cast<const FiberState*>(self);
    return st->eager_name.empty() ? st->name() : st->eager_name;
  }
};

// Per OS thread. A fiber can move to another thread at every wait, and GCC may
// keep a thread-local's address in a register across calls, so these are
// reached only through functions it may not inline or analyse.
thread_local FiberState* tl_fiber = nullptr;
thread_local bf::scheduler* tl_scheduler = nullptr;
[[gnu::noipa]] FiberState* current_fiber() noexcept { return tl_fiber; }
[[gnu::noipa]] void set_current_fiber(FiberState* f) noexcept { tl_fiber = f; }
[[gnu::noipa]] bf::scheduler* current_scheduler() noexcept { return tl_scheduler; }
[[gnu::noipa]] void set_current_scheduler(bf::scheduler* s) noexcept { tl_scheduler = s; }
thread_local StallWatch* tl_watch = nullptr;
[[gnu::noipa]] StallWatch* current_watch() noexcept { return tl_watch; }
[[gnu::noipa]] void set_current_watch(StallWatch* w) noexcept { tl_watch = w; }

// Makes a suspended fiber ready; any thread, including non-fiber threads
// (they must not touch Boost.Fiber's thread-locals, which would give them a
// scheduler of their own).
void make_ready(FiberState& st) noexcept {
  bf::context* ctx = nullptr;
  {
    bf::detail::spinlock_lock lock(st.splk);  // waits until it has switched out
    if (!st.suspended) {
      st.wake_pending = true;  // still running: park() will not suspend
      return;
    }
    st.suspended = false;
    ctx = st.fiber;
  }
  // `st` may be gone from here on: the fiber can run as soon as it is ready.
  bf::scheduler* owner = ctx->get_scheduler();
  if (owner == current_scheduler()) {
    owner->schedule(ctx);
  } else {
    owner->schedule_from_remote(ctx);
  }
}

class Algo;

// What the N threads of one executor share.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads), algos_(static_cast<std::size_t>(threads)) {}

  int threads() const noexcept { return threads_; }
  io::Engine& engine() noexcept { return engine_; }
  std::mutex& engine_mutex() noexcept { return engine_mutex_; }

  void add_algo(Algo* a) noexcept {
    algos_[next_algo_.fetch_add(1) % algos_.size()].store(a, std::memory_order_release);
  }

  // --- the shared ready queue (threads > 1) ---
  void push(bf::context* ctx) noexcept;
  bf::context* pop() noexcept {
    if (queued_.load(std::memory_order_relaxed) == 0) return nullptr;
    std::lock_guard lock(queue_mutex_);
    if (queue_.empty()) return nullptr;
    bf::context* ctx = &queue_.front();
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    return ctx;
  }
  bool has_queued() const noexcept { return queued_.load() > 0; }
  /// Wakes one sleeping thread other than `self` (if any sleeps).
  void wake_idle(const Algo* self) noexcept;

  // --- timers of parked waiters ---
  void add_timer(Waiter& w) {
    bool earliest = false;
    {
      std::lock_guard lock(timer_mutex_);
      w.driver_key = next_key_++;
      auto it = timers_.emplace(std::make_pair(w.deadline, w.driver_key), &w).first;
      if (it == timers_.begin()) {
        earliest_.store(w.deadline.time_since_epoch().count());
        earliest = true;
      }
    }
    // A sleeping thread may be waiting for a later deadline than this one.
    if (earliest) wake_idle(nullptr);
  }
  void remove_timer(Waiter& w) noexcept {
    std::lock_guard lock(timer_mutex_);
    if (w.driver_key == 0) return;
    timers_.erase(std::make_pair(w.deadline, w.driver_key));
    w.driver_key = 0;
    update_earliest_locked();
  }
  // seq_cst: a thread going to sleep publishes idle_ and then reads this,
  // add_timer stores this and then reads idle_, so one of them sees the other.
  TimePoint earliest() const noexcept { return TimePoint(TimePoint::duration(earliest_.load())); }
  /// Wakes every waiter whose deadline has passed.
  void fire_timers() noexcept {
    if (earliest() > Clock::now()) return;
    std::vector<Waiter*>& due = due_scratch();
    {
      std::lock_guard lock(timer_mutex_);
      const TimePoint now = Clock::now();
      while (!timers_.empty() && timers_.begin()->first.first <= now) {
        Waiter* w = timers_.begin()->second;
        timers_.erase(timers_.begin());
        w->driver_key = 0;
        // Claiming under the lock keeps the waiter alive (its fiber cannot
        // resume before we make it ready); waking outside it avoids a
        // lock-order cycle with a fiber that holds its spinlock while adding
        // a timer.
        if (w->try_wake(Waiter::timed_out)) due.push_back(w);
      }
      update_earliest_locked();
    }
    for (Waiter* w : due) w->driver->unpark(*w);
    due.clear();
  }

 private:
  void update_earliest_locked() noexcept {
    earliest_.store(timers_.empty() ? kNever.time_since_epoch().count()
                                    : timers_.begin()->first.first.time_since_epoch().count());
  }
  static std::vector<Waiter*>& due_scratch() {
    thread_local std::vector<Waiter*> v;
    return v;
  }

  const int threads_;
  io::Engine engine_;
  std::mutex engine_mutex_;  // held by the one thread sleeping in (or polling) the engine
  std::vector<std::atomic<Algo*>> algos_;
  std::atomic<std::size_t> next_algo_{0};

  std::mutex queue_mutex_;
  bf::scheduler::ready_queue_type queue_;
  std::atomic<std::size_t> queued_{0};

  std::mutex timer_mutex_;
  std::map<std::pair<TimePoint, std::uint64_t>, Waiter*> timers_;
  std::uint64_t next_key_ = 1;
  std::atomic<TimePoint::rep> earliest_{kNever.time_since_epoch().count()};
};

// The scheduling algorithm of one thread of the executor.
class Algo final : public bf::algo::algorithm {
 public:
  explicit Algo(Pool& pool) : pool_(pool), shared_(pool.threads() > 1) { pool.add_algo(this); }

  void awakened(bf::context* ctx) noexcept override {
    // The thread's main and dispatcher contexts cannot change threads.
    if (!shared_ || ctx->is_context(bf::type::pinned_context)) {
      local_.push_back(*ctx);
      ++local_size_;
      return;
    }
    ctx->detach();
    pool_.push(ctx);
  }

  bf::context* pick_next() noexcept override {
    bf::context* active = bf::context::active();
    // The dispatcher is itself in the ready queue, so it runs once per round
    // even when fibers are always ready: the place for timers and I/O.
    if (active->is_context(bf::type::dispatcher_context)) housekeeping(false);
    if (shared_) {
      // Mostly shared work first (it is what other threads wait for), but
      // let the local queue (dispatcher, main) through regularly.
      const bool local_turn = local_size_ > 0 && (++picks_ % 32 == 0 || !pool_.has_queued());
      if (!local_turn) {
        if (bf::context* ctx = pool_.pop()) {
          active->attach(ctx);
          return ctx;
        }
      }
    }
    if (local_size_ == 0) return nullptr;
    bf::context* ctx = &local_.front();
    local_.pop_front();
    --local_size_;
    return ctx;
  }

  bool has_ready_fibers() const noexcept override {
    return local_size_ > 0 || (shared_ && pool_.has_queued());
  }

  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override {
    housekeeping(true);
    if (has_ready_fibers()) return;
    std::unique_lock lock(mutex_);
    if (notified_) {
      notified_ = false;
      return;
    }
    // Publish idleness before the last look at shared work and timers, so a
    // push or an earlier timer from another thread either is seen here or
    // sees us idle and notifies (both sides seq_cst).
    idle_.store(true);
    const TimePoint wake_at = std::min(TimePoint(tp), pool_.earliest());
    if (shared_ && pool_.has_queued()) {
      idle_.store(false);
      return;
    }
    // One idle thread sleeps in the engine (where sockets will wake it);
    // the others wait on their own condition variable.
    const bool leader = pool_.engine_mutex().try_lock();
    sleep_ = leader ? Sleep::leader : Sleep::follower;
    if (leader) {
      lock.unlock();
      pool_.engine().run_until(wake_at);
      pool_.engine_mutex().unlock();
      lock.lock();
    } else if (wake_at == kNever) {
      cv_.wait(lock, [this] { return notified_; });
    } else {
      cv_.wait_until(lock, wake_at, [this] { return notified_; });
    }
    sleep_ = Sleep::awake;
    notified_ = false;
    idle_.store(false);
    lock.unlock();
    pool_.fire_timers();
  }

  void notify() noexcept override {
    Sleep s;
    {
      std::lock_guard lock(mutex_);
      notified_ = true;
      s = sleep_;
    }
    if (s == Sleep::follower) {
      cv_.notify_one();
    } else if (s == Sleep::leader) {
      pool_.engine().post([] {});  // makes run_until return
    }
  }

  bool idle() const noexcept { return idle_.load(); }

 private:
  enum class Sleep { awake, follower, leader };

  void housekeeping(bool now) noexcept {
    const auto t = coarse_now();
    if (!now && t < next_housekeeping_) return;
    next_housekeeping_ = t + std::chrono::milliseconds(1);
    pool_.fire_timers();
    if (pool_.engine_mutex().try_lock()) {
      pool_.engine().run_once(/*block=*/false);
      pool_.engine_mutex().unlock();
    }
  }

  Pool& pool_;
  const bool shared_;
  bf::scheduler::ready_queue_type local_;
  std::size_t local_size_ = 0;
  unsigned picks_ = 0;
  std::chrono::nanoseconds next_housekeeping_{0};

  std::mutex mutex_;
  std::condition_variable cv_;
  bool notified_ = false;       // guarded by mutex_
  Sleep sleep_ = Sleep::awake;  // guarded by mutex_
  std::atomic<bool> idle_{false};
};

void Pool::push(bf::context* ctx) noexcept {
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(*ctx);
  }
  queued_.fetch_add(1);  // seq_cst: pairs with Algo::suspend_until publishing idle_
  wake_idle(nullptr);
}

void Pool::wake_idle(const Algo* self) noexcept {
  for (auto& slot : algos_) {
    Algo* a = slot.load(std::memory_order_acquire);
    if (a != nullptr && a != self && a->idle()) {
      a->notify();
      return;
    }
  }
}

// A top-level run handed from the caller's thread to thread 0.
struct Job {
  std::coroutine_handle<> root;
  detail::Context* ctx;
  std::exception_ptr error;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;

  void finish() {
    std::lock_guard lock(mutex);
    done = true;
    cv.notify_all();  // under the lock: the caller may destroy *this once it sees done
  }
};

class Fibers final : public Executor, private detail::Driver {
 public:
  explicit Fibers(Config c)
      : Executor(std::move(c)),
        threads_(config().threads),
        stall_threshold_(config().stall_threshold),
        stacks_(config().stack_kb * 1024),
        pool_(threads_),
        lanes_(static_cast<std::size_t>(threads_)) {
    watches_.reserve(static_cast<std::size_t>(threads_));
    for (int i = 0; i < threads_; ++i) {
      watches_.push_back(std::make_unique<StallWatch>(
          stall_threshold_, [this](std::string_view task, std::chrono::nanoseconds held) {
            report_stall(task, held, /*ongoing=*/true);
          }));
    }
    threads_list_.reserve(static_cast<std::size_t>(threads_));
    for (int i = 0; i < threads_; ++i) threads_list_.emplace_back([this, i] { thread_main(i); });
  }

  ~Fibers() override {
    check_destroy_allowed();
    {
      std::lock_guard lock(lanes_mutex_);
      stopping_ = true;
    }
    for (int i = 0; i < threads_; ++i) wake_lane(i);
    for (auto& t : threads_list_) t.join();
  }

  std::string_view name() const override { return "fibers"; }
  bool detects_stalls() const override { return stall_threshold_.count() > 0; }
  int lanes() const override { return threads_; }

 private:
  // The main context of each thread waits here for work from the caller.
  struct Lane {
    FiberState* main = nullptr;
    bool waiting = false;
  };

  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    Job job{root, &ctx, nullptr, {}, {}, false};
    {
      std::lock_guard lock(lanes_mutex_);
      jobs_.push_back(&job);
    }
    wake_lane(0);
    std::unique_lock lock(job.mutex);
    job.cv.wait(lock, [&] { return job.done; });
    if (job.error) std::rethrow_exception(job.error);
  }

  void thread_main(int index) {
    bf::use_scheduling_algorithm<Algo>(pool_);
    set_current_scheduler(bf::context::active()->get_scheduler());
    set_current_watch(watches_[static_cast<std::size_t>(index)].get());
    FiberState main;
    main.fiber = bf::context::active();
    for (;;) {
      Job* job = nullptr;
      bf::detail::spinlock_lock lock(main.splk);
      {
        std::lock_guard lanes(lanes_mutex_);
        if (stopping_) break;
        lanes_[static_cast<std::size_t>(index)].main = &main;
        if (index == 0 && !jobs_.empty()) {
          job = jobs_.front();
          jobs_.pop_front();
        } else {
          lanes_[static_cast<std::size_t>(index)].waiting = true;
        }
      }
      if (job == nullptr) {
        main.suspended = true;      // under splk, held since before the lane check
        main.fiber->suspend(lock);  // until wake_lane(); fibers run meanwhile
        continue;
      }
      lock.unlock();
      start_root(*job);
    }
    // Returning destroys this thread's scheduler, which first runs its
    // remaining fibers to their end (at most the last steps of finished tasks).
  }

  void wake_lane(int index) {
    FiberState* main = nullptr;
    {
      std::lock_guard lock(lanes_mutex_);
      Lane& lane = lanes_[static_cast<std::size_t>(index)];
      if (!lane.waiting) return;  // not parked: it checks the queue before parking
      lane.waiting = false;
      main = lane.main;
    }
    make_ready(*main);
  }

  void start_root(Job& job) {
    try {
      bf::fiber(bf::launch::post, std::allocator_arg, PooledStack{&stacks_}, [this, &job] {
        run_task(job.root, job.ctx);
        job.finish();  // last: the caller's frame (and job.ctx) may vanish now
      }).detach();
    } catch (...) {
      job.error = std::current_exception();
      job.finish();
    }
  }

  // The body of every fiber: runs one coroutine until it first finishes its
  // work (a child ends by itself; the root ends with the run).
  void run_task(std::coroutine_handle<> h, detail::Context* ctx) {
    FiberState st;
    st.fiber = bf::context::active();
    st.name = ctx->call_name();
    // With several threads the gather that owns the call can end (and free
    // it) on another thread before this fiber's last leg is measured.
    if (threads_ > 1 && stall_threshold_.count() > 0) st.eager_name = st.name();
    resumed(st, ctx);
    h.resume();
    end_leg(st);
  }

  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override {
    FiberState* parent = current_fiber();
    detail::Context* parent_ctx = detail::current_context();
    end_leg(*parent);
    // dispatch: the child runs at once (cache-hot, like event_loop's eager
    // start); the parent becomes ready, so another thread may take it.
    bf::fiber(bf::launch::dispatch, std::allocator_arg, PooledStack{&stacks_}, [this, h, ctx] {
      run_task(h, ctx);
    }).detach();
    resumed(*parent, parent_ctx);
  }

  void prepare(Waiter& w) override { w.driver_data = current_fiber(); }

  bool park(Waiter& w) override {
    auto* st = static_cast<FiberState*>(w.driver_data);
    end_leg(*st);
    {
      bf::detail::spinlock_lock lock(st->splk);
      if (st->wake_pending) {
        // Woken before we got here (see FiberState): the wait is over.
        st->wake_pending = false;
      } else {
        if (w.deadline != kNever) pool_.add_timer(w);
        // From here a waker waits for splk, which Boost releases only once
        // this fiber has switched out; then it makes the fiber ready once.
        st->suspended = true;
        st->fiber->suspend(lock);
      }
    }
    resumed(*st, w.ctx);
    return false;  // the fiber was blocked; the coroutine just continues
  }

  void unpark(Waiter& w) noexcept override { make_ready(*static_cast<FiberState*>(w.driver_data)); }

  // concur::yield_now: the fiber goes to the back of the ready queue (the
  // shared one with threads > 1), so every fiber ready now runs first.
  bool yield(std::coroutine_handle<> h, detail::Context* ctx) override {
    (void)h;
    FiberState* st = current_fiber();
    end_leg(*st);
    boost::this_fiber::yield();
    resumed(*st, ctx);
    return false;  // the fiber has yielded; the coroutine just continues
  }

  // Shared by all threads: I/O waits post their work to it (Engine::post),
  // and whichever thread holds engine_mutex runs it.
  io::Engine* io_engine() noexcept override { return &pool_.engine(); }

  void finish(Waiter& w) noexcept override {
    if (w.deadline != kNever) pool_.remove_timer(w);
  }

  // A fiber got the thread (again), maybe a different one: its task is the
  // current one here now.
  void resumed(FiberState& st, detail::Context* ctx) noexcept {
    detail::set_current(this, ctx);
    set_current_fiber(&st);
    if (stall_threshold_.count() > 0) {
      st.leg_start = coarse_now();
      st.watch = current_watch();
      st.watch->begin_leg(detail::CallName{&st, &FiberState::leg_name}, st.leg_start);
    }
  }

  // A fiber gives up the thread: report it if it held it too long (a call
  // that blocks the OS thread stalls every fiber queued on that thread).
  void end_leg(FiberState& st) {
    if (stall_threshold_.count() == 0) return;
    st.watch->end_leg();
    const auto held = coarse_now() - st.leg_start;
    if (held > stall_threshold_) report_stall(threads_ > 1 ? st.eager_name : st.name(), held);
  }

  const int threads_;
  const std::chrono::nanoseconds stall_threshold_;
  StackPool stacks_;
  Pool pool_;
  std::mutex lanes_mutex_;
  std::vector<Lane> lanes_;                           // guarded by lanes_mutex_
  std::deque<Job*> jobs_;                             // guarded by lanes_mutex_
  bool stopping_ = false;                             // guarded by lanes_mutex_
  std::vector<std::unique_ptr<StallWatch>> watches_;  // one per thread
  std::vector<std::thread> threads_list_;             // last: the threads use everything above
};

}  // namespace

std::unique_ptr<Executor> make_fibers(const Config& c) { return std::make_unique<Fibers>(c); }

}  // namespace concur::executors
