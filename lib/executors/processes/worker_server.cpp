// SPDX-License-Identifier: BSL-1.0
#include "executors/processes/worker_server.hpp"

#include <cxxabi.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "concur/call.hpp"
#include "concur/cancel.hpp"
#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/registry.hpp"
#include "concur/result.hpp"
#include "executors/processes/protocol.hpp"

namespace concur::executors::processes {

namespace {

// How often the reader looks for overdue calls while calls run or wait.
constexpr int kWatchTickMs = 200;
// A slot yields after a call this long, or after this many calls in a row.
constexpr long long kYieldAfterNs = 100'000;
constexpr unsigned kYieldEvery = 64;
// The most calls a thread_pool worker runs at once (each holds a thread).
constexpr std::size_t kMostPoolSlots = 256;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "concur worker %d: %s\n", static_cast<int>(getpid()), what.c_str());
  std::fflush(stderr);
  _exit(70);
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(0);  // the parent is gone: nobody wants the reply
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::uint64_t steady_ns(std::chrono::steady_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

std::uint64_t this_thread_id() { return static_cast<std::uint64_t>(::gettid()); }

// Runs `task` to its end from a coroutine that waits for it (in context
// `ctx`, or the awaiter's own if null), without chaining the two by
// symmetric transfer. A slot runs call after call for the worker's whole
// life, and on a blocking driver it never truly suspends: chained
// transfers then stack up one pair of native frames per call wherever the
// compiler does not turn them into tail calls (-O0, ASan), until the thread
// overflows. Here the task runs inside a call to resume() that returns when
// it ends or first suspends, and a handshake tells which came first.
class RunToEnd {
  struct Handoff {
    std::atomic<int> state{0};  // 1: the awaiter suspended; 2: the task ended
    std::coroutine_handle<> waiter;
    std::exception_ptr error;
  };

 public:
  struct Runner {
    struct promise_type {
      Handoff* handoff = nullptr;
      Runner get_return_object() noexcept {
        return Runner{std::coroutine_handle<promise_type>::from_promise(*this)};
      }
      std::suspend_always initial_suspend() noexcept { return {}; }
      struct Ended {
        bool await_ready() const noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> me) noexcept {
          Handoff* h = me.promise().handoff;
          // The awaiter already suspended: resume it. Else it goes on by itself.
          if (h->state.exchange(2, std::memory_order_acq_rel) == 1) return h->waiter;
          return std::noop_coroutine();
        }
        void await_resume() const noexcept {}
      };
      Ended final_suspend() noexcept { return {}; }
      void return_void() noexcept {}
      void unhandled_exception() noexcept { handoff->error = std::current_exception(); }
    };
    std::coroutine_handle<promise_type> frame;
  };

  RunToEnd(Task<void>& task, detail::Context* ctx) : task_(task), ctx_(ctx) {}
  RunToEnd(const RunToEnd&) = delete;
  RunToEnd& operator=(const RunToEnd&) = delete;
  ~RunToEnd() {
    if (runner_.frame) runner_.frame.destroy();
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> caller) {
    outer_ = detail::current_context();
    handoff_.waiter = caller;
    runner_ = run(task_);
    runner_.frame.promise().handoff = &handoff_;
    if (ctx_ != nullptr) detail::set_current_context(ctx_);
    runner_.frame.resume();  // returns once the task ended or first suspended
    // Ended already: go straight on, no resume chained onto this stack.
    return handoff_.state.exchange(1, std::memory_order_acq_rel) != 2;
  }
  void await_resume() {
    detail::set_current_context(outer_);
    if (handoff_.error) std::rethrow_exception(handoff_.error);
  }

 private:
  static Runner run(Task<void>& task) { co_await task; }

  Task<void>& task_;
  detail::Context* ctx_;
  detail::Context* outer_ = nullptr;
  Handoff handoff_;
  Runner runner_;
};

// What a worker knows of one call for the parent's trace: its name, and its
// waits when the parent records (the frame's kRecordWaits flag).
struct CallTrace {
  std::string_view name;
  bool record = false;
  std::uint64_t open = 0;  // steady ns at which the current wait began
  std::vector<std::pair<std::uint64_t, std::uint64_t>> waits;
};
constexpr std::size_t kMostWaits = 4096;  // per call, to keep a reply small

std::string_view call_trace_name(const void* p) { return static_cast<const CallTrace*>(p)->name; }

// Gets the waits of every call's own task (a nested child's waits are its
// own, not the call's). Only the call's own coroutine parks on its context,
// one wait at a time, so its CallTrace needs no lock.
class WorkerWaits final : public trace::detail::WaitSink {
 public:
  void wait(const detail::Context* ctx, bool begin) noexcept override {
    if (ctx == nullptr || ctx->call_name().get != &call_trace_name) return;
    auto* t = static_cast<CallTrace*>(const_cast<void*>(ctx->call_name().object));
    if (!t->record) return;
    const std::uint64_t now = steady_ns(std::chrono::steady_clock::now());
    if (begin) {
      t->open = now;
    } else if (t->open != 0) {
      if (t->waits.size() < kMostWaits) {
        try {
          t->waits.emplace_back(t->open, now);
        } catch (...) {
          // A wait lost for want of memory only thins the picture.
        }
      }
      t->open = 0;
    }
  }
};

void record_waits_from_now_on() {
  static WorkerWaits sink;
  static std::once_flag once;
  std::call_once(once, [] { trace::detail::set_wait_sink(&sink); });
}

}  // namespace

