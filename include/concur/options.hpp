// SPDX-License-Identifier: BSL-1.0
// Options of one gather: how many in flight, how long each task and the whole
// batch may take, and who hears about progress.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <stop_token>

namespace concur {

/// A snapshot handed to GatherOptions::on_progress after each task ends
/// (a copy the callback may keep).
struct Progress {
  std::size_t done = 0;    ///< inputs finished (succeeded, failed or never started)
  std::size_t failed = 0;  ///< of those, how many failed
  std::size_t total = 0;   ///< inputs in the batch
};

/// Options of a gather. Zero means "no limit" for every field. Durations
/// saturate: std::chrono::nanoseconds::max() (or any time past the clock's
/// range) means "practically never", never an overflow. A negative timeout
/// means no timeout; a negative `deadline` has already passed (see below).
/// A plain value, copied into the gather; the blocking Executor functions
/// replace zero fields by the Config defaults.
///
/// Written with designated initialisers: `{.limit = 64, .timeout = 30s}`.
struct GatherOptions {
  /// At most this many tasks in flight (asyncio.Semaphore / max_workers).
  std::size_t limit = 0;
  /// Each task must finish within this time, counted from its own start,
  /// or it fails with concur::TimeoutError.
  std::chrono::nanoseconds timeout{0};
  /// The whole batch must finish within this time, counted from the gather's
  /// start; unfinished tasks fail with concur::DeadlineExceeded. A negative
  /// deadline (one computed as already past) fails every input of the batch
  /// with DeadlineExceeded at once; it does not mean "none".
  std::chrono::nanoseconds deadline{0};
  /// Called after every finished input, serially (never concurrently with
  /// itself), on whichever thread finished it. Keep it short; it must not
  /// throw (an exception from it ends the program).
  std::function<void(const Progress&)> on_progress{};
  /// Cancels the batch from outside (another thread, a signal handler's
  /// std::stop_source): once stop is requested every task sees cancelled()
  /// and its waits throw Cancelled, inputs not started yet get Cancelled, a
  /// settled gather still gives one Result per input and a fail-fast one
  /// throws Cancelled. Empty (the default): nothing from outside.
  std::stop_token stop{};
};

}  // namespace concur
