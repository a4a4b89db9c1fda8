// SPDX-License-Identifier: BSL-1.0
// What is particular to the processes executor (DESIGN §3, §5).
//
// `processes` runs registered calls (CONCUR_REGISTER) in a pool of worker
// processes: copies of this program (or of Config::worker_executable)
// launched with Boost.Process, in which concur::init(argc, argv) serves calls
// instead of returning. Arguments and results cross as bytes (concur/codec.hpp),
// errors as type name and message (CONCUR_REGISTER_ERROR keeps the type).
//
// Rules worth knowing:
// - Only registered functions with codecs for their parameter and result
//   types can run there; a gather holding anything else fails with a
//   UsageError before any of its calls starts.
// - Each worker runs up to Config::worker_concurrency calls at once (default
//   1024) on an in-process executor, Config::worker_executor (default
//   event_loop), so their waits overlap; a call goes to the least loaded
//   worker with a free slot. Executor::lanes() is workers x calls each.
// - A call whose worker dies (crash, abort, exit) fails with WorkerCrashed
//   naming the signal or exit status; so do the calls the worker had started
//   beside it (the message says they were in flight on it). Calls it had not
//   started are sent to another worker; the worker is replaced and the rest
//   of the batch goes on. worker_concurrency = 1 confines a crash to its call.
// - A timed-out or cancelled call is cancelled inside its worker (its waits
//   wake, concur::cancelled() turns true); if it has not stopped after
//   Config::cancel_grace the worker is killed and replaced. A per-task
//   `timeout` counts from the call's start in its worker, not from its wait
//   for a free slot; a batch `deadline` counts from the gather's start.
// - Workers start with the first call (default: one per core) and are
//   recycled after Config::max_tasks_per_child calls. Up to ~1 ms of short
//   calls is sent ahead to each worker, so tiny calls cost a few microseconds;
//   a worker stuck in a call hands back the calls it has not started when
//   another worker is idle.
// - A nested gather inside a call runs inside that call's worker, on its
//   worker_executor; the root task of Executor::run() and its direct gathers
//   run in the parent. A stall inside a worker is reported to the parent's
//   stall handler.
// - Workers die with the parent (PR_SET_PDEATHSIG plus end-of-file on their
//   socket); their stderr reaches the parent's, each line prefixed with
//   "[worker PID] "; their stdout is the parent's stdout. (PR_SET_PDEATHSIG
//   follows the thread that launched a worker: if that thread ends, its
//   workers end too and are replaced at the next call.)
// - A launched worker that never reaches concur::init (a forgotten init)
//   fails the batch with WorkerStartError within seconds; it cannot launch
//   workers of its own.
#pragma once

#include <string_view>

#include "concur/errors.hpp"

namespace concur {

namespace messages {
inline constexpr std::string_view kWorkerCrashed = "worker process died";
inline constexpr std::string_view kWorkerDidNotStart = "worker process did not start serving calls";
inline constexpr std::string_view kForgotInit = "main() must call concur::init(argc, argv) first";
inline constexpr std::string_view kNotRegistered = "runs registered functions only";
}  // namespace messages

/// The worker process running a call died (signal or exit) before replying.
class WorkerCrashed : public Error {
 public:
  using Error::Error;
};

/// The pool could not start a worker that serves calls (most often: the
/// program's main() does not call concur::init first).
class WorkerStartError : public Error {
 public:
  using Error::Error;
};

}  // namespace concur