// ---- settings -------------------------------------------------------------

std::size_t WorkerSettings::concurrency_of(const Config& c) {
  const std::size_t asked = std::max<std::size_t>(1, c.worker_concurrency);
  if (c.worker_executor == "sequential") return 1;
  // Each thread_pool slot holds a thread while it waits: a few hundred at most.
  if (c.worker_executor == "thread_pool") return std::min<std::size_t>(asked, kMostPoolSlots);
  return asked;
}

std::string WorkerSettings::encode(const Config& c) {
  const std::size_t slots = concurrency_of(c);
  // One call at a time has nobody to stall: no reports for CPU-bound calls then.
  const long long stall_ms = slots == 1 ? 0 : c.stall_threshold.count();
  return fmt::format(
      "worker_executor={};worker_concurrency={};stall_ms={};threads={};stack_kb={};"
      "cancel_grace_ms={}",
      c.worker_executor, slots, stall_ms, c.threads, c.stack_kb, c.cancel_grace.count());
}

WorkerSettings WorkerSettings::parse(std::string_view text) {
  WorkerSettings s;
  Config probe;  // checks the worker keys with the parent's own rules
  while (!text.empty()) {
    const auto end = std::min(text.find(';'), text.size());
    const std::string_view item = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "worker_executor") {
      probe.set(key, value, "the parent");
      s.executor.set("executor", value, "the parent");
    } else if (key == "worker_concurrency") {
      probe.set(key, value, "the parent");
      s.concurrency = probe.worker_concurrency;
    } else if (key == "cancel_grace_ms") {
      probe.set(key, value, "the parent");
      s.cancel_grace = probe.cancel_grace;
    } else {
      s.executor.set(key, value, "the parent");
    }
  }
  // On thread_pool each slot blocks a thread while it waits (for its next
  // call too): twice as many threads leave room for nested gathers' children.
  if (s.executor.executor == "thread_pool") {
    s.executor.workers = static_cast<int>(2 * s.concurrency);
  }
  return s;
}

// ---- the slots --------------------------------------------------------------

// Parks a slot loop until a call is queued for it (or the parent is gone).
class Server::NextCall {
 public:
  struct Taken {
    std::optional<std::string> frame;
    bool eof = false;
  };
  NextCall(Server& s, std::size_t slot) : s_(s), slot_(slot) {}

