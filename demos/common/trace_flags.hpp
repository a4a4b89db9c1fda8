// SPDX-License-Identifier: BSL-1.0
// --trace FILE and --timeline FILE for every demo.
//
//   concur::demo::TraceFlags tf(app);                 // before CLI11_PARSE
//   tf.expect_runs(executors.size() * cases.size());  // after parsing
//   for (...) {
//     auto rec = tf.start(*ex);                       // null unless asked for
//     ... run the batch, time it ...
//     tf.finish(rec, label, case_name, wall_s);       // writes the files
//   }
//
// With one run, FILE is used as given. With several, "-<case>-<executor>" is
// put before FILE's extension (run.json -> run-gather-event_loop.json), unless
// FILE spells the parts itself with {case} and {executor}.
#pragma once

#include <CLI/CLI.hpp>
#include <concur/concur.hpp>
#include <concur/trace.hpp>
#include <memory>
#include <string>
#include <vector>

namespace concur::demo {

class TraceFlags {
 public:
  /// Adds --trace and --timeline to `app`. `default_timeline` (may be
  /// empty) is the --timeline pattern used when the flag is not given.
  explicit TraceFlags(CLI::App& app, std::string default_timeline = "");

  void expect_runs(std::size_t runs) { runs_ = runs; }
  /// Whether any file will be written.
  bool wanted() const { return !trace_.empty() || !timeline_.empty(); }

  /// Starts recording `ex` if a file was asked for, or if `always`.
  std::unique_ptr<trace::Recorder> start(const Executor& ex, bool always = false) const;

  /// Stops `rec` (if any), writes the asked-for files for this run, and
  /// returns the trace (empty without a recorder). `title` goes on the SVG.
  trace::Trace finish(std::unique_ptr<trace::Recorder>& rec, const std::string& executor_label,
                      const std::string& case_name, double wall_s, const std::string& title = "");

  /// Files written so far, in order.
  const std::vector<std::string>& written() const { return written_; }
  /// The path a run's file gets from `pattern` (see above).
  std::string path_for(const std::string& pattern, const std::string& executor_label,
                       const std::string& case_name) const;

 private:
  std::string trace_;
  std::string timeline_;
  std::size_t runs_ = 1;
  std::vector<std::string> written_;
};

/// "fibers(threads=2)" -> "fibers-threads-2": safe in a file name.
std::string file_safe(const std::string& s);

}  // namespace concur::demo
