// SPDX-License-Identifier: BSL-1.0
// The messages between rank 0 and the other ranks of a cluster job.
//
// Rank 0 runs the program and the parent's pool; every other rank is a
// relay: it runs one worker process (the processes executor's worker, the
// same program) and carries that worker's byte streams over MPI. The pool's
// own frames (protocol.hpp) travel inside these messages untouched, so the
// cluster executor is the processes executor with its sockets stretched
// across ranks. A rank's worker lives below it because Open MPI ends the
// whole job when a rank dies: a call that crashes kills only the worker,
// and the rank reports how it died.
//
// Every message starts with the u64 epoch of the worker it concerns (a
// rank's workers are numbered by rank 0 as it asks for them), so bytes of a
// worker that is gone never reach its successor.
//
//   start    (0 -> r)  epoch, u32 length + settings, u32 length + executable ("": the same program)
//   data     (0 -> r)  epoch, request bytes for the worker's stdin
//            (r -> 0)  epoch, reply bytes from the worker's fd 3
//   err      (r -> 0)  epoch, bytes the worker wrote to stderr
//   gone     (r -> 0)  epoch, i32 wait status, the worker's last words (fd 4)
//   kill     (0 -> r)  epoch: SIGKILL the worker now
//   close    (0 -> r)  epoch: end the worker's stdin (it exits when done)
//   shutdown (0 -> r)  the job is over: end the worker and leave
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace concur::executors::cluster {

enum Tag : int { start = 1, data = 2, err = 3, gone = 4, kill = 5, close = 6, shutdown = 7 };

/// A message of `epoch` with `body` after it.
inline std::string message(std::uint64_t epoch, std::string_view body = {}) {
  std::string m(sizeof epoch, '\0');
  std::memcpy(m.data(), &epoch, sizeof epoch);
  m.append(body);
  return m;
}
inline std::uint64_t epoch_of(std::string_view m) {
  std::uint64_t e = 0;
  if (m.size() >= sizeof e) std::memcpy(&e, m.data(), sizeof e);
  return e;
}
inline std::string_view body_of(std::string_view m) {
  return m.size() >= 8 ? m.substr(8) : std::string_view{};
}
inline void put_string(std::string& m, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  m.append(reinterpret_cast<const char*>(&n), sizeof n);
  m.append(s);
}
/// Reads a put_string field at `at`, advancing it; empty if truncated.
inline std::string_view get_string(std::string_view m, std::size_t& at) {
  std::uint32_t n = 0;
  if (m.size() < at + sizeof n) return {};
  std::memcpy(&n, m.data() + at, sizeof n);
  at += sizeof n;
  if (m.size() < at + n) return {};
  const std::string_view s = m.substr(at, n);
  at += n;
  return s;
}

}  // namespace concur::executors::cluster