  bool await_ready() {
    std::lock_guard lock(s_.mutex_);
    return take_locked();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    detail::Driver& d = detail::require_driver();
    w_.handle = h;
    w_.ctx = detail::current_context();
    w_.driver = &d;
    d.prepare(w_);
    w_.state.store(detail::Waiter::parked, std::memory_order_release);
    {
      // Checked again under the lock after the waiter is published, so a
      // call queued in between cannot be missed.
      std::lock_guard lock(s_.mutex_);
      if (take_locked()) {
        w_.state.store(detail::Waiter::idle, std::memory_order_release);
        return false;
      }
      s_.idle_.push_back(this);
    }
    return d.park(w_);
  }
  Taken await_resume() {
    if (w_.driver != nullptr) w_.driver->finish(w_);
    if (!taken_) {
      std::lock_guard lock(s_.mutex_);
      take_locked();  // another slot may have been quicker: then nothing
    }
    return std::move(result_);
  }
  void wake() noexcept { detail::wake(w_, detail::Waiter::notified); }

 private:
  bool take_locked() {
    if (!s_.queue_.empty() && !s_.draining_) {
      result_.frame = std::move(s_.queue_.front());
      s_.queue_.pop_front();
      // Known as running from here on, so a cancel cannot fall between
      // taking the call and starting it.
      Slot& slot = s_.slots_[slot_];
      slot.id = load<std::uint64_t>(result_.frame->data() + kCallIdAt);
      slot.cancelled = false;
      taken_ = true;
      return true;
    }
    if (s_.eof_) {
      result_.eof = true;
      taken_ = true;
      return true;
    }
    return false;
  }

  Server& s_;
  std::size_t slot_;
  detail::Waiter w_;
  Taken result_;
  bool taken_ = false;
};

Task<void> Server::slot_loop(Server* self, std::size_t slot) {
  // A call that never waits runs inside the slot's own resume: the stall
  // detector then names the slot's context, which tells the call's name.
  detail::current_context()->set_name(detail::CallName{
      &self->slots_[slot].name,
      [](const void* n) { return std::string_view(*static_cast<const std::string*>(n)); }});
  // The resume running now was timed under the old name: end it first.
  co_await concur::yield_now();
  unsigned since_yield = 0;
  for (;;) {
    NextCall::Taken next = co_await NextCall(*self, slot);
    if (next.eof) co_return;
    if (!next.frame) continue;
    Task<void> served = self->serve(std::move(*next.frame), slot);
    co_await RunToEnd(served, nullptr);
    // Runs of tiny calls give the others their turn now and then, which
    // costs them nothing measurable (a longer call yielded in serve()).
    if (++since_yield >= kYieldEvery) {
      since_yield = 0;
      co_await concur::yield_now();
    }
  }
}

