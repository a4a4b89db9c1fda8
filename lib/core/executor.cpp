// SPDX-License-Identifier: BSL-1.0
#include "concur/executor.hpp"

#include <fmt/format.h>

#include <array>

#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"
#include "concur/log.hpp"
#include "executors/cluster.hpp"
#include "executors/event_loop.hpp"
#include "executors/fibers.hpp"
#include "executors/processes.hpp"
#include "executors/sequential.hpp"
#include "executors/thread_pool.hpp"

namespace concur {

namespace {

using Factory = std::unique_ptr<Executor> (*)(const Config&);
struct Entry {
  std::string_view name;
  Factory make;
};

// Adding an executor: one line here (and its file under lib/executors/).
constexpr std::array<Entry, 6> kExecutors{{
    {"sequential", &executors::make_sequential},
    {"event_loop", &executors::make_event_loop},
    {"thread_pool", &executors::make_thread_pool},
    {"fibers", &executors::make_fibers},
    {"processes", &executors::make_processes},
    {"cluster", &executors::make_cluster},
}};

// The names of every executor, cluster last: outside an MPI job the list
// stops before it (cluster cannot run there, so "all" must not pick it).
constexpr auto kNames = [] {
  std::array<std::string_view, kExecutors.size()> names{};
  for (std::size_t i = 0; i < kExecutors.size(); ++i) names[i] = kExecutors[i].name;
  return names;
}();
static_assert(kNames.back() == "cluster");

void print_stall(const StallReport& r) {
  const auto ms = [](std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  if (r.ongoing) {
    log(LogLevel::warning,
        fmt::format("concur: task '{}' has been blocking the {} thread for {} ms so far (stall "
                    "threshold {} ms)",
                    r.task, r.executor, ms(r.duration), ms(r.threshold)));
    return;
  }
  log(LogLevel::warning,
      fmt::format("concur: task '{}' blocked the {} thread for {} ms (stall threshold {} ms)",
                  r.task, r.executor, ms(r.duration), ms(r.threshold)));
}

}  // namespace

std::span<const std::string_view> known_executor_names() { return kNames; }

std::span<const std::string_view> executor_names() {
  return std::span(kNames).first(executors::cluster_available() ? kNames.size()
                                                                : kNames.size() - 1);
}

std::unique_ptr<Executor> make_executor(const Config& config) {
  config.validate();
  for (const Entry& e : kExecutors) {
    if (e.name == config.executor) return e.make(config);
  }
  throw ConfigError(
      fmt::format("concur config: {} \"{}\"", messages::kUnknownExecutor, config.executor));
}

Executor::Executor(Config config) : config_(std::move(config)), stall_handler_(&print_stall) {}
Executor::~Executor() { check_destroy_allowed(); }

namespace {
[[noreturn]] void throw_destroyed_while_running() {
  throw UsageError(std::string(messages::kDestroyedWhileRunning));
}
}  // namespace

void Executor::check_destroy_allowed() const noexcept {
  if (owner_.load() == std::thread::id{}) return;
  // Thrown through noexcept: the program ends, and the terminate handler
  // prints the rule (waiting here would hang, going on would crash later).
  throw_destroyed_while_running();
}

void Executor::run_owned(std::coroutine_handle<> root, detail::Context& ctx) {
  const std::thread::id me = std::this_thread::get_id();
  std::thread::id none{};
  if (!owner_.compare_exchange_strong(none, me)) {
    // The same thread again (a task of a blocking executor calling its own
    // executor's blocking API) is not this rule's business.
    if (none != me) throw UsageError(std::string(messages::kConcurrentUse));
    run_root(root, ctx);
    return;
  }
  struct Release {
    std::atomic<std::thread::id>& owner;
    ~Release() { owner.store(std::thread::id{}); }
  } release{owner_};
  run_root(root, ctx);
}

void Executor::on_stall(StallHandler handler) { stall_handler_ = std::move(handler); }

void Executor::report_stall(std::string_view task, std::chrono::nanoseconds held, bool ongoing) {
  if (!ongoing) {
    stalls_.fetch_add(1);
    if (trace::detail::enabled()) trace::detail::stall(name(), task, held);
  }
  if (stall_handler_) {
    stall_handler_(StallReport{
        std::string(name()), std::string(task), held,
        std::chrono::duration_cast<std::chrono::nanoseconds>(config_.stall_threshold), ongoing});
  }
}

GatherOptions Executor::defaults(GatherOptions o) const {
  if (o.limit == 0) o.limit = config_.limit;
  if (o.timeout.count() == 0) o.timeout = config_.timeout;
  if (o.deadline.count() == 0) o.deadline = config_.deadline;
  return o;
}

}  // namespace concur
