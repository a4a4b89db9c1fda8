// SPDX-License-Identifier: BSL-1.0
// concur-batch's output: OpenAI Batch output lines, appended one whole line
// per write(2) as each request finishes, and the recovery that makes a rerun
// exactly-once.
//
//   {"id": "batch_req_...", "custom_id": "r1",
//    "response": {"status_code": 200, "request_id": "req_...", "body": {...}},
//    "error": null}
//
// Durability (the fsync policy, --fsync):
//   interval (default)  fdatasync(2) at most once a second as lines are
//                       appended, and at the end of the run;
//   always              fdatasync after every line;
//   never               only at the end of the run.
// A line is whole in the file once its write(2) returns, so a killed process
// (SIGKILL, a crash) loses nothing it wrote; an OS crash or power loss may
// lose the lines written since the last fdatasync, and a rerun sends those
// requests again. Either way the rerun finds each custom_id at most once.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "input.hpp"

namespace concur::batch {

enum class FsyncPolicy { interval, always, never };
/// "interval", "always" or "never"; throws std::invalid_argument otherwise.
FsyncPolicy parse_fsync(const std::string& text);

/// An append-only file of lines, shared by every task (thread-safe).
class LineFile {
 public:
  /// Opens (creating) `path` for appending. Throws std::runtime_error.
  LineFile(const std::string& path, FsyncPolicy policy, bool truncate = false);
  ~LineFile();
  LineFile(const LineFile&) = delete;
  LineFile& operator=(const LineFile&) = delete;
  /// Appends `line` and a newline with one write(2).
  void append(std::string line);
  /// fdatasync now.
  void sync();
  const std::string& path() const noexcept { return path_; }

 private:
  std::mutex mutex_;
  int fd_ = -1;
  std::string path_;
  FsyncPolicy policy_;
  std::chrono::steady_clock::time_point last_sync_;
  bool dirty_ = false;
};

/// What an existing output file already holds.
struct Recovered {
  std::vector<IdKey> done;  ///< keys of the custom_ids present, sorted
  std::size_t lines = 0;    ///< complete lines kept
  bool torn = false;        ///< a torn last line was cut off
  std::string torn_text;    ///< its first bytes, for the message
  /// The kept lines that record a failure (for rebuilding the errors file).
  std::vector<std::string> failed_lines;
};

/// Reads `path` (absent: nothing done). A last line without its newline, or
/// one that is not a JSON object with a custom_id, is a torn write: it is cut
/// off (the file truncated to the end of the line before) and its request is
/// done again. Any other unreadable line, or a custom_id twice, means the
/// file is not this tool's output: throws std::runtime_error naming the line.
Recovered recover_output(const std::string& path, bool keep_failed_lines);

/// Whether `key` is in the sorted `done`.
bool is_done(const std::vector<IdKey>& done, const IdKey& key);

/// The outcome of one request, as the output line records it.
struct Outcome {
  std::string custom_id{};
  long status = 0;  ///< 0: no HTTP response (transport error, cancelled)
  std::string request_id{};
  std::string body{};        ///< the response body (JSON, or text)
  std::string error_code{};  ///< set when status == 0
  std::string error_message{};
  bool ok() const noexcept { return status >= 200 && status < 300; }
};

/// The Batch output line for `o` (no newline).
std::string output_line(const Outcome& o);
/// The errors-file line for a malformed input line (no newline).
std::string invalid_line(std::size_t line, const std::string& message);

}  // namespace concur::batch