Task<void> Server::serve(std::string f, std::size_t slot) {
  const auto id = load<std::uint64_t>(f.data() + kCallIdAt);
  const auto signature = load<std::uint64_t>(f.data() + kCallSignatureAt);
  const auto timeout_ns = load<std::uint64_t>(f.data() + kCallTimeoutAt);
  const auto flags = load<std::uint8_t>(f.data() + kCallFlagsAt);
  const auto name_len = load<std::uint16_t>(f.data() + kCallNameAt);
  const std::string_view name(f.data() + kCallNameAt + 2, name_len);
  const std::string_view args(f.data() + kCallNameAt + 2 + name_len,
                              f.size() - (kCallNameAt + 2 + name_len));

  // The call's own timeout counts from here, its start.
  const auto start = std::chrono::steady_clock::now();
  CallTrace trace{name, (flags & kRecordWaits) != 0, 0, {}};
  if (trace.record) record_waits_from_now_on();
  detail::Context ctx(nullptr, std::chrono::nanoseconds(timeout_ns), detail::StopReason::timeout,
                      detail::CallName{&trace, &call_trace_name});
  bool cancelled_before_start = false;
  {
    std::lock_guard lock(mutex_);
    Slot& s = slots_[slot];
    s.ctx = &ctx;
    s.deadline = timeout_ns > 0 ? start + std::chrono::nanoseconds(timeout_ns) : detail::kNever;
    s.name.assign(name);
    cancelled_before_start = s.cancelled;
  }
  table_.set(slot, id, &ctx);
  if (cancelled_before_start) ctx.cancel();

  // The reply is built in place: its fixed part first, the result after it.
  std::string reply(kReplyFixed, '\0');
  Status status = Status::ok;
  try {
    Slot& mine = slots_[slot];  // only this slot's coroutine touches its cache
    if (mine.fn == nullptr || mine.fn->name != name) mine.fn = detail::find_function(name);
    const detail::RegisteredFunction* fn = mine.fn;
    if (fn == nullptr || fn->invoker == nullptr || fn->ambiguous) {
      throw UsageError("concur worker: no function '" + std::string(name) +
                       "' is registered (with a codec) in the worker executable");
    }
    if (fn->signature != signature) {
      throw UsageError("concur worker: function '" + std::string(name) +
                       "' has a different signature in the worker executable");
    }
    Reader in(args);
    Writer out(reply);
    Task<void> task = fn->invoker(in, out);
    co_await RunToEnd(task, &ctx);
  } catch (...) {
    reply.resize(kReplyFixed);
    bool by_parent = false;
    {
      std::lock_guard lock(mutex_);
      by_parent = slots_[slot].cancelled;
    }
    if (by_parent) {
      status = Status::cancelled;
    } else {
      status = Status::error;
      const ErrorInfo info = ErrorInfo::from_exception(std::current_exception());
      const std::type_info* t = abi::__cxa_current_exception_type();
      Writer w(reply);
      w.put(std::string(t != nullptr ? t->name() : ""), info.type(), info.message());
    }
  }
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  // A call that ran a while gives the thread back before its reply goes
  // out: the stall detector then charges the stall to it alone, and its
  // report reaches the parent before the reply that may end the batch.
  if (ns > kYieldAfterNs) co_await concur::yield_now();
  {
    // ctx ends with this frame; the slot stays taken until the reply is out.
    std::lock_guard lock(mutex_);
    slots_[slot].ctx = nullptr;
  }
  store<std::uint32_t>(reply, 0, static_cast<std::uint32_t>(reply.size() - 4));
  store<std::uint8_t>(reply, 4, static_cast<std::uint8_t>(Kind::reply));
  store<std::uint64_t>(reply, kReplyIdAt, id);
  store<std::uint8_t>(reply, kReplyStatusAt, static_cast<std::uint8_t>(status));
  store<std::uint64_t>(reply, kReplyNanosAt, static_cast<std::uint64_t>(ns));
  store<std::uint64_t>(reply, kReplyStartAt, steady_ns(start));
  store<std::uint64_t>(reply, kReplyThreadAt, this_thread_id());
  store<std::uint32_t>(reply, kReplyWaitsAt, static_cast<std::uint32_t>(trace.waits.size()));
  if (!trace.waits.empty()) {
    std::string waits;
    for (const auto& [b, e] : trace.waits) {
      append<std::uint64_t>(waits, b);
      append<std::uint64_t>(waits, e);
    }
    reply.insert(kReplyFixed, waits);
    store<std::uint32_t>(reply, 0, static_cast<std::uint32_t>(reply.size() - 4));
  }
  // What the call printed reaches the terminal now, not when the worker ends.
  std::fflush(stdout);
  write_frame(reply);
  // Only now is the call off the started list: a worker dying in between
  // must not make the parent send a finished call again.
  table_.clear(slot);
  std::lock_guard lock(mutex_);
  Slot& s = slots_[slot];
  s.id = 0;
  s.cancelled = false;
  s.overdue_sent = false;
  s.deadline = detail::kNever;
  s.cancel_at = detail::kNever;
}

// ---- the server -------------------------------------------------------------

Server::Server(int in_fd, int out_fd, WorkerSettings settings)
    : in_fd_(in_fd),
      out_fd_(out_fd),
      settings_(std::move(settings)),
      table_(settings_.concurrency),
      slots_(settings_.concurrency) {}

void Server::write_frame(const std::string& frame) {
  std::lock_guard lock(write_mutex_);
  write_all(out_fd_, frame.data(), frame.size());
}

void Server::reply_without_running(std::uint64_t id, std::uint8_t status) {
  std::string reply;
  const std::size_t at = begin_frame(reply, Kind::reply);
  append<std::uint64_t>(reply, id);
  append<std::uint8_t>(reply, status);
  append<std::uint64_t>(reply, 0);
  append<std::uint64_t>(reply, 0);
  append<std::uint64_t>(reply, 0);
  append<std::uint32_t>(reply, 0);
  end_frame(reply, at);
  write_frame(reply);
}

