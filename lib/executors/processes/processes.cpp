// SPDX-License-Identifier: BSL-1.0
// processes: Python's ProcessPoolExecutor, minus BrokenProcessPool.
//
// The parent runs the batch's own coroutines (the gathers, the child tasks
// that stand for routed calls) on an event-loop driver like event_loop's: one
// thread, a ready queue, and the shared Asio engine for timers and for the
// worker sockets. A routed call encodes its arguments, queues a request and
// parks on a Waiter; the pool sends requests in batches and wakes the waiter
// when the reply arrives (see pool.hpp). Timeouts and cancellation wake the
// waiter too; the call is then cancelled in its worker, and the worker is
// killed and replaced if the call does not stop within cancel_grace.
#include "executors/processes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/processes.hpp"
#include "concur/registry.hpp"
#include "executors/loop_driver.hpp"
#include "executors/processes/pool.hpp"
#include "executors/processes/protocol.hpp"
#include "executors/processes/worker_server.hpp"
#include "io/engine.hpp"

namespace concur {

namespace executors::processes {
namespace {

using detail::find_function;
using detail::RegisteredFunction;

class Processes;
Task<void> send_and_wait(Processes& ex, RemoteRequest& req);
std::string routing_problem(const RegisteredFunction* f, std::string_view what);
void begin_call_frame(RemoteRequest& req, std::string_view name, std::uint64_t signature);

// The parent's driver is the call router too: while it runs a batch, every
// concur::call made on its thread is sent to a worker (detail/call_router.hpp).
class Processes final : public Executor, private LoopDriver, private detail::CallRouter {
 public:
  Processes(Config c, const Family& family)
      : Executor(std::move(c)),
        name_(family.name),
        workers_(family.workers),
        pool_(engine().context(), pool_options(config(), family, this)) {}
  ~Processes() override { check_destroy_allowed(); }
  std::string_view name() const override { return name_; }
  // Processes times the calls each runs at once: as many calls run together.
  int lanes() const override {
    return static_cast<int>(
        std::min<std::size_t>(static_cast<std::size_t>(workers_) * pool_.concurrency(), 1u << 30));
  }

  Pool& pool() noexcept { return pool_; }
  std::chrono::milliseconds grace() const noexcept { return config().cancel_grace; }

 private:
  static PoolOptions pool_options(const Config& c, const Family& family, Processes* self) {
    PoolOptions o;
    o.executor_name = family.name;
    o.launch = family.launch;
    o.workers = family.workers;
    o.concurrency = WorkerSettings::concurrency_of(c);
    o.executable = c.worker_executable;
    o.max_tasks_per_child = c.max_tasks_per_child;
    o.settings = WorkerSettings::encode(c);
    // A worker's stall is this executor's: its handler and counter hear it.
    o.on_stall = [self](std::string_view task, std::chrono::nanoseconds held, bool ongoing) {
      self->report_stall(task, held, ongoing);
    };
    return o;
  }

  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    detail::ScopedCurrent scope(this, &ctx);
    run_loop(root, ctx, [this] { pool_.flush(); });
  }

  // Calls are routed only while this driver is current: another executor
  // run from inside a parent task keeps its calls local.
  detail::CallRouter* call_router() noexcept override { return this; }

  std::string problem(const void* fn, std::string_view what) const override {
    return routing_problem(fn != nullptr ? find_function(fn) : nullptr, what);
  }

  Task<void> invoke(const void* fn, const void* args, void* out) override {
    const RegisteredFunction* f = find_function(fn);
    if (std::string why = routing_problem(f, ""); !why.empty()) throw UsageError(why);
    RemoteRequest req;
    begin_call_frame(req, f->name, f->signature);
    Writer w(req.frame);
    // Encoded as the function's own parameter types, which the worker decodes.
    f->encode_args(args, w);
    co_await send_and_wait(*this, req);
    if (out != nullptr) {
      Reader r(req.reply);
      f->decode_result(r, out);
    }
  }

  // The parent's own tasks only gather and route calls; an I/O wait made
  // here blocks the loop thread.
  io::Engine* io_engine() noexcept override { return nullptr; }

