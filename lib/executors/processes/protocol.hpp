// SPDX-License-Identifier: BSL-1.0
// The wire protocol between the parent and its worker processes.
//
// Each worker gets a Unix socket as stdin for requests, a pipe as fd 3 for
// its replies, and a pipe as fd 4 for its last words (which call it was
// running when it crashed). Requests and replies are length-prefixed binary
// frames (native byte order: same program, same machine):
//
//   frame   = u32 size-of-rest, u8 kind, body
//   hello   (worker -> parent)  u32 pid                 sent once by concur::init
//   call    (parent -> worker)  u64 id, u64 signature, u64 timeout ns (0: none),
//                               u8 flags, u16 name length, name, arguments
//   cancel  (parent -> worker)  u64 id
//   revoke  (parent -> worker)  nothing: hand back every call not started yet
//   reply   (worker -> parent)  u64 id, u8 status, u64 run ns, u64 start (steady
//                               clock ns), u64 thread id, u32 wait count,
//                               waits (u64 start, u64 end ns each), payload
//     status ok:        the encoded result
//     status error:     string mangled type, string type, string message
//     status cancelled: nothing
//     status returned:  nothing (a revoked call that had not started: send it elsewhere)
//     status overdue:   u32 count, u64 ids: the call outlived its timeout or
//                       its cancellation by the cancel grace without stopping;
//                       the worker starts nothing more and the parent kills
//                       it; the ids are the calls it had started
//   stall   (worker -> parent)  u64 held ns, u64 thread id, u8 ongoing, string task
//
// A worker runs up to `worker_concurrency` calls at once on its own
// in-process executor and takes queued calls in arrival order, so at most
// that many calls are started and unanswered at any time, and they are the
// oldest unanswered ones: when a worker dies, calls sent after those never
// started and are safe to send again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace concur::executors::processes {

enum class Kind : std::uint8_t {
  hello = 1,
  call = 2,
  cancel = 3,
  reply = 4,
  revoke = 5,
  stall = 6
};
enum class Status : std::uint8_t { ok = 0, error = 1, cancelled = 2, returned = 3, overdue = 4 };

/// Call flags.
inline constexpr std::uint8_t kRecordWaits = 1;  // the parent records a trace: send the waits

inline constexpr std::size_t kHeader = 5;  // u32 size + u8 kind
// Offsets inside a call frame.
inline constexpr std::size_t kCallIdAt = kHeader;
inline constexpr std::size_t kCallSignatureAt = kCallIdAt + 8;
inline constexpr std::size_t kCallTimeoutAt = kCallSignatureAt + 8;
inline constexpr std::size_t kCallFlagsAt = kCallTimeoutAt + 8;
inline constexpr std::size_t kCallNameAt = kCallFlagsAt + 1;  // u16 length, then the name
// Offsets inside a reply frame.
inline constexpr std::size_t kReplyIdAt = kHeader;
inline constexpr std::size_t kReplyStatusAt = kReplyIdAt + 8;
inline constexpr std::size_t kReplyNanosAt = kReplyStatusAt + 1;
inline constexpr std::size_t kReplyStartAt = kReplyNanosAt + 8;  // for traces: one clock per host
inline constexpr std::size_t kReplyThreadAt = kReplyStartAt + 8;
inline constexpr std::size_t kReplyWaitsAt = kReplyThreadAt + 8;  // u32 count, then the waits
inline constexpr std::size_t kReplyFixed = kReplyWaitsAt + 4;
// A frame larger than this is a protocol error (a corrupted stream).
inline constexpr std::uint32_t kMaxFrame = 1u << 30;

// A worker reads requests on its stdin (a socket) and writes to these fds (pipes).
inline constexpr int kReplyFd = 3;
inline constexpr int kLastWordsFd = 4;

/// What a dying worker writes on its last-words pipe: the id of the call
/// whose code crashed it (0: not known), the signal (0 for exit()), and how
/// many ids follow (u64 each): the calls it had started and not answered.
struct LastWords {
  std::uint64_t id = 0;
  std::int32_t signal = 0;
  std::uint32_t started = 0;
};

// The environment variables that make a launched program a worker.
inline constexpr const char* kWorkerVariable = "CONCUR_INTERNAL_WORKER";
inline constexpr const char* kParentVariable = "CONCUR_INTERNAL_PARENT_PID";
// How the worker runs its calls: "key=value;key=value" of Config keys
// (worker_executor, worker_concurrency, stall_ms, threads, stack_kb, cancel_grace_ms).
inline constexpr const char* kSettingsVariable = "CONCUR_INTERNAL_WORKER_SETTINGS";

template <class T>
void store(std::string& s, std::size_t at, T v) {
  std::memcpy(s.data() + at, &v, sizeof v);
}
template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void append(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

/// Starts a frame of `kind` in `s` (size patched by end_frame).
inline std::size_t begin_frame(std::string& s, Kind kind) {
  const std::size_t at = s.size();
  append<std::uint32_t>(s, 0);
  append<std::uint8_t>(s, static_cast<std::uint8_t>(kind));
  return at;
}
inline void end_frame(std::string& s, std::size_t at) {
  store<std::uint32_t>(s, at, static_cast<std::uint32_t>(s.size() - at - 4));
}

/// Runs as a worker server if this process was launched as one; never
/// returns then. Called by concur::init.
void serve_if_worker();

}  // namespace concur::executors::processes