void Server::run() {
  std::unique_ptr<Executor> ex;
  try {
    ex = make_executor(settings_.executor);
  } catch (const std::exception& e) {
    die(fmt::format("cannot make its '{}' executor: {}", settings_.executor.executor, e.what()));
  }
  // Stall reports go to the parent, which reports them as its own.
  ex->on_stall([this](const StallReport& r) {
    std::string frame;
    const std::size_t at = begin_frame(frame, Kind::stall);
    append<std::uint64_t>(frame, static_cast<std::uint64_t>(r.duration.count()));
    append<std::uint64_t>(frame, this_thread_id());
    append<std::uint8_t>(frame, r.ongoing ? 1 : 0);
    const std::size_t n = std::min<std::size_t>(r.task.size(), 0xFFFF);
    append<std::uint16_t>(frame, static_cast<std::uint16_t>(n));
    frame.append(r.task, 0, n);
    end_frame(frame, at);
    write_frame(frame);
  });

  std::string hello;
  const std::size_t at = begin_frame(hello, Kind::hello);
  append<std::uint32_t>(hello, static_cast<std::uint32_t>(getpid()));
  end_frame(hello, at);
  write_frame(hello);

  std::thread reader([this] { read_loop(); });
  reader.detach();

  std::vector<decltype(concur::call(&Server::slot_loop, this, std::size_t{0}))> loops;
  loops.reserve(settings_.concurrency);
  for (std::size_t i = 0; i < settings_.concurrency; ++i) {
    loops.push_back(concur::call(&Server::slot_loop, this, i));
  }
  ex->gather_settled(loops);  // until the parent is gone
  std::fflush(nullptr);
  _exit(0);
}

// ---- the reader thread ------------------------------------------------------