  const std::string name_;
  const int workers_;
  Pool pool_;  // after LoopDriver's engine: the pool's sockets live on its io_context
};

// Parks the routed call's task until its reply (or `deadline`, or, with
// `attach`, the cancellation of its context).
class ParkOn {
 public:
  ParkOn(Pending& p, detail::TimePoint deadline, detail::Context* attach) : p_(p), attach_(attach) {
    w_.deadline = deadline;
  }
  bool await_ready() const noexcept { return p_.state == Pending::done; }
  bool await_suspend(std::coroutine_handle<> h) {
    p_.waiter = &w_;
    return detail::park_current(w_, h, attach_);
  }
  /// How the park ended: notified (the call is done), timed_out, cancelled.
  detail::Waiter::State await_resume() noexcept {
    p_.waiter = nullptr;
    detail::end_park(w_, attach_);
    return static_cast<detail::Waiter::State>(w_.state.load(std::memory_order_acquire));
  }

 private:
  Pending& p_;
  detail::Context* attach_;
  detail::Waiter w_;
};

}  // namespace

std::unique_ptr<Executor> make(const Config& c) {
  Family family;
  family.name = "processes";
  family.workers = c.workers > 0
                       ? c.workers
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return make_family(c, family);
}

std::unique_ptr<Executor> make_family(const Config& c, const Family& family) {
  return std::make_unique<Processes>(c, family);
}

namespace {

Task<void> send_and_wait(Processes& executor, RemoteRequest& req) {
  Processes* ex = &executor;
  detail::Context* ctx = detail::current_context();
  if (ctx->stop_requested()) std::rethrow_exception(ctx->stop_exception());
  Pending p;
  p.req = &req;
  // A per-task timeout counts from the call's start in a worker, not from
  // its wait for a free slot: the worker enforces it from there (and tells
  // us when a call ignores it). Here only the deadlines inherited from
  // above (the batch's, an enclosing task's) wait for the reply.
  p.timeout = ctx->hand_off_timeout();
  // Its worker reports the task to the trace; this stand-in is bookkeeping.
  if (trace::detail::enabled()) trace::detail::task_elsewhere(ctx);
  ex->pool().submit(p);
  while (p.state != Pending::done) {
    const auto woke = co_await ParkOn(p, ctx->deadline(), ctx);
    if (woke != detail::Waiter::notified) break;
  }
  if (p.state != Pending::done) {
    // Timed out or cancelled: stop it in its worker, kill the worker if the
    // call ignores us, and only then end: no task outlives its gather. The
    // worker itself reports a call that ignores cancellation after the
    // grace; the wait here is a backstop for a worker that cannot.
    ctx->stop_requested();
    ex->pool().cancel(p);
    if (p.state != Pending::done) {
      co_await ParkOn(p, detail::Clock::now() + 2 * ex->grace() + std::chrono::seconds(1), nullptr);
      if (p.state != Pending::done) ex->pool().give_up(p);
    }
    std::rethrow_exception(ctx->stop_exception());
  }
  if (p.error) std::rethrow_exception(p.error);
}

void begin_call_frame(RemoteRequest& req, std::string_view name, std::uint64_t signature) {
  if (name.size() > 0xFFFF) throw UsageError("concur: registered name too long");
  req.name = name;
  req.frame.reserve(kCallNameAt + 2 + name.size() + 32);
  begin_frame(req.frame, Kind::call);
  append<std::uint64_t>(req.frame, 0);  // id, set when submitted
  append<std::uint64_t>(req.frame, signature);
  append<std::uint64_t>(req.frame, 0);  // timeout, set when submitted
  append<std::uint8_t>(req.frame, 0);   // flags, set when submitted
  append<std::uint16_t>(req.frame, static_cast<std::uint16_t>(name.size()));
  req.frame.append(name);
}

std::string routing_problem(const RegisteredFunction* f, std::string_view what) {
  const auto prefix = fmt::format("concur processes executor {}", messages::kNotRegistered);
  if (!what.empty()) {
    return fmt::format(
        "{}: this call is {}, which cannot cross to a worker process; call a function "
        "registered with CONCUR_REGISTER(fn) instead",
        prefix, what);
  }
  if (f == nullptr) {
    return fmt::format(
        "{}: this call's function is not registered; add CONCUR_REGISTER(fn) after its "
        "definition",
        prefix);
  }
  if (f->ambiguous) {
    return fmt::format(
        "{}: two different functions are registered as '{}', so a worker could not tell "
        "them apart; rename one",
        prefix, f->name);
  }
  if (f->invoker == nullptr) {
    return fmt::format(
        "{}: '{}' has a parameter or result type without a codec; give it one (see "
        "concur/codec.hpp)",
        prefix, f->name);
  }
  return {};
}

}  // namespace
}  // namespace executors::processes

namespace executors {
std::unique_ptr<Executor> make_processes(const Config& c) { return processes::make(c); }
}  // namespace executors

}  // namespace concur
