// SPDX-License-Identifier: BSL-1.0
// concur-batch's runner: the input streamed through the controller to the
// endpoint on one executor, each outcome appended to the output as it comes.
//
// Exactly once: before anything is sent the output file is recovered (a torn
// last line cut off, the custom_ids there become the done-set) and the input
// scanned (malformed lines counted, a custom_id twice is an error naming both
// lines). Requests run in chunks of gathers whose children each take the next
// undone line from the shared reader, so neither the input nor the results
// are ever held whole: memory stays flat however long the file.
#pragma once

#include <atomic>
#include <concur/concur.hpp>
#include <concur/llm.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "control.hpp"
#include "input.hpp"
#include "output.hpp"

namespace concur::batch {

struct RemoteReply;  // remote.hpp

struct RunnerOptions {
  std::string input, output, errors;  ///< errors may be empty
  InputFormat format = InputFormat::automatic;
  PromptSettings prompts;
  llm::ClientOptions client;  ///< base_url, api_key, timeouts (its retries are unused)
  ControlOptions control;
  int max_retries = 10;  ///< per request, for 408/409/429/5xx and connection errors
  std::chrono::milliseconds initial_backoff{250}, max_backoff{8000};
  FsyncPolicy fsync = FsyncPolicy::interval;
  std::size_t chunk = 8192;  ///< gather children per chunk
};

struct Summary {
  std::size_t input_lines = 0, input_requests = 0, invalid = 0;
  std::size_t already_done = 0;  ///< found in the output at start
  std::size_t to_run = 0;        ///< what this run had to do
  std::size_t ok = 0, failed = 0;
  std::size_t unsent = 0;                     ///< left for a rerun (stopped)
  std::size_t retried = 0, rate_limited = 0;  ///< retries made; 429 replies seen
  std::int64_t prompt_tokens = 0, completion_tokens = 0, total_tokens = 0;
  double wall_s = 0, requests_per_s = 0;
  bool stopped = false;
  bool torn_line = false;  ///< a torn last line was cut off the output
  ControlStats control;
};

class Runner {
 public:
  /// Recovers the output and scans the input. Throws DuplicateId, or
  /// std::runtime_error for files that cannot be read or resumed into.
  explicit Runner(RunnerOptions options);
  ~Runner();

  std::size_t to_run() const noexcept { return summary_.to_run; }
  const Summary& before() const noexcept { return summary_; }

  /// Runs what is left on `ex`. `on_progress(done, failed)` hears each
  /// finished request (serially, on any thread). `gather_limit` caps the
  /// children in flight (0: the controller's ceiling).
  Summary run(Executor& ex, std::function<void(std::size_t, std::size_t)> on_progress = {});

  /// Stop sending: requests in flight finish and are written, the rest are
  /// left for a rerun. Async-signal-safe.
  void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  bool stopping() const noexcept { return stop_.load(std::memory_order_relaxed); }

  /// Invalid-input messages go here (default: stderr).
  std::function<void(const std::string&)> on_invalid_line;

 private:
  friend Task<void> run_one(Runner* r);
  friend Task<void> run_chunks(Runner* r, std::size_t gather_limit);
  friend Task<void> run_waves(Runner* r);
  std::optional<Request> next_request();
  Task<void> perform(Request request);
  std::optional<std::chrono::milliseconds> judge(RemoteReply& got, int attempt,
                                                 std::int64_t estimate, std::size_t in_flight,
                                                 Outcome& out, std::optional<llm::Usage>& usage);
  std::int64_t estimate_of(const Request& request) const;
  void record(const Outcome& o, const std::optional<llm::Usage>& usage);
  std::chrono::milliseconds backoff(int retry) const;

  RunnerOptions opts_;
  Summary summary_;
  std::vector<IdKey> done_;
  llm::Client client_;
  Controller control_;
  std::mutex input_mutex_;
  std::unique_ptr<InputReader> reader_;
  std::unique_ptr<LineFile> output_, errors_;
  std::mutex counts_mutex_;
  std::function<void(std::size_t, std::size_t)> on_progress_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace concur::batch