void Server::read_loop() {
  std::string buf;
  buf.resize(1 << 16);
  std::size_t len = 0;
  std::vector<std::string> arrived;
  for (;;) {
    int timeout_ms;
    {
      std::lock_guard lock(mutex_);
      const auto now = detail::Clock::now();
      check_overdue_locked(now);
      timeout_ms = poll_timeout_ms_locked(now);
    }
    pollfd pfd{in_fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, timeout_ms);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;

    if (len == buf.size()) buf.resize(buf.size() * 2);
    const ssize_t r = ::read(in_fd_, buf.data() + len, buf.size() - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
    std::size_t pos = 0;
    while (len - pos >= kHeader) {
      const auto size = load<std::uint32_t>(buf.data() + pos);
      if (size > kMaxFrame) die("corrupt request stream");
      if (len - pos < 4 + size) {
        if (4 + size > buf.size()) buf.resize(4 + size);
        break;
      }
      const std::string_view f(buf.data() + pos, 4 + size);
      if (static_cast<Kind>(f[4]) == Kind::call) {
        arrived.emplace_back(f);
      } else {
        // Calls before a cancel or revoke must be queued first: it may name them.
        if (!arrived.empty()) {
          std::vector<NextCall*> wake;
          {
            std::lock_guard lock(mutex_);
            for (auto& a : arrived) queue_.push_back(std::move(a));
            const std::size_t n = std::min(idle_.size(), arrived.size());
            wake.assign(idle_.end() - static_cast<std::ptrdiff_t>(n), idle_.end());
            idle_.resize(idle_.size() - n);
          }
          arrived.clear();
          for (NextCall* w : wake) w->wake();
        }
        on_request(f);
      }
      pos += 4 + size;
    }
    if (!arrived.empty()) {
      // One lock, and one wake-up per call, for everything this read brought.
      std::vector<NextCall*> wake;
      {
        std::lock_guard lock(mutex_);
        const std::size_t n = std::min(idle_.size(), arrived.size());
        for (auto& a : arrived) queue_.push_back(std::move(a));
        wake.assign(idle_.end() - static_cast<std::ptrdiff_t>(n), idle_.end());
        idle_.resize(idle_.size() - n);
      }
      arrived.clear();
      for (NextCall* w : wake) w->wake();
    }
    if (pos > 0) {
      std::memmove(buf.data(), buf.data() + pos, len - pos);
      len -= pos;
    }
  }
  on_eof();
}

void Server::on_request(std::string_view f) {
  const auto kind = static_cast<Kind>(f[4]);
  if (kind == Kind::cancel && f.size() >= kHeader + 8) {
    const auto id = load<std::uint64_t>(f.data() + kHeader);
    bool dropped = false;
    {
      std::lock_guard lock(mutex_);
      for (Slot& s : slots_) {
        if (s.id != id) continue;
        s.cancelled = true;
        s.cancel_at = detail::Clock::now();
        if (s.ctx != nullptr) s.ctx->cancel();
        return;
      }
      const auto it = std::find_if(queue_.begin(), queue_.end(), [&](const std::string& q) {
        return load<std::uint64_t>(q.data() + kCallIdAt) == id;
      });
      if (it != queue_.end()) {
        queue_.erase(it);
        dropped = true;
      }
    }
    if (dropped) reply_without_running(id, static_cast<std::uint8_t>(Status::cancelled));
  } else if (kind == Kind::revoke) {
    std::deque<std::string> unstarted;
    {
      std::lock_guard lock(mutex_);
      unstarted.swap(queue_);
    }
    for (const std::string& q : unstarted) {
      reply_without_running(load<std::uint64_t>(q.data() + kCallIdAt),
                            static_cast<std::uint8_t>(Status::returned));
    }
  }
}

// A call still running a cancel grace after its timeout or its cancellation
// ignores them: tell the parent, which kills this worker (the only way to
// stop such code), and start nothing more meanwhile, so that the calls
// listed as started are all that the kill can hit.
void Server::check_overdue_locked(detail::TimePoint now) {
  for (Slot& s : slots_) {
    if (s.id == 0 || s.overdue_sent) continue;
    const detail::TimePoint due = std::min(s.deadline, s.cancel_at);
    if (due == detail::kNever || now < due + settings_.cancel_grace) continue;
    s.overdue_sent = true;
    draining_ = true;
    std::string reply;
    const std::size_t at = begin_frame(reply, Kind::reply);
    append<std::uint64_t>(reply, s.id);
    append<std::uint8_t>(reply, static_cast<std::uint8_t>(Status::overdue));
    append<std::uint64_t>(reply, 0);
    append<std::uint64_t>(reply, 0);
    append<std::uint64_t>(reply, 0);
    append<std::uint32_t>(reply, 0);
    std::vector<std::uint64_t> started;
    for (const Slot& o : slots_) {
      if (o.id != 0) started.push_back(o.id);
    }
    append<std::uint32_t>(reply, static_cast<std::uint32_t>(started.size()));
    for (std::uint64_t id : started) append<std::uint64_t>(reply, id);
    end_frame(reply, at);
    write_frame(reply);  // write_mutex_ is only ever taken after mutex_, never before
  }
}

int Server::poll_timeout_ms_locked(detail::TimePoint now) const {
  const bool busy = !queue_.empty() || std::any_of(slots_.begin(), slots_.end(),
                                                   [](const Slot& s) { return s.id != 0; });
  if (!busy) return -1;
  int ms = kWatchTickMs;
  for (const Slot& s : slots_) {
    const detail::TimePoint due = std::min(s.deadline, s.cancel_at);
    if (s.id == 0 || s.overdue_sent || due == detail::kNever) continue;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(due + settings_.cancel_grace - now)
            .count();
    ms = static_cast<int>(std::clamp<long long>(left + 1, 0, ms));
  }
  return ms;
}

// The parent closed the socket or died: stop every call, let the main thread
// finish, and make sure we end even if a call ignores us.
void Server::on_eof() {
  std::vector<NextCall*> wake;
  {
    std::lock_guard lock(mutex_);
    eof_ = true;
    queue_.clear();
    for (Slot& s : slots_) {
      s.cancelled = true;
      if (s.ctx != nullptr) s.ctx->cancel();
    }
    wake.swap(idle_);
  }
  for (NextCall* w : wake) w->wake();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::fflush(nullptr);
  _exit(0);
}

}  // namespace concur::executors::processes
