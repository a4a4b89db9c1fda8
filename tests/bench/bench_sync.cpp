// SPDX-License-Identifier: BSL-1.0
// concur-bench-sync: uncontended Lock, Semaphore and Queue operations inside
// one task, per executor, beside the floors measured in the same run: a bare
// std::mutex lock/unlock, and a std::mutex-guarded std::deque push/pop (issue 18).
// Run by hand: concur-bench-sync [ops]. Target: within 2x of the floor on event_loop.
#include <fmt/format.h>

#include <chrono>
#include <concur/concur.hpp>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

double ns_per_op(Clock::time_point t0, long ops) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / double(ops);
}

// Keeps the optimiser from dropping the loops.
volatile long g_sink = 0;

double bare_mutex(long ops) {
  std::mutex m;
  const auto t0 = Clock::now();
  for (long i = 0; i < ops; ++i) {
    m.lock();
    g_sink = g_sink + 1;
    m.unlock();
  }
  return ns_per_op(t0, ops);
}

double bare_deque(long ops) {
  std::mutex m;
  std::deque<long> q;
  const auto t0 = Clock::now();
  for (long i = 0; i < ops; ++i) {
    {
      std::lock_guard g(m);
      q.push_back(i);
    }
    std::lock_guard g(m);
    g_sink = g_sink + q.front();
    q.pop_front();
  }
  return ns_per_op(t0, ops);
}

concur::Task<double> lock_ops(long ops) {
  concur::Lock l;
  const auto t0 = Clock::now();
  for (long i = 0; i < ops; ++i) {
    co_await l.lock();
    g_sink = g_sink + 1;
    l.unlock();
  }
  co_return ns_per_op(t0, ops);
}

concur::Task<double> semaphore_ops(long ops) {
  concur::Semaphore s(1);
  const auto t0 = Clock::now();
  for (long i = 0; i < ops; ++i) {
    co_await s.acquire();
    g_sink = g_sink + 1;
    s.release();
  }
  co_return ns_per_op(t0, ops);
}

concur::Task<double> queue_ops(long ops) {
  concur::Queue<long> q(16);
  const auto t0 = Clock::now();
  for (long i = 0; i < ops; ++i) {
    co_await q.push(i);
    g_sink = g_sink + *co_await q.pop();
  }
  co_return ns_per_op(t0, ops);
}

}  // namespace

int main(int argc, char** argv) {
  const long ops = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  // glibc skips the atomic instructions of a mutex while the process has
  // only ever had one thread; every executor but sequential starts threads,
  // so the floor is measured as a multi-threaded process.
  std::thread([] {}).join();
  const double mutex_floor = bare_mutex(ops);
  const double deque_floor = bare_deque(ops);
  fmt::print(
      "{} uncontended ops each; floors: std::mutex {:.1f} ns, std::mutex+deque push/pop {:.1f} "
      "ns\n",
      ops, mutex_floor, deque_floor);
  fmt::print("{:<12} {:>14} {:>16} {:>18}\n", "executor", "Lock (x floor)", "Semaphore (x)",
             "Queue push+pop (x)");
  for (std::string name : {"sequential", "event_loop", "thread_pool", "fibers"}) {
    concur::Config c;
    c.set("executor", name, "bench");
    auto ex = concur::make_executor(c);
    const double l = ex->run(lock_ops(ops));
    const double s = ex->run(semaphore_ops(ops));
    const double q = ex->run(queue_ops(ops));
    fmt::print("{:<12} {:>6.1f} ns {:>4.2f}x {:>7.1f} ns {:>4.2f}x {:>9.1f} ns {:>4.2f}x\n", name,
               l, l / mutex_floor, s, s / mutex_floor, q, q / deque_floor);
  }
}
