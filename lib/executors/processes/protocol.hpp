// The wire protocol between the parent and its worker processes.
//
// Each worker gets a Unix socket as stdin for requests and a pipe as fd 3 for
// its replies; both carry length-prefixed binary frames (native byte order:
// same program, same machine):
//
//   frame   = u32 size-of-rest, u8 kind, body
//   hello   (worker -> parent)  u32 pid                 sent once by concur::init
//   call    (parent -> worker)  u64 id, u64 signature, u64 timeout ns (0: none),
//                               u16 name length, name, arguments
//   cancel  (parent -> worker)  u64 id
//   reply   (worker -> parent)  u64 id, u8 status, u64 run ns, u64 start (steady clock ns), payload
//     status ok:        the encoded result
//     status error:     string mangled type, string type, string message
//     status cancelled: nothing
//
// A worker runs its calls one at a time in arrival order and writes each
// reply as soon as its call ends, so when a worker dies the parent knows
// exactly which call it was running: the oldest one without a reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace concur::executors::processes {

enum class Kind : std::uint8_t { hello = 1, call = 2, cancel = 3, reply = 4 };
enum class Status : std::uint8_t { ok = 0, error = 1, cancelled = 2 };

inline constexpr std::size_t kHeader = 5;  // u32 size + u8 kind
// Offsets inside a call frame.
inline constexpr std::size_t kCallIdAt = kHeader;
inline constexpr std::size_t kCallSignatureAt = kCallIdAt + 8;
inline constexpr std::size_t kCallTimeoutAt = kCallSignatureAt + 8;
inline constexpr std::size_t kCallNameAt = kCallTimeoutAt + 8;  // u16 length, then the name
// Offsets inside a reply frame.
inline constexpr std::size_t kReplyIdAt = kHeader;
inline constexpr std::size_t kReplyStatusAt = kReplyIdAt + 8;
inline constexpr std::size_t kReplyNanosAt = kReplyStatusAt + 1;
inline constexpr std::size_t kReplyStartAt = kReplyNanosAt + 8;  // for traces: one clock per host
inline constexpr std::size_t kReplyPayloadAt = kReplyStartAt + 8;
// A frame larger than this is a protocol error (a corrupted stream).
inline constexpr std::uint32_t kMaxFrame = 1u << 30;

// A worker reads requests on its stdin (a socket) and writes to this fd (a pipe).
inline constexpr int kReplyFd = 3;

// The environment variables that make a launched program a worker.
inline constexpr const char* kWorkerVariable = "CONCUR_INTERNAL_WORKER";
inline constexpr const char* kParentVariable = "CONCUR_INTERNAL_PARENT_PID";

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
